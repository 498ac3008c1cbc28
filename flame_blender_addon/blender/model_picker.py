"""The model picker of the dialogs and the panel: the models found in the *Model folder* preference,
the demo head, or any file."""

from __future__ import annotations

from pathlib import Path

import bpy

from ..core.model_folder import SUFFIXES, find_models
from . import preferences

DEMO, FILE = "DEMO", "FILE"
_ITEMS: dict[str, list[tuple[str, str, str]]] = {}  # Blender needs the item strings kept alive


def found_models(context: bpy.types.Context) -> list:
    """Models in the preference's folder (:class:`..core.model_folder.ModelFile`), [] when unset."""
    folder = preferences.model_folder(context)
    return find_models(folder) if folder is not None else []


def enum_items(key: str, first: tuple[str, str, str], context: bpy.types.Context | None) -> list:
    """Items of a model EnumProperty: ``first``, the demo head, the folder's models (identifier: the
    path inside the folder), then "Other file" (the operator's ``model_filepath``)."""
    folder = preferences.model_folder(context) if context is not None else None
    models = found_models(context) if folder is not None else []
    items = [first, (DEMO, "Demo head", "The built-in procedural head (FLAME layout, no download)")]
    items += [(m.path.relative_to(folder).as_posix(), m.label, str(m.path)) for m in models]
    items.append((FILE, "Other file", "The model file given below"))
    _ITEMS[key] = items
    return items


def chosen_path(context: bpy.types.Context, choice: str, filepath: str) -> str:
    """The model a choice names: an absolute path, "demo", or "" (the choice is ``first``'s).
    A given ``filepath`` wins (scripts set only that)."""
    if filepath:
        return bpy.path.abspath(filepath)
    if choice == DEMO:
        return "demo"
    folder = preferences.model_folder(context)
    return str(folder / Path(choice)) if folder is not None and choice.endswith(SUFFIXES) else ""


def draw_choice(layout: bpy.types.UILayout, props, enum: str = "model_choice", path: str = "model_filepath") -> None:
    """The picker, and the file field when "Other file" is chosen."""
    layout.prop(props, enum)
    if getattr(props, enum) == FILE:
        layout.prop(props, path)
