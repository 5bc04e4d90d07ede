#!/usr/bin/env bash
# Smoke test of a running control plane (start.sh first):
#   /readyz; the repo's CRDs apply; a Deployment's pod is reported unschedulable
#   ("no nodes available"); after a fake Node object is created the scheduler
#   binds the pod (spec.nodeName set); the Helm chart lints and its rendered
#   manifests pass a server-side dry-run apply.
# Leaves the CRDs installed; deletes its Deployment and fake Node.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
. "$HERE/common.sh"
REPO="$(cd "$HERE/../.." && pwd)"
export KUBECONFIG="$KUBECONFIG_ADMIN"
export PATH="$E2E_BIN:$PATH"
NS=spate-smoke
NODE=spate-smoke-node

step() { printf '\n== %s\n' "$*"; }
fail() { echo "smoke.sh: FAIL: $*" >&2; exit 1; }
# poll SECONDS CMD... : retries CMD every second until it succeeds.
poll() {
  local n="$1"; shift
  for (( i=0; i<n; i++ )); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  return 1
}
cleanup() {
  kubectl delete namespace "$NS" --ignore-not-found --wait=false >/dev/null 2>&1 || true
  kubectl delete node "$NODE" --ignore-not-found >/dev/null 2>&1 || true
}
trap cleanup EXIT

step "versions"
kubectl version
helm version --short

step "GET /readyz"
kubectl get --raw '/readyz?verbose' | tail -n 3

step "kubectl apply -f crds/"
kubectl apply -f "$REPO/crds/"
for f in "$REPO"/crds/*.yaml; do
  crd="$(basename "$f" .yaml)"
  kubectl wait --for=condition=Established --timeout=60s "crd/$crd"
done

step "Deployment without nodes: expect FailedScheduling"
cleanup; poll 60 bash -c "! kubectl get namespace $NS"
kubectl create namespace "$NS"
poll 60 kubectl -n "$NS" get serviceaccount default || fail "no default service account in $NS"
kubectl -n "$NS" create deployment smoke --image=example.invalid/smoke:1 --replicas=1
unschedulable() {
  kubectl -n "$NS" get events --field-selector reason=FailedScheduling -o jsonpath='{.items[*].message}' \
    | grep -q 'no nodes available'
}
poll 60 unschedulable || { kubectl -n "$NS" get events; fail "no FailedScheduling event"; }
kubectl -n "$NS" get events --field-selector reason=FailedScheduling \
  -o custom-columns=REASON:.reason,OBJECT:.involvedObject.name,MESSAGE:.message

step "fake Node $NODE: expect the pod to be bound to it"
# Nodes accept status on create. The TaintNodesByCondition admission plugin adds
# node.kubernetes.io/not-ready:NoSchedule; the node lifecycle controller lifts
# it once it sees Ready=True. Without a kubelet renewing a Lease the node goes
# NotReady again after the grace period (~50s), which is enough here.
now="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
kubectl create -f - <<EOF
apiVersion: v1
kind: Node
metadata:
  name: $NODE
  labels:
    kubernetes.io/hostname: $NODE
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
status:
  capacity: {cpu: "4", memory: 8Gi, pods: "110", ephemeral-storage: 20Gi}
  allocatable: {cpu: "4", memory: 8Gi, pods: "110", ephemeral-storage: 20Gi}
  conditions:
  - type: Ready
    status: "True"
    reason: KubeletReady
    message: fake node created by smoke.sh
    lastHeartbeatTime: "$now"
    lastTransitionTime: "$now"
  addresses:
  - {type: InternalIP, address: 127.0.0.1}
  - {type: Hostname, address: $NODE}
EOF
bound() { [ -n "$(kubectl -n "$NS" get pods -l app=smoke -o jsonpath='{.items[*].spec.nodeName}')" ]; }
poll 90 bound || { kubectl get node "$NODE" -o yaml; kubectl -n "$NS" get events; fail "pod not scheduled"; }
kubectl -n "$NS" get pods -o wide
kubectl -n "$NS" get events --field-selector reason=Scheduled \
  -o custom-columns=REASON:.reason,OBJECT:.involvedObject.name,MESSAGE:.message

step "helm lint charts/spate"
helm lint "$REPO/charts/spate"

step "helm template charts/spate | kubectl apply --dry-run=server -f -"
helm template spate "$REPO/charts/spate" --namespace "$NS" | kubectl -n "$NS" apply --dry-run=server -f -

printf '\nsmoke.sh: all checks passed\n'
