#!/usr/bin/env bash
# Installs, from Debian's apt archive, the packages descent needs to build and test.
# With --bindings, also what the Rust, Go, Python and Julia bindings need to build and test
# (bindings/<lang>/install-deps.sh: toolchain checks, apt packages, a pinned Python venv).
# Idempotent: prints nothing and touches nothing when everything is already installed.
# Runs apt-get as root directly, otherwise through sudo.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
with_bindings=false
if [[ ${1:-} == --bindings ]]; then with_bindings=true; fi

packages=(
  build-essential   # gcc, g++, make, binutils (nm, readelf)
  g++
  cmake
  pkg-config
  libopenblas-dev
  liblapacke-dev
  libgtest-dev
  libgmock-dev
  nlohmann-json3-dev
  zlib1g-dev              # examples/fashion_mnist reads the gzip-compressed IDX files
  dataset-fashion-mnist   # its data, in /usr/share/datasets/fashion-mnist
  gnuplot-nox             # its --compare plot (pngcairo terminal)
  ccache                  # compiler cache: rebuilds in CI and development
  abigail-tools           # abidiff: the ABI check against abi/libdescent.abi
  clang-format            # scripts/check-format.sh
  libopenmpi-dev          # libdescent_mpi, the MPI adapter (docs/distributed.md)
  openmpi-bin             # mpirun for its tests
  clang                   # libFuzzer for the fuzz targets (scripts/fuzz.sh)
  g++-aarch64-linux-gnu   # the aarch64 build check of the portable path (scripts/cross-check.sh)
)

missing=()
for pkg in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
  if [[ "$status" != "installed" ]]; then
    missing+=("$pkg")
  fi
done

install_bindings() {
  if $with_bindings; then
    for lang in rust go python julia; do "$root/bindings/$lang/install-deps.sh"; done
  fi
}

if [[ ${#missing[@]} -eq 0 ]]; then
  install_bindings
  exit 0
fi

if [[ $(id -u) -eq 0 ]]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  as_root=(sudo)
else
  echo "install-deps.sh: missing packages (${missing[*]}) and not root, and sudo is not available" >&2
  exit 1
fi

echo "install-deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
install_bindings
