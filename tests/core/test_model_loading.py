"""Loading FLAME model files in every distributed form, and refusing bad ones clearly."""

import pickle
import pickletools
import subprocess
import sys

import legacy_pickle
import numpy as np
import pytest
from synthetic_model import random_model_arrays

from flame_blender_addon.core.errors import FileAccessError, FileFormatError, ModelLoadError, UnsafePickleError
from flame_blender_addon.core.model import load_model


@pytest.fixture(scope="module")
def arrays():
    return random_model_arrays(n_verts=120, n_faces=200, seed=7)


def assert_model_equals(model, arrays):
    np.testing.assert_array_equal(model.v_template, arrays["v_template"])
    np.testing.assert_array_equal(model.shapedirs, arrays["shapedirs"][:, :, :300])
    np.testing.assert_array_equal(model.exprdirs, arrays["shapedirs"][:, :, 300:])
    np.testing.assert_array_equal(model.posedirs, arrays["posedirs"])
    np.testing.assert_allclose(model.J_regressor, arrays["J_regressor"], rtol=0, atol=0)
    np.testing.assert_array_equal(model.weights, arrays["weights"])
    np.testing.assert_array_equal(model.faces, arrays["f"])
    assert model.parents.tolist() == [-1, 0, 1, 1, 1]


def test_distributed_format_pickle_is_py2_style(arrays, tmp_path):
    data = legacy_pickle.dumps_flame(arrays)
    ops = [(op.name, arg) for op, arg, _ in pickletools.genops(data)]
    names = {name for name, _ in ops}
    globals_ = {arg for name, arg in ops if name == "GLOBAL"}
    assert data[:2] == b"\x80\x02"
    assert {"SHORT_BINSTRING", "BINSTRING"} <= names and "BINUNICODE" not in names
    assert {"chumpy.ch Ch", "scipy.sparse.csc csc_matrix", "numpy.core.multiarray _reconstruct"} <= globals_


def test_loads_distributed_format(arrays, tmp_path):
    model = load_model(legacy_pickle.write_flame_pickle(tmp_path / "generic_model.pkl", arrays))
    assert_model_equals(model, arrays)
    assert model.edition == "flame2017_2020" and len(model.sha256) == 64 and not model.warnings


def test_loads_numpy2_module_paths(arrays, tmp_path):
    data = legacy_pickle.dumps_flame(arrays).replace(b"numpy.core.multiarray", b"numpy._core.multiarray")
    (tmp_path / "flame2023.pkl").write_bytes(data)
    model = load_model(tmp_path / "flame2023.pkl")
    assert_model_equals(model, arrays)
    assert model.edition == "flame2023"


def test_loads_genuine_chumpy_and_scipy_pickle(arrays, tmp_path):
    ch = pytest.importorskip("chumpy")
    sparse = pytest.importorskip("scipy.sparse")
    content = dict(arrays, v_template=ch.array(arrays["v_template"]), shapedirs=ch.array(arrays["shapedirs"]),
                   weights=ch.array(arrays["weights"]), J_regressor=sparse.csc_matrix(arrays["J_regressor"]))
    with open(tmp_path / "generic_model.pkl", "wb") as f:
        pickle.dump(content, f, protocol=2)
    assert_model_equals(load_model(tmp_path / "generic_model.pkl"), arrays)


def test_loads_npz(arrays, tmp_path):
    np.savez(tmp_path / "flame.npz", **{k: v for k, v in arrays.items() if k not in ("bs_style", "bs_type")})
    assert_model_equals(load_model(tmp_path / "flame.npz"), arrays)


def test_repairs_crlf_damaged_text_pickle(arrays, tmp_path):
    text = pickle.dumps(arrays, protocol=0)
    assert text[:1] != b"\x80" and b"\r" not in text
    (tmp_path / "damaged.pkl").write_bytes(text.replace(b"\n", b"\r\n"))
    with pytest.raises((pickle.UnpicklingError, ModuleNotFoundError)):  # plain pickle fails
        pickle.loads((tmp_path / "damaged.pkl").read_bytes(), encoding="latin1")
    assert_model_equals(load_model(tmp_path / "damaged.pkl"), arrays)


