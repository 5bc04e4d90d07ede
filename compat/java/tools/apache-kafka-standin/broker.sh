#!/bin/bash
# Stand-in for spate-broker with the same CLI (--listen HOST:PORT --data-dir DIR [--set k=v ...]),
# running a real Apache Kafka 4.1.1 single-node KRaft (broker+controller) instead. Used only to check
# that the compat tests encode real Kafka behaviour:
#   mvn -q -f tools/apache-kafka-standin/pom.xml dependency:build-classpath \
#       -Dmdep.outputFile=target/cp.txt          # once, downloads kafka_2.13 and deps
#   SPATE_BROKER_BIN=$PWD/tools/apache-kafka-standin/broker.sh mvn -q -o test
# SIGTERM -> graceful shutdown, exit 0 (like spate-broker). Restart on the same --data-dir recovers.
set -e
HERE=$(cd "$(dirname "$0")" && pwd)
CPFILE="$HERE/target/cp.txt"
if [ ! -s "$CPFILE" ]; then
  echo "missing $CPFILE: run  mvn -q -f $HERE/pom.xml dependency:build-classpath -Dmdep.outputFile=target/cp.txt" >&2
  exit 2
fi
LISTEN=; DIR=; SETS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --listen) LISTEN=$2; shift 2;;
    --data-dir) DIR=$2; shift 2;;
    --set) SETS+=("$2"); shift 2;;
    *) echo "unknown argument $1" >&2; exit 2;;
  esac
done
CP=$(cat "$CPFILE")
if [ ! -f "$DIR/controller.port" ]; then
  python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])' > "$DIR/controller.port"
fi
CPORT=$(cat "$DIR/controller.port")
P="$DIR/server.properties"
cat > "$P" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CPORT
listeners=PLAINTEXT://$LISTEN,CONTROLLER://127.0.0.1:$CPORT
advertised.listeners=PLAINTEXT://$LISTEN
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$DIR/logs
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
PROPS
for s in "${SETS[@]}"; do echo "$s" >> "$P"; done
JOPTS="-Xmx512m -XX:TieredStopAtLevel=1 -Xshare:auto"
if [ ! -f "$DIR/logs/meta.properties" ]; then
  java $JOPTS -cp "$CP" kafka.tools.StorageTool format -t MkU3OEVBNTcwNTJENDM2Qk -c "$P" >&2
fi
java $JOPTS -cp "$CP" kafka.Kafka "$P" &
PID=$!
set +e
trap 'kill -TERM $PID; wait $PID; exit 0' TERM
wait $PID
