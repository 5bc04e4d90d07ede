#!/usr/bin/env bash
# Spate vs Apache Kafka single-broker benchmark. See bench/README.md.
#
#   bench/run.sh [--quick] [--brokers kafka,spate] [--partitions 1[,3]]
#                [--security plaintext[,ssl][,sasl_ssl]] [--keep]
#
#   --security  the client listener's protocol, each mode a fresh broker run with the same
#               tests: PLAINTEXT (default), SSL (TLS, server certificate only) or SASL_SSL
#               (TLS + SCRAM-SHA-512 login); throwaway certificates from compat/certs.sh
#
# Environment:
#   SPATE_BROKER_BIN  Spate binary (default <repo>/target/release/spate-broker)
#   SPATE_CACHE       per-machine cache root (default $HOME/.cache/spate), where
#                     scripts/apache-kafka.sh keeps the Kafka jars
#   BENCH_TMPDIR      where the temporary work dir is made (default /tmp)
#   BENCH_RECORDS     override the record count of the throughput tests
#   SPATE_EXTRA_ARGS  extra arguments for spate-broker (e.g. "--set log.flush.interval.ms=...")
#   KAFKA_HEAP_OPTS   Kafka broker heap (default "-Xmx1G -Xms1G", as kafka-server-start.sh;
#                     read by scripts/apache-kafka.sh)
#   PRODUCER_PROPS    extra producer properties for every produce test ("k=v k2=v2")
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$BENCH_DIR/.." && pwd)

# ---------------------------------------------------------------- options
MODE=full
BROKERS="kafka,spate"
PARTITIONS="1"
SECURITY=plaintext
KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) MODE=quick ;;
    --brokers) BROKERS=$2; shift ;;
    --partitions) PARTITIONS=$2; shift ;;
    --keep) KEEP=1 ;;
    --security) SECURITY=$2; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

for m in ${SECURITY//,/ }; do
  case "$m" in plaintext|ssl|sasl_ssl) ;; *) echo "run.sh: unknown --security mode $m" >&2; exit 2 ;; esac
done

RECORD_SIZE=1024
LAT_RATE=5000          # records/s for the fixed-rate latency tests (~4.9 MiB/s)
if [ "$MODE" = quick ]; then
  RECORDS=50000; WARMUP=50000; LAT_RECORDS=10000; TOOL_DEADLINE=180
else
  RECORDS=1000000; WARMUP=200000; LAT_RECORDS=150000; TOOL_DEADLINE=1200
fi
RECORDS=${BENCH_RECORDS:-$RECORDS}
BROKER_START_DEADLINE=90   # seconds until the broker port accepts TCP
BROKER_STOP_DEADLINE=60    # seconds after SIGTERM before SIGKILL
IDLE_SETTLE=5              # seconds between "port open" and the idle RSS reading
PAUSE=2                    # seconds between tests (let flushes/GC settle)

SPATE_BIN=${SPATE_BROKER_BIN:-$REPO_DIR/target/release/spate-broker}
CACHE_ROOT=${SPATE_CACHE:-$HOME/.cache/spate}

