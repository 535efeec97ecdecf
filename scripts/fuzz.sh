#!/usr/bin/env bash
# Builds the libFuzzer targets in fuzz/ (clang, AddressSanitizer + UndefinedBehaviorSanitizer) in
# build-fuzz/ (or $DESCENT_FUZZ_BUILD_DIR) and runs them (docs/reliability.md).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]   each target (default: all) for SECONDS (default 60)
#   scripts/fuzz.sh --ci                     each target for $DESCENT_FUZZ_CI_SECONDS (default 20)
#   scripts/fuzz.sh --build                  build only
#   scripts/fuzz.sh --merge [TARGET...]      add what runs found (build-fuzz/corpus/<target>/) to the
#                                            committed seeds, only inputs that reach new edges
#                                            (libFuzzer -merge=1 -use_counters=0); prints sizes
#   scripts/fuzz.sh --coverage [TARGET...]   line coverage of src/ reached by the committed seeds
#                                            plus build-fuzz/corpus/ (clang source-based coverage,
#                                            no sanitizers, in build-fuzz-cov/ or
#                                            $DESCENT_FUZZ_COV_BUILD_DIR): per file and per folder
#
# Each target starts from its committed seeds (fuzz/corpus/<target>/) plus what earlier runs found
# (build-fuzz/corpus/<target>/, kept between runs) and uses fuzz/<json|safetensors>.dict. A crash,
# a sanitizer report or a broken promise ("FUZZ PROMISE BROKEN") stops the target, leaves the input
# in build-fuzz/artifacts/<target>/ and makes the script fail; reproduce it with
#   build-fuzz/fuzz/<target> build-fuzz/artifacts/<target>/crash-...
# Needs clang (Debian: apt-get install -y clang); without it the script says so and exits 0.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${DESCENT_FUZZ_BUILD_DIR:-$root/build-fuzz}
jobs=$(nproc 2>/dev/null || echo 2)
all_targets=(fuzz_state_load fuzz_config fuzz_schedule fuzz_multi fuzz_files)

