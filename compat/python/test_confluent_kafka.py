"""Compatibility suite: confluent-kafka (librdkafka) against spate-broker.

No consumer groups: every consumer uses assign() with explicit offsets.  (librdkafka
insists on a group.id for a Consumer; it is set to a throwaway value and never used
for subscribe/commit.)

Set SPATE_CLIENT_DEBUG=protocol,broker (any librdkafka `debug` value) to get client
protocol logs on stderr; pytest shows them for failing tests.
"""

from __future__ import annotations

import logging
import os
import time
import uuid

import confluent_kafka
import pytest
from confluent_kafka import (OFFSET_BEGINNING, OFFSET_END, TIMESTAMP_CREATE_TIME, Consumer,
                             KafkaError, KafkaException, Producer, TopicPartition)
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   ConfigSource, NewPartitions, NewTopic, ResourceType)

from compat_util import (MURMUR2_VECTORS, Dataset, Rec, kafka_partition, make_dataset, murmur2,
                         unique_topic, wait_until)

CLIENT_DEBUG = os.environ.get("SPATE_CLIENT_DEBUG")
RDKAFKA_LOG = logging.getLogger("librdkafka")
OP_TIMEOUT = 15  # seconds, for admin futures and flushes


# ------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------

def conf(broker, **extra) -> dict:
    c = {
        "bootstrap.servers": broker.bootstrap,
        "broker.address.family": "v4",
        "socket.timeout.ms": 10000,
        "reconnect.backoff.ms": 50,
        "reconnect.backoff.max.ms": 500,
    }
    if CLIENT_DEBUG:
        c["debug"] = CLIENT_DEBUG  # raw librdkafka logs on stderr
    else:
        # librdkafka's own error lines (e.g. reconnect attempts of clients outliving their
        # broker) go to Python logging instead of stderr, to pytest's per-test capture
        c["logger"] = RDKAFKA_LOG
    c.update({k.replace("_", "."): v for k, v in extra.items()})
    return c


_ADMIN_BROKER: dict[int, object] = {}


def admin(broker) -> AdminClient:
    a = AdminClient(conf(broker))
    _ADMIN_BROKER[id(a)] = broker
    return a


def create_topic(a: AdminClient, name: str, partitions: int = 3, config: dict | None = None):
    fs = a.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1,
                                   config=config or {})],
                         operation_timeout=10, request_timeout=OP_TIMEOUT)
    fs[name].result(timeout=OP_TIMEOUT + 5)
    wait_for_partitions(a, name, partitions)
    # Kafka can list a leader in Metadata a moment before that leader serves the partition
    # (NOT_LEADER_OR_FOLLOWER); acks=0 records sent then are dropped. Wait for ListOffsets.
    c = Consumer(conf(_broker_of(a), **{"group.id": "compat-unused"}))
    try:
        wait_until(lambda: all(c.get_watermark_offsets(TopicPartition(name, p), timeout=5,
                                                       cached=False)
                               for p in range(partitions)),
                   20, f"ListOffsets to answer for every partition of {name}")
    finally:
        c.close()


def _broker_of(a: AdminClient):
    return _ADMIN_BROKER[id(a)]


def wait_for_partitions(a: AdminClient, name: str, partitions: int):
    def ready():
        md = a.list_topics(topic=name, timeout=5)
        t = md.topics.get(name)
        if t is None or t.error is not None or len(t.partitions) != partitions:
            return False
        return all(p.leader >= 0 and p.error is None for p in t.partitions.values())
    wait_until(ready, 20, f"metadata for {name} with {partitions} led partitions")


_LIVE_PRODUCERS: list[Producer] = []


@pytest.fixture(autouse=True)
def _close_producers():
    """Close every producer a test made: a live producer keeps refreshing metadata for its
    topics, which (with auto-create on) would re-create a deleted topic."""
    yield
    while _LIVE_PRODUCERS:
        p = _LIVE_PRODUCERS.pop()
        p.purge()
        p.close()


def producer(broker, **extra) -> Producer:
    base = {"acks": "all", "linger.ms": 5, "message.timeout.ms": 30000,
            "partitioner": "murmur2_random"}
    base.update({k.replace("_", "."): v for k, v in extra.items()})
    p = Producer(conf(broker, **base))
    _LIVE_PRODUCERS.append(p)
    return p


def close_producer(p: Producer):
    p.close()
    if p in _LIVE_PRODUCERS:
        _LIVE_PRODUCERS.remove(p)


def produce(p: Producer, topic: str, ds: Dataset, partition: int | None = None,
            flush_timeout: float = 30) -> list[KafkaError]:
    """Produce every record of ds; fills rec.partition/rec.offset from delivery reports."""
    errors: list[KafkaError] = []
    delivered = 0

    def cb_for(rec: Rec):
        def cb(err, msg):
            nonlocal delivered
            if err is not None:
                errors.append(err)
                return
            delivered += 1
            rec.partition = msg.partition()
            rec.offset = msg.offset()
        return cb

    for rec in ds.records:
        kw = dict(key=rec.key, value=rec.value, headers=rec.headers, timestamp=rec.timestamp,
                  on_delivery=cb_for(rec))
        if partition is not None:
            kw["partition"] = partition
        while True:
            try:
                p.produce(topic, **kw)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    remaining = p.flush(flush_timeout)
    assert remaining == 0, f"{remaining} messages still undelivered after {flush_timeout}s; " \
                           f"errors so far: {errors[:5]}"
    return errors


def consumer(broker, **extra) -> Consumer:
    base = {
        "group.id": "compat-unused-" + uuid.uuid4().hex[:8],
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "error",
        "enable.partition.eof": True,
        "fetch.wait.max.ms": 100,
    }
    base.update({k.replace("_", "."): v for k, v in extra.items()})
    return Consumer(conf(broker, **base))


