"""The torch-free reading of DECA's landmark_embedding.npy against files torch itself writes, and the
torch-free fixture (tests/asset_files.py) against torch's own reader: the layouts are the same."""

from pathlib import Path

import asset_files as af
import numpy as np
import pytest

from flame_blender_addon.core import safe_pickle
from flame_blender_addon.core.formats.embeddings import read_embedding

torch = pytest.importorskip("torch")


def test_an_embedding_saved_with_torch_tensors_is_read_without_torch(tmp_path):
    content = af.landmark_embedding_dict(np.random.default_rng(0), 9976)
    real = {k: torch.from_numpy(np.ascontiguousarray(v)) if k.startswith("dynamic_") else v
            for k, v in content.items()}
    np.save(tmp_path / "landmark_embedding.npy", real, allow_pickle=True)
    decoded, _ = safe_pickle.load_file(tmp_path / "landmark_embedding.npy")
    for key, value in content.items():
        np.testing.assert_array_equal(decoded[key], value)
        assert decoded[key].dtype == value.dtype
    assert read_embedding(tmp_path / "landmark_embedding.npy")[0].name == "68"


def test_the_torch_free_fixture_is_what_torch_reads(tmp_path):
    content = af.landmark_embedding_dict(np.random.default_rng(1), 9976, eyes=True)
    path = af.write_landmark_embedding(Path(tmp_path) / "landmark_embedding_with_eyes.npy", content)
    loaded = np.load(path, allow_pickle=True)[()]  # needs torch: the dynamic_* values are tensors
    for key, value in content.items():
        assert isinstance(loaded[key], torch.Tensor) == key.startswith("dynamic_")
        np.testing.assert_array_equal(np.asarray(loaded[key]), value)
