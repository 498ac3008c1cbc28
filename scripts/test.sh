#!/usr/bin/env bash
# The project's test command (README): every tier, on a fresh machine too.
#   bash scripts/test.sh              # all tiers
#   BLENDER_VERSIONS="5.0.1" bash scripts/test.sh -k exactness   # extra args go to pytest
# Virtual environments are made on first use under .venvs/ (scripts/venv.sh finds the Pythons):
#   bpy-<version>: the bpy wheel + pytest + chumpy-fixed -> core and Blender tiers; Python 3.11 and
#                  numpy<2 up to 5.0, Python 3.13 and the wheel's numpy 2 from 5.1
#   numpy2:        numpy 2 + pytest + ruff + hypothesis (3.11)             -> core tier on numpy 2 (fuzzed), lint
#   tracker:       torch (CPU), mediapipe 0.10.21, PyAV, scikit-image, hypothesis (3.11) -> core (fuzzed), tracker
#                  (its photometric tests render clips in Blender with FLAME_BLENDER_PYTHON: the first version's bpy)
# The loader fuzzer (tests/core/test_fuzz.py) runs where hypothesis is: FLAME_FUZZ_SECONDS per tier (30).
#   batch:         Ray + the bpy 4.5 wheel (3.11)                        -> batch tier (SKIP_BATCH=1 skips it)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
source scripts/system_deps.sh
ensure_egl  # the render tests need headless OpenGL, on a fresh machine too
# 4.2 LTS, 4.5 LTS, 5.0, 5.1, 5.2 LTS: about a minute each on the 2-core CI machine.
BLENDER_VERSIONS=${BLENDER_VERSIONS:-"4.2.23 4.5.15 5.0.1 5.1.2 5.2.3"}
for version in $BLENDER_VERSIONS; do  # every Python needed, before any tier runs
  find_python "$(bpy_python_version "$version")" >/dev/null
done
TORCH=${TORCH:-torch==2.13.0}
RAY=${RAY:-ray==2.60.0}
TEST_DEPS=(pytest "chumpy-fixed==0.71")

failed=()
run_tier() {  # run_tier LABEL PYTHON PYTEST_ARGS...; pytest's 5 (nothing collected) is not a failure
  local label=$1 python=$2; shift 2
  echo "== $label"
  local rc=0
  "$python" -m pytest -p no:cacheprovider "$@" || rc=$?
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 5 ]; then failed+=("$label (exit $rc)"); fi
}

if [ "${SKIP_TRACKER:-0}" != 1 ]; then  # first, so the Blender tier can run the real tracker end to end
  ensure_venv tracker 3.11 "$TORCH" "numpy<2" pytest "av>=12" "mediapipe==0.10.21" scikit-image hypothesis
  export FLAME_TRACKER_PYTHON="$PWD/.venvs/tracker/bin/python"
fi
for version in $BLENDER_VERSIONS; do
  ensure_bpy_venv "$version" "${TEST_DEPS[@]}"
  run_tier "core + Blender tiers on bpy $version" ".venvs/bpy-$version/bin/python" tests/core tests/blender "$@"
done
ensure_venv numpy2 3.11 "numpy>=2" pytest ruff hypothesis
run_tier "core tier on numpy 2" .venvs/numpy2/bin/python tests/core "$@"
echo "== lint (ruff, settings in pyproject.toml)"
.venvs/numpy2/bin/ruff check flame_blender_addon scripts tests || failed+=("lint")
if [ "${SKIP_TRACKER:-0}" != 1 ]; then  # the photometric tests' Blender-rendered clips: the first bpy above
  export FLAME_BLENDER_PYTHON="${FLAME_BLENDER_PYTHON:-$PWD/.venvs/bpy-${BLENDER_VERSIONS%% *}/bin/python}"
  run_tier "core + tracker tiers (torch, mediapipe)" .venvs/tracker/bin/python tests/core tests/tracking "$@"
fi

if [ "${SKIP_BATCH:-0}" != 1 ]; then  # Ray locally, 2 workers; tracks a clip when FLAME_TRACKER_PYTHON is set
  ensure_venv batch 3.11 "bpy==4.5.15" "numpy<2" pytest "$RAY"
  run_tier "batch tier (Ray, bpy 4.5.15)" .venvs/batch/bin/python tests/batch "$@"
fi

if [ ${#failed[@]} -gt 0 ]; then
  printf 'FAILED tier: %s\n' "${failed[@]}"
  exit 1
fi
echo "all tiers passed"
