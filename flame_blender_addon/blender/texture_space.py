"""A texture space on a head: an albedo material whose image follows keyable coefficients.

The material keeps the space's file path (``flame_texture_space``), the number of components
loaded (``flame_texture_components``) and one float custom property per coefficient (``tex000``,
``tex001``, ...), which can be keyed like any property. :func:`refresh`, a persistent frame-change
and depsgraph handler, recomputes the albedo image (numpy: the changed components added to the
albedo shown, or one matrix-vector product when most changed) when the coefficients it sees differ
from those last written.

The basis (up to 630 MB of float32) is never stored in the .blend: it stays in a module cache
keyed by file path. After a .blend is reopened, the image shows the albedo packed when it was
made until the coefficients change; then the basis is read again from the stored path (a missing
file leaves the image as it is, once noted in the console). A material whose path is empty keeps
its coefficients only (a metrical-tracker take imported without the texture space).
"""

from __future__ import annotations

import logging
from pathlib import Path

import bpy
import numpy as np

from ..core.errors import FlameError
from ..core.formats.texture_space import TEXTURE_FILES, TextureSpace, read_texture_space
from . import appearance, compat

log = logging.getLogger("flame_blender_addon")

PATH_KEY = "flame_texture_space"
COMPONENTS_KEY = "flame_texture_components"
NEUTRAL_ALBEDO = 0.6  # the image of a material whose texture space is not loaded

_spaces: dict[str, TextureSpace] = {}  # file path -> the space as loaded
_shown: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # material pointer -> (coefficients, albedo) its image shows
_missing: set[str] = set()  # paths already reported unreadable by the handler


def coefficient_name(k: int) -> str:
    return f"tex{k:03d}"


def load(path: str | Path, n_components: int | None = None) -> TextureSpace:
    """The texture space at ``path`` with at least ``n_components`` (None: all), from the cache when it has them."""
    key = str(Path(path).resolve())
    space = _spaces.get(key)
    if space is None or space.n_components < min(n_components or space.n_total, space.n_total):
        _spaces.pop(key, None)  # release the old copy before reading the new one
        space = _spaces[key] = read_texture_space(key, n_components)
    return space


def remember(space: TextureSpace) -> None:
    """Cache a space read elsewhere (:func:`..core.formats.assets.read_assets`) as :func:`load` would."""
    key = str(Path(space.path).resolve())
    if key not in _spaces or _spaces[key].n_components <= space.n_components:
        _spaces[key] = space


def coefficients(material: bpy.types.ID) -> np.ndarray:
    """The coefficients (n,) stored on a texture-space material (or its evaluated copy)."""
    values = []
    while coefficient_name(len(values)) in material:
        values.append(float(material[coefficient_name(len(values))]))
    return np.array(values, dtype=np.float32)


def finds_no_uvs(mesh: bpy.types.Mesh, space: TextureSpace) -> bool:
    """Whether ``space`` has no UVs to show on ``mesh``: it stores no ``vt``/``ft`` and the mesh has no ``UVMap``."""
    return space.vt is None and mesh.uv_layers.get("UVMap") is None


def apply_texture_space(context: bpy.types.Context, mesh_obj: bpy.types.Object, space: TextureSpace | None,
                        coeffs: np.ndarray | None = None, sh: np.ndarray | None = None, sh_frame: str = "OBJECT",
                        name: str = "flame_texture") -> bpy.types.Material:
    """The albedo material of ``space`` with ``coeffs`` (default zeros: the mean) on a head mesh,
    under ``sh`` (9, 3) lighting in ``sh_frame`` (:mod:`.appearance`; None: unlit, the albedo as it is).

    space None keeps the coefficients only, over a neutral grey. UVs come from the space's
    ``vt``/``ft`` when it has them, else the mesh must already have a ``UVMap`` layer.
    """
    n = space.n_components if space is not None else len(coeffs if coeffs is not None else ())
    c = np.zeros(n, dtype=np.float32) if coeffs is None else np.asarray(coeffs, dtype=np.float32).reshape(-1)
    if space is not None:
        if len(c) > n:
            raise FlameError(f"{len(c)} texture coefficients, but {Path(space.path).name} has {n} components "
                             "loaded; load more components")
        c = np.concatenate([c, np.zeros(n - len(c), np.float32)])
        if finds_no_uvs(mesh_obj.data, space):
            raise FlameError(f"{mesh_obj.name} has no UVMap and the texture space stores no 'vt'/'ft': import the "
                             "head's UVs first (e.g. a tracked sequence with an albedo)")
        if space.vt is not None:
            appearance.set_uvs(mesh_obj.data, space.vt, space.ft)
    rgb = space.albedo(c) if space is not None else np.full((16, 16, 3), NEUTRAL_ALBEDO, np.float32)
    image = appearance.albedo_image(name, rgb)
    material = appearance.albedo_material(name, image, appearance.UNLIT if sh is None else sh, sh_frame)
    material[PATH_KEY] = space.path if space is not None else ""
    material[COMPONENTS_KEY] = n
    for k, value in enumerate(c):
        material[coefficient_name(k)] = float(value)
    if space is not None:
        _shown[material.as_pointer()] = (c, rgb)
    return appearance.assign(mesh_obj, material)


