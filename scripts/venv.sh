# Sourced by scripts/test.sh and scripts/demo.sh: virtual environments under .venvs/ made on first use.
PYTHON=${PYTHON:-python3.11}  # the bpy wheels are Python 3.11 only

ensure_venv() {  # ensure_venv NAME PIP_ARGS... (re-created when the requirements change)
  local dir=".venvs/$1"; shift
  local want="$*"
  if [ "$(cat "$dir/.requirements" 2>/dev/null)" != "$want" ]; then
    echo "== preparing $dir: $want"
    rm -rf "$dir"
    "$PYTHON" -m venv "$dir"
    "$dir/bin/python" -m pip install -q --disable-pip-version-check "$@"
    echo "$want" > "$dir/.requirements"
  fi
}
