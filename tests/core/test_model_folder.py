"""The Model folder preference: which files of the official FLAME downloads are found."""

from flame_blender_addon.core.model_folder import find_models


def test_model_folder_finds_the_official_downloads(tmp_path):
    for name in ("generic_model.pkl", "FLAME2023/flame2023.pkl", "FLAME2023/flame2023_no_jaw.pkl",
                 "FLAME2023Open/flame2023_Open.pkl",
                 "other/male_model.npz", "other/readme.pkl", ".hidden/female_model.pkl"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    found = find_models(tmp_path)
    assert [(m.label, m.path.relative_to(tmp_path).as_posix()) for m in found] == [
        ("Neutral", "generic_model.pkl"), ("other: Male (npz)", "other/male_model.npz"),
        ("FLAME2023: FLAME 2023", "FLAME2023/flame2023.pkl"),
        ("FLAME2023: FLAME 2023, no jaw", "FLAME2023/flame2023_no_jaw.pkl"),
        ("FLAME2023Open: FLAME 2023 Open", "FLAME2023Open/flame2023_Open.pkl")]
    assert find_models(tmp_path / "missing") == []
