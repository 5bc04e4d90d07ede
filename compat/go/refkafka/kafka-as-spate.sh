#!/bin/bash
# Optional: run Apache Kafka 3.9.1 (KRaft, single node) behind spate-broker's
# CLI, to check that the compat tests encode real Kafka semantics:
#
#   SPATE_BROKER_BIN=$PWD/refkafka/kafka-as-spate.sh go test ./...        (compat/go)
#   SPATE_BROKER_BIN=$PWD/../go/refkafka/kafka-as-spate.sh npm test       (compat/js)
#
# Needs java 17 and mvn; jars come from Maven Central on first use into
# $REFKAFKA_HOME (default ~/.cache/spate-refkafka). Not used by CI.
# Args: --listen HOST:PORT --data-dir DIR [--set key=value ...]
set -e
LISTEN= DATA= SETS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --listen) LISTEN=$2; shift 2;;
    --data-dir) DATA=$2; shift 2;;
    --set) SETS+=("$2"); shift 2;;
    *) echo "unknown arg $1" >&2; exit 2;;
  esac
done
R=${REFKAFKA_HOME:-$HOME/.cache/spate-refkafka}
if [ ! -f "$R/libs/kafka_2.13-3.9.1.jar" ]; then
  mkdir -p "$R"
  cat > "$R/pom.xml" <<'POM'
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local</groupId><artifactId>refkafka</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>3.9.1</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-reload4j</artifactId><version>1.7.36</version></dependency>
  </dependencies>
</project>
POM
  (cd "$R" && mvn -q -B dependency:copy-dependencies -DoutputDirectory="$R/libs" >&2)
fi
cat > "$R/log4j.properties" <<'L4J'
log4j.rootLogger=WARN, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
L4J
mkdir -p "$DATA"
if [ ! -f "$DATA/ctrl.port" ]; then
  python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])' > "$DATA/ctrl.port"
fi
CP_PORT=$(cat "$DATA/ctrl.port")
P="$DATA/server.properties"
cat > "$P" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CP_PORT
listeners=PLAINTEXT://$LISTEN,CONTROLLER://127.0.0.1:$CP_PORT
advertised.listeners=PLAINTEXT://$LISTEN
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$DATA/logs
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
PROPS
for s in "${SETS[@]}"; do echo "$s" >> "$P"; done
JOPTS="-Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Dlog4j.configuration=file:$R/log4j.properties"
if [ ! -f "$DATA/logs/meta.properties" ]; then
  java $JOPTS -cp "$R/libs/*" kafka.tools.StorageTool format -t MkU3OEVBNTcwNTJENDM2Qg -c "$P" >&2
fi
java $JOPTS -cp "$R/libs/*" kafka.Kafka "$P" &
PID=$!
# spate-broker exits 0 on SIGTERM; so does this wrapper.
trap 'kill -TERM $PID; wait $PID || true; exit 0' TERM
wait $PID
