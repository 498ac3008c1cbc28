"""What to process: clips from folders, globs, CSV and JSON lists, each with its own options.

A source is one of:

- a folder of clips: its videos, ``.npz`` files and sub-folders (frames folders, metrical-tracker
  outputs, per-frame ``flame_param`` folders), hidden entries skipped; a frames folder or a
  metrical-tracker output folder given itself is one clip;
- a glob (``clips/*/flame_sequence.npz``): each match is a clip;
- a ``.csv`` file with a header row: column ``input`` (required), ``name`` (optional) and any
  per-clip option (``model``, ``engine``, ``formats`` ...); an empty cell keeps the command's value;
- a ``.json`` file: a list of objects with the same keys (values may be JSON numbers, booleans and
  lists);
- any other path: one clip.

Relative paths in CSV/JSON lists are relative to the list's folder. A clip's name (its folder in the
output) is its ``name``, else the input's stem, or the parent folder's name for generic file names
such as ``flame_sequence.npz``. Standard library only: the options are parsed by the CLI's parser.
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import FlameError

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
GENERIC_STEMS = ("flame_sequence", "tracked_flame_params", "flame_param", "checkpoint", "input", "video")
KINDS = ("video", "frames", "image", "landmarks", "sequence")  # the first four are tracked
RESERVED = {"name", "input"}
PATH_OPTIONS = ("model", "embedding", "eyelids")  # relative to the list's folder
TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


class ManifestError(FlameError):
    """A manifest cannot be read, or names clips that cannot be processed."""


@dataclass(frozen=True)
class Clip:
    """One clip. kind: one of ``KINDS``; options: per-clip option name (``target_fps``) -> value as
    written in the manifest (str, number, bool or list); where: the manifest line, for messages."""

    name: str
    input: Path
    kind: str
    options: dict[str, Any] = field(default_factory=dict)
    where: str = ""

    @property
    def tracked(self) -> bool:
        return self.kind != "sequence"


def clip_kind(path: Path) -> str:
    """``video`` | ``frames`` | ``image`` (tracked from pixels), ``landmarks`` (an .npz with ``lmk``,
    tracked without detection) or ``sequence`` (already tracked: imported as it is)."""
    if path.is_dir():
        return "frames" if any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.iterdir()) else "sequence"
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix == ".npz":
        return "landmarks" if "lmk.npy" in _npz_members(path) else "sequence"
    return "sequence" if suffix == ".frame" else "video"


def _npz_members(path: Path) -> set[str]:
    try:
        with zipfile.ZipFile(path) as archive:
            return set(archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return set()  # not readable: the importer says what is wrong with it


def default_name(path: Path) -> str:
    stem = path.stem if path.is_file() else path.name
    if stem in GENERIC_STEMS or re.fullmatch(r"tracked_flame_params_\d+", stem):
        stem = path.resolve().parent.name
    return stem


def safe_name(name: str, where: str) -> str:
    """A clip name usable as a folder name: letters, digits, ``.``, ``_``, ``-`` (others become ``_``)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", name.strip())
    if not cleaned or cleaned.startswith(".") or cleaned == "batch_report.json":
        raise ManifestError(f"{where}: '{name}' cannot be a clip name (it names the clip's output folder)")
    return cleaned


def is_clip_folder(folder: Path) -> bool:
    """A folder that is one clip rather than a folder of clips: frames (images in it) or a
    metrical-tracker output (``checkpoint/`` or ``.frame`` files in it)."""
    return (folder / "checkpoint").is_dir() or any(
        p.suffix.lower() in IMAGE_SUFFIXES + (".frame",) for p in folder.iterdir())


def folder_clips(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".")
                  and (p.is_dir() or p.suffix.lower() in VIDEO_SUFFIXES + (".npz",)))