log() { printf '[bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

SECURE_MODES=0
[[ ,$SECURITY, != *,ssl,* && ,$SECURITY, != *,sasl_ssl,* ]] || SECURE_MODES=1
for t in java javac timeout awk $([ "$SECURE_MODES" = 0 ] || echo openssl); do
  command -v "$t" >/dev/null || die "$t not found on PATH"
done
JAVA_MAJOR=$(java -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/{print $2}')
[ "${JAVA_MAJOR%%.*}" -ge 17 ] 2>/dev/null || die "Kafka 4.x needs Java 17+, found $JAVA_MAJOR"

# ---------------------------------------------------------------- work dir + cleanup
mkdir -p "${BENCH_TMPDIR:-/tmp}"
WORK=$(mktemp -d "${BENCH_TMPDIR:-/tmp}/spate-bench.XXXXXX")
BROKER_PID=""
SAMPLER_PID=""
cleanup() {
  set +e
  [ -n "$SAMPLER_PID" ] && kill "$SAMPLER_PID" 2>/dev/null
  if [ -n "$BROKER_PID" ] && kill -0 "$BROKER_PID" 2>/dev/null; then
    kill -TERM "$BROKER_PID" 2>/dev/null
    for _ in $(seq 1 $((BROKER_STOP_DEADLINE * 5))); do kill -0 "$BROKER_PID" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$BROKER_PID" 2>/dev/null
  fi
  if [ "$KEEP" = 1 ]; then log "work dir kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- Kafka jars (Maven Central, cached)
KAFKA_SH=$REPO_DIR/scripts/apache-kafka.sh
export SPATE_CACHE=$CACHE_ROOT
KAFKA_VERSION=$("$KAFKA_SH" version)
KAFKA_CP=$("$KAFKA_SH" classpath) || die "scripts/apache-kafka.sh could not fetch Kafka $KAFKA_VERSION"

# The group-less consumer / topic helper, compiled fresh each run (a second or two).
mkdir -p "$WORK/classes"
javac -nowarn -cp "$KAFKA_CP" -d "$WORK/classes" \
  "$BENCH_DIR/src/main/java/dev/spate/bench/BenchClient.java" || die "javac failed"

CP="$KAFKA_CP:$WORK/classes"
LOG4J="-Dlog4j2.configurationFile=$BENCH_DIR/conf/log4j2.properties"
TOOL_JAVA=(java -Xmx512M -XX:+UseG1GC -Djava.awt.headless=true "$LOG4J" -cp "$CP")

# ---------------------------------------------------------------- security modes
# One client listener per broker run, with the mode's protocol; both brokers get the very same
# command line (Spate reads Kafka's setting names) and the clients the same properties. The
# inter-broker listener is that listener (these tests cause no broker-to-broker traffic, but
# Kafka insists on one; for SASL_SSL it logs in as the bench user). The metadata quorum stays
# plain: Kafka's CONTROLLER listener (scripts/apache-kafka.sh adds it), Spate's default.
SCRAM_USER=bench
SCRAM_PASSWORD=bench-secret
SCRAM_JAAS="org.apache.kafka.common.security.scram.ScramLoginModule required username=\"$SCRAM_USER\" password=\"$SCRAM_PASSWORD\";"
PKI=$WORK/pki
if [ "$SECURE_MODES" = 1 ]; then
  "$REPO_DIR/compat/certs.sh" "$PKI" || die "compat/certs.sh failed"
fi

# security_setup MODE: sets SEC (the protocol, for the report), LISTEN_SCHEME, BROKER_SEC_ARGS
# (broker arguments), CLIENT_CONF_ARGS (--command-config FILE for the Kafka tools) and
# CLIENT_PROP_ARGS (the same properties as --prop k=v for BenchClient consume).
security_setup() {
  local conf=$WORK/client-$1.properties
  BROKER_SEC_ARGS=(); CLIENT_CONF_ARGS=(); CLIENT_PROP_ARGS=(); LISTEN_SCHEME=""
  SEC=$(tr '[:lower:]' '[:upper:]' <<<"$1")
  [ "$1" = plaintext ] && return 0
  LISTEN_SCHEME=$SEC://
  BROKER_SEC_ARGS=(--set "listener.security.protocol.map=$SEC:$SEC" --set "inter.broker.listener.name=$SEC"
    --set ssl.keystore.type=PEM --set "ssl.keystore.location=$PKI/broker.pem"
    --set ssl.truststore.type=PEM --set "ssl.truststore.location=$PKI/ca.pem")
  local props=(security.protocol="$SEC" ssl.truststore.type=PEM ssl.truststore.location="$PKI/ca.pem")
  if [ "$1" = sasl_ssl ]; then
    BROKER_SEC_ARGS+=(--set sasl.enabled.mechanisms=SCRAM-SHA-512
      --set sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
      --set "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=$SCRAM_JAAS"
      --add-scram "SCRAM-SHA-512=[name=$SCRAM_USER,password=$SCRAM_PASSWORD]")
    props+=(sasl.mechanism=SCRAM-SHA-512 sasl.jaas.config="$SCRAM_JAAS")
  fi
  printf '%s\n' "${props[@]}" >"$conf"
  CLIENT_CONF_ARGS=(--command-config "$conf")
  local kv
  for kv in "${props[@]}"; do CLIENT_PROP_ARGS+=(--prop "$kv"); done
}

# ---------------------------------------------------------------- helpers
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# A port below the kernel's ephemeral range (so no client connection can hold it) that
# nothing listens on.
free_port() {
  local p lo
  lo=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
  [ "$lo" -gt 12000 ] || lo=61000
  for _ in $(seq 1 200); do
    if [ "$lo" = 61000 ]; then p=$((61000 + RANDOM % 4000)); else p=$((10000 + RANDOM % (lo - 10000))); fi
    port_open "$p" || { echo "$p"; return 0; }
  done
  die "no free port found"
}
now_ms() { echo $(( ${EPOCHREALTIME/./} / 1000 )); }
rss_kb() { awk -v k="$2:" '$1==k{print $2}' "/proc/$1/status" 2>/dev/null || true; }
kb_to_mb() { awk -v k="$1" 'BEGIN{ if (k=="") print "-"; else printf "%.0f", k/1024 }'; }

# RSS sampler: "<epoch ms> <VmRSS kB> <RssAnon kB> <RssFile kB>" every 100 ms while the
# broker lives (bash builtins only, so it costs next to no CPU).
start_sampler() {
  local pid=$1 out=$2
  (
    while [ -r "/proc/$pid/status" ]; do
      rss="" anon="" file=""
      while read -r k v _; do
        case "$k" in
          VmRSS:) rss=$v ;; RssAnon:) anon=$v ;; RssFile:) file=$v; break ;;
        esac
      done <"/proc/$pid/status" || true
      [ -n "$rss" ] && echo "$(( ${EPOCHREALTIME/./} / 1000 )) $rss ${anon:-0} ${file:-0}"
      sleep 0.1
    done
  ) >"$out" 2>/dev/null &
  SAMPLER_PID=$!
}
col_max() { awk -v c="$2" '$c>m {m=$c} END{ if (m) print m }' "$1"; } # FILE COLUMN
peak_between() { awk -v a="$2" -v b="$3" '$1>=a && $1<=b && $2>m {m=$2} END{ if (m) print m }' "$1"; }

