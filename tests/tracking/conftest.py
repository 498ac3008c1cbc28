"""Fixtures of the tracker tests (helpers live in scenes.py, importable by name from the tests)."""

import pytest
from scenes import Scene, make_scene


@pytest.fixture(scope="session")
def scene() -> Scene:
    return make_scene()
