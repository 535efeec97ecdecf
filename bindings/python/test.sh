#!/usr/bin/env bash
# The one command CI runs for the Python binding: dependencies (idempotent), the pytest suite
# (unit tests, MLX as live oracle, descent.torch against torch.optim) and the conformance scenario.
#   DESCENT_PREFIX          install prefix of libdescent (default /usr/local)
#   DESCENT_CONFORMANCE_C   the C reference binary (build/tests/conformance_c)
#   DESCENT_PY_VENV         the virtual environment (default ~/.cache/descent-py-venv)
set -euo pipefail
export CI=${CI:-true}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
export DESCENT_PREFIX=${DESCENT_PREFIX:-/usr/local}
venv=${DESCENT_PY_VENV:-$HOME/.cache/descent-py-venv}
: "${DESCENT_CONFORMANCE_C:?set DESCENT_CONFORMANCE_C to the conformance_c reference binary}"

"$here/install-deps.sh"
py="$venv/bin/python"
cd "$here"
"$py" -c "import descent; print('descent', descent.__version__, 'from', descent.library_path)"
"$py" examples/quickstart.py >/dev/null
# test_mlx_properties.py runs as its own ctest (test-mlx-properties.sh).
"$py" -m pytest -q -p no:cacheprovider --ignore=tests/test_mlx_properties.py tests
"$root/tests/conformance/run.sh" "$DESCENT_CONFORMANCE_C" "python=$py $here/conformance.py"
