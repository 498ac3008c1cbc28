# Sourced by scripts/test.sh and scripts/demo.sh: virtual environments under .venvs/ made on first use.
# Each bpy wheel needs one Python: 3.11 up to Blender 5.0, 3.13 from 5.1. The numpy2 and tracker
# environments use 3.11. PYTHON3_11 / PYTHON3_13 name an interpreter explicitly.

find_python() {  # find_python X.Y: print a working pythonX.Y (PATH, then pyenv), or fail with a clear message
  local want=$1 override candidate
  override="PYTHON${want/./_}"
  # A pyenv shim is on PATH even where that version is not selected, so each candidate is run once.
  for candidate in ${!override:-} "python$want" \
      $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$want".*/bin/python"$want" 2>/dev/null | sort -rV); do
    if [ "$("$candidate" -c 'import sys, venv; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "$want" ]; then
      echo "$candidate"
      return 0
    fi
  done
  echo "error: Python $want not found (neither python$want on PATH nor under pyenv); install it" \
       "(e.g. 'pyenv install $want') or set PYTHON${want/./_}=/path/to/python$want" >&2
  return 1
}

bpy_python_version() {  # bpy_python_version BLENDER_VERSION: the Python its bpy wheel is built for
  case $1 in
    4.*|5.0|5.0.*) echo 3.11 ;;
    *) echo 3.13 ;;
  esac
}

bpy_requirements() {  # bpy_requirements BLENDER_VERSION: pip args of its venv (bpy + the numpy it is built with)
  if [ "$(bpy_python_version "$1")" = 3.11 ]; then
    echo "bpy==$1 numpy<2"
  else
    echo "bpy==$1"  # numpy 2 comes with the wheel's own requirement
  fi
}

ensure_venv() {  # ensure_venv NAME PYTHON_VERSION PIP_ARGS... (re-created when the requirements change)
  local dir=".venvs/$1" version=$2; shift 2
  local want="$*" python
  if [ "$(cat "$dir/.requirements" 2>/dev/null)" != "$want" ]; then
    python=$(find_python "$version") || return 1
    echo "== preparing $dir with Python $version: $want"
    rm -rf "$dir"
    "$python" -m venv "$dir"
    "$dir/bin/python" -m pip install -q --disable-pip-version-check "$@"
    echo "$want" > "$dir/.requirements"
  fi
}

ensure_bpy_venv() {  # ensure_bpy_venv BLENDER_VERSION EXTRA_PIP_ARGS...: .venvs/bpy-VERSION
  local version=$1; shift
  # shellcheck disable=SC2046  # bpy_requirements is a word list
  ensure_venv "bpy-$version" "$(bpy_python_version "$version")" $(bpy_requirements "$version") "$@"
}
