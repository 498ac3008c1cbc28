"""The extension as users get it: build the zip, install it into Blender, use it, remove it."""

import sys
from pathlib import Path

import addon_utils
import bpy
import pytest

import flame_blender_addon

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import build_extension  # noqa: E402

MODULE = "bl_ext.user_default.flame_head"


@pytest.fixture
def source_addon_unregistered():
    flame_blender_addon.unregister()
    yield
    flame_blender_addon.register()


def test_built_zip_installs_and_imports_a_model(tmp_path, small_model_file, source_addon_unregistered):
    zip_path = build_extension.build(tmp_path / "dist")
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
        addon_utils.disable(MODULE)
        repo_index = [r.module for r in bpy.context.preferences.extensions.repos].index("user_default")
        assert bpy.ops.extensions.package_uninstall(repo_index=repo_index, pkg_id="flame_head") == {"FINISHED"}
    assert not hasattr(bpy.types.Object, "flame")
    assert not installed.exists()
