"""Compatibility suite: the `kcat` CLI (Debian package kcat, librdkafka inside) against spate-broker.

Topics are created with confluent-kafka's AdminClient (kcat cannot create topics).
Set SPATE_CLIENT_DEBUG=protocol,broker to pass `-d` to kcat.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from compat_util import kafka_partition, now_ms, unique_topic, wait_until

KCAT = shutil.which("kcat") or shutil.which("kafkacat")
pytestmark = pytest.mark.skipif(KCAT is None, reason="kcat not installed "
                                "(apt-get install -y kcat)")
CLIENT_DEBUG = os.environ.get("SPATE_CLIENT_DEBUG")
FMT = r"%k|%s|%h|%T|%p|%o\n"


def kcat(broker, *args, stdin: bytes | None = None, timeout: float = 30,
         check: bool = True) -> subprocess.CompletedProcess:
    argv = [KCAT, "-b", broker.bootstrap, "-X", "broker.address.family=v4", "-m", "10"]
    if CLIENT_DEBUG:
        argv += ["-d", CLIENT_DEBUG]
    argv += list(args)
    r = subprocess.run(argv, input=stdin, capture_output=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {r.returncode}\n"
                             f"stdout: {r.stdout[-2000:]!r}\nstderr: {r.stderr[-4000:]!r}")
    return r


def create_topic(broker, name: str, partitions: int = 3):
    a = AdminClient({"bootstrap.servers": broker.bootstrap, "broker.address.family": "v4"})
    a.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)],
                    request_timeout=15)[name].result(timeout=20)
    wait_until(lambda: len(a.list_topics(topic=name, timeout=5).topics[name].partitions)
               == partitions, 20, "topic metadata")


def produce_lines(broker, topic: str, lines: list[str], *extra: str):
    data = ("\n".join(lines) + "\n").encode()
    kcat(broker, "-P", "-t", topic, "-K", ":", "-H", "k=v", "-H", "trace=abc",
         "-X", "partitioner=murmur2_random", *extra, stdin=data)


def parse(out: bytes) -> list[dict]:
    recs = []
    for line in out.decode().splitlines():
        if not line:
            continue
        k, s, h, ts, p, o = line.split("|")
        recs.append(dict(key=k, value=s, headers=h, ts=int(ts), partition=int(p),
                         offset=int(o)))
    return recs


def consume(broker, topic: str, *offset_args: str) -> list[dict]:
    r = kcat(broker, "-C", "-t", topic, "-e", "-f", FMT, *offset_args)
    return parse(r.stdout)


def check_partitioning(recs: list[dict], partitions: int):
    for r in recs:
        assert r["partition"] == kafka_partition(r["key"].encode(), partitions), r


def test_metadata_list(broker):
    topic = unique_topic("kl")
    create_topic(broker, topic, 3)
    r = kcat(broker, "-L", "-J")
    md = json.loads(r.stdout)
    assert len(md["brokers"]) == 1
    b = md["brokers"][0]
    assert b["name"] == broker.bootstrap, md["brokers"]
    topics = {t["topic"]: t for t in md["topics"]}
    assert topic in topics
    parts = sorted(topics[topic]["partitions"], key=lambda p: p["partition"])
    assert [p["partition"] for p in parts] == [0, 1, 2]
    for p in parts:
        assert p["leader"] == b["id"]
        assert [x["id"] for x in p["replicas"]] == [b["id"]]
        assert [x["id"] for x in p["isrs"]] == [b["id"]]

    # plain text form, one topic
    txt = kcat(broker, "-L", "-t", topic).stdout.decode()
    assert "1 brokers:" in txt and f'topic "{topic}" with 3 partitions:' in txt, txt


def test_produce_consume_keyed_with_headers(broker):
    topic = unique_topic("kp")
    create_topic(broker, topic, 3)
    lines = [f"key-{i % 17}:value-{i:04d}" for i in range(200)]
    t0 = now_ms()
    produce_lines(broker, topic, lines)
    t1 = now_ms()
    recs = consume(broker, topic, "-o", "beginning")
    assert len(recs) == 200
    by_p: dict[int, list[dict]] = {}
    for r in recs:
        by_p.setdefault(r["partition"], []).append(r)
        assert r["headers"] == "k=v,trace=abc", r
        assert t0 - 1000 <= r["ts"] <= t1 + 1000, r
        assert r["key"] == "key-" + str(int(r["value"].split("-")[1]) % 17), r
    check_partitioning(recs, 3)
    produced_order = {ln.split(":")[1]: i for i, ln in enumerate(lines)}
    for p, rs in by_p.items():
        assert [r["offset"] for r in rs] == list(range(len(rs))), f"p{p} offsets"
        idx = [produced_order[r["value"]] for r in rs]
        assert idx == sorted(idx), f"p{p}: records out of production order"
        assert [r["ts"] for r in rs] == sorted(r["ts"] for r in rs)

    # one partition at a time, absolute and relative offsets
    p = max(by_p, key=lambda q: len(by_p[q]))
    one = consume(broker, topic, "-p", str(p), "-o", "beginning")
    assert one == by_p[p]
    assert consume(broker, topic, "-p", str(p), "-o", "3") == by_p[p][3:]
    assert consume(broker, topic, "-p", str(p), "-o", "-2") == by_p[p][-2:]


def test_consume_from_timestamp(broker):
    topic = unique_topic("kts")
    create_topic(broker, topic, 3)
    produce_lines(broker, topic, [f"a{i % 7}:A-{i:03d}" for i in range(60)])
    first = consume(broker, topic, "-o", "beginning")
    assert len(first) == 60
    max_a = max(r["ts"] for r in first)
    # wait for the clock to pass batch A's last timestamp (a condition, not a fixed sleep)
    wait_until(lambda: now_ms() > max_a + 1, 5, "clock to advance", interval=0.001)
    produce_lines(broker, topic, [f"b{i % 7}:B-{i:03d}" for i in range(60)])
    everything = consume(broker, topic, "-o", "beginning")
    assert len(everything) == 120
    b_recs = [r for r in everything if r["value"].startswith("B-")]
    target = min(r["ts"] for r in b_recs)
    assert target > max_a

    got = consume(broker, topic, "-o", f"s@{target}")
    want = [r for r in everything if r["ts"] >= target]
    key = lambda r: (r["partition"], r["offset"])  # noqa: E731
    assert sorted(got, key=key) == sorted(want, key=key)
    assert all(r["value"].startswith("B-") for r in got)

    # -Q: offset lookup by timestamp, per partition
    for p in range(3):
        out = kcat(broker, "-Q", "-t", f"{topic}:{p}:{target}").stdout.decode()
        want_p = [r["offset"] for r in want if r["partition"] == p]
        end_p = sum(1 for r in everything if r["partition"] == p)
        expected = min(want_p) if want_p else -1
        assert f"{topic} [{p}] offset {expected}" in out, \
            f"-Q {topic}:{p}:{target}: expected offset {expected} (end {end_p}); got {out!r}"

    # a timestamp after everything: nothing to read
    assert consume(broker, topic, "-o", f"s@{now_ms() + 60_000}") == []


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compressed_produce(broker, codec):
    topic = unique_topic(f"kz{codec}")
    create_topic(broker, topic, 1)
    lines = [f"k{i}:{'payload-' * 20}{i}" for i in range(300)]
    produce_lines(broker, topic, lines, "-X", f"compression.codec={codec}")
    recs = consume(broker, topic, "-o", "beginning")
    assert [f"{r['key']}:{r['value']}" for r in recs] == lines
    assert [r["offset"] for r in recs] == list(range(300))


def test_restart_then_consume(broker):
    topic = unique_topic("kr")
    create_topic(broker, topic, 3)
    produce_lines(broker, topic, [f"k{i % 5}:v{i}" for i in range(90)])
    before = consume(broker, topic, "-o", "beginning")
    broker.restart()
    # kcat exits on the first metadata error, so wait until the topic is served again
    deadline = time.monotonic() + 20
    while True:
        r = kcat(broker, "-C", "-t", topic, "-e", "-f", FMT, "-o", "beginning", check=False)
        if r.returncode == 0 or time.monotonic() > deadline:
            break
    assert r.returncode == 0, r.stderr[-2000:]
    key = lambda x: (x["partition"], x["offset"])  # noqa: E731
    assert sorted(parse(r.stdout), key=key) == sorted(before, key=key)
