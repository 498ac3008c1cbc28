"""Engine-ready exports of an animated FLAME head, as functions and ``flame.export_*`` operators.

- **FBX (Unreal, Unity)**: armature + skinned mesh + every shape key; bone and shape-key animation
  baked per frame. The correctives' driven values are baked as shape-key animation.
- **glTF 2.0 binary**: skin + morph targets + one animation sampling bones and morph weights every
  frame; the correctives' driven weights are sampled into the weights channel. Morph targets carry
  positions only (engines shade them with the base normals; morph normals would double the file).
- **Alembic, USD**: the evaluated mesh per frame (baked vertex animation, correctives in the
  vertices), no rig.
- **OBJ, PLY**: one file per frame of the evaluated mesh.

FBX presets. Both write FBX's Y-up axes, in which the head's rig is FLAME's own frame: the armature
object's +90 degree X rotation cancels the Z-up to Y-up conversion, so the mesh data is FLAME-space
vertices and the bones sit at FLAME's joints. *Unreal*: centimetres, Blender's standard FBX for
Unreal (``UnitScaleFactor`` 1; the factor 100 sits on the two root nodes, the armature and the mesh).
*Unity*: metres (``UnitScaleFactor`` 100, which Unity's "Convert Units" turns into scale 1) with
identity root transforms. Both: no leaf bones, every frame keyed (no curve simplification), only the
head's own actions.

OBJ and PLY are written Y-up with -Z forward, which is FLAME's own frame: with the head at the
world origin, the per-frame files hold FLAME-space vertices in metres.

Every file names the model's FLAME edition and licence (:mod:`..core.editions`) in its metadata:
custom properties on the armature and mesh (FBX), on the mesh (Alembic ``.userProperties``, USD
``userProperties:``), the glTF's ``asset.extras``, comment lines in each OBJ/PLY header.

Every export works on the head's armature and mesh only (the tracker's camera is not exported), uses
the scene's frame range unless told otherwise, and restores the selection, active object, mode,
current frame and frame range afterwards. Nothing is added to the scene.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import addon_utils
import bpy
import numpy as np
from bpy.props import EnumProperty, StringProperty
from bpy_extras.io_utils import ExportHelper

from ..core import editions, rig
from ..core.closed_mesh import close_holes
from ..core.errors import FlameError
from ..core.formats.file_metadata import add_glb_extras, add_obj_comments, add_ply_comments
from ..core.formats.mesh_file import write_obj, write_stl
from . import head
from .help import section
from .measure import evaluated_mesh, mesh_vertices
from .operator_base import HeadOperator
from .progress import Report
from .transaction import active_in_mode, plain_value

FBX_PRESETS = {"UNREAL": "FBX_SCALE_NONE", "UNITY": "FBX_SCALE_UNITS"}  # preset -> the exporter's apply_scale_options
FORMATS = ("fbx_unreal", "fbx_unity", "glb", "abc", "usd", "obj", "ply")
"""Format ids of :func:`export_all`, in the order they are written."""
FRAME_AXES = {"forward_axis": "NEGATIVE_Z", "up_axis": "Y"}  # OBJ/PLY: FLAME's Y-up frame

FrameRange = tuple[int, int]


def _ensure_addon(module: str) -> None:
    """Enable a bundled exporter add-on (``io_scene_fbx``, ``io_scene_gltf2``) if it is off."""
    if not addon_utils.check(module)[1]:
        addon_utils.enable(module, default_set=False)


def head_objects(armature: bpy.types.Object) -> tuple[bpy.types.Object, bpy.types.Object]:
    """(armature, mesh) of a FLAME head, or FlameError."""
    if head.find_head(armature) is not armature:
        raise FlameError(f"'{armature.name}' is not a FLAME head")
    return armature, armature.flame.mesh


def licence_metadata(armature: bpy.types.Object) -> dict[str, str]:
    """What the exports write about the head's model: ``flame_edition``, ``flame_licence`` ..."""
    return editions.metadata(head.edition_of(armature), armature.flame.model_name)


def licence_reminder(armature: bpy.types.Object) -> str:
    """The export report's reminder of the head's licence (empty when it permits commercial use)."""
    return editions.reminder(head.edition_of(armature))


