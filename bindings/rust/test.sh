#!/usr/bin/env bash
# The one command CI runs for the Rust binding: builds it, runs its unit, integration and doc
# tests, clippy (-D warnings), the training example, and the conformance scenario against the C
# reference.
#   DESCENT_PREFIX            install prefix of libdescent (default /usr/local)
#   DESCENT_CONFORMANCE_C     the C reference binary (default <repo>/build/tests/conformance_c)
set -euo pipefail
export CI=true

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
prefix=${DESCENT_PREFIX:-/usr/local}
reference=${DESCENT_CONFORMANCE_C:-$root/build/tests/conformance_c}

export PATH="$PATH:${CARGO_HOME:-$HOME/.cargo}/bin"
pc=""
for d in "$prefix/lib/pkgconfig" "$prefix/lib64/pkgconfig" "$prefix"/lib/*/pkgconfig; do
  if [[ -f "$d/descent.pc" ]]; then pc=$d; break; fi
done
if [[ -n "$pc" ]]; then
  export PKG_CONFIG_PATH="$pc${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
elif [[ -z "${DESCENT_LIB_DIR:-}" ]]; then
  echo "bindings/rust/test.sh: no descent.pc under $prefix (set DESCENT_PREFIX or DESCENT_LIB_DIR)" >&2
  exit 1
fi
if [[ ! -x "$reference" ]]; then
  echo "bindings/rust/test.sh: C reference '$reference' not found (set DESCENT_CONFORMANCE_C)" >&2
  exit 1
fi

cd "$here"
cargo test --locked --release --all-targets
cargo test --locked --release --doc
cargo clippy --locked --release --all-targets -- -D warnings
cargo build --locked --release --examples
cargo run --locked --release --quiet --example train
"$root/tests/conformance/run.sh" "$reference" "rust=$here/target/release/examples/conformance"
