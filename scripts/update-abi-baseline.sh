#!/usr/bin/env bash
# Regenerates abi/libdescent.abi from a build with debug information. Run it only for a release
# that adds to the ABI (docs/abi-policy.md); commit the result with the release.
# usage: scripts/update-abi-baseline.sh [build-dir]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-$root/build}
lib=$(readlink -f "$build/libdescent.so")
grep -q '\.debug_info' <<<"$(readelf -S "$lib")" ||
  { echo "update-abi-baseline.sh: $lib has no debug info (-DDESCENT_DEBUG_INFO=ON)" >&2; exit 1; }
abidw --no-corpus-path --no-comp-dir-path --drop-private-types --exported-interfaces-only --no-show-locs --headers-dir "$root/include/descent" \
  --out-file "$root/abi/libdescent.abi" "$lib"
echo "wrote abi/libdescent.abi from $lib"
