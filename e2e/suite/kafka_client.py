#!/usr/bin/env python3
"""A real Kafka client (confluent-kafka, i.e. librdkafka) for the end-to-end suite.

    kafka_client.py produce --bootstrap HOST:PORT --topic T --prefix P --count N [--rate R]
        acks=all, idempotent. Prints one JSON object: {"acked": [values], "failed": [..]}.
        Keeps going through broker failures (delivery timeout 120 s).
    kafka_client.py consume --bootstrap HOST:PORT --topic T [--timeout S]
        Reads every partition from the beginning to its high watermark (no consumer group).
        Prints {"values": [values], "partitions": N}.
    Both take --config KEY=VALUE (repeatable): extra librdkafka settings, e.g. for SASL_SSL.

Exit code 0 when the command ran; the test asserts on the JSON.
"""
import argparse
import json
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition


def extra(args):
    """The --config KEY=VALUE settings as a dict."""
    return dict(kv.split("=", 1) for kv in args.config)


def produce(args):
    acked, failed = [], []

    def report(err, msg):
        value = msg.value().decode()
        if err is None:
            acked.append(value)
            if len(acked) == 1:
                print("first-ack", file=sys.stderr, flush=True)
        else:
            failed.append(f"{value}: {err}")

    p = Producer({
        **extra(args),
        "bootstrap.servers": args.bootstrap,
        "acks": "all",
        "enable.idempotence": True,
        "delivery.timeout.ms": 120000,
        "linger.ms": 5,
        "retry.backoff.ms": 200,
        "reconnect.backoff.max.ms": 1000,
        "topic.metadata.refresh.interval.ms": 1000,
        **extra(args),
    })
    interval = 1.0 / args.rate if args.rate > 0 else 0.0
    next_send = time.monotonic()
    for i in range(args.count):
        value = f"{args.prefix}-{i}"
        while True:
            try:
                p.produce(args.topic, key=str(i).encode(), value=value.encode(), on_delivery=report)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
        if interval:
            next_send += interval
            # poll() returns early on any delivery report: keep waiting out the interval.
            while (delay := next_send - time.monotonic()) > 0:
                p.poll(delay)
    remaining = p.flush(150)
    json.dump({"acked": acked, "failed": failed, "unflushed": remaining}, sys.stdout)
    print()


def consume(args):
    c = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": "spate-e2e-reader",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": True,
        **extra(args),
    })
    deadline = time.monotonic() + args.timeout
    md = c.list_topics(args.topic, timeout=30)
    tmd = md.topics.get(args.topic)
    if tmd is None or tmd.error is not None:
        raise SystemExit(f"topic {args.topic}: {tmd.error if tmd else 'missing'}")
    partitions = sorted(tmd.partitions)
    # Read up to each partition's high watermark as of now.
    high = {}
    for p in partitions:
        while True:
            try:
                _, hi = c.get_watermark_offsets(TopicPartition(args.topic, p), timeout=10)
                high[p] = hi
                break
            except KafkaException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
    todo = {p for p in partitions if high[p] > 0}
    c.assign([TopicPartition(args.topic, p, 0) for p in todo])
    values = []
    while todo and time.monotonic() < deadline:
        msg = c.poll(1.0)
        if msg is None:
            continue
        if msg.error():
            continue
        values.append(msg.value().decode())
        if msg.offset() + 1 >= high[msg.partition()]:
            todo.discard(msg.partition())
    c.close()
    json.dump({"values": values, "partitions": len(partitions),
               "unfinished": sorted(todo)}, sys.stdout)
    print()


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    pp = sub.add_parser("produce")
    pp.add_argument("--bootstrap", required=True)
    pp.add_argument("--topic", required=True)
    pp.add_argument("--prefix", required=True)
    pp.add_argument("--count", type=int, required=True)
    pp.add_argument("--rate", type=float, default=0.0, help="records per second; 0 = as fast as possible")
    cp = sub.add_parser("consume")
    cp.add_argument("--bootstrap", required=True)
    cp.add_argument("--topic", required=True)
    cp.add_argument("--timeout", type=float, default=60.0)
    for p in (pp, cp):
        p.add_argument("--config", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()
    {"produce": produce, "consume": consume}[args.cmd](args)


if __name__ == "__main__":
    main()
