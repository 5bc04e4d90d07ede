#!/usr/bin/env bash
# Apache Kafka for reference and benchmark runs: the one way the compat suites and the benchmarks
# start Kafka, and the one place its version is pinned.
#
#   scripts/apache-kafka.sh --listen HOST:PORT --data-dir DIR [--node-id N] [--set KEY=VALUE ...]
#                           [--add-scram 'MECHANISM=[name=..,password=..]' ...]
#       A combined KRaft node (broker + controller) behind spate-broker's command line, so that
#       SPATE_BROKER_BIN=<this script> runs a compat suite against real Kafka. Alone, the node is
#       a quorum of one, on a controller port picked on the first start and kept in DIR. With
#       --set controller.quorum.voters=ID@HOST:PORT,... it is one node of that cluster and
#       listens for the quorum on its own entry; every node gets the same cluster id. --set
#       lines go into server.properties as given (Kafka ignores keys it does not know), except
#       that the CONTROLLER listener is added to `listeners` and its protocol map. The first
#       start formats DIR (with each --add-scram credential, as `kafka-storage format
#       --add-scram`); later starts recover from it. Spate needs no JAAS configuration, Kafka
#       does: each SASL_PLAINTEXT or SASL_SSL listener gets one for SCRAM-SHA-256/512 and one
#       for PLAIN whose users are the --add-scram ones (Kafka checks PLAIN against JAAS, not
#       against SCRAM credentials); a --set of the same key overrides it. The JVM replaces this
#       script (same pid: signals, RSS and CPU time are Kafka's); SIGTERM or SIGINT stop Kafka
#       cleanly and exit 0, as spate-broker does.
#   scripts/apache-kafka.sh classpath   the jars as a `java -cp` value: broker, kafka-tools, clients
#   scripts/apache-kafka.sh version     the Kafka version
#   scripts/apache-kafka.sh fetch       fetch the jars now (the other modes do it on first use)
#
# Jars come from Maven Central (mvn dependency:copy-dependencies) into
# $SPATE_CACHE/apache-kafka/<version>-<hash of the dependency list>/, SPATE_CACHE defaulting to
# $HOME/.cache/spate; a missing or half-written cache is fetched again. Needs java 17+, javac and,
# for that first fetch, mvn.
#
# Environment (node mode):
#   KAFKA_HEAP_OPTS              default "-Xmx1G -Xms1G", as bin/kafka-server-start.sh
#   KAFKA_JVM_PERFORMANCE_OPTS   default the G1 flags of bin/kafka-run-class.sh
#   KAFKA_LOG_LEVEL              root log level, default INFO; the log goes to stdout
#   KAFKA_CLUSTER_ID             written by the first start's format; default a fixed id
set -euo pipefail

KAFKA_VERSION=4.4.0
LOG4J_VERSION=2.25.5

die() { echo "apache-kafka.sh: $*" >&2; exit 2; }

# The jars: the broker (kafka.Kafka, StorageTool), the tools (ProducerPerformance,
# ConsumerPerformance, MetadataQuorumCommand, ...), the Java client, and the slf4j 1.7 ->
# log4j2 binding that Kafka's own distribution ships (without it the broker logs nothing).
POM="<project xmlns=\"http://maven.apache.org/POM/4.0.0\">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.spate</groupId><artifactId>apache-kafka</artifactId><version>$KAFKA_VERSION</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-clients</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>$LOG4J_VERSION</version></dependency>
  </dependencies>
</project>"

# kafka.Kafka exits 143 on SIGTERM (the JVM's default); spate-broker exits 0. Kafka's own signal
# handler logs the signal and then calls the one installed before it, this one, whose
# System.exit(0) runs Kafka's shutdown hook (a clean shutdown) and ends the JVM with 0.
LAUNCHER='public final class GracefulKafka {
  public static void main(String[] args) {
    sun.misc.SignalHandler exitZero = signal -> System.exit(0);
    sun.misc.Signal.handle(new sun.misc.Signal("TERM"), exitZero);
    sun.misc.Signal.handle(new sun.misc.Signal("INT"), exitZero);
    kafka.Kafka.main(args);
  }
}'

