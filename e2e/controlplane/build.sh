#!/usr/bin/env bash
# Build the e2e control-plane binaries from published Go modules only:
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubectl  (k8s.io/kubernetes)
#   etcd                                                              (go.etcd.io/etcd/server/v3)
#   helm                                                              (helm.sh/helm/v3)
#
# Binaries go to ${SPATE_E2E_CACHE:-$HOME/.cache/spate/e2e}/bin. A binary is
# skipped when it is present, reports the expected version and its stamp file
# (hash of the wrapper go.mod/go.sum and the ldflags) matches; otherwise it is
# rebuilt. GOCACHE/GOMODCACHE are the Go defaults, so later builds are fast.
#
# Usage: build.sh [--force] [name ...]     (names: see ALL below; default all)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${SPATE_E2E_CACHE:-$HOME/.cache/spate/e2e}"
BIN="$CACHE/bin"
NICE="${SPATE_E2E_NICE:-15}"
ALL=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl helm)

force=0
want=()
for a in "$@"; do
  case "$a" in
    --force) force=1 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) want+=("$a") ;;
  esac
done
[ ${#want[@]} -eq 0 ] && want=("${ALL[@]}")

command -v go >/dev/null || { echo "build.sh: go not found in PATH" >&2; exit 1; }
mkdir -p "$BIN"

export CGO_ENABLED=0
export GOFLAGS="-trimpath${GOFLAGS:+ $GOFLAGS}"
# The wrapper modules say `go 1.26.0`; the machine's Go (1.26.x) is enough.
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"

# Version of a module as pinned in a wrapper go.mod (no network needed).
modver() { (cd "$HERE/go/$1" && go list -m -f '{{.Version}}' "$2"); }

K8S_VERSION="$(modver kubernetes k8s.io/kubernetes)"        # e.g. v1.36.3
ETCD_VERSION="$(modver etcd go.etcd.io/etcd/server/v3)"      # e.g. v3.6.16
HELM_VERSION="$(modver helm helm.sh/helm/v3)"                # e.g. v3.21.4
HELM_K8S_VERSION="$(modver helm k8s.io/client-go)"           # e.g. v0.36.2

k8s_major="${K8S_VERSION#v}"; k8s_major="${k8s_major%%.*}"
k8s_minor="${K8S_VERSION#v*.}"; k8s_minor="${k8s_minor%%.*}"
# Release time of the module version, as recorded by the module cache/proxy.
k8s_date="$(cd "$HERE/go/kubernetes" && go list -m -f '{{if .Time}}{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}{{end}}' k8s.io/kubernetes 2>/dev/null || true)"
k8s_date="${k8s_date:-1970-01-01T00:00:00Z}"

K8S_LDFLAGS="-s -w"
# component-base/version is what the server binaries and `kubectl version`
# print; client-go/pkg/version feeds client-go's User-Agent.
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  K8S_LDFLAGS+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=$k8s_major -X $p.gitMinor=$k8s_minor"
  K8S_LDFLAGS+=" -X $p.gitTreeState=clean -X $p.buildDate=$k8s_date"
done

ETCD_LDFLAGS="-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=module-$ETCD_VERSION"

hk_minor="${HELM_K8S_VERSION#v0.}"; hk_minor="${hk_minor%%.*}"
HELM_LDFLAGS="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
HELM_LDFLAGS+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for p in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  HELM_LDFLAGS+=" -X $p.k8sVersionMajor=1 -X $p.k8sVersionMinor=$hk_minor"
done

# name -> wrapper dir, package, ldflags, expected version string in output
spec() {
  case "$1" in
    kube-apiserver|kube-controller-manager|kube-scheduler|kubectl)
      MOD=kubernetes; PKG="k8s.io/kubernetes/cmd/$1"; LDF="$K8S_LDFLAGS" ;;
    etcd) MOD=etcd; PKG=.; LDF="$ETCD_LDFLAGS" ;;
    helm) MOD=helm; PKG=helm.sh/helm/v3/cmd/helm; LDF="$HELM_LDFLAGS" ;;
    *) echo "build.sh: unknown binary '$1' (known: ${ALL[*]})" >&2; exit 2 ;;
  esac
}

# Prints the version the binary reports, or nothing.
reported_version() {
  local b="$BIN/$1"
  [ -x "$b" ] || return 0
  case "$1" in
    kubectl) "$b" version --client 2>/dev/null | sed -n 's/^Client Version: //p' ;;
    etcd) "$b" --version 2>/dev/null | sed -n 's/^etcd Version: /v/p' ;;
    helm) "$b" version --template '{{.Version}}' 2>/dev/null ;;
    *) "$b" --version 2>/dev/null | sed -n 's/^Kubernetes //p' ;;
  esac
}

expected_version() {
  case "$1" in
    etcd) echo "$ETCD_VERSION" ;;
    helm) echo "$HELM_VERSION" ;;
    *) echo "$K8S_VERSION" ;;
  esac
}

stamp_of() {
  spec "$1"
  { cat "$HERE/go/$MOD/go.mod" "$HERE/go/$MOD/go.sum"; [ "$MOD" = etcd ] && cat "$HERE/go/etcd/main.go"
    echo "$PKG $LDF $CGO_ENABLED $GOFLAGS"; } | sha256sum | cut -d' ' -f1
}

now() { date +%s; }
total_start=$(now)
built=() skipped=()
for name in "${want[@]}"; do
  spec "$name"
  exp="$(expected_version "$name")"
  stamp="$(stamp_of "$name")"
  have="$(reported_version "$name")"
  if [ $force -eq 0 ] && [ "$have" = "$exp" ] && [ "$(cat "$BIN/.$name.stamp" 2>/dev/null)" = "$stamp" ]; then
    echo "== $name $exp: up to date ($BIN/$name)"
    skipped+=("$name")
    continue
  fi
  echo "== $name $exp: building ${PKG} in go/$MOD (had: ${have:-none})"
  t0=$(now)
  rm -f "$BIN/.$name.stamp"
  (cd "$HERE/go/$MOD" && nice -n "$NICE" go build -ldflags "$LDF" -o "$BIN/$name.tmp" "$PKG")
  mv -f "$BIN/$name.tmp" "$BIN/$name"
  have="$(reported_version "$name")"
  if [ "$have" != "$exp" ]; then
    echo "build.sh: $name reports version '$have', expected '$exp'" >&2
    exit 1
  fi
  echo "$stamp" > "$BIN/.$name.stamp"
  echo "   $name built in $(( $(now) - t0 ))s"
  built+=("$name")
done
echo "== done in $(( $(now) - total_start ))s; built: ${built[*]:-none}; up to date: ${skipped[*]:-none}"
echo "   binaries in $BIN"
