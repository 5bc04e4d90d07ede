"""Transactions (exactly-once) with confluent-kafka (librdkafka) against spate-broker.

Scenarios: a committed transaction is visible to read_committed consumers; an aborted one
never is (but is to read_uncommitted); a zombie producer with an older epoch is fenced; a
consume-transform-produce loop commits its output and its input offsets atomically; an open
transaction holds the last stable offset back until it times out, also across a restart.
"""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from compat_util import unique_topic, wait_until

OP_TIMEOUT = 15


def base_conf(broker) -> dict:
    return {
        "bootstrap.servers": broker.bootstrap,
        "broker.address.family": "v4",
        "socket.timeout.ms": 10000,
        "reconnect.backoff.ms": 50,
        "reconnect.backoff.max.ms": 500,
    }


def create_topic(broker, topic: str, partitions: int = 1) -> None:
    admin = AdminClient(base_conf(broker))
    fs = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    for f in fs.values():
        f.result(OP_TIMEOUT)


def txn_producer(broker, txn_id: str, **extra) -> Producer:
    c = base_conf(broker)
    c.update({"transactional.id": txn_id, "transaction.timeout.ms": 60000})
    c.update(extra)
    p = Producer(c)
    p.init_transactions(OP_TIMEOUT)
    return p


def read_all(broker, topic: str, isolation: str, partitions: int = 1,
             settle: float = 1.5) -> list[bytes]:
    """Every value a consumer with `isolation` sees, reading until nothing more arrives."""
    c = Consumer({**base_conf(broker), "group.id": f"reader-{uuid.uuid4().hex[:8]}",
                  "isolation.level": isolation, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    out: list[bytes] = []
    quiet_since = time.monotonic()
    deadline = time.monotonic() + 20
    while time.monotonic() - quiet_since < settle and time.monotonic() < deadline:
        m = c.poll(0.2)
        if m is None:
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                continue
            raise KafkaException(m.error())
        out.append(m.value())
        quiet_since = time.monotonic()
    c.close()
    return out


def latest_offset(broker, topic: str, isolation: str) -> int:
    c = Consumer({**base_conf(broker), "group.id": f"w-{uuid.uuid4().hex[:8]}",
                  "isolation.level": isolation})
    _, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=OP_TIMEOUT)
    c.close()
    return high


def test_committed_transaction_is_visible_to_read_committed(broker):
    topic = unique_topic("txn")
    create_topic(broker, topic)
    p = txn_producer(broker, f"tx-{uuid.uuid4().hex[:8]}")
    p.begin_transaction()
    for i in range(10):
        p.produce(topic, value=f"c{i}".encode())
    p.commit_transaction(OP_TIMEOUT)
    got = read_all(broker, topic, "read_committed")
    assert got == [f"c{i}".encode() for i in range(10)]


def test_aborted_transaction_is_hidden_from_read_committed_only(broker):
    topic = unique_topic("txn")
    create_topic(broker, topic)
    p = txn_producer(broker, f"tx-{uuid.uuid4().hex[:8]}")
    p.begin_transaction()
    for i in range(5):
        p.produce(topic, value=f"a{i}".encode())
    p.flush(OP_TIMEOUT)
    p.abort_transaction(OP_TIMEOUT)
    p.begin_transaction()
    for i in range(3):
        p.produce(topic, value=f"c{i}".encode())
    p.commit_transaction(OP_TIMEOUT)
    committed = read_all(broker, topic, "read_committed")
    assert committed == [b"c0", b"c1", b"c2"]
    uncommitted = read_all(broker, topic, "read_uncommitted")
    assert uncommitted == [b"a0", b"a1", b"a2", b"a3", b"a4", b"c0", b"c1", b"c2"]


def test_open_transaction_holds_back_read_committed(broker):
    topic = unique_topic("txn")
    create_topic(broker, topic)
    plain = Producer(base_conf(broker))
    plain.produce(topic, value=b"before")
    plain.flush(OP_TIMEOUT)
    p = txn_producer(broker, f"tx-{uuid.uuid4().hex[:8]}")
    p.begin_transaction()
    p.produce(topic, value=b"open")
    p.flush(OP_TIMEOUT)
    plain.produce(topic, value=b"after")
    plain.flush(OP_TIMEOUT)
    # The last stable offset stops at the open transaction's first record.
    assert latest_offset(broker, topic, "read_committed") == 1
    assert latest_offset(broker, topic, "read_uncommitted") == 3
    assert read_all(broker, topic, "read_committed", settle=1.0) == [b"before"]
    p.commit_transaction(OP_TIMEOUT)
    assert read_all(broker, topic, "read_committed") == [b"before", b"open", b"after"]


def test_zombie_producer_is_fenced(broker):
    topic = unique_topic("txn")
    create_topic(broker, topic)
    txn_id = f"tx-{uuid.uuid4().hex[:8]}"
    zombie = txn_producer(broker, txn_id)
    zombie.begin_transaction()
    zombie.produce(topic, value=b"zombie")
    zombie.flush(OP_TIMEOUT)
    # A new instance with the same transactional id bumps the epoch and aborts the zombie's
    # open transaction.
    fresh = txn_producer(broker, txn_id)
    with pytest.raises(KafkaException) as e:
        zombie.produce(topic, value=b"zombie-2")
        zombie.commit_transaction(OP_TIMEOUT)
    err = e.value.args[0]
    assert err.fatal() or err.code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED,
                                         KafkaError.INVALID_PRODUCER_EPOCH), err
    fresh.begin_transaction()
    fresh.produce(topic, value=b"fresh")
    fresh.commit_transaction(OP_TIMEOUT)
    assert read_all(broker, topic, "read_committed") == [b"fresh"]


