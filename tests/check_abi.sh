#!/usr/bin/env bash
# The ABI check (ctest: abi_compatibility): libdescent.so against the committed baseline
# abi/libdescent.abi (abidw of the 1.0 release). Any change but added functions fails: a removed
# or renamed function, a changed parameter or return type, a changed enum. docs/abi-policy.md.
# usage: check_abi.sh <libdescent.so> <baseline.abi> <public headers dir>
set -uo pipefail

lib=$1
baseline=$2
headers=$3

if ! command -v abidiff >/dev/null; then
  echo "FAIL: abidiff not found (Debian: abigail-tools)" >&2
  exit 1
fi
if ! grep -q '\.debug_info' <<<"$(readelf -S "$lib")"; then  # no pipe: grep -q would SIGPIPE readelf
  echo "FAIL: $lib has no debug information: configure with -DDESCENT_DEBUG_INFO=ON" >&2
  exit 1
fi

# --harmless: abidiff calls same-size type changes (size_t -> int64_t, dropping a const) harmless;
# for a C ABI they are not. --no-added-syms: new functions are allowed in 1.x (new version node).
report=$(abidiff --harmless --no-added-syms --headers-dir2 "$headers" "$baseline" "$lib" 2>&1)
rc=$?
if [[ $rc -ne 0 ]]; then
  echo "$report"
  echo "FAIL: the ABI of $lib differs from $baseline (abidiff exit status $rc)." >&2
  echo "If the change only adds functions and the baseline must move, see docs/abi-policy.md." >&2
  exit 1
fi
echo "ok: ABI compatible with $baseline"