wait_port() { # PORT PID; on failure sets WAIT_FAIL
  local port=$1 pid=$2 deadline=$(( $(date +%s) + BROKER_START_DEADLINE )) rc=0
  WAIT_FAIL=""
  while ! port_open "$port"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      wait "$pid" 2>/dev/null || rc=$?
      WAIT_FAIL="exited with code $rc before accepting connections"
      return 1
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      WAIT_FAIL="port not open within ${BROKER_START_DEADLINE}s"
      return 1
    fi
    sleep 0.2
  done
}

stop_broker() {
  local pid=$BROKER_PID rc=0
  [ -n "$pid" ] || return 0
  if [ -n "${WAIT_FAIL:-}${BROKER_DIED:-}" ] && ! kill -0 "$pid" 2>/dev/null; then
    BROKER_PID=""
    [ -n "$SAMPLER_PID" ] && { kill "$SAMPLER_PID" 2>/dev/null || true; wait "$SAMPLER_PID" 2>/dev/null || true; }
    SAMPLER_PID=""
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$(( $(date +%s) + BROKER_STOP_DEADLINE ))
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      log "broker $pid did not stop within ${BROKER_STOP_DEADLINE}s, SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    sleep 0.2
  done
  wait "$pid" 2>/dev/null || rc=$?
  log "broker stopped (exit $rc)"
  BROKER_PID=""
  [ -n "$SAMPLER_PID" ] && { kill "$SAMPLER_PID" 2>/dev/null || true; wait "$SAMPLER_PID" 2>/dev/null || true; }
  SAMPLER_PID=""
}

# start_broker NAME BINARY [ARGS...]: both brokers are started through spate-broker's command
# line. Kafka's is scripts/apache-kafka.sh: a single combined KRaft node (broker + controller)
# with Kafka's JVM flags and Kafka's defaults but for the internal topics' replication factors,
# in particular its flush policy: no log.flush.interval.messages/ms, so Kafka never fsyncs per
# message and leaves flushing to the OS (and segment roll/shutdown). Either way BROKER_PID is
# the broker process itself (the script execs the JVM), so RSS and CPU time are the broker's.
# The listener and the security arguments come from security_setup.
start_broker() {
  local dir=$WORK/$1 bin=$2 port
  shift 2
  port=$(free_port)
  mkdir -p "$dir/data"
  "$bin" --listen "${LISTEN_SCHEME}127.0.0.1:$port" --data-dir "$dir/data" "${BROKER_SEC_ARGS[@]}" "$@" \
    >"$dir/broker.log" 2>&1 &
  BROKER_PID=$!
  BOOTSTRAP=127.0.0.1:$port
  BROKER_LOG=$dir/broker.log
}

# ---------------------------------------------------------------- tests
ROWS=()        # markdown rows
NOTES=()
CPU_ROWS=()    # second table: broker CPU time per test
# The side-by-side table: CELL["<broker> <SEC>|<test>"] = "MB/s (p99 ms)"; columns and tests
# in run order.
declare -A CELL SEEN
COLUMNS=()
TESTS=()
add_row() { # BROKER TEST MB/s records/s p50 p99 RSS-idle RSS-peak; the security mode is $SEC
  ROWS+=("| $1 | $SEC | $2 | $3 | $4 | $5 | $6 | $7 | $8 |")
  CPU_ROWS+=("| $1 | $SEC | $2 | $TEST_WALL_S | $TEST_CPU_S | $TEST_CPU_PCT |")
  TEST_WALL_S="-"; TEST_CPU_S="-"; TEST_CPU_PCT="-"
  local col="$1 $SEC" cell=$3
  [ -n "${SEEN[col:$col]:-}" ] || { SEEN[col:$col]=1; COLUMNS+=("$col"); }
  [ -n "${SEEN[test:$2]:-}" ] || { SEEN[test:$2]=1; TESTS+=("$2"); }
  case "$3" in FAILED*|SKIPPED*) cell=${3%% *} ;; *) [ "$6" = - ] || cell="$3 ($6)" ;; esac
  CELL["$col|$2"]=$cell
}
TEST_WALL_S="-"; TEST_CPU_S="-"; TEST_CPU_PCT="-"
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
# utime+stime of the broker in clock ticks (fields 14+15 of /proc/<pid>/stat)
cpu_ticks() { sed 's/.*) //' "/proc/$BROKER_PID/stat" 2>/dev/null | awk '{print $12 + $13}' || true; }