def watermarks(c: Consumer, topic: str, partitions) -> dict[int, tuple[int, int]]:
    return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)
            for p in partitions}


def wait_serving(broker, topic: str, partitions: int):
    """After a restart: wait until metadata and ListOffsets work for every partition.

    A broker may legitimately answer retriable errors (NOT_LEADER_OR_FOLLOWER, ...) for a
    moment while it loads its logs; clients retry those, so the tests do too (with a deadline).
    """
    wait_for_partitions(admin(broker), topic, partitions)
    c = consumer(broker)
    try:
        wait_until(lambda: watermarks(c, topic, range(partitions)), 20,
                   f"ListOffsets to answer for all {partitions} partitions of {topic}")
    finally:
        c.close()


def read(c: Consumer, topic: str, starts: dict[int, int], ends: dict[int, int],
         timeout: float = 30) -> dict[int, list]:
    """assign() each partition at starts[p] and read until offset ends[p] (exclusive)."""
    c.assign([TopicPartition(topic, p, off) for p, off in starts.items()])
    out: dict[int, list] = {p: [] for p in starts}
    done = {p for p in starts if ends[p] <= 0}
    deadline = time.monotonic() + timeout
    try:
        while len(done) < len(starts):
            if time.monotonic() > deadline:
                got = {p: (len(v), v[-1].offset() if v else None) for p, v in out.items()}
                raise AssertionError(f"timed out reading {topic}: (count, last offset) per "
                                     f"partition {got}, wanted ends {ends}")
            msg = c.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    if msg.offset() >= ends[msg.partition()]:
                        done.add(msg.partition())
                    continue
                raise KafkaException(msg.error())
            p = msg.partition()
            out[p].append(msg)
            if msg.offset() >= ends[p] - 1:
                done.add(p)
    finally:
        c.unassign()
    return out


def read_all(c: Consumer, topic: str, partitions, timeout: float = 30) -> dict[int, list]:
    wm = watermarks(c, topic, partitions)
    return read(c, topic, {p: OFFSET_BEGINNING for p in partitions},
                {p: wm[p][1] for p in partitions}, timeout)


def norm_headers(h):
    return [(k, v) for k, v in (h or [])]


def snapshot(msgs: dict[int, list]) -> dict[int, list[tuple]]:
    return {p: [(m.offset(), m.key(), m.value(), norm_headers(m.headers()), m.timestamp())
                for m in ms] for p, ms in msgs.items()}


def assert_matches(ds: Dataset, got: dict[int, list], check_offsets: bool = True):
    """Everything produced is read back exactly, in per-partition order."""
    by_p = {}
    for r in ds.records:  # production order; stable sort by offset when known
        by_p.setdefault(r.partition, []).append(r)
    if check_offsets:
        for p in by_p:
            by_p[p].sort(key=lambda r: r.offset)
    assert sorted(by_p) == sorted(p for p, v in got.items() if v), "partitions with data differ"
    for p, recs in by_p.items():
        msgs = got[p]
        assert len(msgs) == len(recs), f"partition {p}: read {len(msgs)} records, " \
                                       f"produced {len(recs)}"
        prev = -1
        for rec, m in zip(recs, msgs):
            assert m.offset() > prev, f"partition {p}: offsets not increasing at {m.offset()}"
            prev = m.offset()
            where = f"partition {p} offset {m.offset()}"
            if check_offsets:
                assert m.offset() == rec.offset, f"{where}: expected acked offset {rec.offset}"
            assert m.key() == rec.key, where
            assert m.value() == rec.value, where
            assert norm_headers(m.headers()) == rec.headers, where
            assert m.timestamp() == (TIMESTAMP_CREATE_TIME, rec.timestamp), where
    # offsets are dense for a non-compacted topic
    for p, msgs in got.items():
        offs = [m.offset() for m in msgs]
        if offs:
            assert offs == list(range(offs[0], offs[0] + len(offs))), \
                f"partition {p}: offsets not contiguous: {offs[:20]}..."


def assert_key_partitioning(ds: Dataset, partitions: int):
    seen: dict[bytes, int] = {}
    for r in ds.records:
        assert seen.setdefault(r.key, r.partition) == r.partition, \
            f"key {r.key!r} landed on partitions {seen[r.key]} and {r.partition}"
        assert r.partition == kafka_partition(r.key, partitions), \
            f"key {r.key!r}: partition {r.partition}, murmur2 says " \
            f"{kafka_partition(r.key, partitions)}"


def produce_and_read(broker, topic, n=200, acks="all", **pconf):
    a = admin(broker)
    create_topic(a, topic, 3)
    ds = make_dataset(n)
    p = producer(broker, acks=acks, **pconf)
    errs = produce(p, topic, ds)
    assert errs == [], f"delivery errors: {errs[:5]}"
    close_producer(p)
    c = consumer(broker)
    try:
        if acks == "0":  # no responses: wait until the broker has appended everything
            wait_until(lambda: sum(h for _, h in watermarks(c, topic, range(3)).values()) == n,
                       15, f"{n} records appended with acks=0")
        got = read_all(c, topic, range(3))
    finally:
        c.close()
    return a, ds, got


# ------------------------------------------------------------------------------------------
# tests
# ------------------------------------------------------------------------------------------

def test_murmur2_matches_kafka_and_librdkafka():
    for key, h in MURMUR2_VECTORS.items():
        assert murmur2(key) == h
    for i in range(500):
        key = f"k{i}".encode() * (i % 5)
        for n in (1, 3, 5, 7):
            assert kafka_partition(key, n) == confluent_kafka.murmur2(key, n)


