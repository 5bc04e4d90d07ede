#!/bin/bash
# Reference oracle for compat/python: see README.md in this directory.
# Reference oracle: runs Apache Kafka (KRaft, single node) with spate-broker's CLI.
set -e
LISTEN= ; DIR= ; SETS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --listen) LISTEN=$2; shift 2;;
    --data-dir) DIR=$2; shift 2;;
    --set) SETS+=("$2"); shift 2;;
    *) echo "unknown arg $1" >&2; exit 2;;
  esac
done
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$DIR"
if [ ! -f "$DIR/ctlport" ]; then
  python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])' > "$DIR/ctlport"
fi
CTL=$(cat "$DIR/ctlport")
PROPS="$DIR/server.properties"
cat > "$PROPS" <<P
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CTL
listeners=PLAINTEXT://$LISTEN,CONTROLLER://127.0.0.1:$CTL
advertised.listeners=PLAINTEXT://$LISTEN
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$DIR/kafka-logs
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
P
for s in "${SETS[@]}"; do echo "$s" >> "$PROPS"; done
CP="$HERE/lib/*"
JOPTS="-Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Dlog4j.configuration=file:$HERE/log4j.properties"
if [ ! -f "$DIR/kafka-logs/meta.properties" ]; then
  java $JOPTS -cp "$CP" kafka.tools.StorageTool format -t Zm9vYmFyYmF6cXV4cXV1eA -c "$PROPS" >&2
fi
java $JOPTS -cp "$CP" kafka.Kafka "$PROPS" &
PID=$!
trap 'kill -TERM $PID; wait $PID || true; exit 0' TERM INT
wait $PID || exit $?
