#!/usr/bin/env bash
# Checks a running spate-node-agent (started with --image local/sh=/bin/sh) against the
# examples: a pod runs, gets an IP, readiness follows its probe, kill -9 restarts it, delete
# stops it gracefully; a StatefulSet's pods resolve each other through the headless service
# and get their claims bound. Needs root (nsenter), KUBECONFIG, and kubectl (KUBECTL).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KUBECONFIG="${KUBECONFIG:-/tmp/spate-e2e/kubeconfig}"
KUBECTL="${KUBECTL:-$HOME/.cache/spate/e2e/bin/kubectl}"
STATE_DIR="${STATE_DIR:-/var/lib/spate-node-agent}"
NS="${NS:-node-agent-demo}"
export KUBECONFIG

k() { "$KUBECTL" -n "$NS" "$@"; }
say() { printf '\n== %s\n' "$*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
# wait_for DESCRIPTION SECONDS COMMAND...: retry COMMAND until it succeeds.
wait_for() {
  local what="$1" secs="$2"; shift 2
  for _ in $(seq "$((secs * 2))"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
  fail "timed out waiting for $what"
}
jp() { k get pod "$1" -o "jsonpath=$2" 2>/dev/null; }
is() { [ "$(jp "$1" "$2")" = "$3" ]; }
pid_of() { jp "$1" '{.status.containerStatuses[0].containerID}' | sed 's|spate://||'; }

"$KUBECTL" create namespace "$NS" --dry-run=client -o yaml | "$KUBECTL" apply -f - >/dev/null
# Pods need the namespace's default service account before they can be created.
wait_for "default service account" 30 k get serviceaccount default

say "pod runs and gets an IP"
k apply -f "$HERE/examples/pod-sh.yaml"
wait_for "sh-demo Running" 60 is sh-demo '{.status.phase}' Running
IP="$(jp sh-demo '{.status.podIP}')"
echo "podIP=$IP node=$(jp sh-demo '{.spec.nodeName}')"
wait_for "http on the pod IP" 20 curl -fsS -o /dev/null "http://$IP:8080/"
UID_="$(jp sh-demo '{.metadata.uid}')"
LOG="$STATE_DIR/logs/${NS}_sh-demo_${UID_}/main.log"
grep -q "started as sh-demo ip=$IP ns=$NS greeting=hello" "$LOG" || fail "env/hostname not as expected: $(cat "$LOG")"
PID="$(pid_of sh-demo)"
wait_for "API call from the pod" 20 grep -q "^api: " "$LOG"
grep -q "^api: 200" "$LOG" || fail "in-cluster API access: $(grep '^api' "$LOG")"
nsenter -t "$PID" -m cat /etc/demo/demo.conf | grep -q answer=42 || fail "configMap volume"
nsenter -t "$PID" -m ls /var/run/secrets/kubernetes.io/serviceaccount/ | grep -q token || fail "service account token"
echo "log: $(head -2 "$LOG" | tr '\n' ' ')"

say "readiness follows the probe"
is sh-demo '{.status.conditions[?(@.type=="Ready")].status}' False || fail "ready before ready.txt exists"
nsenter -t "$PID" -m sh -c 'echo ok > /srv/ready.txt'
wait_for "Ready=True" 20 is sh-demo '{.status.conditions[?(@.type=="Ready")].status}' True
nsenter -t "$PID" -m rm /srv/ready.txt
wait_for "Ready=False" 20 is sh-demo '{.status.conditions[?(@.type=="Ready")].status}' False
nsenter -t "$PID" -m sh -c 'echo ok > /srv/ready.txt'
wait_for "Ready=True again" 20 is sh-demo '{.status.conditions[?(@.type=="Ready")].status}' True
echo "ready toggled True → False → True"

say "kill -9 restarts the container"
kill -9 "$PID"
wait_for "restartCount=1" 30 is sh-demo '{.status.containerStatuses[0].restartCount}' 1
wait_for "running again" 30 is sh-demo '{.status.containerStatuses[0].ready}' true
echo "lastState exit code: $(jp sh-demo '{.status.containerStatuses[0].lastState.terminated.exitCode}') new pid: $(pid_of sh-demo) same IP: $(jp sh-demo '{.status.podIP}')"
[ "$(jp sh-demo '{.status.containerStatuses[0].lastState.terminated.exitCode}')" = 137 ] || fail "exit code"

say "delete terminates gracefully"
k delete pod sh-demo --wait=true --timeout=60s
grep -q "got SIGTERM" "$LOG" && grep -q bye "$LOG" || fail "no graceful shutdown in log"
ip netns list | grep -q "spate-$UID_" && fail "netns left behind"
echo "log tail: $(tail -2 "$LOG" | tr '\n' ' ')"

say "StatefulSet pods resolve each other"
k apply -f "$HERE/examples/statefulset.yaml"
wait_for "web-0 ready" 90 is web-0 '{.status.containerStatuses[0].ready}' true
wait_for "web-1 ready" 90 is web-1 '{.status.containerStatuses[0].ready}' true
IP0="$(jp web-0 '{.status.podIP}')"; IP1="$(jp web-1 '{.status.podIP}')"
P0="$(pid_of web-0)"
# The hosts files follow the watch; give them a moment.
sleep 1
T0=$SECONDS
got="$(nsenter -t "$P0" -m -n getent hosts "web-1.peers.$NS.svc.cluster.local" | awk '{print $1}')"
[ "$got" = "$IP1" ] || fail "web-0 resolves web-1 to '$got', want $IP1"
nsenter -t "$P0" -m -n getent hosts web-1.peers | grep -q "$IP1" || fail "short name web-1.peers"
nsenter -t "$P0" -m -n python3 -c "import urllib.request; print(urllib.request.urlopen('http://web-1.peers:8080/boots').read().decode().strip())"
nsenter -t "$P0" -m -n getent hosts peers | grep -qE "$IP0|$IP1" || fail "service name"
got="$(getent hosts "web-0.peers.$NS.svc.cluster.local" | awk '{print $1}')"
[ "$got" = "$IP0" ] || fail "root namespace resolves web-0 to '$got', want $IP0"
echo "web-0=$IP0 web-1=$IP1; pods and the root namespace resolve both (lookups took $((SECONDS - T0))s)"
k get pvc
[ "$(k get pvc data-web-0 -o jsonpath='{.status.phase}')" = Bound ] || fail "claim not bound"

if [ "${KEEP:-}" != 1 ]; then
  say "cleanup"
  k delete statefulset web --wait=true --timeout=60s
  k delete pvc --all --wait=true --timeout=60s
  "$KUBECTL" delete namespace "$NS" --wait=false
fi
echo
echo "demo: all checks passed"
