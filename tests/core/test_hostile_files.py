"""Hostile and broken files for every loader, run in child processes with a memory limit and a timeout.

A crash, hang, internal error, foreign exception, memory growth or modified interpreter state
fails the case's test instead of the run; see tests/hostile_corpus.py for the cases and
tests/hostile_harness.py for the child. The regression files kept by the fuzzer
(tests/regressions/) run here too.
"""

import re
from pathlib import Path

import pytest
from hostile_corpus import Case, hostile_cases, key_cases
from hostile_harness import run_cases

REGRESSIONS = Path(__file__).resolve().parent.parent / "regressions"
MAX_RSS_MB = 600  # a hostile case may not grow the child much beyond numpy's own footprint (~60 MB)


def regression_cases() -> list[Case]:
    """Every file or folder under tests/regressions/<loader>/ (kept crashers), expecting a clean outcome."""
    return [Case(f"regression/{p.parent.name}/{p.name}", p.parent.name, lambda _f, p=p: p)
            for p in sorted(REGRESSIONS.glob("*/*")) if not p.name.startswith(".")]


CASES = hostile_cases() + key_cases() + regression_cases()


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    specs = []
    for i, case in enumerate(CASES):
        folder = root / f"case{i:04d}"
        folder.mkdir()
        specs.append({"id": case.id, "loader": case.loader, "path": str(case.build(folder)), "ext": case.ext})
    results = run_cases(specs, root)
    return root, results


def _names_key(result: dict, key: str) -> bool:
    return result["outcome"] == "error" and key in result["message"]


def check(case: Case, result: dict) -> None:
    where = f"{case.id}: {result}"
    assert result["outcome"] in ("ok", "error"), where  # never crash, hang, timeout, internal or foreign
    assert not result["state_changed"], where
    assert result["rss_mb"] < MAX_RSS_MB, where
    message = result.get("message", "")
    assert "\n" not in message and "not enough memory" not in message, where
    expect = case.expect
    if expect == "ok":
        assert result["outcome"] == "ok", where
    elif expect == "clean":
        pass
    elif expect[0] == "key":
        assert _names_key(result, expect[1]), where
    elif expect[0] == "key-or-ok":
        assert result["outcome"] == "ok" or _names_key(result, expect[1]), where
    elif expect[0] == "key-or-warning":
        assert _names_key(result, expect[1]) or (
            result["outcome"] == "ok" and any(expect[1] in w for w in result["warnings"])), where
    else:
        classes, pattern = expect
        assert result["outcome"] == "error" and result["error"] in classes, where
        assert re.search(pattern, message), where


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_loader_is_safe_and_clear(case, outcomes):
    check(case, outcomes[1][case.id])


def test_no_hostile_file_ran_code(outcomes):
    root, results = outcomes
    assert len(results) == len(CASES)
    assert not list(root.rglob("PWNED"))


def test_corpus_covers_the_required_routes_and_kinds():
    ids = {c.id for c in CASES}
    for route in ("GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "EXT1", "EXT2", "EXT4", "NEWOBJ", "NEWOBJ_EX",
                  "BUILD-on-function", "PERSID", "BINPERSID"):
        assert f"model/route/{route}" in ids and f"frame/route/{route}" in ids
    for kind in ("fifo", "dev-zero", "dangling-link", "link-loop", "unicode-shell-path", "bomb-data-pkl",
                 "negative-stride", "memo-dag-64-levels", "encrypted-members", "imploded-members"):
        assert any(i.endswith(kind) for i in ids), kind
