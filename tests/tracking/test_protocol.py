"""The JSON-lines protocol (standard library only, as Blender uses it)."""

import json

from flame_blender_addon.core import tracker_protocol as protocol


def test_messages_round_trip_through_parse_line():
    lines = [protocol.encode(m) for m in (protocol.progress("fit", 0.5, "half"), protocol.log("hi", "warning"),
                                          protocol.result("/x/flame_sequence.npz", frames=3), protocol.error("bad"))]
    assert all(line.endswith("\n") and line.count("\n") == 1 for line in lines)
    progress, log, result, error = (protocol.parse_line(line) for line in lines)
    assert (progress.type, progress.stage, progress.fraction, progress.message) == ("progress", "fit", 0.5, "half")
    assert (log.type, log.level, log.message) == ("log", "warning", "hi")
    assert (result.type, result.path, result.data) == ("result", "/x/flame_sequence.npz", {"frames": 3})
    assert (error.type, error.message, error.raw) == ("error", "bad", False)
    assert json.loads(lines[0])["protocol"] == protocol.PROTOCOL_VERSION


def test_parse_line_is_tolerant():
    assert protocol.parse_line("  \n") is None
    stray = protocol.parse_line("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.")
    assert (stray.type, stray.raw, stray.message.startswith("INFO")) == ("log", True, True)
    assert protocol.parse_line('{"type": "dance"}').raw
    assert protocol.parse_line("[1, 2]").raw
    assert protocol.parse_line('{"type": "progress", "fraction": 7}').fraction == 1.0
    assert protocol.parse_line('{"type": "progress", "fraction": "half"}').fraction == 0.0
    assert protocol.parse_line('{"type": "log", "level": "shout", "message": 3}').level == "info"
    assert protocol.progress("fit", -2.0)["fraction"] == 0.0


def test_protocol_module_imports_only_the_standard_library():
    """Blender imports the protocol and runs the stand-in tracker with its own Python: both use the
    standard library, and the stand-in's only package import is the protocol."""
    import ast
    import sys
    from pathlib import Path

    fake = Path(__file__).resolve().parents[1] / "fake_tracker.py"
    for path in (Path(protocol.__file__), fake):
        tree = ast.parse(path.read_text())
        names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module.split(".")[0] for n in ast.walk(tree)
                  if isinstance(n, ast.ImportFrom) and n.module and n.level == 0}
        assert names <= set(sys.stdlib_module_names) | {"flame_blender_addon"}, (path.name, names)
        package = {(n.module, tuple(a.name for a in n.names)) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                   and (n.level > 0 or (n.module or "").startswith("flame_blender_addon"))}
        assert package <= {("flame_blender_addon.core", ("tracker_protocol",))}, (path.name, package)
