#!/usr/bin/env bash
# Toolchain check for the Rust binding. The crate has no dependencies (std only), so there is
# nothing to download: this verifies cargo, clippy and pkg-config and says how to get them.
# Idempotent; silent when everything is present.
set -euo pipefail
export PATH="$PATH:${CARGO_HOME:-$HOME/.cargo}/bin"

if ! command -v cargo >/dev/null 2>&1; then
  cat >&2 <<'MSG'
bindings/rust/install-deps.sh: cargo not found.
Install a Rust toolchain (1.70 or newer) with rustup:
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c clippy
and put ~/.cargo/bin on PATH.
MSG
  exit 1
fi
if ! cargo clippy --version >/dev/null 2>&1; then
  if command -v rustup >/dev/null 2>&1; then
    rustup component add clippy >/dev/null
  else
    echo "bindings/rust/install-deps.sh: cargo clippy missing and no rustup to add it" >&2
    exit 1
  fi
fi
if ! command -v pkg-config >/dev/null 2>&1 && [[ -z "${DESCENT_LIB_DIR:-}" ]]; then
  echo "bindings/rust/install-deps.sh: pkg-config not found (apt-get install pkg-config, or set DESCENT_LIB_DIR)" >&2
  exit 1
fi
