"""Compatibility suite: kafka-python (pure Python client, 2.x) against spate-broker.

No consumer groups: KafkaConsumer(group_id=None) + assign() + explicit seeks.
Set SPATE_CLIENT_DEBUG=1 to get kafka-python's DEBUG protocol logs (shown on failure).
"""

from __future__ import annotations

import logging
import os
import time

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka import errors as Errors
from kafka.admin import ConfigResource, ConfigResourceType, NewPartitions, NewTopic

from compat_util import Dataset, kafka_partition, unique_topic, wait_until
from compat_util import make_dataset as _make_dataset


def make_dataset(n: int = 200):
    # kafka-python's producer refuses null header values (asserts bytes)
    return _make_dataset(n, null_headers=False)

if os.environ.get("SPATE_CLIENT_DEBUG"):
    logging.getLogger("kafka").setLevel(logging.DEBUG)

TIMEOUT_MS = 15000


# ------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------

def common(broker) -> dict:
    return dict(bootstrap_servers=broker.bootstrap, request_timeout_ms=TIMEOUT_MS,
                reconnect_backoff_ms=50, reconnect_backoff_max_ms=500)


def admin(broker) -> KafkaAdminClient:
    a = KafkaAdminClient(**common(broker))
    a._spate_broker = broker
    return a


def create_topic(a: KafkaAdminClient, name: str, partitions: int = 3, configs=None):
    a.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1,
                              topic_configs=configs or {})], timeout_ms=TIMEOUT_MS)
    wait_for_partitions(a._spate_broker, name, partitions)


def wait_for_partitions(broker, name: str, partitions: int):
    """Wait until the plain client Metadata path (not the admin one) shows the partitions."""
    c = consumer(broker)
    try:
        def ready():
            c._client.cluster.request_update()
            ps = c.partitions_for_topic(name)
            if ps != set(range(partitions)):
                return False
            return all(c._client.cluster.leader_for_partition(TopicPartition(name, p)) is not None
                       and c._client.cluster.leader_for_partition(TopicPartition(name, p)) >= 0
                       for p in ps)
        wait_until(ready, 20, f"metadata for {name} with {partitions} led partitions")
    finally:
        c.close()


def topic_names(broker) -> set[str]:
    c = consumer(broker)
    try:
        return c.topics()
    finally:
        c.close()


def producer(broker, **kw) -> KafkaProducer:
    cfg = dict(acks="all", linger_ms=5, max_block_ms=TIMEOUT_MS, delivery_timeout_ms=30000)
    cfg.update(common(broker))
    cfg.update(kw)
    return KafkaProducer(**cfg)


def produce(p: KafkaProducer, topic: str, ds: Dataset, partition: int | None = None):
    futs = []
    for rec in ds.records:
        futs.append((rec, p.send(topic, key=rec.key, value=rec.value, headers=rec.headers,
                                 timestamp_ms=rec.timestamp, partition=partition)))
    p.flush(timeout=30)
    for rec, f in futs:
        md = f.get(timeout=30)
        rec.partition, rec.offset = md.partition, md.offset


def consumer(broker, **kw) -> KafkaConsumer:
    cfg = dict(group_id=None, enable_auto_commit=False, auto_offset_reset="none",
               fetch_max_wait_ms=100, consumer_timeout_ms=1000)
    cfg.update(common(broker))
    cfg.update(kw)
    return KafkaConsumer(**cfg)


def read(c: KafkaConsumer, topic: str, starts: dict[int, int | str], ends: dict[int, int],
         timeout: float = 30) -> dict[int, list]:
    """assign() + seek each partition to starts[p] ("earliest" or an offset), read to ends[p]."""
    tps = {p: TopicPartition(topic, p) for p in starts}
    c.assign(list(tps.values()))
    for p, off in starts.items():
        if off == "earliest":
            c.seek_to_beginning(tps[p])
        else:
            c.seek(tps[p], off)
    out: dict[int, list] = {p: [] for p in starts}
    done = {p for p in starts if ends[p] <= 0}
    deadline = time.monotonic() + timeout
    while len(done) < len(starts):
        if time.monotonic() > deadline:
            got = {p: (len(v), v[-1].offset if v else None) for p, v in out.items()}
            raise AssertionError(f"timed out reading {topic}: {got}, wanted ends {ends}")
        for tp, recs in c.poll(timeout_ms=500).items():
            out[tp.partition].extend(recs)
            if recs and recs[-1].offset >= ends[tp.partition] - 1:
                done.add(tp.partition)
        for p in starts:
            if p not in done and c.position(tps[p]) >= ends[p]:
                done.add(p)
    return out


