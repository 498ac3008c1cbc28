#!/usr/bin/env bash
# The README's main job on a fresh machine: the demo head + built-in performance -> .blend,
# preview PNGs + MP4 and engine exports in OUT (default: out/demo).
#   bash scripts/demo.sh [OUT] [more flame_cli.py demo options]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
BLENDER_VERSION=${BLENDER_VERSION:-4.5.15}
ensure_venv "bpy-$BLENDER_VERSION" "bpy==$BLENDER_VERSION" "numpy<2" pytest "chumpy-fixed==0.71"
out=${1:-out/demo}
shift || true
exec ".venvs/bpy-$BLENDER_VERSION/bin/python" scripts/flame_cli.py demo --output "$out" "$@"
