#!/usr/bin/env bash
# Installs a built descent into a temporary prefix and builds clients against the installed
# copy only (ctest: install_consumers):
#  - a C program compiled with `pkg-config --cflags --libs descent`, run through its rpath;
#  - `pkg-config --static --libs descent` lists the private libraries; when the static library
#    was built, a C program linked with those flags and libdescent.a;
#  - a CMake project using find_package(descent 0.1) and descent::descent (and
#    descent::descent_static when the static library was built).
# Every step must succeed; the temporary prefix is removed on exit.
#
# usage: run_install_test.sh <cmake> <build dir> <CMAKE_INSTALL_LIBDIR> <C compiler>
#                            <version> <shared ON|OFF> <static ON|OFF>
set -euo pipefail

cmake=$1
build_dir=$2
libdir_rel=$3
cc=$4
version=$5
major=${version%%.*}
shared=$6
static=$7
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/descent-install-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
libdir=$prefix/$libdir_rel
cflags=(-std=c99 -Wall -Wextra -Werror -pedantic)

step() { echo "== $*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
is_on() { case "${1^^}" in ON|1|TRUE|YES|Y) return 0 ;; *) return 1 ;; esac; }

step "cmake --install $build_dir --prefix $prefix"
"$cmake" --install "$build_dir" --prefix "$prefix" >"$tmp/install.log" || {
  cat "$tmp/install.log"; fail "cmake --install failed"; }
for f in "$prefix/include/descent/descent.h" "$libdir/pkgconfig/descent.pc" \
         "$libdir/cmake/descent/descentConfig.cmake" \
         "$libdir/cmake/descent/descentConfigVersion.cmake"; do
  [[ -f "$f" ]] || fail "not installed: $f"
done
if is_on "$shared"; then
  for f in libdescent.so libdescent.so.$major "libdescent.so.$version"; do
    [[ -e "$libdir/$f" ]] || fail "not installed: $libdir/$f"
  done
fi
if is_on "$static"; then
  [[ -f "$libdir/libdescent.a" ]] || fail "not installed: $libdir/libdescent.a"
fi

# Only the temporary prefix: no other descent.pc can answer.
export PKG_CONFIG_PATH=$libdir/pkgconfig
unset PKG_CONFIG_LIBDIR LD_LIBRARY_PATH || true

step "pkg-config"
[[ "$(pkg-config --modversion descent)" == "$version" ]] ||
  fail "pkg-config --modversion descent is '$(pkg-config --modversion descent)', expected $version"
[[ "$(pkg-config --variable=prefix descent)" == "$prefix" ]] ||
  fail "descent.pc has prefix '$(pkg-config --variable=prefix descent)', expected $prefix"
read -r -a pc_cflags <<<"$(pkg-config --cflags descent)"
read -r -a pc_libs <<<"$(pkg-config --libs descent)"
read -r -a pc_static_libs <<<"$(pkg-config --static --libs descent)"
echo "cflags: ${pc_cflags[*]}"
echo "libs: ${pc_libs[*]}"
echo "static libs: ${pc_static_libs[*]}"
for lib in -ldescent -lopenblas -llapacke -lstdc++; do
  [[ " ${pc_static_libs[*]} " == *" $lib "* ]] ||
    fail "pkg-config --static --libs descent lacks $lib"
done

if is_on "$shared"; then
  step "C consumer, pkg-config, shared"
  "$cc" "${cflags[@]}" "$here/consumer.c" "${pc_cflags[@]}" -o "$tmp/consumer_shared" \
    "${pc_libs[@]}" "-Wl,-rpath,$libdir"
  # Output captured first: under pipefail, `ldd | grep -q` fails when grep exits early (SIGPIPE).
  deps=$(ldd "$tmp/consumer_shared")
  grep -q "libdescent.so.$major => $libdir/libdescent.so.$major" <<<"$deps" ||
    { echo "$deps"; fail "consumer_shared does not load the installed libdescent.so.$major"; }
  "$tmp/consumer_shared"
fi

if is_on "$static"; then
  step "C consumer, pkg-config --static, libdescent.a"
  static_libs=()
  for arg in "${pc_static_libs[@]}"; do
    # -ldescent would pick libdescent.so when both are installed; ask for the archive.
    if [[ "$arg" == -ldescent ]]; then static_libs+=(-l:libdescent.a); else static_libs+=("$arg"); fi
  done
  "$cc" "${cflags[@]}" "$here/consumer.c" "${pc_cflags[@]}" -o "$tmp/consumer_static" \
    "${static_libs[@]}"
  if grep -q 'NEEDED.*libdescent' <<<"$(readelf -d "$tmp/consumer_static")"; then
    fail "consumer_static depends on libdescent.so"
  fi
  "$tmp/consumer_static"
fi

cmake_consumer() { # <name> <extra cmake args...>
  local name=$1
  shift
  step "CMake consumer ($name): find_package(descent 1.0)"
  "$cmake" -S "$here/cmake_consumer" -B "$tmp/$name" -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_C_COMPILER="$cc" -DCMAKE_BUILD_TYPE=Release "$@" >"$tmp/$name.log" 2>&1 || {
    cat "$tmp/$name.log"; fail "configuring the CMake consumer ($name) failed"; }
  grep -q "^descent_DIR:PATH=$libdir/cmake/descent\$" "$tmp/$name/CMakeCache.txt" ||
    fail "find_package found descent elsewhere: $(grep '^descent_DIR' "$tmp/$name/CMakeCache.txt")"
  "$cmake" --build "$tmp/$name" >"$tmp/$name-build.log" 2>&1 || {
    cat "$tmp/$name-build.log"; fail "building the CMake consumer ($name) failed"; }
  "$tmp/$name/consumer"
}
cmake_consumer cmake_default
if is_on "$shared"; then
  grep -q "NEEDED.*libdescent.so.$major" <<<"$(readelf -d "$tmp/cmake_default/consumer")" ||
    fail "descent::descent is not the shared library although it was installed"
fi
if is_on "$static"; then
  cmake_consumer cmake_static -DCONSUMER_STATIC=ON
fi

echo "ok: install tree and consumers work"
