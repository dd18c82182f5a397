#!/usr/bin/env bash
# Builds the libFuzzer targets with clang-19 (ASan+UBSan) and runs them.
#
#   ./scripts/fuzz.sh                 every target, 60 s each
#   ./scripts/fuzz.sh http_request 600
#
# New interesting inputs go to build-fuzz/corpus/<target>/; the committed
# seeds in tests/fuzz/corpus/<target>/ are read, never written.
set -euo pipefail
cd "$(dirname "$0")/.."

target=${1:-all}
seconds=${2:-60}
targets=(http_request request_json spool_recovery client_input)
[[ "$target" == all ]] || targets=("$target")

if [[ ! -f build-fuzz/build.ninja ]]; then
  CC=clang-19 CXX=clang++-19 meson setup build-fuzz -Dfuzzing=true -Dbuildtype=debugoptimized \
    -Db_sanitize=address,undefined -Db_lundef=false -Dwerror=true
fi
ninja -C build-fuzz -j "$(nproc)" $(printf 'tests/fuzz/fuzz_%s ' "${targets[@]}")

for t in "${targets[@]}"; do
  mkdir -p "build-fuzz/corpus/$t" "build-fuzz/artifacts/$t"
  dict=()
  [[ -f "tests/fuzz/$t.dict" ]] && dict=(-dict="tests/fuzz/$t.dict")
  echo "fuzzing $t for ${seconds}s"
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:suppressions="$PWD/tests/ubsan.supp" \
  ASAN_SYMBOLIZER_PATH=$(command -v llvm-symbolizer-19 || command -v llvm-symbolizer || true) \
    "build-fuzz/tests/fuzz/fuzz_$t" "${dict[@]}" -max_total_time="$seconds" -max_len=8192 \
    -print_final_stats=1 -artifact_prefix="build-fuzz/artifacts/$t/" \
    "build-fuzz/corpus/$t" "tests/fuzz/corpus/$t"
done
