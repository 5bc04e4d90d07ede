#!/usr/bin/env bash
# Spate vs Apache Kafka, 3 brokers on this machine, RF 3, acks=all: produce throughput and
# latency, and leader-kill failover time. See bench/README-cluster.md.
#
#   sudo bench/cluster.sh [--quick] [--systems kafka,spate] [--profiles default,tuned]
#                         [--kills N] [--controller-kills M] [--isolations K] [--skip-throughput]
#                         [--skip-failover] [--keep]
#
# Environment: SPATE_BROKER_BIN, SPATE_CACHE, BENCH_TMPDIR, BENCH_RECORDS, KAFKA_HEAP_OPTS,
# PROBE_PROPS (extra failover-probe producer properties, "k=v k2=v2").
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
for t in java javac ip python3 uptime; do
  command -v "$t" >/dev/null || { echo "cluster.sh: $t not found on PATH" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "cluster.sh: needs root (network namespaces)" >&2; exit 1; }
python3 -c 'import confluent_kafka' 2>/dev/null || { echo "cluster.sh: needs the confluent-kafka Python package" >&2; exit 1; }
exec python3 "$BENCH_DIR/cluster_bench.py" "$@"