def end_offsets(c: KafkaConsumer, topic: str, partitions) -> dict[int, int]:
    return {tp.partition: o for tp, o in
            c.end_offsets([TopicPartition(topic, p) for p in partitions]).items()}


def begin_offsets(c: KafkaConsumer, topic: str, partitions) -> dict[int, int]:
    return {tp.partition: o for tp, o in
            c.beginning_offsets([TopicPartition(topic, p) for p in partitions]).items()}


def read_all(c, topic, partitions, timeout=30):
    ends = end_offsets(c, topic, partitions)
    return read(c, topic, {p: "earliest" for p in partitions}, ends, timeout)


def snapshot(msgs):
    return {p: [(m.offset, m.key, m.value, list(m.headers or []), m.timestamp,
                 m.timestamp_type) for m in ms] for p, ms in msgs.items()}


def assert_matches(ds: Dataset, got: dict[int, list]):
    by_p = ds.by_partition()
    assert sorted(by_p) == sorted(p for p, v in got.items() if v)
    for p, recs in by_p.items():
        msgs = got[p]
        assert len(msgs) == len(recs), f"partition {p}: read {len(msgs)}, produced {len(recs)}"
        for rec, m in zip(recs, msgs):
            where = f"partition {p} offset {m.offset}"
            assert m.offset == rec.offset, where
            assert m.key == rec.key, where
            assert m.value == rec.value, where
            assert list(m.headers or []) == rec.headers, where
            assert m.timestamp == rec.timestamp and m.timestamp_type == 0, where
        offs = [m.offset for m in msgs]
        assert offs == list(range(offs[0], offs[0] + len(offs))), f"p{p} offsets not dense"


def produce_and_read(broker, topic, n=200, **pkw):
    a = admin(broker)
    create_topic(a, topic, 3)
    ds = make_dataset(n)
    p = producer(broker, **pkw)
    try:
        produce(p, topic, ds)
    finally:
        p.close(timeout=5)
    c = consumer(broker)
    try:
        got = read_all(c, topic, range(3))
    finally:
        c.close()
    return a, ds, got


def describe(a: KafkaAdminClient, topic: str) -> dict[str, tuple]:
    resps = a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    out = {}
    for resp in resps:
        for res in resp.resources:
            err, msg, rtype, rname, entries = res[:5]
            assert err == 0, f"DescribeConfigs error {err}: {msg}"
            assert rname == topic
            for e in entries:
                out[e[0]] = e
    return out


# ------------------------------------------------------------------------------------------
# tests
# ------------------------------------------------------------------------------------------

def test_api_versions_and_metadata(broker):
    c = consumer(broker)
    try:
        assert c.config["api_version"] >= (2, 1), \
            f"kafka-python detected broker version {c.config['api_version']}"
        assert isinstance(c.topics(), set)
    finally:
        c.close()
    a = admin(broker)
    cl = a.describe_cluster()
    assert len(cl["brokers"]) == 1
    b = cl["brokers"][0]
    assert (b["host"], b["port"]) == ("127.0.0.1", broker.port)
    assert cl["controller_id"] == b["node_id"]


def test_admin_metadata(broker):
    """KafkaAdminClient's metadata calls send Metadata v8 with include_*_authorized_operations."""
    topic = unique_topic("md")
    a = admin(broker)
    create_topic(a, topic, 3)
    ts = a.describe_topics([topic])
    assert len(ts) == 1 and ts[0]["error_code"] == 0 and ts[0]["topic"] == topic
    assert sorted(p["partition"] for p in ts[0]["partitions"]) == [0, 1, 2]
    assert topic in a.list_topics()
    missing = a.describe_topics([topic + "-missing"])
    assert missing[0]["error_code"] == Errors.UnknownTopicOrPartitionError.errno


def test_produce_consume_roundtrip(broker):
    topic = unique_topic("rt")
    a, ds, got = produce_and_read(broker, topic)
    assert_matches(ds, got)
    seen = {}
    for r in ds.records:
        assert seen.setdefault(r.key, r.partition) == r.partition
        # kafka-python's DefaultPartitioner is Java's murmur2
        assert r.partition == kafka_partition(r.key, 3)


