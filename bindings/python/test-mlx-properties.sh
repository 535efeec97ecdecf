#!/usr/bin/env bash
# Property-based differential tests of descent against live MLX (tests/test_mlx_properties.py,
# docs/reliability.md "Differential testing against MLX"). ctest runs the CI budget as
# binding_python_mlx_properties.
#
#   test-mlx-properties.sh                      CI budget: fixed seed (derandomized), fixed counts
#   test-mlx-properties.sh --long N [--seed S]  N optimizer cases and N/4 clip_grad_norm cases,
#                                               random seed unless S is given (run it niced)
#
#   DESCENT_PREFIX / DESCENT_LIBRARY   the library (as for test.sh; default prefix /usr/local)
#   DESCENT_PY_VENV                    the virtual environment (default ~/.cache/descent-py-venv)
#   DESCENT_MLX_PROPERTY_OUT=<dir>     also write each failure's golden-case JSON there
# A failure prints the minimal case as a tests/data/golden JSON document.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
venv=${DESCENT_PY_VENV:-$HOME/.cache/descent-py-venv}
[[ -n ${DESCENT_LIBRARY:-} ]] || export DESCENT_PREFIX=${DESCENT_PREFIX:-/usr/local}

while [[ $# -gt 0 ]]; do
  case $1 in
    --long) export DESCENT_MLX_PROPERTY_EXAMPLES=$2; shift 2 ;;
    --seed) export DESCENT_MLX_PROPERTY_SEED=$2; shift 2 ;;
    *) echo "test-mlx-properties.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

"$here/install-deps.sh"
cd "$here"
t0=$SECONDS
"$venv/bin/python" -m pytest -q -p no:cacheprovider -s --hypothesis-show-statistics \
  tests/test_mlx_properties.py
echo "test-mlx-properties.sh: $((SECONDS - t0)) s" >&2
