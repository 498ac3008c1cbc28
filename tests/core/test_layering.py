"""The add-on's layers, read from the source (every import statement, lazy ones inside functions too):
``blender`` never imports ``tracking`` (it runs the tracker as a separate process and shares only
``core.tracker_protocol``); ``core`` and ``tracking`` never import Blender's modules or ``blender``;
``core`` never imports ``tracking`` or ``demo``; ``demo`` is numpy content on top of ``core``; ``cli``
and ``batch`` never import ``tracking``; only ``batch/runner.py`` imports Ray, and nothing of the add-on
imports ``batch`` but the ``batch`` command.
test_core_isolation.py checks core's imports at runtime."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import flame_blender_addon

PACKAGE_DIR = Path(flame_blender_addon.__file__).resolve().parent
PACKAGE = PACKAGE_DIR.name
BLENDER_MODULES = {"bpy", "bpy_extras", "bmesh", "mathutils", "gpu", "blf"}


def module_name(path: Path) -> str:
    """Dotted name of a source file of the add-on, e.g. ``flame_blender_addon.blender.head``."""
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(source: str, module: str, is_package: bool = False) -> set[str]:
    """Absolute dotted names a module's import statements can load: ``import a.b`` gives ``a.b``,
    ``from m import n`` gives ``m`` and ``m.n`` (n may be a submodule), relative imports resolved."""
    package = module if is_package else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            names |= {base} | {f"{base}.{alias.name}" for alias in node.names}
    return names


def imports_of(folder: str) -> dict[str, set[str]]:
    """Every module of a subpackage -> the names it imports."""
    paths = sorted((PACKAGE_DIR / folder).rglob("*.py"))
    assert paths, folder
    return {module_name(p): imported(p.read_text(encoding="utf-8"), module_name(p), p.stem == "__init__")
            for p in paths}


def within(names: set[str], prefixes: set[str]) -> set[str]:
    return {n for n in names if any(n == p or n.startswith(p + ".") for p in prefixes)}


def test_imports_are_resolved_to_absolute_names():
    blender = f"{PACKAGE}.blender.tracker_job"
    assert imported("from ..tracking import protocol\nimport bpy.props", blender) >= {
        f"{PACKAGE}.tracking", f"{PACKAGE}.tracking.protocol", "bpy.props"}
    assert imported("from .. import tracking", blender) >= {f"{PACKAGE}.tracking"}
    assert imported("from . import head", f"{PACKAGE}.blender", is_package=True) == {
        f"{PACKAGE}.blender", f"{PACKAGE}.blender.head"}
    assert imported("def f():\n    from mathutils import Matrix\n", blender) >= {"mathutils"}


def test_blender_never_imports_the_tracking_package():
    modules = imports_of("blender")
    assert f"{PACKAGE}.core.tracker_protocol" in set().union(*modules.values())  # the shared protocol
    bad = {m: within(names, {f"{PACKAGE}.tracking"}) for m, names in modules.items()}
    assert not any(bad.values()), {m: n for m, n in bad.items() if n}


@pytest.mark.parametrize("folder, forbidden", [
    ("core", BLENDER_MODULES | {f"{PACKAGE}.blender", f"{PACKAGE}.tracking", f"{PACKAGE}.demo"}),
    ("demo", BLENDER_MODULES | {f"{PACKAGE}.blender", f"{PACKAGE}.tracking"}),
    ("cli", {f"{PACKAGE}.tracking"}),  # the track subcommand runs the tracker process, like the operator
    ("batch", {f"{PACKAGE}.tracking"}),  # the tracker is a child process of a batch worker
    ("tracking", BLENDER_MODULES | {f"{PACKAGE}.blender"}),
])
def test_each_layer_imports_only_what_it_may(folder, forbidden):
    bad = {m: within(names, forbidden) for m, names in imports_of(folder).items()}
    assert not any(bad.values()), {m: n for m, n in bad.items() if n}


def test_only_the_batch_runner_imports_ray():
    """Ray is an optional extra of the batch command: the add-on in Blender never needs it."""
    folders = [p.name for p in PACKAGE_DIR.iterdir() if (p / "__init__.py").exists()]
    modules = {m: n for folder in folders for m, n in imports_of(folder).items()}
    users = {m for m, names in modules.items() if within(names, {"ray"})}
    assert users == {f"{PACKAGE}.batch.runner"}


@pytest.mark.parametrize("folder", ["blender", "core", "demo", "tracking"])
def test_the_add_on_never_imports_the_batch_package(folder):
    bad = {m: within(names, {f"{PACKAGE}.batch"}) for m, names in imports_of(folder).items()}
    assert not any(bad.values()), {m: n for m, n in bad.items() if n}


def test_cli_loads_the_batch_package_only_when_the_command_runs():
    """Registration and ``--help`` import cli/'s modules: none of them imports batch/ or Ray at the top."""
    for path in sorted((PACKAGE_DIR / "cli").rglob("*.py")):
        top = [node for node in ast.parse(path.read_text(encoding="utf-8")).body
               if isinstance(node, (ast.Import, ast.ImportFrom))]
        names = imported("\n".join(map(ast.unparse, top)), module_name(path), path.stem == "__init__")
        assert not within(names, {f"{PACKAGE}.batch", "ray"}), path.name