def test_metadata(broker):
    a = admin(broker)
    md = a.list_topics(timeout=10)
    assert len(md.brokers) == 1
    b = next(iter(md.brokers.values()))
    assert (b.host, b.port) == ("127.0.0.1", broker.port), "broker must advertise its listener"
    assert md.controller_id == b.id, "Metadata must name the (only) broker as controller"
    assert md.cluster_id, "Metadata v2+ must carry a cluster id"


@pytest.mark.parametrize("acks", ["all", "1", "0"])
def test_produce_consume_roundtrip(broker, acks):
    topic = unique_topic("rt")
    a, ds, got = produce_and_read(broker, topic, acks=acks)
    if acks == "0":
        # No produce response: delivery reports carry no offset; compare in production order.
        assert sum(len(v) for v in got.values()) == len(ds.records)
        assert_matches(ds, got, check_offsets=False)
    else:
        assert all(r.offset >= 0 for r in ds.records)
        assert_matches(ds, got)
    assert_key_partitioning(ds, 3)


def test_rewind_and_offsets_for_times(broker):
    topic = unique_topic("ts")
    a, ds, got = produce_and_read(broker, topic)
    first = snapshot(got)
    by_p = ds.by_partition()

    c = consumer(broker)
    try:
        # rewind to earliest: identical
        assert snapshot(read_all(c, topic, range(3))) == first

        all_ts = sorted({r.timestamp for r in ds.records})
        targets = [
            all_ts[0] - 10_000,          # before everything -> first offset
            all_ts[len(all_ts) // 3],    # exact timestamp that two records share
            all_ts[len(all_ts) // 2] + 500,  # between two timestamps
            all_ts[-1],                  # last timestamp
            all_ts[-1] + 1,              # after everything -> no offset (-1)
        ]
        for target in targets:
            res = c.offsets_for_times([TopicPartition(topic, p, target) for p in range(3)],
                                      timeout=10)
            for tp in res:
                assert tp.error is None, f"offsets_for_times({target}) p{tp.partition}: {tp.error}"
                recs = by_p.get(tp.partition, [])
                want = next((r for r in recs if r.timestamp >= target), None)
                if want is None:
                    assert tp.offset == OFFSET_END, \
                        f"p{tp.partition} ts {target}: expected -1 (no such record), got {tp.offset}"
                    continue
                assert tp.offset == want.offset, \
                    f"p{tp.partition} ts {target}: expected offset {want.offset}, got {tp.offset}"
                # seek there and check the first record returned
                msgs = read(c, topic, {tp.partition: tp.offset},
                            {tp.partition: tp.offset + 1})[tp.partition]
                m = msgs[0]
                assert (m.offset(), m.key(), m.value(), m.timestamp()[1]) == \
                       (want.offset, want.key, want.value, want.timestamp)
    finally:
        c.close()


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_restart_reads_identical(broker, how):
    topic = unique_topic("restart")
    a, ds, got = produce_and_read(broker, topic)
    first = snapshot(got)
    c = consumer(broker)
    wm_before = watermarks(c, topic, range(3))
    c.close()

    if how == "sigterm":
        broker.restart()
    else:
        broker.crash_restart()

    wait_serving(broker, topic, 3)
    c = consumer(broker)
    try:
        assert watermarks(c, topic, range(3)) == wm_before
        assert snapshot(read_all(c, topic, range(3))) == first
    finally:
        c.close()
    # and the log is still appendable at the right offsets
    more = make_dataset(30)
    assert produce(producer(broker), topic, more) == []
    for r in more.records:
        assert r.offset >= wm_before[r.partition][1]


def describe(a: AdminClient, topic: str) -> dict:
    res = ConfigResource(ResourceType.TOPIC, topic)
    fs = a.describe_configs([res], request_timeout=OP_TIMEOUT)
    return next(iter(fs.values())).result(timeout=OP_TIMEOUT + 5)


@pytest.mark.filterwarnings("ignore:alter_configs has been deprecated")
@pytest.mark.parametrize("api", ["incremental", "legacy"])
def test_describe_and_alter_configs(broker, api):
    topic = unique_topic("cfg")
    a = admin(broker)
    create_topic(a, topic, 3, config={"retention.ms": "86400000"})
    cfg = describe(a, topic)
    for name in ("cleanup.policy", "retention.ms", "retention.bytes", "segment.bytes",
                 "max.message.bytes", "message.timestamp.type", "min.insync.replicas"):
        assert name in cfg, f"DescribeConfigs lacks {name}; got {sorted(cfg)}"
    assert cfg["cleanup.policy"].value == "delete"
    assert cfg["retention.ms"].value == "86400000"
    assert cfg["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value or \
        cfg["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG
    assert cfg["segment.bytes"].is_default or \
        cfg["segment.bytes"].source in (ConfigSource.DEFAULT_CONFIG,
                                        ConfigSource.STATIC_BROKER_CONFIG,
                                        ConfigSource.DEFAULT_CONFIG.value,
                                        ConfigSource.STATIC_BROKER_CONFIG.value)

    if api == "incremental":
        res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
            ConfigEntry("retention.ms", "3600000", incremental_operation=AlterConfigOpType.SET),
            ConfigEntry("max.message.bytes", "2000000",
                        incremental_operation=AlterConfigOpType.SET),
        ])
        fs = a.incremental_alter_configs([res], request_timeout=OP_TIMEOUT)
    else:
        # legacy AlterConfigs replaces the whole set of dynamic configs
        res = ConfigResource(ResourceType.TOPIC, topic,
                             set_config={"retention.ms": "3600000",
                                         "max.message.bytes": "2000000"})
        fs = a.alter_configs([res], request_timeout=OP_TIMEOUT)
    next(iter(fs.values())).result(timeout=OP_TIMEOUT + 5)

    def altered():
        c = describe(a, topic)
        return c["retention.ms"].value == "3600000" and c["max.message.bytes"].value == "2000000"
    wait_until(altered, 10, "altered configs to show in DescribeConfigs")

    if api == "incremental":
        # DELETE reverts to the default
        res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
            ConfigEntry("max.message.bytes", None,
                        incremental_operation=AlterConfigOpType.DELETE)])
        next(iter(a.incremental_alter_configs([res]).values())).result(timeout=OP_TIMEOUT)
        wait_until(lambda: describe(a, topic)["max.message.bytes"].value != "2000000", 10,
                   "max.message.bytes reverted to default")

    # an unknown config name is rejected with INVALID_CONFIG
    bad = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("no.such.config", "1", incremental_operation=AlterConfigOpType.SET)])
    with pytest.raises(KafkaException) as ei:
        next(iter(a.incremental_alter_configs([bad]).values())).result(timeout=OP_TIMEOUT)
    assert ei.value.args[0].code() == KafkaError.INVALID_CONFIG, ei.value

    # configs survive a restart
    broker.restart()
    wait_serving(broker, topic, 3)
    a = admin(broker)
    assert describe(a, topic)["retention.ms"].value == "3600000"


