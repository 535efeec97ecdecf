#!/usr/bin/env bash
# What a Python user does: `pip install ./bindings/python` into a fresh virtual environment builds
# a wheel carrying libdescent (scikit-build-core drives the project's CMake); the installed package
# then loads its own copy, with no DESCENT_* variable set, and takes one AdamW step.
# ccache (when present) makes the library's compile cheap after the main build.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
/usr/bin/python3 -m venv --system-site-packages "$tmp/venv"
if command -v ccache >/dev/null 2>&1; then
  export CMAKE_C_COMPILER_LAUNCHER=ccache CMAKE_CXX_COMPILER_LAUNCHER=ccache
fi
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}
# The build backend comes from PyPI at the pinned version (pyproject.toml); nothing else does.
"$tmp/venv/bin/python" -m pip install -q --disable-pip-version-check "$here"
cd "$tmp"
env -u DESCENT_LIBRARY -u DESCENT_PREFIX -u LD_LIBRARY_PATH "$tmp/venv/bin/python" - <<'PY'
import os, numpy as np, descent
lib = descent.library_path
assert os.path.dirname(lib).endswith(os.path.join("descent", "lib")), lib
w = {"w": np.ones(4, dtype=np.float32)}
opt = descent.AdamW(learning_rate=0.1)
opt.update(w, {"w": np.ones(4, dtype=np.float32)})
# MLX's AdamW first step (no bias correction): p(1 - lr wd) - lr m / (sqrt(v) + eps)
expected = (1 - 0.1 * 0.01) - 0.1 * 0.1 / (np.sqrt(0.001) + 1e-8)
assert np.allclose(w["w"], expected, atol=1e-6), (w["w"], expected)
print("wheel ok:", lib)
PY
