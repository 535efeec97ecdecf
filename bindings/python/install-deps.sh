#!/usr/bin/env bash
# Installs what the Python binding needs: Debian's python3 (3.11), venv, numpy and torch (apt),
# and a virtual environment with the pinned test requirements (pytest, MLX for the live oracle).
# Idempotent and quiet when already done. The venv lives in ${DESCENT_PY_VENV:-~/.cache/descent-py-venv}.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
venv=${DESCENT_PY_VENV:-$HOME/.cache/descent-py-venv}

need=()
for p in python3 python3-venv python3-pip python3-numpy python3-torch dataset-fashion-mnist cmake; do
  [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" == "install ok installed" ]] || need+=("$p")
done
if ((${#need[@]})); then
  echo "install-deps (python): apt-get install ${need[*]}"
  sudo_=""; [[ $(id -u) -ne 0 ]] && sudo_=sudo
  $sudo_ apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -q "${need[@]}" >/dev/null
fi

stamp="$venv/.descent-requirements"
if [[ ! -x "$venv/bin/python" ]]; then
  echo "install-deps (python): creating $venv"
  /usr/bin/python3 -m venv --system-site-packages "$venv"
fi
if ! cmp -s "$here/requirements-test.txt" "$stamp"; then
  echo "install-deps (python): pip install -r requirements-test.txt"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$here/requirements-test.txt"
  cp "$here/requirements-test.txt" "$stamp"
fi
