# Shared settings for start.sh / stop.sh / build.sh users. Source it; every
# value can be overridden from the environment.
# shellcheck shell=bash

SPATE_E2E_CACHE="${SPATE_E2E_CACHE:-$HOME/.cache/spate/e2e}"
E2E_BIN="${E2E_BIN:-$SPATE_E2E_CACHE/bin}"
STATE_DIR="${STATE_DIR:-/tmp/spate-e2e}"

# Fixed loopback ports, chosen away from the usual defaults (2379, 6443, ...)
# so a control plane started here does not collide with anything else.
ETCD_PORT="${ETCD_PORT:-32379}"            # etcd client (plain http, loopback only)
ETCD_PEER_PORT="${ETCD_PEER_PORT:-32380}"  # etcd peer (single member)
APISERVER_PORT="${APISERVER_PORT:-36443}"  # kube-apiserver (https)
KCM_PORT="${KCM_PORT:-30257}"              # kube-controller-manager /healthz (https)
SCHEDULER_PORT="${SCHEDULER_PORT:-30259}"  # kube-scheduler /healthz (https)

SERVICE_CIDR="${SERVICE_CIDR:-10.96.0.0/16}"
SERVICE_IP="${SERVICE_IP:-10.96.0.1}"      # ClusterIP of default/kubernetes
CLUSTER_NAME="${CLUSTER_NAME:-spate-e2e}"

PKI="$STATE_DIR/pki"
LOGS="$STATE_DIR/logs"
RUN="$STATE_DIR/run"
KUBECONFIG_ADMIN="$STATE_DIR/kubeconfig"

# Components in start order (stop.sh goes in reverse).
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler)

# pid of a running component, or nothing. The pid file is only trusted when
# the process behind it is still the binary we started (pids get reused).
component_pid() {
  local f="$RUN/$1.pid" pid exe
  [ -f "$f" ] || return 0
  pid="$(cat "$f")"
  [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 0
  exe="$(readlink "/proc/$pid/exe" 2>/dev/null || true)"
  case "$exe" in
    */"$1"|*/"$1"" (deleted)") echo "$pid" ;;
  esac
}