@contextlib.contextmanager
def _licence_properties(armature: bpy.types.Object, objects: list[bpy.types.Object]) -> Iterator[None]:
    """For an exporter that writes custom properties: :func:`licence_metadata` as string properties of
    ``objects`` for the block, and the head's joint basis and regressor off them meanwhile (tens of
    thousands of numbers an engine does not need). Everything is put back afterwards."""
    data, hidden = licence_metadata(armature), (head.JOINT_BASIS_PROP, head.J_REGRESSOR_PROP)
    saved = [(obj, key, plain_value(obj[key])) for obj in objects for key in (*data, *hidden) if key in obj]
    try:
        for obj in objects:
            for key in hidden:
                obj.pop(key, None)
            for key, value in data.items():
                obj[key] = value
        yield
    finally:
        for obj in objects:
            for key in (*data, *hidden):
                obj.pop(key, None)
        for obj, key, value in saved:
            obj[key] = value


@contextlib.contextmanager
def _exporting(context: bpy.types.Context, objects: list[bpy.types.Object],
               frame_range: FrameRange | None) -> Iterator[bpy.types.Scene]:
    """Select only ``objects`` (the first active, OBJECT mode) and set the scene's frame range for
    the block; restore selection, active object, mode, frame range and current frame afterwards."""
    scene = context.scene
    selected = [o for o in context.view_layer.objects if o.select_get()]
    saved = (scene.frame_start, scene.frame_end, scene.frame_current)
    if frame_range is not None and frame_range[1] < frame_range[0]:
        raise FlameError(f"frame range {frame_range[0]}-{frame_range[1]} is empty")
    try:
        with active_in_mode(context, objects[0], "OBJECT"):
            for obj in context.view_layer.objects:
                obj.select_set(obj in objects)
            if frame_range is not None:
                scene.frame_start, scene.frame_end = frame_range
            yield scene
    finally:
        scene.frame_start, scene.frame_end = saved[:2]
        scene.frame_set(saved[2])
        for obj in context.view_layer.objects:
            obj.select_set(obj in selected)


def _run(operator: Callable[..., set[str]], filepath: Path, what: str, **options) -> Path:
    """Call an exporter operator, turning its failures into one FlameError line."""
    filepath.parent.mkdir(parents=True, exist_ok=True)
    try:
        result = operator(filepath=str(filepath), **options)
    except RuntimeError as err:
        raise FlameError(f"{filepath}: {what} export failed: {str(err).strip().splitlines()[-1]}") from err
    if "FINISHED" not in result:
        raise FlameError(f"{filepath}: {what} export was cancelled")
    return filepath


def export_fbx(context: bpy.types.Context, armature: bpy.types.Object, filepath: Path, preset: str = "UNREAL",
               frame_range: FrameRange | None = None, meshes: list[bpy.types.Object] | None = None) -> Path:
    """Armature + skinned mesh + shape keys with baked animation, for Unreal or Unity (``FBX_PRESETS``).
    ``meshes``: the meshes the armature deforms to write (default: the head's own mesh)."""
    if preset not in FBX_PRESETS:
        raise FlameError(f"unknown FBX preset '{preset}' (choose {', '.join(FBX_PRESETS)})")
    _ensure_addon("io_scene_fbx")
    objects = list(head_objects(armature)) if meshes is None else [armature, *meshes]
    with (_exporting(context, objects, frame_range),
          _licence_properties(armature, objects)):
        return _run(bpy.ops.export_scene.fbx, filepath, "FBX", use_selection=True, use_custom_props=True,
                    object_types={"ARMATURE", "MESH"}, use_mesh_modifiers=False, add_leaf_bones=False,
                    primary_bone_axis="Y", secondary_bone_axis="X", axis_forward="-Z", axis_up="Y",
                    bake_anim=True, bake_anim_use_all_bones=True, bake_anim_use_nla_strips=False,
                    bake_anim_use_all_actions=False, bake_anim_force_startend_keying=True,
                    bake_anim_step=1.0, bake_anim_simplify_factor=0.0, apply_unit_scale=True,
                    apply_scale_options=FBX_PRESETS[preset], bake_space_transform=False)


def export_gltf(context: bpy.types.Context, armature: bpy.types.Object, filepath: Path,
                frame_range: FrameRange | None = None) -> Path:
    """glTF 2.0 binary: skin, all shape keys as morph targets, one animation sampled every frame
    (bones and morph weights, the driven correctives' weights included)."""
    _ensure_addon("io_scene_gltf2")
    objects = list(head_objects(armature))
    with _exporting(context, objects, frame_range):
        _run(bpy.ops.export_scene.gltf, filepath, "glTF", export_format="GLB", use_selection=True,
             export_yup=True, export_apply=False, export_skins=True, export_morph=True,
             export_morph_normal=False, export_morph_tangent=False, export_animations=True,
             export_animation_mode="SCENE", export_force_sampling=True, export_frame_step=1,
             export_optimize_animation_size=False, export_def_bones=False, export_leaf_bone=False,
             export_cameras=False, export_lights=False, export_materials="EXPORT")
    add_glb_extras(filepath, licence_metadata(armature))
    return filepath


