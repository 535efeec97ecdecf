#!/usr/bin/env bash
# The one command CI runs for the Go binding: vet, tests (race detector, then strict cgo pointer
# checks), the example, and the conformance scenario against the C reference.
#   DESCENT_PREFIX           install prefix of libdescent (default /usr/local)
#   DESCENT_CONFORMANCE_C    the C reference binary (default <repo>/build/tests/conformance_c)
set -euo pipefail
export CI=true
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
prefix=${DESCENT_PREFIX:-/usr/local}
reference=${DESCENT_CONFORMANCE_C:-$root/build/tests/conformance_c}

[[ -x /usr/local/go/bin/go ]] && export PATH="/usr/local/go/bin:$PATH"
export GOTOOLCHAIN=local GOFLAGS=-mod=readonly GOPROXY=off CGO_ENABLED=1
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig:$prefix/lib64/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
export LD_LIBRARY_PATH="$prefix/lib:$prefix/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$here"

echo "== go: $(go version), libdescent $(pkg-config --modversion descent) from $prefix"
unformatted=$(gofmt -l .)
if [[ -n $unformatted ]]; then
  echo "FAIL: gofmt would change: $unformatted" >&2
  exit 1
fi
go vet ./...
echo "== go test -race"
go test -race -count=1 ./...
echo "== tests with GOEXPERIMENT=cgocheck2 (strict cgo pointer checks)"
GOEXPERIMENT=cgocheck2 go test -c -o "$tmp/descent.test" .
"$tmp/descent.test" -test.count=1
echo "== example"
go run ./examples/linreg
echo "== conformance"
GOEXPERIMENT=cgocheck2 go build -o "$tmp/conformance" ./cmd/conformance
"$root/tests/conformance/run.sh" "$reference" go="$tmp/conformance"