# shellcheck disable=SC2016  # ${env:...} is log4j2's lookup, not the shell's
LOG4J2='status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = ${env:KAFKA_LOG_LEVEL:-INFO}
rootLogger.appenderRef.stdout.ref = STDOUT'

CACHE=${SPATE_CACHE:-$HOME/.cache/spate}/apache-kafka
KAFKA_DIR=$CACHE/$KAFKA_VERSION-$(printf '%s' "$POM$LAUNCHER$LOG4J2" | sha256sum | cut -c1-12)
CLASSPATH_VALUE="$KAFKA_DIR/lib/*"

# Fetches the jars and compiles the launcher into a temporary directory, then renames it into
# place; a lock keeps concurrent first starts from fetching twice.
fetch() {
  [ -f "$KAFKA_DIR/.complete" ] && return 0
  command -v mvn >/dev/null || die "mvn not found: it is needed once, to fetch Kafka $KAFKA_VERSION"
  mkdir -p "$CACHE"
  (
    flock 9
    [ -f "$KAFKA_DIR/.complete" ] && exit 0
    echo "apache-kafka.sh: fetching Apache Kafka $KAFKA_VERSION from Maven Central into $KAFKA_DIR" >&2
    tmp=$(mktemp -d "$CACHE/.tmp.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    printf '%s\n' "$POM" >"$tmp/pom.xml"
    printf '%s\n' "$LAUNCHER" >"$tmp/GracefulKafka.java"
    printf '%s\n' "$LOG4J2" >"$tmp/log4j2.properties"
    mvn -B -q -Dstyle.color=never -f "$tmp/pom.xml" dependency:copy-dependencies -DincludeScope=runtime \
      -DoutputDirectory="$tmp/lib" >&2 || die "mvn dependency:copy-dependencies failed"
    javac -nowarn -XDignore.symbol.file -cp "$tmp/lib/*" -d "$tmp/classes" "$tmp/GracefulKafka.java" >&2 \
      || die "javac failed"
    touch "$tmp/.complete"
    rm -rf "$KAFKA_DIR"
    mv "$tmp" "$KAFKA_DIR"
    trap - EXIT
  ) 9>"$CACHE/.lock"
}

# A port below the kernel's ephemeral range (so no client connection holds it) that nothing
# on 127.0.0.1 listens on.
free_port() {
  local lo p
  lo=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
  for _ in $(seq 1 200); do
    if [ "$lo" -gt 12000 ]; then p=$((10000 + RANDOM % (lo - 10000))); else p=$((61000 + RANDOM % 4000)); fi
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return 0; }
  done
  die "no free port for the controller listener"
}

