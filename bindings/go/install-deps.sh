#!/usr/bin/env bash
# Toolchain for the Go binding: Go >= 1.21 (tested with go1.26.8, preinstalled in /usr/local/go on
# the project's machines), a C compiler and pkg-config for cgo. The binding has no Go module
# dependencies (go.mod lists none, so there is no go.sum). Idempotent; quiet when all is there.
set -euo pipefail
[[ -x /usr/local/go/bin/go ]] && export PATH="/usr/local/go/bin:$PATH"

missing=()
command -v gcc >/dev/null || missing+=(gcc)
command -v pkg-config >/dev/null || missing+=(pkg-config)
if ((${#missing[@]})); then
  echo "install-deps (go): installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v go >/dev/null; then
  echo "install-deps (go): no Go toolchain; install Go >= 1.21 (tested: go1.26.8) into /usr/local/go" >&2
  echo "  (Debian 12's golang-go is 1.19, too old for runtime.Pinner)" >&2
  exit 1
fi
version=$(GOTOOLCHAIN=local go env GOVERSION)
minor=$(sed -E 's/^go1\.([0-9]+).*/\1/' <<<"$version")
if ((minor < 21)); then
  echo "install-deps (go): $version is too old; the binding needs Go >= 1.21 (tested: go1.26.8)" >&2
  exit 1
fi
