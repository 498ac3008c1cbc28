#!/usr/bin/env bash
# The README's main job on a fresh machine: the demo head + built-in performance -> .blend,
# preview PNGs + MP4 and engine exports in OUT (default: out/demo).
#   bash scripts/demo.sh [OUT] [more flame_cli.py demo options]
#   BLENDER_VERSION=5.2.3 bash scripts/demo.sh   # another bpy wheel (default 4.5.15)
set -euo pipefail
out=$(realpath -m "${1:-out/demo}")  # relative to where the user runs it
shift || true
cd "$(dirname "$0")/.."
source scripts/venv.sh
source scripts/system_deps.sh
ensure_egl
BLENDER_VERSION=${BLENDER_VERSION:-4.5.15}
ensure_bpy_venv "$BLENDER_VERSION" pytest "chumpy-fixed==0.71"
exec ".venvs/bpy-$BLENDER_VERSION/bin/python" scripts/flame_cli.py demo --output "$out" "$@"