def _table_rows(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """(where, row) of a CSV or JSON list; empty CSV cells are dropped."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise ManifestError(f"{path}: cannot read the clip list ({err})") from None
    if path.suffix.lower() == ".json":
        try:
            rows = json.loads(text)
        except ValueError as err:
            raise ManifestError(f"{path}: not valid JSON ({err})") from None
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ManifestError(f"{path}: expected a JSON list of objects, one per clip")
        return [(f"{path.name} clip {i + 1}", row) for i, row in enumerate(rows)]
    reader = csv.DictReader(text.splitlines())
    if not reader.fieldnames or "input" not in reader.fieldnames:
        raise ManifestError(f"{path}: the CSV needs a header row with an 'input' column")
    return [(f"{path.name} line {reader.line_num}", {k: v.strip() for k, v in row.items() if k and v and v.strip()})
            for row in reader]


def _listed_clips(path: Path) -> Iterable[tuple[Path, str | None, dict[str, Any], str]]:
    for where, row in _table_rows(path):
        if not isinstance(row.get("input"), str) or not row["input"]:
            raise ManifestError(f"{where}: no 'input'")
        options = {k: str(path.parent / Path(v).expanduser()) if k in PATH_OPTIONS and isinstance(v, str) else v
                   for k, v in row.items() if k not in RESERVED}
        name = row.get("name")
        yield path.parent / Path(row["input"]).expanduser(), str(name) if name else None, options, where


def _source_clips(source: str) -> Iterable[tuple[Path, str | None, dict[str, Any], str]]:
    path = Path(source).expanduser()
    if path.is_dir() and not is_clip_folder(path):
        found = folder_clips(path)
        if not found:
            raise ManifestError(f"{path}: no clips in this folder (videos, .npz files or folders)")
        yield from ((p, None, {}, str(p)) for p in found)
    elif path.is_file() and path.suffix.lower() in (".csv", ".json"):
        yield from _listed_clips(path)
    elif path.exists():
        yield path, None, {}, str(path)
    elif glob.has_magic(source):
        matches = sorted(glob.glob(str(path)))
        if not matches:
            raise ManifestError(f"{source}: no file matches this pattern")
        yield from ((Path(m), None, {}, m) for m in matches)
    else:
        raise ManifestError(f"{source}: no such file, folder or pattern")


def read_clips(sources: Iterable[str]) -> list[Clip]:
    """Every clip of every source, in order. Raises ManifestError for a missing input or two clips
    with one name."""
    clips: dict[str, Clip] = {}
    for source in sources:
        for path, name, options, where in _source_clips(source):
            if not path.exists():
                raise ManifestError(f"{where}: {path}: no such file or folder")
            clip = Clip(safe_name(name or default_name(path), where), path.resolve(), clip_kind(path), options, where)
            if clip.name in clips:
                raise ManifestError(f"{where}: a second clip named '{clip.name}' (the first is "
                                    f"{clips[clip.name].where}); give each a 'name' in a CSV or JSON list")
            clips[clip.name] = clip
    if not clips:
        raise ManifestError("no clips to process")
    return list(clips.values())


def option_argv(clip: Clip, parser: argparse.ArgumentParser) -> list[str]:
    """A clip's options as command-line arguments of ``parser``, to be parsed after the command's own:
    ``{"target_fps": 30, "formats": "fbx glb", "render": "yes"}`` ->
    ``["--target-fps", "30", "--formats", "fbx", "glb", "--render"]``."""
    argv: list[str] = []
    for key, value in clip.options.items():
        flag = "--" + key.replace("_", "-")
        action = parser._option_string_actions.get(flag)  # noqa: SLF001 - argparse has no public lookup
        if action is None or flag in ("--help", "--output"):
            raise ManifestError(f"{clip.where}: unknown clip option '{key}'")
        if isinstance(action, argparse.BooleanOptionalAction):
            text = str(value).lower()
            if text not in TRUE + FALSE:
                raise ManifestError(f"{clip.where}: {key} must be true or false, not '{value}'")
            argv.append(flag if text in TRUE else "--no-" + flag[2:])
        elif action.nargs in ("*", "+"):
            items = value if isinstance(value, list) else str(value).replace(",", " ").split()
            argv += [flag, *map(str, items)]
        else:
            argv += [flag, str(value)]
    return argv