def export_alembic(context: bpy.types.Context, armature: bpy.types.Object, filepath: Path,
                   frame_range: FrameRange | None = None) -> Path:
    """Alembic: the evaluated mesh per frame in world space (one flattened object, no rig)."""
    _, mesh = head_objects(armature)
    with _exporting(context, [mesh], frame_range) as scene, _licence_properties(armature, [armature, mesh]):
        return _run(bpy.ops.wm.alembic_export, filepath, "Alembic", selected=True, flatten=True,
                    start=scene.frame_start, end=scene.frame_end, uvs=True, normals=True, face_sets=False,
                    evaluation_mode="RENDER", export_custom_properties=True, as_background_job=False)


def export_usd(context: bpy.types.Context, armature: bpy.types.Object, filepath: Path,
               frame_range: FrameRange | None = None) -> Path:
    """USD: the evaluated mesh's points sampled every frame (no skeleton, no blend shapes)."""
    _, mesh = head_objects(armature)
    with _exporting(context, [mesh], frame_range), _licence_properties(armature, [armature, mesh]):
        return _run(bpy.ops.wm.usd_export, filepath, "USD", selected_objects_only=True, export_animation=True,
                    export_armatures=False, export_shapekeys=False, export_materials=False,
                    convert_world_material=False, evaluation_mode="RENDER", export_custom_properties=True,
                    custom_properties_namespace="userProperties")


def export_mesh_frames(context: bpy.types.Context, armature: bpy.types.Object, folder: Path, file_format: str,
                       stem: str = "", frame_range: FrameRange | None = None) -> list[Path]:
    """One OBJ or PLY file of the evaluated mesh per frame: ``folder/<stem>_NNNN.obj|ply`` (FLAME axes)."""
    if file_format not in ("OBJ", "PLY"):
        raise FlameError(f"unknown per-frame format '{file_format}' (choose OBJ or PLY)")
    _, mesh = head_objects(armature)
    stem = stem or armature.name
    suffix = file_format.lower()
    with _exporting(context, [mesh], frame_range) as scene:
        frames = range(scene.frame_start, scene.frame_end + 1)
        paths = [folder / f"{stem}_{frame:04d}.{suffix}" for frame in frames]
        if file_format == "OBJ":  # the exporter loops over the frames itself, naming files <stem>_NNNN
            _run(bpy.ops.wm.obj_export, folder / f"{stem}_.obj", "OBJ", export_animation=True,
                 start_frame=frames[0], end_frame=frames[-1], export_selected_objects=True,
                 apply_modifiers=True, export_eval_mode="DAG_EVAL_RENDER", export_materials=False,
                 export_uv=True, export_normals=True, **FRAME_AXES)
        else:
            for frame, path in zip(frames, paths, strict=True):
                scene.frame_set(frame)
                _run(bpy.ops.wm.ply_export, path, "PLY", export_selected_objects=True, apply_modifiers=True,
                     export_uv=True, export_normals=False, export_colors="NONE", ascii_format=False,
                     **FRAME_AXES)
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise FlameError(f"{folder}: the {file_format} exporter did not write {', '.join(missing[:3])}")
    add_comments, data = (add_obj_comments if file_format == "OBJ" else add_ply_comments), licence_metadata(armature)
    for path in paths:
        add_comments(path, data)
    return paths


def export_all(context: bpy.types.Context, armature: bpy.types.Object, folder: Path, stem: str = "",
               formats: tuple[str, ...] = FORMATS, frame_range: FrameRange | None = None,
               report: Report = lambda f, m: None) -> dict[str, list[Path]]:
    """Write every format in ``formats`` (ids of ``FORMATS``) to ``folder``; returns id -> files.

    Names: ``<stem>_unreal.fbx``, ``<stem>_unity.fbx``, ``<stem>.glb``, ``<stem>.abc``, ``<stem>.usd``,
    ``obj/<stem>_NNNN.obj``, ``ply/<stem>_NNNN.ply``; stem defaults to the armature's name.
    """
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise FlameError(f"unknown export format {', '.join(unknown)} (choose from {', '.join(FORMATS)})")
    stem = stem or armature.name
    writers = {
        "fbx_unreal": lambda: [export_fbx(context, armature, folder / f"{stem}_unreal.fbx", "UNREAL", frame_range)],
        "fbx_unity": lambda: [export_fbx(context, armature, folder / f"{stem}_unity.fbx", "UNITY", frame_range)],
        "glb": lambda: [export_gltf(context, armature, folder / f"{stem}.glb", frame_range)],
        "abc": lambda: [export_alembic(context, armature, folder / f"{stem}.abc", frame_range)],
        "usd": lambda: [export_usd(context, armature, folder / f"{stem}.usd", frame_range)],
        "obj": lambda: export_mesh_frames(context, armature, folder / "obj", "OBJ", stem, frame_range),
        "ply": lambda: export_mesh_frames(context, armature, folder / "ply", "PLY", stem, frame_range),
    }
    written = {}
    for i, fmt in enumerate(formats):
        report(i / len(formats), fmt)
        written[fmt] = writers[fmt]()
    report(1.0, "done")
    return written


