"""The files of the FLAME ecosystem that sit beside a model: finding them and reading them together.

:func:`find_assets` looks, by their distributed names, in the model's folder and its direct subfolders,
then in its parent folder and the parent's asset subfolders (:data:`PARENT_SUBFOLDERS`), the way the
projects lay them out (MICA ``data/FLAME2020/`` and ``FLAME_masks/`` below it, DECA ``data/``, SMIRK
``assets/`` around ``assets/FLAME2020/``, VHAP ``asset/flame/``). Other folders beside the parent are
not searched: they are the user's, not the model's. :func:`read_assets` reads what was found for a head.
Where several names are distributed for one thing (two UV templates, two texture spaces), the first name
in its list is found first, wherever it is.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import AssetError, FlameError
from .embeddings import EMBEDDING_FILES, Embedding, read_embedding
from .masks import MASKS_FILE, read_masks
from .template_obj import UV_FILES, read_template_uvs
from .texture_space import TEXTURE_FILES, TextureSpace, read_texture_space

MAX_SUBFOLDERS = 64  # of the model's folder: a model in a crowded folder (Downloads) costs a few hundred stats
PARENT_SUBFOLDERS = ("FLAME_masks", "mediapipe_landmark_embedding", "mediapipe")  # SMIRK's assets/


@dataclass(frozen=True)
class AssetFiles:
    """The asset files found (None / empty: not there)."""

    masks: Path | None = None
    uvs: Path | None = None
    embeddings: tuple[Path, ...] = ()
    texture: Path | None = None

    def paths(self) -> list[Path]:
        return [p for f in dataclasses.fields(self) for p in _as_tuple(getattr(self, f.name))]


def _as_tuple(value: Path | tuple[Path, ...] | None) -> tuple[Path, ...]:
    return () if value is None else value if isinstance(value, tuple) else (value,)


def _places(folder: Path) -> list[Path]:
    """``folder``, its direct subfolders (sorted, hidden ones skipped), its parent and the parent's
    :data:`PARENT_SUBFOLDERS`."""
    try:
        subfolders = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        subfolders = []
    parent = [folder.parent, *(folder.parent / name for name in PARENT_SUBFOLDERS)] if folder.parent != folder else []
    return [folder, *subfolders[:MAX_SUBFOLDERS], *(p for p in parent if p != folder)]


def find_assets(folder: str | Path) -> AssetFiles:
    """The asset files for a model in ``folder``: for each distributed name, the first found in
    :func:`_places` order (the model's own folder first)."""
    places = _places(Path(folder))

    def first(name: str) -> Path | None:
        return next((p / name for p in places if (p / name).is_file()), None)

    def first_of(names: tuple[str, ...]) -> Path | None:
        return next((p for p in map(first, names) if p is not None), None)

    return AssetFiles(masks=first(MASKS_FILE), uvs=first_of(UV_FILES),
                      embeddings=tuple(p for p in map(first, EMBEDDING_FILES) if p is not None),
                      texture=first_of(TEXTURE_FILES))


@dataclass
class Assets:
    """What was read: masks region -> (n,) vertex indices; uvs (vt (N, 2), ft (F, 3)); embeddings;
    texture (its first components); warnings (repairs, and files skipped when reading leniently)."""

    masks: dict[str, np.ndarray] = field(default_factory=dict)
    uvs: tuple[np.ndarray, np.ndarray] | None = None
    embeddings: list[Embedding] = field(default_factory=list)
    texture: TextureSpace | None = None
    warnings: list[str] = field(default_factory=list)


def read_assets(files: AssetFiles, faces: np.ndarray, n_verts: int, strict: bool = True,
                n_texture: int | None = None) -> Assets:
    """Read ``files`` for a head of ``n_verts`` vertices and triangles ``faces`` (F, 3), the texture
    space's first ``n_texture`` components (None: all). strict: the first bad file raises its
    FlameError; otherwise it is skipped with a warning (its error)."""
    assets = Assets()

    def attempt(read, path: Path) -> None:
        try:
            read(path)
        except FlameError as err:
            if strict:
                raise
            assets.warnings.append(f"skipped: {err}")

    def masks(path: Path) -> None:
        assets.masks, warnings = read_masks(path, n_verts)
        assets.warnings += warnings

    def uvs(path: Path) -> None:
        assets.uvs = read_template_uvs(path, faces)

    def embedding(path: Path) -> None:
        found, warnings = read_embedding(path)
        try:
            found.corners(faces)  # fits the head's triangles
        except AssetError as err:
            raise AssetError(f"{path.name}: {err}") from None
        assets.embeddings.append(found)
        assets.warnings += warnings

    def texture(path: Path) -> None:
        space = read_texture_space(path, n_texture)
        if space.ft is not None and len(space.ft) != len(faces):
            raise AssetError(f"{path.name}: its UVs ('ft') have {len(space.ft)} triangles, the head {len(faces)}")
        assets.texture = space
        assets.warnings += space.warnings

    for read, paths in ((masks, _as_tuple(files.masks)), (uvs, _as_tuple(files.uvs)),
                        (embedding, files.embeddings), (texture, _as_tuple(files.texture))):
        for path in paths:
            attempt(read, path)
    return assets