def test_create_partitions(broker):
    topic = unique_topic("cp")
    a, ds, got = produce_and_read(broker, topic)
    before = snapshot(got)

    fs = a.create_partitions([NewPartitions(topic, 5)], operation_timeout=10,
                             request_timeout=OP_TIMEOUT)
    fs[topic].result(timeout=OP_TIMEOUT + 5)
    wait_for_partitions(a, topic, 5)

    # shrinking is refused
    with pytest.raises(KafkaException) as ei:
        a.create_partitions([NewPartitions(topic, 2)])[topic].result(timeout=OP_TIMEOUT)
    assert ei.value.args[0].code() == KafkaError.INVALID_PARTITIONS, ei.value

    # new partitions are empty and writable; old ones unchanged
    new = make_dataset(20)
    p = producer(broker)
    for part in (3, 4):
        assert produce(p, topic, new, partition=part) == []
        assert {r.partition for r in new.records} == {part}
    c = consumer(broker)
    try:
        wm = watermarks(c, topic, range(5))
        assert wm[3] == (0, 20) and wm[4] == (0, 20), wm
        got = read_all(c, topic, range(5))
        snap = snapshot(got)
        assert {k: snap[k] for k in range(3)} == before
        assert [m.value() for m in got[4]] == [r.value for r in new.records]
    finally:
        c.close()


def test_delete_records(broker):
    topic = unique_topic("dr")
    a, ds, got = produce_and_read(broker, topic)
    c = consumer(broker)
    wm = watermarks(c, topic, range(3))
    part = max(range(3), key=lambda q: wm[q][1])
    high = wm[part][1]
    cut = high // 2
    assert cut > 0

    fs = a.delete_records([TopicPartition(topic, part, cut)], request_timeout=OP_TIMEOUT,
                          operation_timeout=10)
    res = next(iter(fs.values())).result(timeout=OP_TIMEOUT + 5)
    assert res.low_watermark == cut, res

    try:
        assert watermarks(c, topic, [part])[part] == (cut, high)
        msgs = read(c, topic, {part: OFFSET_BEGINNING}, {part: high})[part]
        assert [m.offset() for m in msgs] == list(range(cut, high))
        assert snapshot({part: msgs})[part] == snapshot(got)[part][cut:]
        # other partitions untouched
        for q in range(3):
            if q != part:
                assert watermarks(c, topic, [q])[q] == wm[q]
    finally:
        c.close()

    # beyond the high watermark: OFFSET_OUT_OF_RANGE
    with pytest.raises(KafkaException) as ei:
        next(iter(a.delete_records([TopicPartition(topic, part, high + 100)]).values())) \
            .result(timeout=OP_TIMEOUT)
    assert ei.value.args[0].code() == KafkaError.OFFSET_OUT_OF_RANGE, ei.value

    # the log start offset survives a restart
    broker.restart()
    wait_serving(broker, topic, 3)
    c = consumer(broker)
    try:
        wait_until(lambda: watermarks(c, topic, [part])[part] == (cut, high), 15,
                   "low watermark after restart")
        # fetching below the log start is out of range
        c.assign([TopicPartition(topic, part, cut - 1)])
        deadline = time.monotonic() + 15
        err = None
        while time.monotonic() < deadline and err is None:
            m = c.poll(0.5)
            if m is not None and m.error() and m.error().code() != KafkaError._PARTITION_EOF:
                err = m.error()
            elif m is not None and not m.error():
                pytest.fail(f"fetch below log start returned offset {m.offset()}")
        assert err is not None and err.code() in (KafkaError._AUTO_OFFSET_RESET,
                                                  KafkaError.OFFSET_OUT_OF_RANGE), err
    finally:
        c.close()

    # delete everything (OFFSET_END == -1 means "up to the high watermark"); a fresh admin
    # client: librdkafka's leader lookup in the one from before the restart can fail
    a = admin(broker)
    res = next(iter(a.delete_records([TopicPartition(topic, part, OFFSET_END)]).values())) \
        .result(timeout=OP_TIMEOUT)
    assert res.low_watermark == high