UNITS = {"MM": 1000.0, "CM": 100.0, "M": 1.0}
"""Closed-mesh units -> metres to that unit."""


def evaluated_triangles(context: bpy.types.Context, mesh_obj: bpy.types.Object) -> tuple[np.ndarray, np.ndarray]:
    """The evaluated mesh (pose, shape, expression, correctives) in its local coordinates, which for
    a FLAME head are FLAME's axes in metres: vertices (V, 3) float64, triangles (F, 3) int64."""
    with evaluated_mesh(mesh_obj, context.evaluated_depsgraph_get()) as mesh:
        vertices = mesh_vertices(mesh)
        mesh.calc_loop_triangles()
        tris = np.empty(3 * len(mesh.loop_triangles), dtype=np.int32)
        mesh.loop_triangles.foreach_get("vertices", tris)
    return vertices, tris.reshape(-1, 3).astype(np.int64)


def export_closed_mesh(context: bpy.types.Context, armature: bpy.types.Object, filepath: Path,
                       units: str = "MM") -> Path:
    """The current head as one watertight mesh, every hole capped (:mod:`..core.closed_mesh`), for
    3-D printing. ``.stl``: binary STL, Z up; ``.obj`` (any other suffix too): OBJ in FLAME's Y-up axes."""
    if units not in UNITS:
        raise FlameError(f"unknown units '{units}' (choose {', '.join(UNITS)})")
    _, mesh = head_objects(armature)
    vertices, faces = close_holes(*evaluated_triangles(context, mesh))
    vertices = vertices * UNITS[units]
    filepath.parent.mkdir(parents=True, exist_ok=True)
    data = licence_metadata(armature)
    if filepath.suffix.lower() == ".stl":  # its 80-byte header holds a name: the edition and licence
        name = f"FLAME head: {data['flame_edition']}, {data['flame_licence']}"
        return write_stl(filepath, vertices @ rig.FLAME_TO_BLENDER[:3, :3].T, faces, name)
    add_obj_comments(write_obj(filepath, vertices, faces), data)
    return filepath


# --------------------------------------------------------------------------------------------------
# operators


class _ExportOperator(HeadOperator, ExportHelper):
    """Mixin: export the target head (default: the active one) to ``filepath``."""

    bl_options = {"REGISTER"}
    dialog_props: tuple[str, ...] = ()  # properties drawn in the file browser's side panel, under the head

    def draw(self, context):
        col = section(self.layout, "Head", "export", icon="ARMATURE_DATA")
        col.prop_search(self.properties, "target", context.scene, "objects", icon="OUTLINER_OB_ARMATURE")
        if self.dialog_props:
            section(self.layout, "Options", icon="OPTIONS", data=self.properties, names=self.dialog_props)

    def export(self, context, armature: bpy.types.Object, filepath: Path) -> list[Path]:
        raise NotImplementedError

    def run(self, context, armature):
        paths = self.export(context, armature, Path(bpy.path.abspath(self.filepath)))
        self.report({"INFO"}, f"Exported {armature.name} to {paths[0]}" + (f" (+{len(paths) - 1} files)"
                                                                            if len(paths) > 1 else ""))
        reminder = licence_reminder(armature)
        if reminder:  # a reminder, never a refusal: the user may hold a licence for their use
            self.report({"WARNING"}, reminder)
        return {"FINISHED"}


class _FormatNamesFile:
    """Mixin: the file name's extension follows the ``file_format`` property (``check``, in the browser)."""

    def check(self, context):
        self.filename_ext = "." + self.file_format.lower()
        return ExportHelper.check(self, context)


