#!/usr/bin/env bash
# The same end-to-end suite (e2e/suite) on a kind cluster: real kubelet, containerd, CNI.
# Needs docker, kind, kubectl, helm, python3 with confluent-kafka, cargo, and sudo (a route
# to the pod network and /etc/hosts entries, so this host's Kafka clients reach the brokers
# by the names they advertise). Linux only: Docker Desktop does not route to container IPs.
#
#   e2e/kind/run.sh               build the image, create the cluster, run, delete the cluster
#   KIND_KEEP=1 e2e/kind/run.sh   keep the cluster afterwards
#
# Not run in this repository's CI (no Docker there); see e2e/kind/README.md.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
KIND_CLUSTER="${KIND_CLUSTER:-spate-e2e}"
IMAGE="${SPATE_E2E_IMAGE:-spate:e2e}"
NAMESPACE="${SPATE_E2E_NAMESPACE:-spate-e2e}"
POD_CIDR="10.244.0.0/16"   # kind's default podSubnet
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
for tool in docker kind kubectl helm python3 cargo; do
  command -v "$tool" >/dev/null || { echo "kind/run.sh: $tool is required" >&2; exit 1; }
done

log() { printf '[kind/run.sh %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

log "docker build -t $IMAGE (repository Dockerfile)"
docker build -t "$IMAGE" "$ROOT"

created=""
if ! kind get clusters 2>/dev/null | grep -qx "$KIND_CLUSTER"; then
  log "kind create cluster $KIND_CLUSTER"
  kind create cluster --name "$KIND_CLUSTER" --wait 120s
  created=1
fi
export SPATE_E2E=1 KUBECONFIG
KUBECONFIG="$(mktemp)"
kind get kubeconfig --name "$KIND_CLUSTER" > "$KUBECONFIG"
log "kind load docker-image $IMAGE"
kind load docker-image "$IMAGE" --name "$KIND_CLUSTER"

node="$KIND_CLUSTER-control-plane"
node_ip="$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$node")"
log "route $POD_CIDR via $node ($node_ip)"
$SUDO ip route replace "$POD_CIDR" via "$node_ip"

# Hosts entries for what the suite and its clients resolve: each broker's advertised name
# (<pod>.<headless svc>.<ns>.svc) and the bootstrap Service name (-> a ready broker's IP;
# ClusterIPs are not routed to this host). Refreshed every 2 s while the suite runs.
hosts_sync() {
  while :; do
    block="$(kubectl get pods -n "$NAMESPACE" -l spate.dev/cluster -o \
      'jsonpath={range .items[?(@.status.podIP)]}{.status.podIP} {.spec.hostname}.{.spec.subdomain}.{.metadata.namespace}.svc {.metadata.labels.spate\.dev/cluster}-bootstrap.{.metadata.namespace}.svc{"\n"}{end}' \
      2>/dev/null || true)"
    {
      sed '/# BEGIN spate-kind-e2e/,/# END spate-kind-e2e/d' /etc/hosts
      echo "# BEGIN spate-kind-e2e"
      # One bootstrap line only (the first broker); resolvers use the first match anyway.
      printf '%s\n' "$block" | awk 'NF==3 { if (!seen[$3]++) print; else print $1, $2 }'
      echo "# END spate-kind-e2e"
    } > /tmp/spate-kind-hosts
    $SUDO cp /tmp/spate-kind-hosts /etc/hosts
    sleep 2
  done
}
hosts_sync &
sync_pid=$!

cleanup() {
  local rc=$?
  kill "$sync_pid" 2>/dev/null || true
  sed '/# BEGIN spate-kind-e2e/,/# END spate-kind-e2e/d' /etc/hosts > /tmp/spate-kind-hosts
  $SUDO cp /tmp/spate-kind-hosts /etc/hosts
  $SUDO ip route del "$POD_CIDR" via "$node_ip" 2>/dev/null || true
  if [ "$rc" -ne 0 ]; then
    kubectl logs -n "$NAMESPACE" -l app.kubernetes.io/name=spate-operator --tail=100 || true
    kubectl logs -n "$NAMESPACE" -l spate.dev/cluster --tail=50 --prefix || true
  fi
  if [ -n "$created" ] && [ -z "${KIND_KEEP:-}" ]; then
    kind delete cluster --name "$KIND_CLUSTER" || true
  fi
  rm -f "$KUBECONFIG"
  exit "$rc"
}
trap cleanup EXIT INT TERM

log "cargo test -p spate-e2e (image $IMAGE)"
cd "$ROOT"
SPATE_E2E_IMAGE="$IMAGE" SPATE_E2E_NAMESPACE="$NAMESPACE" \
  SPATE_E2E_HELM_ARGS="--set image.pullPolicy=Never" \
  cargo test -p spate-e2e -- --nocapture
