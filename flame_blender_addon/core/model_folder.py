"""Finding the FLAME model files of the official downloads in a folder (the *Model folder* preference)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

KNOWN_MODELS = (  # file stem (as distributed) -> label; order: how the picker lists them
    ("generic_model", "Neutral"),
    ("female_model", "Female"),
    ("male_model", "Male"),
    ("flame2023", "FLAME 2023"),
    ("flame2023_no_jaw", "FLAME 2023, no jaw"),
    ("flame2023_Open", "FLAME 2023 Open"),
)
SUFFIXES = (".pkl", ".npz")  # the distributed pickle, or this add-on's converted npz


@dataclass(frozen=True)
class ModelFile:
    """A model file found in the folder; ``label`` names it for a menu (with its subfolder, if any)."""

    label: str
    path: Path


def find_models(folder: Path) -> list[ModelFile]:
    """The known model files in ``folder`` and its direct subfolders (e.g. ``FLAME2020/``,
    ``FLAME2023/``), in ``KNOWN_MODELS`` order then by subfolder; names match in any case
    (``flame2023_open.pkl`` too). A missing folder has none."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    places = [folder, *sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))]
    files = {place: {p.name.lower(): p for p in place.iterdir() if p.is_file()} for place in places}
    found = []
    for stem, label in KNOWN_MODELS:
        for place in places:
            for suffix in SUFFIXES:
                path = files[place].get(f"{stem}{suffix}".lower())
                if path is not None:
                    where = "" if place == folder else f"{place.name}: "
                    found.append(ModelFile(f"{where}{label}" + (" (npz)" if suffix == ".npz" else ""), path))
    return found