def test_delete_topic(broker_factory):
    # auto-create off, so that no client metadata refresh can re-create the deleted topic
    broker = broker_factory({"auto.create.topics.enable": "false"})
    topic = unique_topic("del")
    a, ds, got = produce_and_read(broker, topic)
    fs = a.delete_topics([topic], operation_timeout=10, request_timeout=OP_TIMEOUT)
    fs[topic].result(timeout=OP_TIMEOUT + 5)
    wait_until(lambda: topic not in a.list_topics(timeout=5).topics, 15, "topic gone from metadata")
    md = a.list_topics(topic=topic, timeout=5)
    assert md.topics[topic].error is not None and \
        md.topics[topic].error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART

    # deleting again: UNKNOWN_TOPIC_OR_PART
    with pytest.raises(KafkaException) as ei:
        a.delete_topics([topic])[topic].result(timeout=OP_TIMEOUT)
    assert ei.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART, ei.value

    # stays deleted across restart; re-creating gives an empty topic
    broker.restart()
    a = admin(broker)
    assert topic not in a.list_topics(timeout=10).topics
    create_topic(a, topic, 2)
    c = consumer(broker)
    try:
        assert watermarks(c, topic, range(2)) == {0: (0, 0), 1: (0, 0)}
    finally:
        c.close()


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compression_roundtrip(broker, codec):
    topic = unique_topic(f"z{codec}")
    a = admin(broker)
    create_topic(a, topic, 3)
    ds = make_dataset(300)
    p = producer(broker, compression_type=codec, linger_ms=50, batch_num_messages=100)
    assert produce(p, topic, ds) == []
    c = consumer(broker)
    try:
        got = read_all(c, topic, range(3))
    finally:
        c.close()
    assert_matches(ds, got)


def test_mixed_codecs_in_one_partition(broker):
    topic = unique_topic("zmix")
    a = admin(broker)
    create_topic(a, topic, 1)
    all_recs = Dataset()
    for codec in ["none", "gzip", "snappy", "lz4", "zstd", "none"]:
        ds = make_dataset(40)
        assert produce(producer(broker, compression_type=codec, linger_ms=20), topic, ds,
                       partition=0) == []
        all_recs.records += ds.records
    c = consumer(broker)
    try:
        got = read_all(c, topic, [0])
    finally:
        c.close()
    assert_matches(all_recs, got)


@pytest.mark.parametrize("name", ["bad name", "..", ".", "a" * 250, "bad/slash", "bad:colon",
                                  "bad*star"])
def test_invalid_topic_name_rejected(broker, name):
    a = admin(broker)
    fs = a.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)],
                         request_timeout=OP_TIMEOUT)
    with pytest.raises(KafkaException) as ei:
        fs[name].result(timeout=OP_TIMEOUT + 5)
    err = ei.value.args[0]
    assert err.code() == KafkaError.TOPIC_EXCEPTION, \
        f"expected INVALID_TOPIC_EXCEPTION (17), got {err.code()} {err}"
    assert name not in a.list_topics(timeout=5).topics


def test_create_existing_topic(broker):
    topic = unique_topic("dup")
    a = admin(broker)
    create_topic(a, topic, 3)
    fs = a.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)],
                         request_timeout=OP_TIMEOUT)
    with pytest.raises(KafkaException) as ei:
        fs[topic].result(timeout=OP_TIMEOUT + 5)
    assert ei.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS, ei.value
    # the existing topic is untouched
    wait_for_partitions(a, topic, 3)


def test_create_topic_validate_only(broker):
    topic = unique_topic("vo")
    a = admin(broker)
    fs = a.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)],
                         validate_only=True, request_timeout=OP_TIMEOUT)
    fs[topic].result(timeout=OP_TIMEOUT + 5)
    assert topic not in a.list_topics(timeout=5).topics


def test_produce_unknown_topic_without_autocreate(broker_factory):
    b = broker_factory({"auto.create.topics.enable": "false"})
    topic = unique_topic("nope")
    p = producer(b, message_timeout_ms=10000, topic_metadata_propagation_max_ms=1000)
    errs: list[KafkaError] = []
    p.produce(topic, value=b"x", on_delivery=lambda err, msg: errs.append(err))
    t0 = time.monotonic()
    assert p.flush(20) == 0, "produce to an unknown topic hung"
    elapsed = time.monotonic() - t0
    assert len(errs) == 1 and errs[0] is not None, "produce to unknown topic succeeded"
    assert errs[0].code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC), \
        f"expected an unknown-topic error, got {errs[0]} after {elapsed:.1f}s"
    a = admin(b)
    md = a.list_topics(topic=topic, timeout=5)
    assert md.topics[topic].error is not None and \
        md.topics[topic].error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    assert topic not in a.list_topics(timeout=5).topics, "topic was auto-created"


def test_produce_unknown_topic_autocreates(broker_factory):
    b = broker_factory({"auto.create.topics.enable": "true", "num.partitions": "3"})
    topic = unique_topic("auto")
    ds = make_dataset(30)
    assert produce(producer(b), topic, ds) == []
    a = admin(b)
    wait_for_partitions(a, topic, 3)
    c = consumer(b)
    try:
        assert_matches(ds, read_all(c, topic, range(3)))
    finally:
        c.close()


