#!/usr/bin/env bash
# Stop the control plane started by start.sh, by its pid files only.
# Each process gets SIGTERM, then SIGKILL after STOP_GRACE seconds (default 10).
# Usage: stop.sh [--clean]   (--clean also deletes STATE_DIR: certs, etcd data, logs)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
. "$HERE/common.sh"
STOP_GRACE="${STOP_GRACE:-10}"

clean=0
[ "${1:-}" = "--clean" ] && clean=1

for (( i=${#COMPONENTS[@]}-1; i>=0; i-- )); do
  name="${COMPONENTS[$i]}"
  pid="$(component_pid "$name")"
  if [ -z "$pid" ]; then
    rm -f "$RUN/$name.pid"
    continue
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for (( t=0; t<STOP_GRACE*10; t++ )); do
    [ -d "/proc/$pid" ] || break
    sleep 0.1
  done
  if [ -d "/proc/$pid" ]; then
    echo "stop.sh: $name (pid $pid) ignored SIGTERM; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$RUN/$name.pid"
  echo "stop.sh: stopped $name (pid $pid)"
done

if [ $clean -eq 1 ] && [ -d "$STATE_DIR" ]; then
  rm -rf "$STATE_DIR"
  echo "stop.sh: removed $STATE_DIR"
fi
