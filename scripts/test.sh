#!/usr/bin/env bash
# Runs every test suite: Rust unit and property tests, then each real Kafka client against a
# freshly built broker, then a short fuzz run. Prints each runner's own output and a closing
# `N passed, N failed` line over the suites.
#
#   scripts/test.sh            install test dependencies, then run everything
#   SPATE_SKIP_INSTALL=1 ...   skip the install step
#   SPATE_SUITES="build python" only these suites (build rust python kcat go js java faults e2e fuzz)
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

if [ -z "${SPATE_SKIP_INSTALL:-}" ]; then
  scripts/install-test-deps.sh || { echo "installing test dependencies failed"; exit 1; }
fi

target_dir=${CARGO_TARGET_DIR:-$root/target}
export SPATE_BROKER_BIN=${SPATE_BROKER_BIN:-$target_dir/debug/spate-broker}
suites=${SPATE_SUITES:-"build rust python kcat go js java faults e2e fuzz"}
passed=0
failed=0
failed_names=()

run() {
  local name=$1
  shift
  case " $suites " in *" $name "*) ;; *) return 0 ;; esac
  printf '\n===== suite %s: %s\n' "$name" "$*"
  if "$@"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    failed_names+=("$name")
  fi
}

rust_checks() {
  cargo fmt --all -- --check &&
    cargo clippy --workspace --all-targets -q -- -D warnings &&
    cargo test --workspace
}

fuzz_smoke() {
  if ! command -v cargo-fuzz >/dev/null || ! rustup toolchain list | grep -q nightly; then
    echo "cargo-fuzz or a nightly toolchain is missing: fuzz smoke skipped (the proptest decoder test still ran)"
    return 0
  fi
  (cd broker/fuzz \
    && cargo +nightly fuzz run decode_request -- -max_total_time="${SPATE_FUZZ_SECONDS:-60}" -rss_limit_mb=4096 \
    && cargo +nightly fuzz run sasl_tokens -- -max_total_time="${SPATE_FUZZ_SECONDS:-60}" -rss_limit_mb=4096 \
    && cargo +nightly fuzz run registry_api -- -max_total_time="${SPATE_FUZZ_SECONDS:-60}" -rss_limit_mb=4096)
}

# The client suites skip when the binary is missing (handy by hand); here that would hide a
# broken build, so build it first, on its own, and fail those suites if it is not there.
run build cargo build -q -p spate-broker
client() {
  if [ ! -x "$SPATE_BROKER_BIN" ]; then
    echo "no broker binary at $SPATE_BROKER_BIN"
    return 1
  fi
  "$@"
}
run rust rust_checks
run python client python3 -m pytest -q compat/python
run kcat client python3 -m pytest -q compat/kcat
run go client bash -c "cd compat/go && go test -count=1 ./..."
run js client bash -c "cd compat/js && node --test"
run java client bash -c "cd compat/java && mvn -q -B test"
run faults client bash -c "cd faults && python3 -m pytest -q"
# The chart's helm checks (operator/tests/chart.rs) pass without helm when none is found; here
# they must run. helm is built (cached) with the e2e control plane, so they run in the e2e
# suite, reusing the rust suite's `--workspace` test build (a -p build would recompile).
chart_checks() {
  e2e/controlplane/build.sh helm &&
    SPATE_REQUIRE_HELM=1 SPATE_E2E_BIN="${SPATE_E2E_CACHE:-$HOME/.cache/spate/e2e}/bin" \
      cargo test --workspace --test chart
}
# The operator, chart and brokers on a real API server built from Go modules (cached).
e2e_suite() {
  local rc=0
  chart_checks || rc=1
  e2e/run.sh || rc=1
  return "$rc"
}
run e2e e2e_suite
run fuzz fuzz_smoke

echo
if [ "$failed" -gt 0 ]; then
  echo "failed suites: ${failed_names[*]}"
fi
echo "suites: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
