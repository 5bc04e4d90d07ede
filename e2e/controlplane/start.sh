#!/usr/bin/env bash
# Start a real Kubernetes control plane on loopback: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler (binaries from build.sh).
#
# State (certificates, kubeconfigs, etcd data, logs, pid files) lives in
# STATE_DIR (default /tmp/spate-e2e). The admin kubeconfig (group
# system:masters) is written to $STATE_DIR/kubeconfig.
#
# Idempotent: certificates are made once, components already running (by
# their pid files) are left alone; it always ends by waiting, with a deadline
# (START_TIMEOUT seconds, default 180), until /readyz is ok, the controller
# manager and scheduler are healthy, and the default namespace and the default
# service account exist. Ports and settings: see common.sh. Stop with stop.sh.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
. "$HERE/common.sh"
START_TIMEOUT="${START_TIMEOUT:-180}"

for b in "${COMPONENTS[@]}" kubectl; do
  [ -x "$E2E_BIN/$b" ] || { echo "start.sh: $E2E_BIN/$b missing; run $HERE/build.sh first" >&2; exit 1; }
done
command -v openssl >/dev/null || { echo "start.sh: openssl is required (apt-get install openssl)" >&2; exit 1; }
command -v curl >/dev/null || { echo "start.sh: curl is required (apt-get install curl)" >&2; exit 1; }

mkdir -p "$PKI" "$LOGS" "$RUN" "$STATE_DIR/kubeconfigs"
chmod 700 "$STATE_DIR"