TEST_T0=0
TEST_T1=0
# run_tool NAME DEADLINE CMD... : output in $WORK/out/<broker>-<mode>-NAME.log, returns the rc
run_tool() {
  local name=$1 deadline=$2; shift 2
  local out="$WORK/out/$RUN_ID-$name.log"
  mkdir -p "$WORK/out"
  TEST_T0=$(now_ms)
  local rc=0 c0 c1
  c0=$(cpu_ticks)
  timeout --signal=TERM --kill-after=10 "$deadline" "$@" >"$out" 2>&1 || rc=$?
  c1=$(cpu_ticks)
  TEST_T1=$(now_ms)
  LAST_OUT=$out
  TEST_WALL_S=$(awk -v a="$TEST_T0" -v b="$TEST_T1" 'BEGIN{printf "%.1f", (b-a)/1000}')
  if [ -n "$c0" ] && [ -n "$c1" ]; then
    TEST_CPU_S=$(awk -v a="$c0" -v b="$c1" -v t="$CLK_TCK" 'BEGIN{printf "%.1f", (b-a)/t}')
    TEST_CPU_PCT=$(awk -v c="$TEST_CPU_S" -v w="$TEST_WALL_S" 'BEGIN{ if (w > 0) printf "%.0f", 100*c/w; else print "-" }')
  else
    TEST_CPU_S="-"; TEST_CPU_PCT="-"
  fi
  if [ "$rc" != 0 ]; then
    log "  $name failed (exit $rc$([ "$rc" = 124 ] && echo ", deadline ${deadline}s")); last lines of $out:"
    tail -n 5 "$out" | sed 's/^/      /' >&2
  fi
  return $rc
}

# BenchClient create-topic speaks PLAINTEXT only (it takes no client properties), so over
# SSL/SASL_SSL each topic is created with Kafka's TopicCommand (kafka-topics.sh) instead; the
# producers' metadata retries cover the moment until the new partition has its leader.
create_topic() { # TOPIC[,TOPIC...] PARTITIONS
  if [ "$SEC" = PLAINTEXT ]; then
    run_tool "create-${1%%,*}" 120 "${TOOL_JAVA[@]}" dev.spate.bench.BenchClient create-topic \
      --bootstrap "$BOOTSTRAP" --topic "$1" --partitions "$2" --timeout-ms 90000
    return
  fi
  local t
  for t in ${1//,/ }; do
    run_tool "create-$t" 120 "${TOOL_JAVA[@]}" org.apache.kafka.tools.TopicCommand \
      --bootstrap-server "$BOOTSTRAP" "${CLIENT_CONF_ARGS[@]}" \
      --create --if-not-exists --topic "$t" --partitions "$2" --replication-factor 1 || return
  done
}

fail_reason() { # RC -> short text for the table, with a hint from the tool output ($LAST_OUT)
  local rc=$1 hint=""
  if [ -n "${LAST_OUT:-}" ] && [ -f "$LAST_OUT" ]; then
    hint=$(grep -E -o '(does not support [A-Z_]+|[A-Za-z]+(Exception|Error): .*)' "$LAST_OUT" | head -n 1 | cut -c1-80 || true)
    hint=${hint//|/\\|}
  fi
  case "$rc" in
    124|137) echo "FAILED (deadline${hint:+: $hint})" ;;
    [0-9]*) echo "FAILED (exit $rc${hint:+: $hint})" ;;
    *) echo "FAILED ($rc${hint:+: $hint})" ;;
  esac
}

