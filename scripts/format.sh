#!/usr/bin/env bash
# Formats every C and C++ file of the tree in place with clang-format (.clang-format).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
git ls-files -z '*.c' '*.h' '*.cpp' ':!:tests/data/**' | xargs -0 clang-format --style=file -i
