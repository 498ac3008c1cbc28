# Sourced by scripts/test.sh and scripts/demo.sh: headless OpenGL (Mesa EGL) that Blender's renderers need.
ensure_egl() {
  ldconfig -p 2>/dev/null | grep -q 'libEGL.so.1' && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing Mesa EGL for headless rendering (libegl1 libegl-mesa0 libgl1-mesa-dri)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libegl1 libegl-mesa0 libgl1-mesa-dri >/dev/null
  else
    echo "error: headless rendering needs Mesa EGL: sudo apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri" >&2
    return 1
  fi
}