class FLAME_OT_export_fbx(_ExportOperator, bpy.types.Operator):
    """Export the FLAME head as FBX for a game engine: armature, shape keys and baked animation"""

    bl_idname = "flame.export_fbx"
    bl_label = "Export FLAME FBX"
    filename_ext = ".fbx"
    filter_glob: StringProperty(default="*.fbx", options={"HIDDEN"})
    preset: EnumProperty(name="Engine", default="UNREAL", items=(
        ("UNREAL", "Unreal", "Centimetres (unit scale 1, scale 100 on the root nodes)"),
        ("UNITY", "Unity", "Metres (unit scale 100), identity root transforms")))
    dialog_props = ("preset",)

    def export(self, context, armature, filepath):
        return [export_fbx(context, armature, filepath, self.preset)]


class FLAME_OT_export_gltf(_ExportOperator, bpy.types.Operator):
    """Export the FLAME head as glTF 2.0 binary: skin, morph targets and animation"""

    bl_idname = "flame.export_gltf"
    bl_label = "Export FLAME glTF"
    filename_ext = ".glb"
    filter_glob: StringProperty(default="*.glb", options={"HIDDEN"})

    def export(self, context, armature, filepath):
        return [export_gltf(context, armature, filepath)]


class FLAME_OT_export_alembic(_ExportOperator, bpy.types.Operator):
    """Export the animated FLAME mesh as Alembic (baked vertex animation, correctives included)"""

    bl_idname = "flame.export_alembic"
    bl_label = "Export FLAME Alembic"
    filename_ext = ".abc"
    filter_glob: StringProperty(default="*.abc", options={"HIDDEN"})

    def export(self, context, armature, filepath):
        return [export_alembic(context, armature, filepath)]


class FLAME_OT_export_usd(_ExportOperator, bpy.types.Operator):
    """Export the animated FLAME mesh as USD (baked vertex animation, correctives included)"""

    bl_idname = "flame.export_usd"
    bl_label = "Export FLAME USD"
    filename_ext = ".usd"
    filter_glob: StringProperty(default="*.usd;*.usdc;*.usda", options={"HIDDEN"})

    def export(self, context, armature, filepath):
        return [export_usd(context, armature, filepath)]


class FLAME_OT_export_mesh_frames(_FormatNamesFile, _ExportOperator, bpy.types.Operator):
    """Export the evaluated FLAME mesh as one OBJ or PLY file per frame (FLAME axes, metres)"""

    bl_idname = "flame.export_mesh_frames"
    bl_label = "Export FLAME Mesh per Frame"
    filename_ext = ".obj"
    filter_glob: StringProperty(default="*.obj;*.ply", options={"HIDDEN"})
    file_format: EnumProperty(name="Format", default="OBJ", items=(
        ("OBJ", "OBJ", "Wavefront OBJ, text"), ("PLY", "PLY", "Stanford PLY, binary")))
    dialog_props = ("file_format",)

    def export(self, context, armature, filepath):
        return export_mesh_frames(context, armature, filepath.parent, self.file_format, filepath.stem)


class FLAME_OT_export_closed_mesh(_FormatNamesFile, _ExportOperator, bpy.types.Operator):
    """Export the current head as one watertight mesh, eye, mouth and neck holes capped, for 3-D printing"""

    bl_idname = "flame.export_closed_mesh"
    bl_label = "Export FLAME Closed Mesh"
    filename_ext = ".stl"
    filter_glob: StringProperty(default="*.stl;*.obj", options={"HIDDEN"})
    file_format: EnumProperty(name="Format", default="STL", items=(
        ("STL", "STL", "Binary STL, Z up (slicers' convention)"),
        ("OBJ", "OBJ", "Wavefront OBJ, Y up (FLAME's axes)")))
    units: EnumProperty(name="Units", default="MM", items=(
        ("MM", "Millimetres", "1 unit = 1 mm (3-D printing)"), ("CM", "Centimetres", "1 unit = 1 cm"),
        ("M", "Metres", "1 unit = 1 m (FLAME's own)")))
    dialog_props = ("file_format", "units")

    def export(self, context, armature, filepath):
        if filepath.suffix.lower() not in (".stl", ".obj"):
            filepath = filepath.with_name(filepath.name + "." + self.file_format.lower())
        return [export_closed_mesh(context, armature, filepath, self.units)]


CLASSES = (FLAME_OT_export_fbx, FLAME_OT_export_gltf, FLAME_OT_export_alembic, FLAME_OT_export_usd,
           FLAME_OT_export_mesh_frames, FLAME_OT_export_closed_mesh)

