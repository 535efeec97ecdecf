#!/usr/bin/env bash
# Checks the dynamic symbol table of libdescent.so (ctest: exported_symbols):
#  - every defined dynamic symbol is a descent_* function (nothing from C++ or the BLAS leaks),
#  - every function the public header declares with DESCENT_API is exported, and nothing else,
#  - every one carries a version node of capi/descent.map (DESCENT_<major>.<minor>),
#  - the SONAME is libdescent.so.<ABI major>.
# usage: check_exports.sh <path to libdescent.so> <descent.h> <expected SONAME>
set -euo pipefail

lib=$1
header=$2
expected_soname=$3
status=0

# Version-node names (DESCENT_1.0) are absolute symbols ('A'); the functions are name@@node.
versioned=$(nm -D --defined-only "$lib" | awk '$2 != "A" {print $NF}' | sort -u)
defined=$(sed 's/@.*//' <<<"$versioned" | sort -u)
if [[ -z "$defined" ]]; then
  echo "FAIL: no defined dynamic symbols in $lib" >&2
  exit 1
fi
unversioned=$(grep -vE '@@?DESCENT_[0-9]+\.[0-9]+$' <<<"$versioned" || true)
if [[ -n "$unversioned" ]]; then
  echo "FAIL: symbols without a DESCENT_<major>.<minor> version node:" >&2
  sed 's/^/  /' <<<"$unversioned" >&2
  status=1
fi

foreign=$(grep -v '^descent_' <<<"$defined" || true)
if [[ -n "$foreign" ]]; then
  echo "FAIL: symbols exported that are not descent_*:" >&2
  sed 's/^/  /' <<<"$foreign" >&2
  status=1
fi

# Names of the functions declared with DESCENT_API (declarations may span lines).
declared=$(tr '\n' ' ' <"$header" | grep -oE 'DESCENT_API[^;{}(]*\(' |
           grep -oE 'descent_[A-Za-z0-9_]+[[:space:]]*\($' | tr -d '( ' | sort -u)
if [[ -z "$declared" ]]; then
  echo "FAIL: found no DESCENT_API declarations in $header" >&2
  exit 1
fi

missing=$(comm -23 <(echo "$declared") <(echo "$defined"))
if [[ -n "$missing" ]]; then
  echo "FAIL: declared in $header but not exported:" >&2
  sed 's/^/  /' <<<"$missing" >&2
  status=1
fi
extra=$(comm -13 <(echo "$declared") <(grep '^descent_' <<<"$defined"))
if [[ -n "$extra" ]]; then
  echo "FAIL: exported but not declared in $header:" >&2
  sed 's/^/  /' <<<"$extra" >&2
  status=1
fi

soname=$(readelf -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')
if [[ "$soname" != "$expected_soname" ]]; then
  echo "FAIL: SONAME is '$soname', expected '$expected_soname'" >&2
  status=1
fi

if [[ $status -eq 0 ]]; then
  echo "ok: $(wc -l <<<"$defined") exported symbols, all descent_*, all declared in the header;" \
       "SONAME $soname"
fi
exit $status
