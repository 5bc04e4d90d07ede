#!/usr/bin/env bash
# The end-to-end suite on a real Kubernetes API server, on this machine, no Docker:
#   1. builds spate-broker, spate-operator, spate-node-agent and the suite (debug profile);
#   2. builds (cached) and starts the control plane (e2e/controlplane);
#   3. starts the node agent (as root), mapping the chart's image `spate` to the broker binary
#      (the operator's `spate-operator` command resolves to its sibling);
#   4. runs `cargo test -p spate-e2e -- --nocapture` with KUBECONFIG set;
#   5. tears down what it started (trap), printing operator, broker and agent logs on failure.
#
# Environment: SPATE_E2E_PROFILE=release to test release binaries (debug is the default: CI
# has already built the debug ones for `cargo test --workspace`, so this adds only the
# suite's own crate); SPATE_E2E_KEEP=1 keeps the namespace, agent and control plane running
# afterwards; STATE_DIR etc. as in e2e/controlplane/common.sh.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=controlplane/common.sh
. "$ROOT/e2e/controlplane/common.sh"

PROFILE="${SPATE_E2E_PROFILE:-debug}"
NODE_NAME="${SPATE_E2E_NODE:-spate-e2e-node}"
NAMESPACE="${SPATE_E2E_NAMESPACE:-spate-e2e}"
AGENT_STATE="${SPATE_E2E_AGENT_STATE:-$STATE_DIR/agent}"
AGENT_LOG="$STATE_DIR/logs/node-agent.log"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE"
KUBECTL="$E2E_BIN/kubectl"
export SPATE_E2E=1 KUBECONFIG="$KUBECONFIG_ADMIN" SPATE_E2E_NAMESPACE="$NAMESPACE" SPATE_E2E_BIN="$E2E_BIN"

t0=$(date +%s)
log() { printf '[run.sh +%ss] %s\n' "$(( $(date +%s) - t0 ))" "$*"; }
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# ---------------------------------------------------------------- build
profile_flag=()
[ "$PROFILE" = release ] && profile_flag=(--release)
log "cargo build ($PROFILE): broker, operator, node agent, suite"
# --workspace: the same feature resolution as scripts/test.sh's `cargo test --workspace`, so
# CI reuses those artifacts (a -p subset resolves features differently and rebuilds ~4 min).
cargo build "${profile_flag[@]}" --workspace --bins
cargo test --workspace --no-run -q
python3 -c 'import confluent_kafka' 2>/dev/null || {
  echo "run.sh: python3 with confluent-kafka is required (scripts/install-test-deps.sh)" >&2; exit 1; }
log "control plane binaries (cached in $E2E_BIN)"
"$ROOT/e2e/controlplane/build.sh"

# ---------------------------------------------------------------- start
run_marker="$(mktemp)"
started_cp=""
[ -n "$(component_pid kube-apiserver)" ] || started_cp=1
agent_pid=""
status=1

dump_logs() {
  echo "==================== logs (the suite failed)"
  echo "---- node agent ($AGENT_LOG), last 60 lines"
  tail -n 60 "$AGENT_LOG" 2>/dev/null || true
  # The agent keeps each container's output as <state>/logs/<ns>_<pod>_<uid>/<container>.log.
  # Only this run's pods (the agent keeps logs of deleted pods).
  for d in "$AGENT_STATE"/logs/"${NAMESPACE}"_*; do
    [ -d "$d" ] && [ "$d" -nt "$run_marker" ] || continue
    for f in "$d"/*.log; do
      echo "---- $(basename "$d")/$(basename "$f"), last 80 lines"
      tail -n 80 "$f"
    done
  done
  for c in kube-apiserver kube-controller-manager kube-scheduler; do
    echo "---- $c, last 15 lines"; tail -n 15 "$LOGS/$c.log" 2>/dev/null || true
  done
}

cleanup() {
  local rc=$?
  [ "$status" -eq 0 ] || dump_logs
  if [ -n "${SPATE_E2E_KEEP:-}" ]; then
    log "SPATE_E2E_KEEP set: leaving the agent (pid ${agent_pid:-none}) and control plane running"
    exit "$rc"
  fi
  if [ -n "$agent_pid" ] && kill -0 "$agent_pid" 2>/dev/null; then
    log "stopping the node agent (pid $agent_pid)"
    $SUDO kill -TERM "$agent_pid" 2>/dev/null || true
    for _ in $(seq 60); do kill -0 "$agent_pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$agent_pid" 2>/dev/null && $SUDO kill -KILL "$agent_pid" 2>/dev/null || true
  fi
  if [ -n "$started_cp" ]; then
    log "stopping the control plane"
    "$ROOT/e2e/controlplane/stop.sh" || true
  fi
  rm -f "$run_marker"
  log "done (exit $rc)"
  exit "$rc"
}
trap cleanup EXIT INT TERM

log "control plane"
"$ROOT/e2e/controlplane/start.sh"

# One agent per machine (bridge, /etc/hosts block). `pgrep -x` cannot match a name longer
# than 15 characters, so match the executable's path.
running_agent="$(pgrep -f '(^|/)spate-node-agent( |$)' || true)"
if [ -n "$running_agent" ]; then
  echo "run.sh: a spate-node-agent is already running (pid $(echo $running_agent)); one agent per machine: stop it first" >&2
  exit 1
fi
mkdir -p "$AGENT_STATE" "$(dirname "$AGENT_LOG")"
log "node agent $NODE_NAME (log $AGENT_LOG)"
echo "==== $(date -Is) starting spate-node-agent" >> "$AGENT_LOG"
$SUDO env KUBECONFIG="$KUBECONFIG" "$TARGET/spate-node-agent" \
  --node-name "$NODE_NAME" \
  --image "spate=$TARGET/spate-broker" \
  --state-dir "$AGENT_STATE" >> "$AGENT_LOG" 2>&1 &
agent_pid=$!
"$KUBECTL" wait --for=condition=Ready "node/$NODE_NAME" --timeout=90s >/dev/null || {
  # A Node object left from an earlier run can still say Ready; it is the agent's heartbeat
  # that matters, checked just below.
  echo "run.sh: node $NODE_NAME not Ready" >&2; exit 1; }
kill -0 "$agent_pid" 2>/dev/null || { echo "run.sh: the node agent exited" >&2; exit 1; }

# ---------------------------------------------------------------- test
log "cargo test --workspace --test e2e"
if cargo test --workspace --test e2e -- --nocapture; then
  status=0
  log "e2e suite passed"
else
  log "e2e suite FAILED"
fi
exit "$status"