def kept_coefficients(mesh_obj: bpy.types.Object) -> np.ndarray:
    """The coefficients (n,) of the head's current texture-space material (none: (0,))."""
    return coefficients(mesh_obj.data.materials[0]) if mesh_obj.data.materials else np.zeros(0, np.float32)


def apply_to_head(context: bpy.types.Context, mesh_obj: bpy.types.Object, space: TextureSpace) -> bpy.types.Material:
    """:func:`apply_texture_space` keeping the coefficients and SH lighting of the head's current
    texture-space material (e.g. a metrical-tracker take's), its per-frame lighting keys included."""
    current = mesh_obj.data.materials[0] if mesh_obj.data.materials else None
    coeffs = kept_coefficients(mesh_obj)
    sh, frame = appearance.lighting_of(current) if current is not None else (None, "OBJECT")
    anim = current.node_tree.animation_data if appearance.sh_node(current) is not None else None
    material = apply_texture_space(context, mesh_obj, space, coeffs if len(coeffs) else None, sh, frame)
    if anim is not None and anim.action is not None:  # same node names: the keys drive the new group
        compat.assign_action(material.node_tree, anim.action)
    return material


def describe(space: TextureSpace, material: bpy.types.Material) -> str:
    """What a space became, for a report: file, layout, components loaded, the keyable properties."""
    return (f"{Path(space.path).name} ({space.layout}, {material[COMPONENTS_KEY]} of {space.n_total} components) "
            f"as {material.name}, keyable ['tex000'...]")


def apply_tracked_look(context: bpy.types.Context, mesh_obj: bpy.types.Object, look: dict[str, np.ndarray],
                       space_path: Path | None, frames: np.ndarray) -> list[str]:
    """metrical-tracker's ``tex`` / ``sh`` (:attr:`..core.sequence.FlameSequence.appearance`) on a head:
    the texture space's albedo when ``space_path`` is given and the head has UVs (from it or its own),
    else the coefficients only over grey; per-frame ``sh_frames`` keyed at the scene ``frames`` (T,) of
    the checkpoints. Returns notes for the user."""
    coeffs, sh = look.get("tex"), look.get("sh")
    space = load(space_path) if space_path is not None and coeffs is not None else None
    notes = []
    if space is not None and finds_no_uvs(mesh_obj.data, space):
        notes.append(f"{space_path.name} has no UVs and the head has no UVMap: the albedo is grey until UVs "
                     "are imported and Import Texture Space is run")
        space = None
    elif space is None and coeffs is not None:
        notes.append(f"the take's {len(coeffs)} texture coefficients are kept on the material; the albedo needs "
                     f"the texture space ({' or '.join(TEXTURE_FILES)}): Import Texture Space")
    material = apply_texture_space(context, mesh_obj, space, coeffs, sh, "OBJECT")
    if appearance.FRAMES_KEY in look:
        appearance.key_sh(material, frames, look[appearance.FRAMES_KEY])
    return notes


def texture_image(material: bpy.types.Material) -> bpy.types.Image | None:
    return next((n.image for n in material.node_tree.nodes if n.type == "TEX_IMAGE"), None) \
        if material.node_tree else None


def _update(material: bpy.types.Material, evaluated: bpy.types.ID) -> None:
    path, image = material.get(PATH_KEY), texture_image(material)
    if not path or image is None:
        return
    c = coefficients(evaluated)
    shown = _shown.get(material.as_pointer())
    if shown is not None and np.array_equal(shown[0], c):
        return
    try:
        space = load(path, max(int(material.get(COMPONENTS_KEY, 0)), len(c)) or None)
    except FlameError as err:
        if path not in _missing:
            _missing.add(path)
            log.warning("%s: texture space not reloaded (%s)", material.name, err)
        return
    same_length = shown is not None and len(shown[0]) == len(c)
    rgb = space.changed(shown[1], shown[0], c) if same_length else space.albedo(c)
    appearance.write_pixels(image, rgb)
    _shown[material.as_pointer()] = (c, rgb)


@bpy.app.handlers.persistent
def refresh(scene: bpy.types.Scene, depsgraph: bpy.types.Depsgraph | None = None) -> None:
    """Frame-change / depsgraph handler: rewrite the albedo of texture-space materials whose coefficients changed."""
    for material in bpy.data.materials:
        if PATH_KEY in material:
            _update(material, material.evaluated_get(depsgraph) if depsgraph is not None else material)


@bpy.app.handlers.persistent
def forget(*_args) -> None:
    """load_post: materials of another file; the cached spaces (by path) stay."""
    _shown.clear()
    _missing.clear()


HANDLERS = (("frame_change_post", refresh), ("depsgraph_update_post", refresh), ("load_post", forget))
