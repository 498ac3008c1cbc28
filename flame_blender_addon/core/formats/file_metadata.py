"""Writing key-value metadata (the model's edition and licence) into files Blender's exporters wrote,
where their options have no place for it: a binary glTF's ``asset.extras``, OBJ ``#`` comment lines
and PLY ``comment`` lines in the header. Each rewrites the file in place; values are one line each."""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from pathlib import Path

from ..errors import FileFormatError

GLB_MAGIC, GLB_JSON, GLB_HEADER = b"glTF", 0x4E4F534A, struct.Struct("<4sII")
CHUNK_HEADER = struct.Struct("<II")


def _lines(data: Mapping[str, str]) -> list[str]:
    return [f"{key}: {' '.join(str(value).split())}" for key, value in data.items()]


def read_glb_json(blob: bytes) -> tuple[dict, bytes]:
    """A GLB's JSON chunk (parsed) and everything after it (the binary chunk, if any)."""
    if len(blob) < GLB_HEADER.size + CHUNK_HEADER.size or blob[:4] != GLB_MAGIC:
        raise FileFormatError("not a binary glTF (no 'glTF' header)")
    length, kind = CHUNK_HEADER.unpack_from(blob, GLB_HEADER.size)
    start = GLB_HEADER.size + CHUNK_HEADER.size
    if kind != GLB_JSON or start + length > len(blob):
        raise FileFormatError("binary glTF without a JSON chunk first")
    return json.loads(blob[start:start + length]), blob[start + length:]


def add_glb_extras(path: Path, data: Mapping[str, str]) -> None:
    """Merge ``data`` into the GLB's ``asset.extras`` (glTF's place for application data on the file)."""
    path = Path(path)
    gltf, rest = read_glb_json(path.read_bytes())
    asset = gltf.setdefault("asset", {})
    asset["extras"] = {**asset.get("extras", {}), **data}
    text = json.dumps(gltf, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 4)  # chunks are 4-byte aligned; JSON pads with spaces
    total = GLB_HEADER.size + CHUNK_HEADER.size + len(text) + len(rest)
    path.write_bytes(GLB_HEADER.pack(GLB_MAGIC, 2, total) + CHUNK_HEADER.pack(len(text), GLB_JSON) + text + rest)


def add_obj_comments(path: Path, data: Mapping[str, str]) -> None:
    """Add ``# key: value`` lines after the OBJ's leading comment lines (the exporter's own)."""
    path = Path(path)
    blob = path.read_bytes()
    at = 0
    while blob.startswith(b"#", at):
        at = blob.find(b"\n", at) + 1 or len(blob)
    comments = "".join(f"# {line}\n" for line in _lines(data)).encode("utf-8")
    path.write_bytes(blob[:at] + comments + blob[at:])


def add_ply_comments(path: Path, data: Mapping[str, str]) -> None:
    """Add ``comment key: value`` lines to the PLY header, after its ``format`` line (ASCII or binary body)."""
    path = Path(path)
    blob = path.read_bytes()
    start = blob.find(b"\nformat ")
    end = blob.find(b"end_header")
    if not blob.startswith(b"ply") or start < 0 or not 0 <= start < end:
        raise FileFormatError(f"{path}: not a PLY file with a 'format' line")
    at = blob.find(b"\n", start + 1) + 1
    comments = "".join(f"comment {line}\n" for line in _lines(data)).encode("utf-8")
    path.write_bytes(blob[:at] + comments + blob[at:])
