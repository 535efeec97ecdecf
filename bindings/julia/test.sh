#!/usr/bin/env bash
# The one command CI runs for the Julia binding.
#  - Always: check_signatures.py (every ccall and @cfunction against include/descent/descent.h)
#    and its self-test (mutated copies must fail). Python 3 standard library only.
#  - Only if `julia` is on PATH: the package tests and the conformance scenario. No Julia
#    toolchain is installed in CI (Debian 12 ships none), so there the module is checked against
#    the header but never executed; the script says so.
# env: DESCENT_PREFIX (default /usr/local), DESCENT_CONFORMANCE_C (the C reference binary).
set -euo pipefail
export CI=${CI:-true}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
prefix=${DESCENT_PREFIX:-/usr/local}

python3 "$here/check_signatures.py" --header "$root/include/descent/descent.h"
python3 "$here/test_check_signatures.py" 2>&1 | tail -n 3
DESCENT_PREFIX=$prefix python3 "$here/check_transpose.py"

if ! command -v julia >/dev/null 2>&1; then
  echo "julia: not on PATH: Descent.jl was checked against the header but NOT executed" \
       "(runtests.jl and conformance.jl skipped)"
  exit 0
fi

export DESCENT_LIBRARY=${DESCENT_LIBRARY:-$prefix/lib/libdescent.so.1}
julia --project="$here" --startup-file=no "$here/test/runtests.jl"
if [[ -n "${DESCENT_CONFORMANCE_C:-}" ]]; then
  "$root/tests/conformance/run.sh" "$DESCENT_CONFORMANCE_C" \
    "julia=julia --project=$here --startup-file=no $here/conformance.jl"
else
  echo "DESCENT_CONFORMANCE_C not set: conformance scenario skipped" >&2
  exit 1
fi