# produce TEST_LABEL TOPIC ACKS COUNT THROUGHPUT
produce() {
  local label=$1 topic=$2 acks=$3 count=$4 tput=$5 rc=0
  log "  $label: $count x ${RECORD_SIZE} B, acks=$acks, throughput=$tput"
  # shellcheck disable=SC2086  # PRODUCER_PROPS is a list of k=v words
  run_tool "$topic" "$TOOL_DEADLINE" "${TOOL_JAVA[@]}" org.apache.kafka.tools.ProducerPerformance \
    --topic "$topic" --num-records "$count" --record-size "$RECORD_SIZE" --throughput "$tput" \
    --bootstrap-server "$BOOTSTRAP" --reporting-interval 5000 "${CLIENT_CONF_ARGS[@]}" \
    --command-property acks="$acks" client.id=spate-bench ${PRODUCER_PROPS:-} || rc=$?
  local peak; peak=$(kb_to_mb "$(peak_between "$RSS_FILE" "$TEST_T0" "$TEST_T1")")
  # final summary line, e.g.
  # 50000 records sent, 12540.7 records/sec (12.25 MB/sec), 1619.12 ms avg latency, 2212.00 ms max
  # latency, 1625 ms 50th, 2152 ms 95th, 2189 ms 99th, 2211 ms 99.9th.
  local line
  line=$(grep -E '^[0-9]+ records sent, .* 99\.9th\.$' "$LAST_OUT" | tail -n 1 || true)
  if [ "$rc" != 0 ] || [ -z "$line" ]; then
    [ "$rc" != 0 ] || rc="no summary"
    add_row "$CUR_BROKER" "$label" "$(fail_reason "$rc")" "-" "-" "-" "$IDLE_MB" "$peak"
    return 0
  fi
  local sent rps mbs p50 p99
  read -r sent rps mbs p50 p99 < <(echo "$line" | awk '{
      gsub(/[(),]/, " ");
      for (i = 1; i <= NF; i++) {
        if ($(i+1) == "records" && $(i+2) == "sent") sent = $i;
        if ($(i+1) == "records/sec") rps = $i;
        if ($(i+1) == "MB/sec") mbs = $i;
        if ($(i+1) == "ms" && $(i+2) == "50th") p50 = $i;
        if ($(i+1) == "ms" && $(i+2) == "99th") p99 = $i;
      }
      print sent, rps, mbs, p50, p99 }')
  if [ "$sent" != "$count" ]; then
    NOTES+=("$CUR_BROKER $SEC $label: only $sent of $count records acknowledged (errors in the tool output)")
    add_row "$CUR_BROKER" "$label" "FAILED ($sent/$count acked)" "-" "-" "-" "$IDLE_MB" "$peak"
    return 0
  fi
  add_row "$CUR_BROKER" "$label" "$(printf '%.1f' "$mbs")" "$(printf '%.0f' "$rps")" "$p50" "$p99" "$IDLE_MB" "$peak"
}

# consume TEST_LABEL TOPIC COUNT
consume() {
  local label=$1 topic=$2 count=$3 rc=0
  log "  $label: $count records from $topic (assign + seekToBeginning, no group)"
  run_tool "consume-$topic" "$TOOL_DEADLINE" "${TOOL_JAVA[@]}" dev.spate.bench.BenchClient consume \
    --bootstrap "$BOOTSTRAP" --topic "$topic" --records "$count" "${CLIENT_PROP_ARGS[@]}" \
    --timeout-ms $(( (TOOL_DEADLINE - 20) * 1000 )) || rc=$?
  local peak; peak=$(kb_to_mb "$(peak_between "$RSS_FILE" "$TEST_T0" "$TEST_T1")")
  local line; line=$(grep '^RESULT ' "$LAST_OUT" | tail -n 1 || true)
  if [ "$rc" != 0 ] || [ -z "$line" ]; then
    [ "$rc" != 0 ] || rc="no RESULT"
    add_row "$CUR_BROKER" "$label" "$(fail_reason "$rc")" "-" "-" "-" "$IDLE_MB" "$peak"
    return 0
  fi
  local rps mbs
  rps=$(echo "$line" | sed -n 's/.* records_per_sec=\([0-9.]*\).*/\1/p')
  mbs=$(echo "$line" | sed -n 's/.* mb_per_sec=\([0-9.]*\).*/\1/p')
  add_row "$CUR_BROKER" "$label" "$(printf '%.1f' "$mbs")" "$(printf '%.0f' "$rps")" "-" "-" "$IDLE_MB" "$peak"
}

