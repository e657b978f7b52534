#!/usr/bin/env bash
# `make fuzz`: builds the libFuzzer harnesses of tests/fuzz with clang (ASan + UBSan) in their own
# build folder and runs each for FUZZ_SECONDS, starting from the committed seeds. New inputs go to
# BUILD/corpus/<name> (never into the repository); a crash leaves BUILD/artifacts/<name>/crash-*
# and makes this script fail. docs/fuzzing.md: longer runs, dictionaries, adding a crash as a seed.
#   FUZZ_SECONDS=30  FUZZ_BUILD_DIR=build-fuzz  FUZZ_TARGETS="request_head config"  FUZZ_ARGS=...
#   FUZZ_CXX=clang++-16 (clang 14 lacks the builtin std::source_location needs)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${FUZZ_BUILD_DIR:-$root/build-fuzz}
seconds=${FUZZ_SECONDS:-30}
jobs=${FUZZ_JOBS:-2}
read -r -a extra <<< "${FUZZ_ARGS:-}"
# Symbolised stack traces in the reports (Debian installs llvm-symbolizer with clang 14 only).
if [ -z "${ASAN_SYMBOLIZER_PATH:-}" ] && command -v llvm-symbolizer >/dev/null; then
  export ASAN_SYMBOLIZER_PATH=$(command -v llvm-symbolizer)
fi

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER="${FUZZ_CXX:-clang++-16}" \
  -DCERTGATE_FUZZ=ON -DBUILD_TESTING=OFF >/dev/null
cmake --build "$build" -j "$jobs" --target fuzzers

targets=${FUZZ_TARGETS:-$(cd "$build/tests/fuzz" && ls fuzz_* | sed 's/^fuzz_//')}

failed=()
for name in $targets; do
  exe=$build/tests/fuzz/fuzz_$name
  [ -x "$exe" ] || { echo "fuzz: no harness fuzz_$name" >&2; exit 2; }
  mkdir -p "$build/corpus/$name" "$build/artifacts/$name"
  dict=()
  [ -f "$root/tests/fuzz/dict/$name.dict" ] && dict=(-dict="$root/tests/fuzz/dict/$name.dict")
  echo "fuzz: $name for ${seconds}s"
  if ! (cd "$build/artifacts/$name" && "$exe" -max_total_time="$seconds" -print_final_stats=1 \
          -artifact_prefix="$build/artifacts/$name/" ${dict[@]+"${dict[@]}"} ${extra[@]+"${extra[@]}"} \
          "$build/corpus/$name" "$root/tests/fuzz/corpus/$name" > "$build/artifacts/$name/log.txt" 2>&1); then
    failed+=("$name")
    echo "fuzz: $name FAILED: $(grep -m1 -E 'ERROR|runtime error|invariant' "$build/artifacts/$name/log.txt" || true)" >&2
    echo "      log: $build/artifacts/$name/log.txt; inputs: $(ls "$build/artifacts/$name" | grep -v log.txt | tr '\n' ' ')" >&2
  else
    grep -E '^stat::number_of_executed_units|^#[0-9]+.*DONE' "$build/artifacts/$name/log.txt" | tail -n1 || true
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: crashes in: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: no crash"