class _Hostile:
    def __reduce__(self):
        return (subprocess.call, ([sys.executable, "-c", "open('PWNED', 'w').close()"],))


def test_hostile_pickle_is_refused_and_never_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"v_template": _Hostile()}, protocol=4))
    with pytest.raises(UnsafePickleError, match=r"evil.pkl: refused to load 'subprocess.call'"):
        load_model(tmp_path / "evil.pkl")
    assert not (tmp_path / "PWNED").exists()


def test_os_system_global_is_refused(tmp_path):
    (tmp_path / "evil.pkl").write_bytes(b"cos\nsystem\n(S'touch /tmp/pwned'\ntR.")
    with pytest.raises(UnsafePickleError, match="refused to load 'os.system'"):
        load_model(tmp_path / "evil.pkl")


@pytest.mark.parametrize("mutate, message", [
    (lambda a: a.pop("posedirs"), r"missing key 'posedirs'"),
    (lambda a: a.update(posedirs=a["posedirs"][:, :, :18]),
     r"'posedirs' has shape \(120, 3, 18\), expected \(120, 3, 36\)"),
    (lambda a: a.update(J_regressor=a["J_regressor"][:, :100]), r"'J_regressor' has shape \(5, 100\)"),
    (lambda a: a.update(weights=a["weights"][:, :4]), r"'weights' has shape \(120, 4\)"),
    (lambda a: a.update(shapedirs=a["shapedirs"][:, :, :300]), r"'shapedirs' has shape \(120, 3, 300\)"),
    (lambda a: a.update(f=a["f"] + 1000), r"'f' indexes vertex"),
    (lambda a: a.update(kintree_table=np.array([[4294967295, 0, 0, 1, 1], [0, 1, 2, 3, 4]])), r"parents"),
    (lambda a: a["v_template"].__setitem__((0, 0), np.nan), r"'v_template' contains NaN"),
])
def test_wrong_content_is_named(arrays, tmp_path, mutate, message):
    bad = {k: np.array(v, copy=True) if isinstance(v, np.ndarray) else v for k, v in arrays.items()}
    mutate(bad)
    path = legacy_pickle.write_flame_pickle(tmp_path / "bad.pkl", bad)
    with pytest.raises(ModelLoadError, match=message):
        load_model(path)


def test_truncated_missing_and_foreign_files(arrays, tmp_path):
    data = legacy_pickle.dumps_flame(arrays)
    (tmp_path / "cut.pkl").write_bytes(data[: len(data) // 2])
    with pytest.raises(FileFormatError, match=r"cut.pkl: not a readable FLAME pickle \(truncated or damaged"):
        load_model(tmp_path / "cut.pkl")
    with pytest.raises(FileAccessError, match="nope.pkl: file not found"):
        load_model(tmp_path / "nope.pkl")
    (tmp_path / "list.pkl").write_bytes(pickle.dumps([1, 2, 3], protocol=2))
    with pytest.raises(ModelLoadError, match="expected a dict of FLAME arrays, found list"):
        load_model(tmp_path / "list.pkl")
    (tmp_path / "text.pkl").write_text("hello, not a pickle")
    with pytest.raises(FileFormatError, match="text.pkl: not a readable FLAME pickle"):
        load_model(tmp_path / "text.pkl")


def test_flame_sized_fixture_has_flame_layout():
    a = random_model_arrays()
    assert a["v_template"].shape == (5023, 3) and a["f"].shape == (9976, 3)
    assert a["shapedirs"].shape == (5023, 3, 400) and a["posedirs"].shape == (5023, 3, 36)
    assert a["J_regressor"].shape == (5, 5023) and a["weights"].shape == (5023, 5)
    np.testing.assert_allclose(a["weights"].sum(1), 1.0)
    assert len({tuple(sorted(t)) for t in a["f"].tolist()}) > 9900  # essentially distinct triangles
    assert (a["f"][:, 0] != a["f"][:, 1]).all() and (a["f"][:, 1] != a["f"][:, 2]).all()