log() { printf '[start.sh %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

# ---------------------------------------------------------------- certificates
gen_key() { [ -f "$1" ] || { openssl genrsa -out "$1" 2048 2>/dev/null; chmod 600 "$1"; }; }

make_ca() {
  [ -f "$PKI/ca.crt" ] && return 0
  gen_key "$PKI/ca.key"
  cat > "$PKI/ca.cnf" <<EOF
[req]
distinguished_name = dn
x509_extensions = v3_ca
prompt = no
[dn]
CN = $CLUSTER_NAME-ca
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash
EOF
  openssl req -x509 -new -key "$PKI/ca.key" -config "$PKI/ca.cnf" -days 3650 -sha256 -out "$PKI/ca.crt"
}

# sign NAME SUBJECT EXTENDED_KEY_USAGE [SUBJECT_ALT_NAMES]
sign() {
  local name="$1" subj="$2" eku="$3" sans="${4:-}"
  [ -f "$PKI/$name.crt" ] && return 0
  gen_key "$PKI/$name.key"
  {
    echo "basicConstraints = critical,CA:FALSE"
    echo "keyUsage = critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage = $eku"
    echo "authorityKeyIdentifier = keyid"
    [ -n "$sans" ] && echo "subjectAltName = $sans"
  } > "$PKI/$name.ext"
  openssl req -new -key "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr"
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" \
    -CAcreateserial -days 365 -sha256 -extfile "$PKI/$name.ext" -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.csr"
}

make_ca
sign apiserver "/CN=kube-apiserver" serverAuth \
  "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:$SERVICE_IP"
sign apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
sign admin "/O=system:masters/CN=kubernetes-admin" clientAuth
sign controller-manager "/CN=system:kube-controller-manager" clientAuth
sign scheduler "/CN=system:kube-scheduler" clientAuth
# Service-account token signing key pair (apiserver signs/verifies, KCM signs).
if [ ! -f "$PKI/sa.pub" ]; then
  gen_key "$PKI/sa.key"
  openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
fi

# ---------------------------------------------------------------- kubeconfigs
b64() { base64 -w0 < "$1"; }
# kubeconfig FILE USER CERT_NAME
kubeconfig() {
  cat > "$1.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: $CLUSTER_NAME
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $(b64 "$PKI/ca.crt")
users:
- name: $2
  user:
    client-certificate-data: $(b64 "$PKI/$3.crt")
    client-key-data: $(b64 "$PKI/$3.key")
contexts:
- name: $2@$CLUSTER_NAME
  context:
    cluster: $CLUSTER_NAME
    user: $2
current-context: $2@$CLUSTER_NAME
EOF
  chmod 600 "$1.tmp"; mv -f "$1.tmp" "$1"
}
kubeconfig "$KUBECONFIG_ADMIN" kubernetes-admin admin
kubeconfig "$STATE_DIR/kubeconfigs/controller-manager.kubeconfig" system:kube-controller-manager controller-manager
kubeconfig "$STATE_DIR/kubeconfigs/scheduler.kubeconfig" system:kube-scheduler scheduler
cat > "$STATE_DIR/env" <<EOF
export KUBECONFIG=$KUBECONFIG_ADMIN
export PATH=$E2E_BIN:\$PATH
EOF

# ---------------------------------------------------------------- processes
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start_component NAME PORT ARGS...
start_component() {
  local name="$1" port="$2"; shift 2
  local pid; pid="$(component_pid "$name")"
  if [ -n "$pid" ]; then log "$name already running (pid $pid)"; return 0; fi
  if port_busy "$port"; then
    echo "start.sh: port $port (for $name) is in use by another process; set the port variable (see common.sh)" >&2
    exit 1
  fi
  echo "==== $(date -Is) starting $name" >> "$LOGS/$name.log"
  # Not a process-group leader here, so setsid execs in place: $! is the binary.
  setsid "$E2E_BIN/$name" "$@" >> "$LOGS/$name.log" 2>&1 < /dev/null &
  echo $! > "$RUN/$name.pid"
  log "$name started (pid $!, port $port, log $LOGS/$name.log)"
}

deadline=$(( $(date +%s) + START_TIMEOUT ))
# wait_until DESCRIPTION COMPONENT CMD... : polls CMD until it succeeds.
wait_until() {
  local what="$1" comp="$2"; shift 2
  until "$@" >/dev/null 2>&1; do
    if [ -z "$(component_pid "$comp")" ]; then
      echo "start.sh: $comp exited while waiting for $what; last log lines:" >&2
      tail -n 30 "$LOGS/$comp.log" >&2; exit 1
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "start.sh: timed out after ${START_TIMEOUT}s waiting for $what; last $comp log lines:" >&2
      tail -n 30 "$LOGS/$comp.log" >&2; exit 1
    fi
    sleep 0.5
  done
  log "ok: $what"
}

ca=(--cacert "$PKI/ca.crt")
admin_curl() { curl -fsS "${ca[@]}" --cert "$PKI/admin.crt" --key "$PKI/admin.key" "$@"; }
kctl() { "$E2E_BIN/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }

# etcd: single member, plain http on loopback. --unsafe-no-fsync: the data is
# throw-away test state, and fsync on a busy 2-core box slows everything down.
start_component etcd "$ETCD_PORT" \
  --name "$CLUSTER_NAME" \
  --data-dir "$STATE_DIR/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "$CLUSTER_NAME=http://127.0.0.1:$ETCD_PEER_PORT" \
  --unsafe-no-fsync \
  --log-level warn
etcd_healthy() { curl -fsS "http://127.0.0.1:$ETCD_PORT/health" | grep -q '"health":"true"'; }
wait_until "etcd /health" etcd etcd_healthy

# --endpoint-reconciler-type=none: the apiserver would otherwise try to publish
# 127.0.0.1 as the endpoint of default/kubernetes, which validation rejects
# (loopback). The service and its ClusterIP still exist; nothing is routed.
start_component kube-apiserver "$APISERVER_PORT" \
  --bind-address=127.0.0.1 \
  --advertise-address=127.0.0.1 \
  --secure-port="$APISERVER_PORT" \
  --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
  --client-ca-file="$PKI/ca.crt" \
  --tls-cert-file="$PKI/apiserver.crt" \
  --tls-private-key-file="$PKI/apiserver.key" \
  --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" \
  --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
  --kubelet-certificate-authority="$PKI/ca.crt" \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$PKI/sa.pub" \
  --service-account-signing-key-file="$PKI/sa.key" \
  --service-cluster-ip-range="$SERVICE_CIDR" \
  --authorization-mode=Node,RBAC \
  --allow-privileged=true \
  --endpoint-reconciler-type=none \
  --profiling=false
wait_until "kube-apiserver /readyz" kube-apiserver admin_curl "https://127.0.0.1:$APISERVER_PORT/readyz"

KCM_KC="$STATE_DIR/kubeconfigs/controller-manager.kubeconfig"
start_component kube-controller-manager "$KCM_PORT" \
  --kubeconfig="$KCM_KC" \
  --authentication-kubeconfig="$KCM_KC" \
  --authorization-kubeconfig="$KCM_KC" \
  --bind-address=127.0.0.1 \
  --secure-port="$KCM_PORT" \
  --client-ca-file="$PKI/ca.crt" \
  --cluster-name="$CLUSTER_NAME" \
  --service-account-private-key-file="$PKI/sa.key" \
  --root-ca-file="$PKI/ca.crt" \
  --cluster-signing-cert-file="$PKI/ca.crt" \
  --cluster-signing-key-file="$PKI/ca.key" \
  --use-service-account-credentials=true \
  --controllers='*,bootstrapsigner,tokencleaner' \
  --service-cluster-ip-range="$SERVICE_CIDR" \
  --leader-elect=false \
  --profiling=false

SCHED_KC="$STATE_DIR/kubeconfigs/scheduler.kubeconfig"
start_component kube-scheduler "$SCHEDULER_PORT" \
  --kubeconfig="$SCHED_KC" \
  --authentication-kubeconfig="$SCHED_KC" \
  --authorization-kubeconfig="$SCHED_KC" \
  --bind-address=127.0.0.1 \
  --secure-port="$SCHEDULER_PORT" \
  --leader-elect=false \
  --profiling=false

# /healthz is in the always-allowed paths of both; their serving certs are
# self-signed in memory, hence -k.
wait_until "kube-controller-manager /healthz" kube-controller-manager curl -fsSk "https://127.0.0.1:$KCM_PORT/healthz"
wait_until "kube-scheduler /healthz" kube-scheduler curl -fsSk "https://127.0.0.1:$SCHEDULER_PORT/healthz"
wait_until "namespace default" kube-apiserver kctl get namespace default
wait_until "serviceaccount default/default" kube-controller-manager kctl -n default get serviceaccount default

log "control plane ready: https://127.0.0.1:$APISERVER_PORT"
log "use: export KUBECONFIG=$KUBECONFIG_ADMIN   (or: . $STATE_DIR/env)"
