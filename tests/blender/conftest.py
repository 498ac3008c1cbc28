"""Blender tier: the add-on registered from the source tree, a fresh empty scene per test."""

from pathlib import Path

import pytest

bpy = pytest.importorskip("bpy")

import legacy_pickle  # noqa: E402
from synthetic_model import random_model_arrays  # noqa: E402

import flame_blender_addon  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def addon():
    flame_blender_addon.register()
    yield flame_blender_addon
    flame_blender_addon.unregister()


@pytest.fixture(autouse=True)
def empty_scene():
    bpy.ops.wm.read_homefile(use_empty=True)
    yield
    bpy.ops.wm.read_homefile(use_empty=True)


@pytest.fixture(scope="session")
def small_model_file(tmp_path_factory) -> Path:
    """A small model in the distributed pickle format (chumpy arrays, scipy csc regressor)."""
    path = tmp_path_factory.mktemp("models") / "generic_model.pkl"
    return legacy_pickle.write_flame_pickle(path, random_model_arrays(
        n_verts=300, n_faces=500, seed=3, joint_spread=5.0))


@pytest.fixture(scope="session")
def flame_sized_model_file(tmp_path_factory) -> Path:
    """A FLAME-sized model (5023 vertices, 9976 faces, 400 components) in the distributed format."""
    path = tmp_path_factory.mktemp("models") / "generic_model.pkl"
    return legacy_pickle.write_flame_pickle(path, random_model_arrays(seed=1, joint_spread=3.0))


@pytest.fixture
def addon_preferences():
    """The add-on's preferences, as when it is enabled from the Preferences (tests register the
    source tree directly, which makes no preferences entry)."""
    from flame_blender_addon.blender import preferences

    entry = bpy.context.preferences.addons.new()
    entry.module = preferences.ADDON_PACKAGE
    yield entry.preferences
    bpy.context.preferences.addons.remove(entry)