def test_acks_1(broker):
    topic = unique_topic("a1")
    a, ds, got = produce_and_read(broker, topic, acks=1)
    assert_matches(ds, got)


def test_rewind_and_offsets_for_times(broker):
    topic = unique_topic("ts")
    a, ds, got = produce_and_read(broker, topic)
    first = snapshot(got)
    by_p = ds.by_partition()
    c = consumer(broker)
    try:
        assert snapshot(read_all(c, topic, range(3))) == first
        all_ts = sorted({r.timestamp for r in ds.records})
        for target in [all_ts[0] - 10_000, all_ts[len(all_ts) // 3],
                       all_ts[len(all_ts) // 2] + 500, all_ts[-1], all_ts[-1] + 1]:
            res = c.offsets_for_times({TopicPartition(topic, p): target for p in range(3)})
            for tp, oat in res.items():
                want = next((r for r in by_p.get(tp.partition, []) if r.timestamp >= target),
                            None)
                if want is None:
                    assert oat is None, f"p{tp.partition} ts {target}: expected None, got {oat}"
                    continue
                assert oat is not None and oat.offset == want.offset, \
                    f"p{tp.partition} ts {target}: expected {want.offset}, got {oat}"
                assert oat.timestamp == want.timestamp
                m = read(c, topic, {tp.partition: oat.offset},
                         {tp.partition: oat.offset + 1})[tp.partition][0]
                assert (m.offset, m.key, m.value, m.timestamp) == \
                       (want.offset, want.key, want.value, want.timestamp)
    finally:
        c.close()


def test_restart_reads_identical(broker):
    topic = unique_topic("restart")
    a, ds, got = produce_and_read(broker, topic)
    first = snapshot(got)
    a.close()
    broker.restart()
    a = admin(broker)
    wait_for_partitions(broker, topic, 3)
    c = consumer(broker)
    try:
        assert snapshot(read_all(c, topic, range(3))) == first
    finally:
        c.close()


def test_describe_and_alter_configs(broker):
    topic = unique_topic("cfg")
    a = admin(broker)
    create_topic(a, topic, 3, configs={"retention.ms": "86400000"})
    cfg = describe(a, topic)
    for name in ("cleanup.policy", "retention.ms", "segment.bytes", "max.message.bytes"):
        assert name in cfg, f"DescribeConfigs lacks {name}: {sorted(cfg)}"
    assert cfg["cleanup.policy"][1] == "delete"
    assert cfg["retention.ms"][1] == "86400000"

    resp = a.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                           configs={"retention.ms": "3600000"})])
    for res in resp.resources:
        assert res[0] == 0, f"AlterConfigs error {res[0]}: {res[1]}"
    wait_until(lambda: describe(a, topic)["retention.ms"][1] == "3600000", 10,
               "altered retention.ms")

    resp = a.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                           configs={"no.such.config": "1"})])
    assert resp.resources[0][0] == Errors.InvalidConfigurationError.errno, resp


def test_create_partitions(broker):
    topic = unique_topic("cp")
    a, ds, got = produce_and_read(broker, topic)
    a.create_partitions({topic: NewPartitions(total_count=5)}, timeout_ms=TIMEOUT_MS)
    wait_for_partitions(broker, topic, 5)
    with pytest.raises(Errors.InvalidPartitionsError):
        a.create_partitions({topic: NewPartitions(total_count=2)}, timeout_ms=TIMEOUT_MS)
    new = make_dataset(10)
    p = producer(broker)
    produce(p, topic, new, partition=4)
    p.close(timeout=5)
    c = consumer(broker)
    try:
        assert end_offsets(c, topic, [3, 4]) == {3: 0, 4: 10}
        got5 = read_all(c, topic, range(5))
        assert snapshot({k: got5[k] for k in range(3)}) == snapshot(got)
        assert [m.value for m in got5[4]] == [r.value for r in new.records]
    finally:
        c.close()


def test_delete_records(broker):
    topic = unique_topic("dr")
    a, ds, got = produce_and_read(broker, topic)
    c = consumer(broker)
    try:
        ends = end_offsets(c, topic, range(3))
        part = max(ends, key=ends.get)
        cut = ends[part] // 2
        res = a.delete_records({TopicPartition(topic, part): cut}, timeout_ms=TIMEOUT_MS)
        r = res[TopicPartition(topic, part)]
        assert r["low_watermark"] == cut, r
        assert begin_offsets(c, topic, [part]) == {part: cut}
        msgs = read(c, topic, {part: "earliest"}, {part: ends[part]})[part]
        assert [m.offset for m in msgs] == list(range(cut, ends[part]))
        with pytest.raises(Errors.OffsetOutOfRangeError):
            a.delete_records({TopicPartition(topic, part): ends[part] + 100},
                             timeout_ms=TIMEOUT_MS)
    finally:
        c.close()


