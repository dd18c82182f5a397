#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test: the warnings-as-errors
# build with all suites, the same under ASan+UBSan, and the fuzzers for a
# bounded time. This is what CI runs (.ci/run).
#
#   ./scripts/test.sh            everything
#   ./scripts/test.sh --quick    only the first build and its suites
#   FUZZ_SECONDS=120 ./scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
[[ "${1:-}" == "--quick" ]] && quick=1
jobs=$(nproc)

step() { printf '\n==== %s (%s)\n' "$*" "$(date +%T)"; }

setup() {  # setup DIR ARGS...: configure once, reconfigure when options change
  local dir=$1; shift
  if [[ -f "$dir/build.ninja" ]]; then
    meson setup --reconfigure "$dir" "$@" >/dev/null
  else
    meson setup "$dir" "$@"
  fi
}

step "dependencies"
./scripts/install-deps.sh

# Warnings are errors in the project's own builds (-Dwerror=true), not a
# default a user's or a packager's build inherits.
step "build (debugoptimized, warnings are errors)"
setup build -Dwerror=true
ninja -C build -j "$jobs"
step "tests"
meson test -C build --print-errorlogs --num-processes "$jobs"

if ((quick)); then
  exit 0
fi

step "build with AddressSanitizer + UndefinedBehaviorSanitizer"
setup build-asan -Dbuildtype=debug -Db_sanitize=address,undefined -Db_lundef=false -Dwerror=true
ninja -C build-asan -j "$jobs"
step "tests under ASan+UBSan"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1 \
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:suppressions="$PWD/tests/ubsan.supp" \
  meson test -C build-asan --print-errorlogs --num-processes "$jobs" --timeout-multiplier 3

step "fuzzers (${FUZZ_SECONDS:-30}s each)"
./scripts/fuzz.sh all "${FUZZ_SECONDS:-30}"

step "all tests passed"
