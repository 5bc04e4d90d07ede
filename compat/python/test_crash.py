"""Crash test: kill -9 the broker while a producer streams; acknowledged data must survive.

The broker runs with its default flush policy.  Data is written to the OS page cache on
every append, so a *process* crash (SIGKILL) must not lose a single acknowledged record:
each record whose delivery callback reported success (acks=1) must, after the restart, be
at exactly the partition and offset that were acknowledged, with the same value.  The log
must also read cleanly from its start to its high watermark.

Knobs (environment):
  SPATE_CRASH_ROUNDS      rounds of produce / kill -9 / restart / verify (default 3)
  SPATE_CRASH_ACKS        acknowledged records to wait for before each kill (default 3000)
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, \
    TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import pytest

from compat_util import unique_topic, wait_until

ROUNDS = int(os.environ.get("SPATE_CRASH_ROUNDS", "3"))
ACKS_PER_ROUND = int(os.environ.get("SPATE_CRASH_ACKS", "3000"))
PARTITIONS = 3
CLIENT_DEBUG = os.environ.get("SPATE_CLIENT_DEBUG")


def _conf(broker, **kw):
    c = {"bootstrap.servers": broker.bootstrap, "broker.address.family": "v4",
         "reconnect.backoff.ms": 50, "reconnect.backoff.max.ms": 500}
    if CLIENT_DEBUG:
        c["debug"] = CLIENT_DEBUG
    else:
        c["logger"] = logging.getLogger("librdkafka")
    c.update(kw)
    return c


class StreamingProducer(threading.Thread):
    """Produces numbered records until stopped, recording every acknowledged one."""

    def __init__(self, broker, topic: str, round_no: int, codec: str = "none"):
        super().__init__(daemon=True)
        self.topic = topic
        self.round_no = round_no
        self.p = Producer(_conf(broker, **{
            "acks": "1",
            "linger.ms": 2,
            "batch.num.messages": 200,
            "message.timeout.ms": 60000,
            "enable.idempotence": False,
            "queue.buffering.max.messages": 20000,
            "compression.type": codec,
        }))
        self.acked: list[tuple[int, int, bytes]] = []  # (partition, offset, value)
        self.failed = 0
        self.sent = 0
        self.lock = threading.Lock()
        self.stop_flag = threading.Event()
        self.error: BaseException | None = None

    def _cb(self, err, msg):
        if err is None:
            with self.lock:
                self.acked.append((msg.partition(), msg.offset(), msg.value()))
        else:
            self.failed += 1

    def run(self):
        try:
            seq = 0
            while not self.stop_flag.is_set():
                value = f"r{self.round_no}-s{seq:08d}-{uuid.uuid4().hex}".encode()
                try:
                    self.p.produce(self.topic, value=value, partition=seq % PARTITIONS,
                                   on_delivery=self._cb)
                    seq += 1
                    self.sent = seq
                except BufferError:
                    self.p.poll(0.05)
                    continue
                self.p.poll(0)
            # The broker is dead now: drop what is still queued or in flight (those records
            # are not acknowledged, so nothing is claimed about them) and serve callbacks.
            self.p.purge(in_queue=True, in_flight=True, blocking=False)
            self.p.flush(10)
        except BaseException as e:  # noqa: BLE001
            self.error = e

    def n_acked(self) -> int:
        with self.lock:
            return len(self.acked)


def read_partition(broker, topic: str, partition: int, timeout: float = 60):
    """Read [log start, high watermark) of one partition; returns ({offset: value}, hw)."""
    c = Consumer(_conf(broker, **{
        "group.id": "compat-unused-" + uuid.uuid4().hex[:8],
        "enable.auto.commit": False, "enable.auto.offset.store": False,
        "auto.offset.reset": "error", "enable.partition.eof": True,
        "fetch.wait.max.ms": 100,
    }))
    try:
        # right after a restart a broker may answer retriable errors for a moment
        lo, hi = wait_until(lambda: c.get_watermark_offsets(TopicPartition(topic, partition),
                                                            timeout=5, cached=False),
                            30, f"ListOffsets for p{partition}")
        out: dict[int, bytes] = {}
        if hi <= lo:
            return out, lo, hi
        c.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
        deadline = time.monotonic() + timeout
        last = lo - 1
        while last < hi - 1:
            assert time.monotonic() < deadline, \
                f"p{partition}: timed out reading at offset {last + 1} of [{lo}, {hi})"
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    assert m.offset() >= hi, \
                        f"p{partition}: EOF at {m.offset()} before high watermark {hi}"
                    break
                raise KafkaException(m.error())
            assert m.offset() == last + 1, \
                f"p{partition}: offset gap/disorder: {last} then {m.offset()}"
            last = m.offset()
            out[m.offset()] = m.value()
        return out, lo, hi
    finally:
        c.close()


@pytest.mark.parametrize("variant", ["default", "small-segments-lz4"])
def test_kill9_mid_stream_keeps_every_acked_record(broker_factory, variant):
    if variant == "default":
        broker, codec = broker_factory(), "none"
    else:
        # segments roll every 64 KiB: recovery must cope with many segments + their indexes
        broker, codec = broker_factory({"log.segment.bytes": "65536"}), "lz4"
    topic = unique_topic("crash")
    a = AdminClient(_conf(broker))
    a.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)],
                    request_timeout=15)[topic].result(timeout=20)
    wait_until(lambda: len(a.list_topics(topic=topic, timeout=5).topics[topic].partitions)
               == PARTITIONS, 20, "topic metadata")

    all_acked: dict[tuple[int, int], bytes] = {}
    for rnd in range(ROUNDS):
        prod = StreamingProducer(broker, topic, rnd, codec)
        prod.start()
        try:
            wait_until(lambda: prod.n_acked() >= ACKS_PER_ROUND or prod.error, 60,
                       f"round {rnd}: {ACKS_PER_ROUND} acks", interval=0.005)
            assert prod.error is None, prod.error
            broker.kill9()  # mid-stream: the producer is still sending
        finally:
            prod.stop_flag.set()
            prod.join(30)
        assert not prod.is_alive(), "producer thread did not stop"
        assert prod.error is None, prod.error

        with prod.lock:
            round_acked = list(prod.acked)
        for p, o, v in round_acked:
            assert o >= 0, f"acked record without offset: p{p} o{o}"
            prev = all_acked.get((p, o))
            assert prev is None, \
                f"offset p{p}@{o} acknowledged twice: {prev!r} and then {v!r} (round {rnd})"
            all_acked[(p, o)] = v

        broker.start()

        # every acknowledged record, of this and every earlier round, is where it was acked
        for part in range(PARTITIONS):
            log, lo, hi = read_partition(broker, topic, part)
            acked_here = {o: v for (p, o), v in all_acked.items() if p == part}
            if acked_here:
                assert hi > max(acked_here), \
                    f"round {rnd} p{part}: high watermark {hi} <= last acked offset " \
                    f"{max(acked_here)} (acknowledged data lost)"
            missing = [o for o in acked_here if o not in log]
            assert not missing, f"round {rnd} p{part}: {len(missing)} acked offsets missing " \
                                f"after kill -9, e.g. {sorted(missing)[:10]}"
            wrong = [(o, acked_here[o], log[o]) for o in acked_here if log[o] != acked_here[o]]
            assert not wrong, f"round {rnd} p{part}: {len(wrong)} acked offsets hold other " \
                              f"values, e.g. {wrong[:3]}"
        print(f"round {rnd}: sent {prod.sent}, acked {len(round_acked)}, "
              f"not acked {prod.failed}")

    # a clean restart after the crashes keeps everything too, and the log stays appendable
    broker.restart()
    p = Producer(_conf(broker, acks="1"))
    done = []
    for part in range(PARTITIONS):
        p.produce(topic, value=b"after", partition=part,
                  on_delivery=lambda err, msg: done.append((err, msg.partition(), msg.offset())))
    assert p.flush(20) == 0
    for err, part, off in done:
        assert err is None, err
        assert off > max((o for (q, o) in all_acked if q == part), default=-1)
