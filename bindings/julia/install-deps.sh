#!/usr/bin/env bash
# Dependencies of the Julia binding's CI check: python3 (standard library only). Julia itself is
# not installed: Debian 12 has no package and Julia's installers download from the internet. The
# package has no Julia dependencies beyond the standard library (Test), so nothing is pinned.
set -euo pipefail
if ! command -v python3 >/dev/null 2>&1; then
  apt-get install -y -qq python3 >/dev/null
fi