# consume_group TEST_LABEL TOPIC COUNT : Kafka's ConsumerPerformance (needs consumer groups)
consume_group() {
  local label=$1 topic=$2 count=$3 rc=0
  log "  $label: $count records from $topic (ConsumerPerformance, consumer group)"
  run_tool "cperf-$topic" "$TOOL_DEADLINE" "${TOOL_JAVA[@]}" org.apache.kafka.tools.ConsumerPerformance \
    --bootstrap-server "$BOOTSTRAP" --topic "$topic" --num-records "$count" "${CLIENT_CONF_ARGS[@]}" \
    --group "spate-bench-$RANDOM" --timeout 30000 || rc=$?
  local peak; peak=$(kb_to_mb "$(peak_between "$RSS_FILE" "$TEST_T0" "$TEST_T1")")
  # start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, ...
  local line; line=$(grep -E '^[0-9]{4}-[0-9]{2}-[0-9]{2} ' "$LAST_OUT" | tail -n 1 || true)
  local n; n=$(echo "$line" | awk -F', ' '{print $5}')
  if [ "$rc" != 0 ] || [ -z "$line" ] || [ "$n" != "$count" ]; then
    [ "$rc" != 0 ] || rc="got ${n:-0}/$count"
    add_row "$CUR_BROKER" "$label" "$(fail_reason "$rc")" "-" "-" "-" "$IDLE_MB" "$peak"
    return 0
  fi
  # fetch.MB.sec / fetch.nMsg.sec (columns 9, 10) exclude the group join/rebalance time
  # (which on Kafka includes creating __consumer_offsets on first use).
  local mbs rps
  mbs=$(echo "$line" | awk -F', ' '{print $9}'); rps=$(echo "$line" | awk -F', ' '{print $10}')
  add_row "$CUR_BROKER" "$label" "$(printf '%.1f' "$mbs")" "$(printf '%.0f' "$rps")" "-" "-" "$IDLE_MB" "$peak"
}

declare -A HWM_MB IDLE_OF ANON_MB FILE_MB

# broker_dead: true (and records why, once) if the broker process has exited.
broker_dead() {
  kill -0 "$BROKER_PID" 2>/dev/null && return 1
  if [ -z "$BROKER_DIED" ]; then
    local rc=0; wait "$BROKER_PID" 2>/dev/null || rc=$?
    BROKER_DIED="exited with code $rc"
    log "  broker $BROKER_DIED; log tail:"; tail -n 20 "$BROKER_LOG" | sed 's/^/      /' >&2
    NOTES+=("$CUR_BROKER $SEC: broker $BROKER_DIED during the run; last log line: \`$(tail -n 1 "$BROKER_LOG" | cut -c1-200)\`")
  fi
  return 0
}

# step FUNC LABEL ARGS... : pause, then run the test unless the broker has died.
step() {
  local fn=$1 label=$2; shift 2
  TEST_WALL_S="-"; TEST_CPU_S="-"; TEST_CPU_PCT="-"
  sleep "$PAUSE"
  if broker_dead; then
    add_row "$CUR_BROKER" "$label" "FAILED (broker $BROKER_DIED)" "-" "-" "-" "$IDLE_MB" "-"
    return 0
  fi
  "$fn" "$label" "$@"
}