def test_consume_transform_produce_is_exactly_once(broker_factory):
    broker = broker_factory({"group.initial.rebalance.delay.ms": "0"})
    src, dst = unique_topic("in"), unique_topic("out")
    create_topic(broker, src)
    create_topic(broker, dst)
    plain = Producer(base_conf(broker))
    for i in range(30):
        plain.produce(src, value=str(i).encode())
    plain.flush(OP_TIMEOUT)
    group = f"g-{uuid.uuid4().hex[:8]}"

    def consumer() -> Consumer:
        c = Consumer({**base_conf(broker), "group.id": group, "enable.auto.commit": False,
                      "auto.offset.reset": "earliest", "isolation.level": "read_committed"})
        c.subscribe([src])
        return c

    def run_batch(c: Consumer, p: Producer, n: int, commit: bool) -> int:
        msgs = []
        deadline = time.monotonic() + 20
        while len(msgs) < n and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                msgs.append(m)
        assert len(msgs) == n
        p.begin_transaction()
        for m in msgs:
            p.produce(dst, value=b"x" + m.value())
        p.send_offsets_to_transaction(c.position(c.assignment()),
                                      c.consumer_group_metadata(), OP_TIMEOUT)
        if commit:
            p.commit_transaction(OP_TIMEOUT)
        else:
            p.flush(OP_TIMEOUT)  # abort purges what is still queued; send it first
            p.abort_transaction(OP_TIMEOUT)
        return n

    txn_id = f"etl-{uuid.uuid4().hex[:8]}"
    c = consumer()
    p = txn_producer(broker, txn_id)
    run_batch(c, p, 10, commit=True)
    # This batch is aborted: neither its output nor its offsets may count.
    run_batch(c, p, 10, commit=False)
    c.close()

    def committed() -> int:
        cc = Consumer({**base_conf(broker), "group.id": group})
        off = cc.committed([TopicPartition(src, 0)], timeout=OP_TIMEOUT)[0].offset
        cc.close()
        return off

    assert committed() == 10
    # A restarted pipeline resumes from the committed offsets: records 10..29, exactly once.
    c = consumer()
    run_batch(c, p, 20, commit=True)
    c.close()
    assert committed() == 30
    out = read_all(broker, dst, "read_committed")
    assert out == [b"x" + str(i).encode() for i in range(30)]
    # read_uncommitted also sees the aborted batch's output.
    assert len(read_all(broker, dst, "read_uncommitted")) == 40


def test_transactions_survive_restart_and_time_out(broker_factory):
    broker = broker_factory({
        "transaction.abort.timed.out.transaction.cleanup.interval.ms": "500",
    })
    topic = unique_topic("txn")
    create_topic(broker, topic)
    p = txn_producer(broker, f"tx-{uuid.uuid4().hex[:8]}")
    p.begin_transaction()
    p.produce(topic, value=b"aborted")
    p.flush(OP_TIMEOUT)
    p.abort_transaction(OP_TIMEOUT)
    p.begin_transaction()
    p.produce(topic, value=b"committed")
    p.commit_transaction(OP_TIMEOUT)
    # A transaction left open with a short timeout.
    hanging = txn_producer(broker, f"tx-{uuid.uuid4().hex[:8]}",
                           **{"transaction.timeout.ms": 4000, "socket.timeout.ms": 4000})
    hanging.begin_transaction()
    hanging.produce(topic, value=b"hanging")
    hanging.flush(OP_TIMEOUT)
    broker.restart()
    # Producer state, the aborted index and the open transaction came back from the log.
    assert latest_offset(broker, topic, "read_committed") == 4
    assert read_all(broker, topic, "read_committed") == [b"committed"]
    # The coordinator (reloaded from __transaction_state) aborts the timed-out transaction.
    wait_until(lambda: latest_offset(broker, topic, "read_committed") == 6, 20,
               "the hanging transaction to be aborted")
    assert read_all(broker, topic, "read_committed") == [b"committed"]
    assert b"hanging" in read_all(broker, topic, "read_uncommitted")