seconds=60
build_only=0
mode=run
if [[ ${1:-} == --merge || ${1:-} == --coverage ]]; then
  mode=${1#--}
  shift
elif [[ ${1:-} == --ci ]]; then
  seconds=${DESCENT_FUZZ_CI_SECONDS:-20}
  shift
elif [[ ${1:-} == --build ]]; then
  build_only=1
  shift
elif [[ ${1:-} =~ ^[0-9]+$ ]]; then
  seconds=$1
  shift
fi
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=("${all_targets[@]}")

cc=${DESCENT_FUZZ_CC:-clang}
cxx=${DESCENT_FUZZ_CXX:-clang++}
if ! command -v "$cxx" >/dev/null 2>&1; then
  echo "fuzz.sh: $cxx not found (Debian: apt-get install -y clang): fuzzing skipped" >&2
  exit 0
fi

if [[ $mode == coverage ]]; then
  # Source-based coverage: the same targets without sanitizers, each input of the corpora run
  # once (-runs=0), profiles merged with the llvm-profdata/llvm-cov matching clang's version.
  ver=$("$cxx" -dumpversion | cut -d. -f1)
  profdata=llvm-profdata-$ver; command -v "$profdata" >/dev/null 2>&1 || profdata=llvm-profdata
  llvmcov=llvm-cov-$ver; command -v "$llvmcov" >/dev/null 2>&1 || llvmcov=llvm-cov
  cov_dir=${DESCENT_FUZZ_COV_BUILD_DIR:-$root/build-fuzz-cov}
  covflags="-fprofile-instr-generate -fcoverage-mapping"
  launch=()
  command -v ccache >/dev/null 2>&1 && launch=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
  gen=()
  command -v ninja >/dev/null 2>&1 && gen=(-G Ninja)
  cmake -S "$root" -B "$cov_dir" "${gen[@]}" "${launch[@]}" \
    -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_FLAGS="$covflags" -DCMAKE_CXX_FLAGS="$covflags" \
    -DCMAKE_EXE_LINKER_FLAGS="-fprofile-instr-generate" \
    -DDESCENT_FUZZ=ON -DDESCENT_SANITIZE="" \
    -DDESCENT_BUILD_SHARED=OFF -DDESCENT_BUILD_STATIC=ON \
    -DDESCENT_BUILD_TESTS=OFF -DDESCENT_BUILD_EXAMPLES=OFF -DDESCENT_BUILD_BENCH=OFF >/dev/null
  cmake --build "$cov_dir" -j"$jobs" --target "${targets[@]}"
  rm -rf "$cov_dir/profiles"
  mkdir -p "$cov_dir/profiles"
  objects=()
  for target in "${targets[@]}"; do
    dirs=()
    for d in "$root/fuzz/corpus/$target" "$build_dir/corpus/$target"; do
      [[ -d $d ]] && dirs+=("$d")
    done
    OPENBLAS_NUM_THREADS=1 LLVM_PROFILE_FILE="$cov_dir/profiles/$target-%p.profraw" \
      "$cov_dir/fuzz/$target" -runs=0 -max_len=8192 -timeout=60 -rss_limit_mb=4096 \
      "${dirs[@]}" >"$cov_dir/$target.log" 2>&1
    objects+=(-object "$cov_dir/fuzz/$target")
  done
  "$profdata" merge -sparse "$cov_dir"/profiles/*.profraw -o "$cov_dir/fuzz.profdata"
  "$llvmcov" report "${objects[@]:1}" -instr-profile="$cov_dir/fuzz.profdata" "$root/src" \
    "$root/capi" >"$cov_dir/report.txt"
  "$llvmcov" export -summary-only "${objects[@]:1}" -instr-profile="$cov_dir/fuzz.profdata" \
    "$root/src" "$root/capi" >"$cov_dir/summary.json"
  python3 - "$cov_dir/summary.json" "$root/" <<'PY'
import collections, json, sys
data = json.load(open(sys.argv[1]))["data"][0]
folders = collections.defaultdict(lambda: [0, 0])
for f in data["files"]:
    name = f["filename"].split(sys.argv[2], 1)[-1]
    folder = name.rsplit("/", 1)[0]
    lines = f["summary"]["lines"]
    for key in (folder, "src/ (all)" if name.startswith("src/") else None):
        if key:
            folders[key][0] += lines["covered"]
            folders[key][1] += lines["count"]
print(f"{'folder':<24}{'lines':>8}{'covered':>9}{'%':>8}")
for k, (c, n) in sorted(folders.items(), key=lambda kv: (kv[0].endswith("(all)"), kv[0])):
    print(f"{k:<24}{n:>8}{c:>9}{100.0 * c / max(n, 1):>7.1f}%")
PY
  echo "fuzz.sh: per file: $cov_dir/report.txt; html: $llvmcov show -format=html -output-dir=DIR \
${objects[*]:1} -instr-profile=$cov_dir/fuzz.profdata $root/src" >&2
  exit 0
fi

launcher=()
if command -v ccache >/dev/null 2>&1; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
fi
generator=()
if command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi

t0=$SECONDS
cmake -S "$root" -B "$build_dir" "${generator[@]}" "${launcher[@]}" \
  -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DDESCENT_FUZZ=ON \
  -DDESCENT_SANITIZE="address;undefined" \
  -DDESCENT_BUILD_SHARED=OFF -DDESCENT_BUILD_STATIC=ON \
  -DDESCENT_BUILD_TESTS=OFF -DDESCENT_BUILD_EXAMPLES=OFF -DDESCENT_BUILD_BENCH=OFF >/dev/null
cmake --build "$build_dir" -j"$jobs" --target "${targets[@]}"
echo "fuzz.sh: build: $((SECONDS - t0)) s" >&2
[[ $build_only == 0 ]] || exit 0

if [[ $mode == merge ]]; then
  # Adds to fuzz/corpus/<target>/ only the inputs of build-fuzz/corpus/<target>/ that reach new
  # edges (-use_counters=0: hit counts do not count as new coverage, which keeps the set small);
  # the committed seeds stay (keep the whole committed corpus under 2 MB).
  for target in "${targets[@]}"; do
    [[ -d $build_dir/corpus/$target ]] || continue
    mkdir -p "$root/fuzz/corpus/$target"
    before=$(ls "$root/fuzz/corpus/$target" | wc -l)
    OPENBLAS_NUM_THREADS=1 ASAN_OPTIONS=detect_leaks=0 "$build_dir/fuzz/$target" -merge=1 -use_counters=0 \
      -max_len=8192 -timeout=60 -rss_limit_mb=4096 "$root/fuzz/corpus/$target" \
      "$build_dir/corpus/$target" >"$build_dir/$target.merge.log" 2>&1
    echo "fuzz.sh: $target: $before -> $(ls "$root/fuzz/corpus/$target" | wc -l) seeds," \
      "$(du -sh --apparent-size "$root/fuzz/corpus/$target" | cut -f1)" >&2
  done
  echo "fuzz.sh: fuzz/corpus: $(du -sh --apparent-size "$root/fuzz/corpus" | cut -f1) in all" >&2
  exit 0
fi

# No allocation stacks and a small quarantine: several times the executions per second. To see
# where a reported block was allocated, rerun the input with ASAN_OPTIONS=malloc_context_size=30.
export ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:detect_leaks=1:malloc_context_size=0:quarantine_size_mb=16}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export OPENBLAS_NUM_THREADS=1

failed=()
for target in "${targets[@]}"; do
  corpus=$build_dir/corpus/$target
  artifacts=$build_dir/artifacts/$target
  mkdir -p "$corpus" "$artifacts"
  dict=()
  case $target in
    fuzz_state_load|fuzz_files) dict=(-dict="$root/fuzz/safetensors.dict") ;;
    fuzz_config|fuzz_schedule|fuzz_multi) dict=(-dict="$root/fuzz/json.dict") ;;
  esac
  seeds=()
  [[ -d $root/fuzz/corpus/$target ]] && seeds=("$root/fuzz/corpus/$target")
  echo "fuzz.sh: $target for $seconds s" >&2
  t0=$SECONDS
  if ! "$build_dir/fuzz/$target" "${dict[@]}" -max_total_time="$seconds" -timeout=20 \
      -rss_limit_mb=4096 -max_len=8192 -print_final_stats=1 -artifact_prefix="$artifacts/" \
      "$corpus" "${seeds[@]}" >"$build_dir/$target.log" 2>&1; then
    failed+=("$target")
    tail -n 60 "$build_dir/$target.log" >&2
  fi
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$build_dir/$target.log" | grep -o '[0-9]*$' || echo '?')
  echo "fuzz.sh: $target: $execs executions in $((SECONDS - t0)) s (log: $build_dir/$target.log)" >&2
done

if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzz.sh: FAILED: ${failed[*]} (inputs in $build_dir/artifacts/)" >&2
  exit 1
fi