def test_delete_topic(broker):
    topic = unique_topic("del")
    a, ds, got = produce_and_read(broker, topic)
    a.delete_topics([topic], timeout_ms=TIMEOUT_MS)
    wait_until(lambda: topic not in topic_names(broker), 15, "topic gone")
    with pytest.raises(Errors.UnknownTopicOrPartitionError):
        a.delete_topics([topic], timeout_ms=TIMEOUT_MS)


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compression_roundtrip(broker, codec):
    topic = unique_topic(f"z{codec}")
    a, ds, got = produce_and_read(broker, topic, n=300, compression_type=codec, linger_ms=50)
    assert_matches(ds, got)


@pytest.mark.parametrize("name", ["bad name", "..", "a" * 250, "bad/slash"])
def test_invalid_topic_name_rejected(broker, name):
    a = admin(broker)
    with pytest.raises(Errors.InvalidTopicError):
        a.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)],
                        timeout_ms=TIMEOUT_MS)


def test_create_existing_topic(broker):
    topic = unique_topic("dup")
    a = admin(broker)
    create_topic(a, topic, 3)
    with pytest.raises(Errors.TopicAlreadyExistsError):
        a.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)],
                        timeout_ms=TIMEOUT_MS)


def test_produce_unknown_topic_without_autocreate(broker_factory, caplog):
    b = broker_factory({"auto.create.topics.enable": "false"})
    topic = unique_topic("nope")
    p = producer(b, max_block_ms=3000)
    t0 = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="kafka"):
        with pytest.raises(Errors.KafkaTimeoutError):
            p.send(topic, value=b"x").get(timeout=10)
    assert time.monotonic() - t0 < 10, "send to an unknown topic blocked past max_block_ms"
    p.close(timeout=2)
    # kafka-python waits max_block_ms for metadata (like the Java client); what we check on the
    # broker side is that Metadata answered UNKNOWN_TOPIC_OR_PARTITION for it:
    assert f"Topic {topic} not found in cluster metadata" in caplog.text, caplog.text[-2000:]
    assert topic not in topic_names(b), "topic was auto-created"


def test_seek_into_middle_of_compressed_batch(broker):
    topic = unique_topic("mid")
    a = admin(broker)
    create_topic(a, topic, 1)
    ds = make_dataset(200)
    p = producer(broker, compression_type="gzip", linger_ms=100, batch_size=1_000_000)
    produce(p, topic, ds, partition=0)
    p.close(timeout=5)
    c = consumer(broker)
    try:
        for start in (1, 57, 199):
            got = read(c, topic, {0: start}, {0: 200})[0]
            assert [m.offset for m in got] == list(range(start, 200))
            assert got[0].value == ds.records[start].value
    finally:
        c.close()


def test_log_append_time_topic(broker):
    topic = unique_topic("lat")
    a = admin(broker)
    create_topic(a, topic, 1, configs={"message.timestamp.type": "LogAppendTime"})
    ds = make_dataset(10)
    t0 = int(time.time() * 1000)
    p = producer(broker)
    produce(p, topic, ds, partition=0)
    p.close(timeout=5)
    t1 = int(time.time() * 1000)
    c = consumer(broker)
    try:
        got = read_all(c, topic, [0])[0]
    finally:
        c.close()
    assert len(got) == 10
    for m in got:
        assert m.timestamp_type == 1, "expected LogAppendTime (timestamp_type 1)"
        assert t0 - 1000 <= m.timestamp <= t1 + 1000


def test_message_too_large(broker):
    topic = unique_topic("big")
    a = admin(broker)
    create_topic(a, topic, 1, configs={"max.message.bytes": "2000"})
    p = producer(broker, retries=0)
    with pytest.raises(Errors.MessageSizeTooLargeError):
        p.send(topic, value=b"x" * 10_000, partition=0).get(timeout=15)
    p.send(topic, value=b"small", partition=0).get(timeout=15)
    p.close(timeout=5)
