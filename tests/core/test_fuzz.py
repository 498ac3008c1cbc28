"""Property-based fuzzing of every loader for a fixed time budget, in a child process.

FLAME_FUZZ_SECONDS (default 30) is split over the targets of tests/fuzz_targets.py. CI fuzzes on
the two tiers whose environments install hypothesis (numpy 2, and numpy 1.26 in the tracker tier),
about a minute in all; ``scripts/bench_fuzz.py`` runs the long mode. A failure keeps its input
under tests/regressions/, which test_hostile_files.py replays from then on.
"""

import os

import pytest

pytest.importorskip("hypothesis", reason="the fuzzer runs where hypothesis is installed (numpy2 and tracker tiers)")

from fuzz_targets import fuzz, targets  # noqa: E402


def test_no_loader_crashes_hangs_or_raises_anything_but_a_clear_flame_error(tmp_path):
    names = [t.name for t in targets()]
    seconds = float(os.environ.get("FLAME_FUZZ_SECONDS", "30"))
    reports = fuzz(seconds / len(names), tmp_path, names)
    for report in reports:
        print(report)
    assert [r["target"] for r in reports] == names
    failures = [r for r in reports if r["failure"]]
    assert not failures, failures
    assert all(r["examples"] > 0 for r in reports)