# bench_broker BROKER: one broker run in the security mode of the last security_setup.
bench_broker() {
  local broker=$1 run="$1 $SEC"
  CUR_BROKER=$broker
  RUN_ID=$broker-${SEC,,}
  BROKER_DIED=""
  WAIT_FAIL=""
  log "=== $broker, $SEC"
  if [ "$broker" = spate ]; then
    if [ ! -x "$SPATE_BIN" ]; then
      log "spate binary not found at $SPATE_BIN, skipping"
      NOTES+=("spate skipped: no executable at $SPATE_BIN (build it with cargo build --release -p spate-broker)")
      add_row spate "all" "SKIPPED (no binary)" "-" "-" "-" "-" "-"
      return 0
    fi
    # shellcheck disable=SC2086  # SPATE_EXTRA_ARGS is a list of arguments
    start_broker "$RUN_ID" "$SPATE_BIN" ${SPATE_EXTRA_ARGS:-}
  else
    start_broker "$RUN_ID" "$KAFKA_SH"
  fi
  log "  started pid $BROKER_PID, waiting for $BOOTSTRAP"
  if ! wait_port "${BOOTSTRAP##*:}" "$BROKER_PID"; then
    log "  $broker $WAIT_FAIL; log tail:"
    tail -n 20 "$BROKER_LOG" | sed 's/^/      /' >&2
    NOTES+=("$run: broker $WAIT_FAIL; last log line: \`$(tail -n 1 "$BROKER_LOG" | cut -c1-200)\`")
    add_row "$broker" "startup" "FAILED ($WAIT_FAIL)" "-" "-" "-" "-" "-"
    stop_broker
    return 0
  fi
  RSS_FILE=$WORK/$RUN_ID-rss.txt
  start_sampler "$BROKER_PID" "$RSS_FILE"
  sleep "$IDLE_SETTLE"
  IDLE_MB=$(kb_to_mb "$(rss_kb "$BROKER_PID" VmRSS)")
  IDLE_OF[$run]=$IDLE_MB
  log "  idle RSS ${IDLE_MB} MB"

  # Warm-up (not reported): JIT for Kafka, page cache / allocator for both.
  if ! broker_dead && create_topic bench-warmup 1; then
    run_tool warmup "$TOOL_DEADLINE" "${TOOL_JAVA[@]}" org.apache.kafka.tools.ProducerPerformance \
      --topic bench-warmup --num-records "$WARMUP" --record-size "$RECORD_SIZE" --throughput -1 \
      --bootstrap-server "$BOOTSTRAP" "${CLIENT_CONF_ARGS[@]}" \
      --command-property acks=1 client.id=spate-bench-warmup || true
    run_tool warmup-consume "$TOOL_DEADLINE" "${TOOL_JAVA[@]}" dev.spate.bench.BenchClient consume \
      --bootstrap "$BOOTSTRAP" --topic bench-warmup --records "$WARMUP" "${CLIENT_PROP_ARGS[@]}" \
      --timeout-ms 60000 || true
  fi

  local p
  for p in ${PARTITIONS//,/ }; do
    local sfx=""
    [ "$p" = 1 ] || sfx=", $p partitions"
    if broker_dead; then
      add_row "$broker" "tests ($p partitions)" "FAILED (broker $BROKER_DIED)" "-" "-" "-" "$IDLE_MB" "-"
      continue
    fi
    if ! create_topic "tput-acks1-p$p,tput-acksall-p$p,lat-acks1-p$p,lat-acksall-p$p" "$p"; then
      add_row "$broker" "create topics ($p partitions)" "FAILED" "-" "-" "-" "$IDLE_MB" "-"
      continue
    fi
    step produce "produce acks=1$sfx" "tput-acks1-p$p" 1 "$RECORDS" -1
    step produce "produce acks=all$sfx" "tput-acksall-p$p" all "$RECORDS" -1
    step consume "consume (assign, no group)$sfx" "tput-acks1-p$p" "$RECORDS"
    step consume_group "consume (ConsumerPerformance, group)$sfx" "tput-acksall-p$p" "$RECORDS"
    step produce "produce acks=1 @${LAT_RATE} rec/s$sfx" "lat-acks1-p$p" 1 "$LAT_RECORDS" "$LAT_RATE"
    step produce "produce acks=all @${LAT_RATE} rec/s$sfx" "lat-acksall-p$p" all "$LAT_RECORDS" "$LAT_RATE"
  done

  HWM_MB[$run]=$(kb_to_mb "$(rss_kb "$BROKER_PID" VmHWM)")
  log "  VmHWM ${HWM_MB[$run]} MB; stopping"
  stop_broker
  ANON_MB[$run]=$(kb_to_mb "$(col_max "$RSS_FILE" 3)")
  FILE_MB[$run]=$(kb_to_mb "$(col_max "$RSS_FILE" 4)")
  if [ "$KEEP" = 1 ]; then
    cp "$BROKER_LOG" "$WORK/$RUN_ID-broker.log" 2>/dev/null || true
  else
    rm -rf "${WORK:?}/$RUN_ID/data"   # free the disk (GBs in full mode) before the next broker
  fi
}

# ---------------------------------------------------------------- main
START_UTC=$(date -u +%Y-%m-%dT%H:%M:%SZ)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
if awk -v l="${LOAD_START%% *}" -v n="$(nproc)" 'BEGIN{exit !(l > n/2)}'; then
  log "WARNING: load average $LOAD_START on $(nproc) CPUs: the machine is busy, numbers will be noisy"
fi
log "mode=$MODE records=$RECORDS x ${RECORD_SIZE} B, brokers=$BROKERS, partitions=$PARTITIONS, security=$SECURITY, work=$WORK"
for b in ${BROKERS//,/ }; do
  case "$b" in kafka|spate) ;; *) die "unknown broker $b" ;; esac
done
# Security mode outermost, so each broker's runs in one mode are close together in time.
for m in ${SECURITY//,/ }; do
  security_setup "$m"
  for b in ${BROKERS//,/ }; do bench_broker "$b"; done
done

# ---------------------------------------------------------------- report
SPATE_DESC="not run"
if [[ ",$BROKERS," == *",spate,"* ]]; then
  if [ -x "$SPATE_BIN" ]; then
    SPATE_DESC="$SPATE_BIN (sha256 $(sha256sum "$SPATE_BIN" | cut -c1-12), built $(date -u -r "$SPATE_BIN" +%Y-%m-%dT%H:%MZ))"
  else
    SPATE_DESC="missing: $SPATE_BIN"
  fi
fi
GIT_REV=$(git -C "$REPO_DIR" rev-parse --short HEAD 2>/dev/null || echo "no commit")
[ -z "$(git -C "$REPO_DIR" status --porcelain 2>/dev/null)" ] || GIT_REV="$GIT_REV (dirty)"
CPU_MODEL=$(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)
MEM_GB=$(awk '/MemTotal/{printf "%.0f", $2/1024/1024}' /proc/meminfo)

SECURITY_DESC=""
for m in ${SECURITY//,/ }; do
  case "$m" in
    plaintext) d="PLAINTEXT" ;;
    ssl) d="SSL (TLS, server certificate only: EC P-256 from compat/certs.sh; clients trust ca.pem as a PEM truststore)" ;;
    sasl_ssl) d="SASL_SSL (the same TLS, then a SCRAM-SHA-512 login per connection)" ;;
  esac
  SECURITY_DESC+="${SECURITY_DESC:+; }$d"
