"""FLAME's editions and the licence each is published under, and which edition a model file is.

One table for the whole add-on: the panel, the export metadata and the export reminder read it.
The released editions share every key and array shape (``v_template`` (5023, 3), ``shapedirs``
(5023, 3, 400), ...), so a file's contents do not tell them apart: the edition comes from the file
name and the folder holding it, as the FLAME website distributes them, and is ``unknown`` otherwise.
The licences are those the FLAME website (flame.is.tue.mpg.de) names on its *License* and
*Download* pages; the README says which of them this project could check.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePath

WEBSITE = "https://flame.is.tue.mpg.de"
MPI_LICENCE = "MPI FLAME licence (non-commercial)"
ATTRIBUTION = ("FLAME: T. Li, T. Bolkart, M. J. Black, H. Li, J. Romero, Learning a model of facial shape "
               "and expression from 4D scans, ACM TOG (SIGGRAPH Asia) 2017")


@dataclass(frozen=True)
class Edition:
    """A FLAME edition: ``id`` is what a head stores; ``commercial`` is True, False or None (unknown)."""

    id: str
    name: str
    licence: str
    commercial: bool | None
    source: str  # where the licence is published


_MPI_SOURCE = f"{WEBSITE}, License page"
EDITIONS = {e.id: e for e in (
    Edition("flame2017", "FLAME 2017", MPI_LICENCE, False, _MPI_SOURCE),
    Edition("flame2019", "FLAME 2019", MPI_LICENCE, False, _MPI_SOURCE),
    Edition("flame2020", "FLAME 2020", MPI_LICENCE, False, _MPI_SOURCE),
    # generic_model.pkl (and male_, female_) is the name of the 2017, 2019 and 2020 files alike
    Edition("flame2017_2020", "FLAME 2017-2020", MPI_LICENCE, False, _MPI_SOURCE),
    Edition("flame2023", "FLAME 2023", MPI_LICENCE, False, _MPI_SOURCE),
    Edition("flame2023_no_jaw", "FLAME 2023 (no jaw)", MPI_LICENCE, False, _MPI_SOURCE),
    Edition("flame2023_open", "FLAME 2023 Open", "CC-BY-4.0", True, f"{WEBSITE}, Download page (FLAME 2023 Open)"),
    Edition("demo", "Demo head", "none: procedural, made by this add-on, no FLAME data", True, ""),
    Edition("unknown", "unknown edition", "unknown: check the licence of the model file", None, ""),
)}
DEMO, UNKNOWN = EDITIONS["demo"], EDITIONS["unknown"]
SHARED_STEMS = ("generic_model", "male_model", "female_model", "flame_neutral", "flame_male", "flame_female")
"""File stems the 2017-2020 editions share (smplx renames them ``FLAME_NEUTRAL`` etc.)."""


def edition(edition_id: str) -> Edition:
    """The edition a head stored (``unknown`` for an empty or unrecognised id, e.g. an older head)."""
    return EDITIONS.get(edition_id, UNKNOWN)


def _year(text: str) -> str:
    found = re.findall(r"20(?:17|19|20|23)", text)
    return found[0] if found else ""


def detect_edition(path: str | PurePath) -> Edition:
    """The edition of a model file from its name, or its folder's for the names several editions share:
    ``flame2023_Open.pkl`` -> FLAME 2023 Open, ``FLAME2020/generic_model.pkl`` -> FLAME 2020,
    ``generic_model.pkl`` -> FLAME 2017-2020, ``head.pkl`` -> unknown. Case is ignored; a converted
    ``.npz`` of the same name is the same edition."""
    path = PurePath(path)
    stem, folder = path.stem.lower(), path.parent.name.lower()
    year = _year(stem)
    if year == "2023":
        if "open" in stem:
            return EDITIONS["flame2023_open"]
        return EDITIONS["flame2023_no_jaw" if "no_jaw" in stem or "nojaw" in stem else "flame2023"]
    if year:
        return EDITIONS[f"flame{year}"]
    if stem not in SHARED_STEMS:
        return UNKNOWN
    year = _year(folder)
    if year == "2023":  # the 2023 editions have their own file names; a shared one here is only known for Open
        return EDITIONS["flame2023_open"] if "open" in folder else UNKNOWN
    return EDITIONS[f"flame{year}"] if year else EDITIONS["flame2017_2020"]


def metadata(edition: Edition, model_file: str = "") -> dict[str, str]:
    """What an export writes into its file: edition, licence, where it is published, the model file
    and, for FLAME data, the paper to credit. Keys are ``flame_*``, values plain ASCII."""
    data = {"flame_edition": edition.name, "flame_licence": edition.licence}
    if edition.source:
        data["flame_licence_source"] = edition.source
    if model_file:
        data["flame_model_file"] = model_file
    if edition is not DEMO:
        data["flame_attribution"] = ATTRIBUTION
    return data


def reminder(edition: Edition) -> str:
    """The export report's line about the licence: empty when the edition permits commercial use."""
    if edition.commercial is False:
        return (f"{edition.name} is under the {edition.licence} ({edition.source}): "
                "this export is for non-commercial research use")
    if edition.commercial is None:
        return "the head's FLAME edition is unknown: check the model file's licence before any commercial use"
    return ""
