"""Texture spaces: both layouts, BGR and row order, UVs present or not, bad files refused in one line."""

import numpy as np
import pytest
from texture_files import write_bfm_albedo, write_flame_texture

from flame_blender_addon.core.errors import FlameError, LimitError
from flame_blender_addon.core.formats.texture_space import read_texture_space


def _reference(mean, basis, coeffs, scale):
    """The trackers' formula: (mean + basis . c) / scale, channels reversed (BGR -> RGB)."""
    return ((mean + basis[..., :len(coeffs)] @ coeffs) / scale)[..., ::-1]


def test_flame_texture_is_rgb_top_down_in_0_1(tmp_path):
    rng = np.random.default_rng(0)
    mean, basis = write_flame_texture(tmp_path / "FLAME_texture.npz", rng)
    space = read_texture_space(tmp_path / "FLAME_texture.npz")
    assert space.layout == "FLAME" and space.n_components == space.n_total == 6 and space.vt is None
    assert space.mean.dtype == np.float32 and space.basis.shape == (6, 16, 16, 3)
    rgb = space.albedo(np.zeros(6))
    assert np.allclose(rgb[0, 0], [0, 0, 1]) and np.allclose(rgb[0, -1], [1, 0, 0])  # row 0 = top, RGB
    c = rng.normal(size=4)
    assert np.abs(space.albedo(c) - _reference(mean, basis, c, 255.0)).max() < 1e-5


def test_bfm_albedo_flattened_rows_and_fewer_components(tmp_path):
    rng = np.random.default_rng(1)
    mean, basis = write_bfm_albedo(tmp_path / "FLAME_albedo_from_BFM.npz", rng)
    space = read_texture_space(tmp_path / "FLAME_albedo_from_BFM.npz", n_components=3)
    assert space.layout == "BFM" and (space.n_components, space.n_total) == (3, 5)
    assert np.allclose(space.albedo([])[0, 0], [0, 0, 1])
    c = rng.normal(size=3)
    assert np.abs(space.albedo(c) - _reference(mean, basis, c, 1.0)).max() < 1e-6
    with pytest.raises(FlameError, match="4 texture coefficients, but only 3 components are loaded"):
        space.albedo(np.zeros(4))


def test_uvs_are_read_with_homogeneous_and_one_based_oddities(tmp_path):
    rng = np.random.default_rng(2)
    vt, ft = rng.uniform(0, 1, (10, 2)), rng.integers(0, 10, (7, 3))
    ft[0, 0], ft[1, 0] = 0, 9
    write_flame_texture(tmp_path / "a.npz", rng, uvs=(vt, ft))
    space = read_texture_space(tmp_path / "a.npz")
    assert np.array_equal(space.vt, vt) and np.array_equal(space.ft, ft) and not space.warnings
    write_flame_texture(tmp_path / "b.npz", rng, uvs=(np.c_[vt, np.zeros(10)], ft + 1))  # (N, 3) vt, OBJ numbering
    space = read_texture_space(tmp_path / "b.npz")
    assert np.array_equal(space.vt, vt) and np.array_equal(space.ft, ft) and "1-based" in space.warnings[0]
    np.savez(tmp_path / "c.npz", mean=np.zeros((4, 4, 3)), tex_dir=np.zeros((4, 4, 3, 2)), vt=vt)
    space = read_texture_space(tmp_path / "c.npz")
    assert space.vt is None and "only one of 'vt' / 'ft'" in space.warnings[0]


@pytest.mark.parametrize(("arrays", "message"), [
    ({"albedo": np.zeros(3)}, "not a texture space: needs 'mean' and 'tex_dir'"),
    ({"mean": np.zeros((4, 5, 3)), "tex_dir": np.zeros((4, 5, 3, 2))}, "not a square"),
    ({"mean": np.zeros((4, 4, 3)), "tex_dir": np.zeros((4, 4, 2, 2))}, "not a square"),
    ({"MU": np.zeros(50), "PC": np.zeros((50, 2))}, "not a square"),
    ({"mean": np.full((4, 4, 3), np.nan), "tex_dir": np.zeros((4, 4, 3, 2))}, "'mean' holds NaN"),
    ({"mean": np.zeros((4, 4, 3)), "tex_dir": np.zeros((4, 4, 3, 2)), "vt": np.zeros((3, 2)),
      "ft": np.array([[0, 1, 3]])}, "'ft' holds 0..3, not indices of the 3 UVs"),
    ({"mean": np.zeros((4, 4, 3)), "tex_dir": np.zeros((4, 4, 3, 2)), "vt": np.zeros((3, 4)),
      "ft": np.array([[0, 1, 2]])}, "'vt' is \\(3, 4\\)"),
    ({"mean": np.array(["a"] * 48).reshape(4, 4, 3), "tex_dir": np.zeros((4, 4, 3, 2))}, "not numbers"),
])
def test_bad_texture_spaces_fail_in_one_line(tmp_path, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(FlameError, match=message) as err:
        read_texture_space(tmp_path / "bad.npz")
    assert "\n" not in str(err.value) and "bad.npz" in str(err.value)


def test_missing_file_no_components_and_a_declared_giant_are_refused(tmp_path):
    with pytest.raises(FlameError, match="file not found"):
        read_texture_space(tmp_path / "none.npz")
    write_flame_texture(tmp_path / "t.npz", np.random.default_rng(3))
    assert read_texture_space(tmp_path / "t.npz", n_components=7).n_components == 6  # all there are
    with pytest.raises(FlameError, match="0 components asked for; at least 1 is needed"):
        read_texture_space(tmp_path / "t.npz", n_components=0)
    header = b"{'descr': '<f8', 'fortran_order': False, 'shape': (4096, 4096, 3, 200), }"
    import zipfile
    with zipfile.ZipFile(tmp_path / "huge.npz", "w") as z:
        z.writestr("mean.npy", b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header)
        z.writestr("tex_dir.npy", b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header)
    with pytest.raises(LimitError):
        read_texture_space(tmp_path / "huge.npz")


def test_changing_a_few_coefficients_updates_the_albedo_exactly(tmp_path):
    rng = np.random.default_rng(4)
    write_flame_texture(tmp_path / "t.npz", rng, k=8)
    space = read_texture_space(tmp_path / "t.npz")
    old = rng.normal(size=8).astype(np.float32)
    for changed in ([2], [0, 5, 7], list(range(6))):  # the last: most changed, recomputed whole
        new = old.copy()
        new[changed] += rng.normal(size=len(changed)).astype(np.float32)
        assert np.abs(space.changed(space.albedo(old), old, new) - space.albedo(new)).max() < 1e-5
