"""The extension as users get it: build the zip, install it into Blender, use it, remove it."""

import ast
import sys
import zipfile
from pathlib import Path

import addon_utils
import bpy
import pytest

import flame_blender_addon

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import build_extension  # noqa: E402

MODULE = "bl_ext.user_default.flame_head"


@pytest.fixture(scope="module")
def zip_path(tmp_path_factory) -> Path:
    return build_extension.build(tmp_path_factory.mktemp("dist"))


@pytest.fixture
def source_addon_unregistered():
    flame_blender_addon.unregister()
    yield
    flame_blender_addon.register()


def uninstall() -> None:
    addon_utils.disable(MODULE)
    repo_index = [r.module for r in bpy.context.preferences.extensions.repos].index("user_default")
    assert bpy.ops.extensions.package_uninstall(repo_index=repo_index, pkg_id="flame_head") == {"FINISHED"}


def test_built_zip_holds_the_add_on_and_no_test_code(zip_path):
    with zipfile.ZipFile(zip_path) as zf:
        names = zf.namelist()
        sources = {n: zf.read(n).decode() for n in names if n.endswith(".py")}
    assert "blender_manifest.toml" in names and "core/formats/npz.py" in names and "cli/commands.py" in names
    assert not [n for n in names if n.startswith("tests/") or "__pycache__" in n]
    for name, source in sources.items():  # fixtures, the fake tracker and pytest stay in tests/
        nodes = list(ast.walk(ast.parse(source)))
        imported = {a.name for n in nodes if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module for n in nodes if isinstance(n, ast.ImportFrom) and n.module}
        assert not imported & {"pytest", "synthetic", "synthetic_model", "legacy_pickle", "fake_tracker"}, name
        defined = {n.name for n in nodes if isinstance(n, ast.FunctionDef)}
        assert not defined & {"random_model_arrays", "write_flame_pickle", "random_embedding"}, name


def test_built_zip_installs_and_imports_a_model(zip_path, small_model_file, source_addon_unregistered):
    assert zip_path.name == "flame_head-0.1.0.zip"
    assert not hasattr(bpy.types.Object, "flame")

    result = bpy.ops.extensions.package_install_files(filepath=str(zip_path), repo="user_default",
                                                      enable_on_install=True)
    assert result == {"FINISHED"}
    try:
        assert addon_utils.check(MODULE) == (True, True)
        installed = Path(sys.modules[MODULE].__file__).parent
        assert (installed / "blender_manifest.toml").is_file() and (installed / "core" / "lbs.py").is_file()
        assert sys.modules[f"{MODULE}.blender.operators"].FLAME_OT_import_model.is_registered

        bpy.ops.wm.read_homefile(use_empty=True)
        assert bpy.ops.flame.import_model(filepath=str(small_model_file), n_shape=10, n_expr=5) == {"FINISHED"}
        armature = bpy.context.view_layer.objects.active
        assert armature.flame.is_head and armature.flame.n_expr == 5
        assert len(armature.flame.mesh.data.shape_keys.key_blocks) == 1 + 10 + 5 + 36
    finally:
        uninstall()
    assert not hasattr(bpy.types.Object, "flame")
    assert not installed.exists()


def test_installed_extension_registers_the_blender_command(zip_path, small_model_file, source_addon_unregistered,
                                                           tmp_path, monkeypatch, capfd):
    """``blender -c flame ...`` calls what the extension registers with ``bpy.utils.register_cli_command``.
    The bpy wheel has no ``-c`` argument, so the test takes the registered callback and calls it as Blender does:
    with the arguments after the command's name."""
    registered = {}
    real = bpy.utils.register_cli_command

    def spy(name, execute):
        registered[name] = execute
        return real(name, execute)

    monkeypatch.setattr(bpy.utils, "register_cli_command", spy)
    assert bpy.ops.extensions.package_install_files(filepath=str(zip_path), repo="user_default",
                                                    enable_on_install=True) == {"FINISHED"}
    try:
        command = registered["flame"]
        assert command.__module__ == f"{MODULE}.cli"  # the installed copy, not this source tree
        output = tmp_path / "head.blend"
        args = ["build", str(small_model_file), "--output", str(output), "--n-shape", "3", "--n-expr", "2"]
        assert command(args) == 0
        assert f"wrote {output}" in capfd.readouterr().out
        assert command(["build", str(tmp_path / "missing.pkl"), "--output", str(output)]) == 2
        assert "blender -c flame build: error: " in capfd.readouterr().err
        bpy.ops.wm.open_mainfile(filepath=str(output), load_ui=False)
        heads = [o for o in bpy.context.scene.objects if o.type == "ARMATURE" and o.flame.is_head]
        assert [(h.flame.n_shape, h.flame.n_expr) for h in heads] == [(3, 2)]
    finally:
        uninstall()