# JAAS lines for every SASL listener of the protocol map (NAME:PROTOCOL,...): SCRAM logins, and
# PLAIN with the users of the --add-scram arguments that follow the map.
jaas_settings() {
  local protocols=$1 entry name plain_users="" arg user password
  shift
  for arg in "$@"; do
    [ "$arg" = --add-scram ] && continue
    user=$(sed -n 's/.*[[,]name=\([^],]*\).*/\1/p' <<<"$arg")
    password=$(sed -n 's/.*[[,]password=\([^],]*\).*/\1/p' <<<"$arg")
    [ -n "$user" ] && [[ $plain_users != *" user_$user="* ]] && plain_users+=" user_$user=\"$password\""
  done
  for entry in ${protocols//,/ }; do
    [[ ${entry#*:} == SASL_* ]] || continue
    name=$(tr '[:upper:]' '[:lower:]' <<<"${entry%%:*}")
    echo "listener.name.$name.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;"
    echo "listener.name.$name.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;"
    echo "listener.name.$name.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required$plain_users;"
  done
}

run_node() {
  local listeners="" data="" node_id=1 voters="" protocols="" advertised="" ctrl="" kv
  local -a settings=() scrams=()
  while [ $# -gt 0 ]; do
    [ $# -ge 2 ] || die "$1 needs a value"
    case "$1" in
      --listen) listeners=$2 ;;
      --data-dir) data=$2 ;;
      --node-id) node_id=$2 ;;
      --add-scram) scrams+=(--add-scram "$2") ;;
      --set)
        kv=$2
        [[ $kv == *=* ]] || die "--set expects KEY=VALUE, got '$kv'"
        case "$kv" in
          node.id=*) node_id=${kv#*=} ;;
          controller.quorum.voters=*) voters=${kv#*=} ;;
          listeners=*) [ -n "$listeners" ] || listeners=${kv#*=} ;;
          listener.security.protocol.map=*) protocols=${kv#*=} ;;
          advertised.listeners=*) advertised=${kv#*=} ;;
          *) settings+=("$kv") ;;
        esac ;;
      *) die "unknown argument $1 (usage: see the top of $0)" ;;
    esac
    shift 2
  done
  [ -n "$data" ] || die "--data-dir is required"
  [ -n "$listeners" ] || listeners=127.0.0.1:9092   # spate-broker's default
  [[ $listeners == *://* ]] || listeners="PLAINTEXT://$listeners"
  [ -n "$protocols" ] || protocols=PLAINTEXT:PLAINTEXT
  [ -n "$advertised" ] || advertised=$listeners
  mkdir -p "$data"
  data=$(cd "$data" && pwd)

  if [ -n "$voters" ]; then
    local v
    for v in ${voters//,/ }; do
      [ "${v%%@*}" = "$node_id" ] && ctrl=${v#*@}
    done
    [ -n "$ctrl" ] || die "node.id $node_id is not one of controller.quorum.voters ($voters)"
  else
    [ -s "$data/controller.port" ] || free_port >"$data/controller.port"
    ctrl=127.0.0.1:$(cat "$data/controller.port")
    voters="$node_id@$ctrl"
  fi
  # Kafka's internal topics want 3 replicas (2 in sync for transactions); a smaller cluster
  # gets as many as it has nodes.
  local nodes rf
  nodes=$(($(tr -cd , <<<"$voters" | wc -c) + 1))
  rf=$((nodes < 3 ? nodes : 3))
  local isr=$((rf < 2 ? rf : 2))

  fetch
  local props=$data/server.properties
  {
    echo "# Written by scripts/apache-kafka.sh on every start."
    echo "process.roles=broker,controller"
    echo "node.id=$node_id"
    echo "controller.quorum.voters=$voters"
    echo "controller.listener.names=CONTROLLER"
    echo "listeners=$listeners,CONTROLLER://$ctrl"
    echo "advertised.listeners=$advertised"
    echo "listener.security.protocol.map=$protocols,CONTROLLER:PLAINTEXT"
    echo "log.dirs=$data/kafka-logs"
    echo "offsets.topic.replication.factor=$rf"
    echo "transaction.state.log.replication.factor=$rf"
    echo "transaction.state.log.min.isr=$isr"
    echo "share.coordinator.state.topic.replication.factor=$rf"
    echo "share.coordinator.state.topic.min.isr=$isr"
    echo "group.initial.rebalance.delay.ms=0"
    jaas_settings "$protocols" "${scrams[@]}"
    for kv in "${settings[@]}"; do echo "$kv"; done
  } >"$props"

  local log4j="-Dlog4j2.configurationFile=$KAFKA_DIR/log4j2.properties"
  if [ ! -f "$data/kafka-logs/meta.properties" ]; then
    KAFKA_LOG_LEVEL=WARN java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 "$log4j" \
      -cp "$CLASSPATH_VALUE" kafka.tools.StorageTool format \
      -t "${KAFKA_CLUSTER_ID:-MkU3OEVBNTcwNTJENDM2Qg}" -c "$props" "${scrams[@]}" >&2
  fi
  # shellcheck disable=SC2086  # the *_OPTS are lists of flags, as in Kafka's own scripts
  exec java ${KAFKA_HEAP_OPTS:--Xmx1G -Xms1G} \
    ${KAFKA_JVM_PERFORMANCE_OPTS:--server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -XX:MaxInlineLevel=15 -Djava.awt.headless=true} \
    "$log4j" -cp "$KAFKA_DIR/classes:$CLASSPATH_VALUE" GracefulKafka "$props"
}

case "${1:-}" in
  classpath) fetch; echo "$CLASSPATH_VALUE" ;;
  version) echo "$KAFKA_VERSION" ;;
  fetch) fetch ;;
  -h|--help|"") sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' ;;
  *) run_node "$@" ;;
esac