def test_list_offsets_admin(broker):
    """AdminClient.list_offsets: earliest / latest / max_timestamp / for_timestamp."""
    from confluent_kafka.admin import OffsetSpec
    topic = unique_topic("lo")
    a, ds, got = produce_and_read(broker, topic)
    by_p = ds.by_partition()
    for p in range(3):
        recs = by_p.get(p, [])
        tp = TopicPartition(topic, p)
        specs = {"earliest": OffsetSpec.earliest(), "latest": OffsetSpec.latest(),
                 "max": OffsetSpec.max_timestamp()}
        res = {}
        for name, spec in specs.items():
            fs = a.list_offsets({tp: spec}, request_timeout=OP_TIMEOUT)
            res[name] = next(iter(fs.values())).result(timeout=OP_TIMEOUT)
        assert res["earliest"].offset == 0
        assert res["latest"].offset == len(recs)
        if recs:
            mx = max(r.timestamp for r in recs)
            # max_timestamp: the offset of a record carrying the largest timestamp
            assert res["max"].timestamp == mx, res["max"]
            assert res["max"].offset in {r.offset for r in recs if r.timestamp == mx}, res["max"]
            mid = recs[len(recs) // 2]
            fs = a.list_offsets({tp: OffsetSpec.for_timestamp(mid.timestamp)})
            r = next(iter(fs.values())).result(timeout=OP_TIMEOUT)
            first = next(x for x in recs if x.timestamp >= mid.timestamp)
            assert r.offset == first.offset and r.timestamp == first.timestamp, r


def test_describe_cluster_and_topics(broker):
    """DescribeCluster + Metadata (topic ids, authorized operations) via the AdminClient."""
    from confluent_kafka import TopicCollection
    from confluent_kafka.admin import AclOperation
    topic = unique_topic("dc")
    a = admin(broker)
    create_topic(a, topic, 3)
    cl = a.describe_cluster(include_authorized_operations=True,
                            request_timeout=OP_TIMEOUT).result(timeout=OP_TIMEOUT)
    assert len(cl.nodes) == 1 and (cl.nodes[0].host, cl.nodes[0].port) == ("127.0.0.1",
                                                                           broker.port)
    assert cl.controller is not None and cl.controller.id == cl.nodes[0].id
    assert cl.cluster_id
    # no authorizer: everything a cluster can be asked for is allowed (what Kafka answers)
    assert set(cl.authorized_operations or []) == {
        AclOperation.CREATE, AclOperation.ALTER, AclOperation.DESCRIBE,
        AclOperation.CLUSTER_ACTION, AclOperation.DESCRIBE_CONFIGS,
        AclOperation.ALTER_CONFIGS, AclOperation.IDEMPOTENT_WRITE}

    fs = a.describe_topics(TopicCollection([topic, topic + "-missing"]),
                           include_authorized_operations=True, request_timeout=OP_TIMEOUT)
    d = fs[topic].result(timeout=OP_TIMEOUT)
    assert d.name == topic and len(d.partitions) == 3 and not d.is_internal
    assert str(d.topic_id) not in ("", "AAAAAAAAAAAAAAAAAAAAAA"), "topic id must be set"
    for p in d.partitions:
        assert p.leader is not None and p.leader.id == cl.nodes[0].id
        assert [r.id for r in p.replicas] == [cl.nodes[0].id]
        assert [r.id for r in p.isr] == [cl.nodes[0].id]
    assert set(d.authorized_operations or []) == {
        AclOperation.READ, AclOperation.WRITE, AclOperation.CREATE, AclOperation.DELETE,
        AclOperation.ALTER, AclOperation.DESCRIBE, AclOperation.DESCRIBE_CONFIGS,
        AclOperation.ALTER_CONFIGS}
    with pytest.raises(KafkaException) as ei:
        fs[topic + "-missing"].result(timeout=OP_TIMEOUT)
    assert ei.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART, ei.value


def test_seek_into_middle_of_compressed_batch(broker):
    """Fetching from an offset inside a (compressed) batch returns that record first."""
    topic = unique_topic("mid")
    a = admin(broker)
    create_topic(a, topic, 1)
    ds = make_dataset(200)
    p = producer(broker, compression_type="lz4", linger_ms=100, batch_num_messages=1000)
    assert produce(p, topic, ds, partition=0) == []
    close_producer(p)
    c = consumer(broker)
    try:
        for start in (1, 57, 133, 199):
            got = read(c, topic, {0: start}, {0: 200})[0]
            assert [m.offset() for m in got] == list(range(start, 200))
            assert got[0].value() == ds.records[start].value
    finally:
        c.close()


def test_small_fetch_sizes_still_progress(broker):
    """max.partition.fetch.bytes smaller than one batch: Kafka still returns the first batch."""
    topic = unique_topic("small")
    a = admin(broker)
    create_topic(a, topic, 1)
    big = Dataset([Rec(f"k{i}".encode(), bytes([i % 256]) * 20_000, [], 1_700_000_000_000 + i)
                   for i in range(20)])
    p = producer(broker, linger_ms=50)
    assert produce(p, topic, big, partition=0) == []
    close_producer(p)
    c = consumer(broker, max_partition_fetch_bytes=1024, fetch_max_bytes=1024,
                 message_max_bytes=1000)
    try:
        got = read(c, topic, {0: OFFSET_BEGINNING}, {0: 20})[0]
    finally:
        c.close()
    assert [m.value() for m in got] == [r.value for r in big.records]


def test_message_too_large(broker):
    topic = unique_topic("big")
    a = admin(broker)
    create_topic(a, topic, 1, config={"max.message.bytes": "2000"})
    p = producer(broker, message_timeout_ms=10000)
    errs: list = []
    p.produce(topic, value=b"x" * 10_000, partition=0,
              on_delivery=lambda err, msg: errs.append(err))
    assert p.flush(15) == 0
    assert len(errs) == 1 and errs[0] is not None, "oversized record was accepted"
    assert errs[0].code() == KafkaError.MSG_SIZE_TOO_LARGE, errs[0]
    # a small one still goes through
    assert produce(p, topic, make_dataset(5), partition=0) == []


def test_log_append_time_topic(broker):
    topic = unique_topic("lat")
    a = admin(broker)
    create_topic(a, topic, 1, config={"message.timestamp.type": "LogAppendTime"})
    ds = make_dataset(20)  # create times an hour in the past
    t0 = int(time.time() * 1000)
    p = producer(broker)
    assert produce(p, topic, ds, partition=0) == []
    close_producer(p)
    t1 = int(time.time() * 1000)
    c = consumer(broker)
    try:
        got = read_all(c, topic, [0])[0]
    finally:
        c.close()
    assert len(got) == 20
    for m in got:
        ts_type, ts = m.timestamp()
        assert ts_type == confluent_kafka.TIMESTAMP_LOG_APPEND_TIME, m.timestamp()
        assert t0 - 1000 <= ts <= t1 + 1000, (ts, t0, t1)


def test_idempotent_producer(broker):
    """enable.idempotence: InitProducerId + sequenced batches; no duplicates, order kept."""
    topic = unique_topic("idem")
    a = admin(broker)
    create_topic(a, topic, 3)
    ds = make_dataset(600)
    p = producer(broker, enable_idempotence=True, linger_ms=2, max_in_flight=5)
    assert produce(p, topic, ds) == []
    close_producer(p)
    c = consumer(broker)
    try:
        got = read_all(c, topic, range(3))
    finally:
        c.close()
    assert_matches(ds, got)


def _create_with_optional(a: AdminClient, topic: str, partitions: int, config: dict,
                          optional: dict):
    """Create with config+optional; if the broker refuses one of the optional (valid Kafka)
    configs with INVALID_CONFIG, retry without them (test_all_kafka_topic_configs_accepted
    reports that gap on its own)."""
    try:
        create_topic(a, topic, partitions, config={**config, **optional})
    except KafkaException as e:
        if e.args[0].code() != KafkaError.INVALID_CONFIG:
            raise
        create_topic(a, topic, partitions, config=config)


def test_all_kafka_topic_configs_accepted(broker):
    """CreateTopics with a spread of valid Kafka topic configs is accepted and described back."""
    topic = unique_topic("allcfg")
    a = admin(broker)
    cfg = {
        "cleanup.policy": "compact,delete",
        "compression.type": "producer",
        "delete.retention.ms": "86400000",
        "file.delete.delay.ms": "60000",
        "flush.messages": "9223372036854775807",
        "flush.ms": "9223372036854775807",
        "index.interval.bytes": "4096",
        "max.compaction.lag.ms": "9223372036854775807",
        "max.message.bytes": "1048588",
        "message.timestamp.type": "CreateTime",
        "min.cleanable.dirty.ratio": "0.5",
        "min.compaction.lag.ms": "0",
        "min.insync.replicas": "1",
        "preallocate": "false",
        "retention.bytes": "-1",
        "retention.ms": "604800000",
        "segment.bytes": "1073741824",
        "segment.index.bytes": "10485760",
        "segment.jitter.ms": "0",
        "segment.ms": "604800000",
        "unclean.leader.election.enable": "false",
        "message.downconversion.enable": "true",
    }
    create_topic(a, topic, 1, config=cfg)
    got = describe(a, topic)
    wrong = {k: (v, got[k].value if k in got else None) for k, v in cfg.items()
             if k not in got or got[k].value != v}
    assert not wrong, f"configs not described back as set: {wrong}"


def test_compaction(broker_factory):
    broker = broker_factory({"log.cleaner.backoff.ms": "200"})
    topic = unique_topic("cmp")
    a = admin(broker)
    _create_with_optional(a, topic, 1,
                          {"cleanup.policy": "compact", "segment.bytes": "4096",
                           "min.compaction.lag.ms": "0", "delete.retention.ms": "86400000"},
                          {"min.cleanable.dirty.ratio": "0.01"})
    keys = [f"ck-{i:02d}".encode() for i in range(10)]
    t0 = int(time.time() * 1000)
    ds = Dataset([Rec(keys[i % 10], f"v{i:05d}".encode() + b"." * 100, [("i", str(i).encode())],
                      t0 + i) for i in range(1000)])
    p = producer(broker, linger_ms=0, batch_num_messages=1)
    assert produce(p, topic, ds, partition=0) == []
    close_producer(p)
    by_off = {r.offset: r for r in ds.records}
    last_of_key = {}
    for r in ds.records:
        last_of_key[r.key] = r

    def check(got):
        for m in got:  # whatever survives is byte-identical, at its original offset
            r = by_off[m.offset()]
            assert (m.key(), m.value(), norm_headers(m.headers()), m.timestamp()[1]) == \
                (r.key, r.value, r.headers, r.timestamp), f"offset {m.offset()} changed"
        offs = [m.offset() for m in got]
        assert offs == sorted(set(offs)), "offsets not strictly increasing"
        for k, r in last_of_key.items():  # the latest value of every key survives
            assert r.offset in offs, f"latest record of {k!r} (offset {r.offset}) removed"

    c = consumer(broker)
    try:
        assert watermarks(c, topic, [0])[0][1] == 1000

        def compacted():
            got = read(c, topic, {0: OFFSET_BEGINNING}, {0: 1000})[0]
            check(got)
            return len(got) < 500 and got
        got = wait_until(compacted, 60, "the cleaner to compact the log", interval=0.5)
        # compaction removes records, it does not move the log start offset (only retention
        # and DeleteRecords do): ListOffsets(earliest) stays 0 and offset 0 stays fetchable
        assert watermarks(c, topic, [0])[0] == (0, 1000), \
            "compaction moved the low watermark (log start offset)"
        check(read(c, topic, {0: 0}, {0: 1000})[0])  # (the cleaner may have gone on since)
    finally:
        c.close()
    broker.restart()
    wait_serving(broker, topic, 1)
    c = consumer(broker)
    try:
        again = read(c, topic, {0: OFFSET_BEGINNING}, {0: 1000})[0]
        check(again)
        assert {m.offset() for m in again} <= {m.offset() for m in got}
    finally:
        c.close()


def test_time_retention_deletes_old_segments(broker_factory):
    broker = broker_factory({"log.retention.check.interval.ms": "200"})
    topic = unique_topic("ret")
    a = admin(broker)
    create_topic(a, topic, 1, config={"retention.ms": "60000", "segment.bytes": "4096"})
    # 200 records an hour old, then 100 current ones: segments holding only old records are
    # past retention; the ones with current records are not
    ds = make_dataset(200)
    now = int(time.time() * 1000)
    for i, r in enumerate(make_dataset(100).records):
        r.timestamp = now + i
        ds.records.append(r)
    p = producer(broker, linger_ms=0, batch_num_messages=1)
    assert produce(p, topic, ds, partition=0) == []
    close_producer(p)
    c = consumer(broker)
    try:
        lo, hi = wait_until(lambda: (lambda w: w if w[0] > 0 else None)(
            watermarks(c, topic, [0])[0]), 30, "retention to delete old segments")
        assert hi == 300
        assert lo <= 200, f"retention deleted current records (log start {lo})"
        got = read(c, topic, {0: OFFSET_BEGINNING}, {0: hi})[0]
        assert got and got[0].offset() == lo
        assert [m.value() for m in got] == [r.value for r in ds.records[lo:]]
    finally:
        c.close()


def test_fetch_long_poll_wakes_on_produce(broker):
    """A fetch parked on max.wait must return as soon as data arrives (not at its deadline)."""
    topic = unique_topic("lp")
    a = admin(broker)
    create_topic(a, topic, 1)
    c = consumer(broker, fetch_wait_max_ms=8000, socket_timeout_ms=30000)
    p = producer(broker, linger_ms=0)
    try:
        c.assign([TopicPartition(topic, 0, OFFSET_END)])
        # let the consumer resolve its position and park a fetch
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            m = c.poll(0.2)
            assert m is None or m.error(), "unexpected record"
        lat = []
        for i in range(3):
            t0 = time.monotonic()
            p.produce(topic, value=f"wake-{i}".encode(), partition=0)
            p.flush(10)
            while True:
                m = c.poll(0.1)
                if m is not None and not m.error():
                    assert m.value() == f"wake-{i}".encode()
                    break
                assert time.monotonic() - t0 < 20, "record never arrived"
            lat.append(time.monotonic() - t0)
        assert max(lat) < 4.0, f"produce->consume latencies {lat}: the parked fetch is not " \
                               f"woken by new data (it waits out fetch.wait.max.ms=8000)"
    finally:
        c.close()


def test_concurrent_producers_one_partition(broker):
    import threading
    topic = unique_topic("conc")
    a = admin(broker)
    create_topic(a, topic, 1)
    n_prod, per = 4, 500
    results: dict[int, Dataset] = {}

    def run(j):
        ds = Dataset([Rec(f"p{j}".encode(), f"p{j}-{i:04d}".encode(), [], 1_700_000_000_000 + i)
                      for i in range(per)])
        p = Producer(conf(broker, acks="all", linger_ms=1))
        assert produce(p, topic, ds, partition=0) == []
        p.close()
        results[j] = ds
    ts = [threading.Thread(target=run, args=(j,)) for j in range(n_prod)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert len(results) == n_prod
    acked = sorted(r.offset for ds in results.values() for r in ds.records)
    assert acked == list(range(n_prod * per)), "acked offsets are not unique and dense"
    c = consumer(broker)
    try:
        got = read_all(c, topic, [0])[0]
    finally:
        c.close()
    by_off = {r.offset: r for ds in results.values() for r in ds.records}
    assert [m.value() for m in got] == [by_off[o].value for o in range(n_prod * per)]
    for j, ds in results.items():  # each producer's records keep its order
        offs = [r.offset for r in ds.records]
        assert offs == sorted(offs)


@pytest.mark.parametrize("partitions,rf,code", [
    (0, 1, KafkaError.INVALID_PARTITIONS),
    (1, 3, KafkaError.INVALID_REPLICATION_FACTOR),   # only one broker
])
def test_create_topic_bad_arguments(broker, partitions, rf, code):
    topic = unique_topic("bad")
    a = admin(broker)
    fs = a.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=rf)],
                         request_timeout=OP_TIMEOUT)
    with pytest.raises(KafkaException) as ei:
        fs[topic].result(timeout=OP_TIMEOUT + 5)
    assert ei.value.args[0].code() == code, ei.value
    assert topic not in a.list_topics(timeout=5).topics


def test_min_insync_replicas_above_replication_factor(broker):
    """RF=1 with min.insync.replicas=2. Kafka 3.x caps the effective min ISR at the number of
    replicas (Partition.effectiveMinIsr), so acks=all is accepted (checked on Kafka 3.7.1 and
    4.4.0)."""
    topic = unique_topic("isr")
    a = admin(broker)
    create_topic(a, topic, 1, config={"min.insync.replicas": "2"})
    assert describe(a, topic)["min.insync.replicas"].value == "2"
    p = producer(broker, acks="all", message_timeout_ms=5000, retries=0)
    errs: list = []
    p.produce(topic, value=b"x", partition=0, on_delivery=lambda err, msg: errs.append(err))
    assert p.flush(15) == 0
    assert len(errs) == 1 and errs[0] is None, \
        f"acks=all refused with RF=1 < min.insync.replicas=2: {[str(e) for e in errs]}"
