#!/usr/bin/env bash
# Runs the conformance scenario (README.md here) in C and in each given language and fails unless
# every language wrote exactly the C reference's bytes.
# usage: run.sh <conformance_c binary> [<lang>=<command> ...]   (the command gets the output dir)
set -euo pipefail

reference=$1
shift
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
files=(adamw.params.bin adamw.state.safetensors muon.params.bin muon.state.safetensors
       muon+adamw.params.bin muon+adamw.state.safetensors)

mkdir "$tmp/c"
"$reference" "$tmp/c"
status=0
printf '%-8s %-30s %s\n' lang file sha256
for f in "${files[@]}"; do
  printf '%-8s %-30s %s\n' c "$f" "$(sha256sum <"$tmp/c/$f" | cut -d' ' -f1)"
done
for spec in "$@"; do
  lang=${spec%%=*}
  cmd=${spec#*=}
  mkdir "$tmp/$lang"
  if ! bash -c "$cmd \"\$1\"" _ "$tmp/$lang"; then
    echo "FAIL: $lang: the scenario program failed" >&2
    status=1
    continue
  fi
  for f in "${files[@]}"; do
    if [[ ! -f "$tmp/$lang/$f" ]]; then
      echo "FAIL: $lang did not write $f" >&2
      status=1
      continue
    fi
    digest=$(sha256sum <"$tmp/$lang/$f" | cut -d' ' -f1)
    printf '%-8s %-30s %s\n' "$lang" "$f" "$digest"
    if ! cmp -s "$tmp/c/$f" "$tmp/$lang/$f"; then
      echo "FAIL: $lang: $f differs from the C reference" >&2
      status=1
    fi
  done
done
[[ $status -eq 0 ]] && echo "ok: $(( $# + 1 )) languages, identical bytes"
exit $status