done

REPORT=$WORK/report.md
{
  echo "# Spate vs Apache Kafka — single broker benchmark ($MODE mode)"
  echo
  echo "- started: $START_UTC; repo: $GIT_REV"
  echo "- load average (1/5/15 min) at start: $LOAD_START, at end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- machine: $(nproc) CPUs ($CPU_MODEL), ${MEM_GB} GiB RAM, $(uname -sr); broker and clients share the machine"
  echo "- Kafka: org.apache.kafka:kafka_2.13:$KAFKA_VERSION, single combined KRaft node, heap ${KAFKA_HEAP_OPTS:--Xmx1G -Xms1G}, default flush policy"
  echo "- Spate: $SPATE_DESC ${SPATE_EXTRA_ARGS:+(args: $SPATE_EXTRA_ARGS)}"
  echo "- client: kafka-tools/kafka-clients $KAFKA_VERSION (ProducerPerformance, ConsumerPerformance, bench BenchClient), $(java -version 2>&1 | head -n 1)"
  echo "- workload: ${RECORD_SIZE}-byte records, replication factor 1, partitions: $PARTITIONS;"\
       "throughput tests $RECORDS records (unthrottled), latency tests $LAT_RECORDS records at $LAT_RATE rec/s;"\
       "warm-up $WARMUP records per broker run (not reported); producer props: client defaults + acks=1|all${PRODUCER_PROPS:+ + $PRODUCER_PROPS}"
  echo "- MB = 2^20 bytes. p50/p99: ProducerPerformance send→ack latency. RSS idle: VmRSS ${IDLE_SETTLE}s after the port opened;"\
       "RSS peak: max VmRSS (sampled every 100 ms) during that test."
  echo "- security (one fresh broker per mode, one client listener): $SECURITY_DESC"
  echo
  echo "| broker | security | test | MB/s | records/s | p50 ms | p99 ms | RSS idle MB | RSS peak MB |"
  echo "|---|---|---|---:|---:|---:|---:|---:|---:|"
  for r in "${ROWS[@]}"; do echo "$r"; done
  echo
  if [ "${#COLUMNS[@]}" -gt 1 ] && [[ $SECURITY == *,* ]]; then
    echo "Side by side: MB/s, and in parentheses the p99 ms of the produce tests:"
    echo
    line="| test |"; sep="|---|"
    for c in "${COLUMNS[@]}"; do line+=" $c |"; sep+="---:|"; done
    echo "$line"; echo "$sep"
    for t in "${TESTS[@]}"; do
      line="| $t |"
      for c in "${COLUMNS[@]}"; do line+=" ${CELL[$c|$t]:--} |"; done
      echo "$line"
    done
    echo
  fi
  echo "Broker CPU per test (utime+stime from /proc/<pid>/stat while the tool ran; wall = whole tool run incl. client JVM start; 200% = both cores):"
  echo
  echo "| broker | security | test | tool wall s | broker CPU s | broker CPU % |"
  echo "|---|---|---|---:|---:|---:|"
  for r in "${CPU_ROWS[@]}"; do echo "$r"; done
  echo
  for b in "${COLUMNS[@]}"; do
    [ -n "${HWM_MB[$b]:-}" ] || continue
    echo "- $b: RSS idle ${IDLE_OF[$b]} MB; VmHWM (peak RSS over the whole run incl. warm-up) ${HWM_MB[$b]} MB;"\
         "largest RssAnon sample ${ANON_MB[$b]} MB, largest RssFile sample (mapped files) ${FILE_MB[$b]} MB"
  done
  for n in "${NOTES[@]}"; do echo "- note: $n"; done
} >"$REPORT"

mkdir -p "$BENCH_DIR/results"
base="$BENCH_DIR/results/$(date -u +%Y-%m-%d)$( [ "$MODE" = quick ] && echo -quick || true)"
dest="$base.md"; i=2
while [ -e "$dest" ]; do dest="$base-$i.md"; i=$((i + 1)); done
cp "$REPORT" "$dest"
echo
cat "$REPORT"
echo
log "written to ${dest#"$REPO_DIR"/}"
