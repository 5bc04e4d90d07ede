"""A transactional producer while its transaction coordinator is cut off from the other brokers.

The coordinator's broker keeps talking to clients but not to its peers, so nothing it writes
to __transaction_state can be replicated. It must not act on such a write: a transition that
is not replicated is dropped, the client is told to retry (or to find the coordinator again),
and the majority side's new coordinator, which replays the replicated log, decides. Once the
isolated broker's controller session lapses it also stops claiming to be the coordinator.

A confluent-kafka (librdkafka) transactional producer writes transactions of ten records over
three partitions (RF 3, min.insync.replicas=2) and aborts every third one on purpose, while
the coordinator of its transactional id is isolated and healed, ``SPATE_FAULT_ISOLATIONS``
rounds (default 1; the long form is 10). Both with KIP-890 partition verification (the
default) and without it (where a partition leader trusts the client to have added the
partition). At the end, read with read_committed:

- every transaction whose commit the client saw succeed is there, every record exactly once;
- nothing of a transaction the client aborted (or whose commit failed) is visible;
- the producer never failed fatally (Kafka's coordinator gives it no reason to).
"""

from __future__ import annotations

import logging
import os
import threading
import time

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer

from conftest import create_topic
from history import read_committed
from netcluster import wait_until
from scenarios import coordinator_of, wait_in_sync

TOPIC = "txn-iso"
PARTITIONS = 3
RECORDS = 10  # per transaction
TXN_ID = "faults-isolated-coordinator"
ROUNDS = int(os.environ.get("SPATE_FAULT_ISOLATIONS", "1"))
# How long the producer keeps retrying one commit or abort before the test gives up on it.
OUTCOME_DEADLINE_S = 120
log = logging.getLogger("faults")


class TxnProducer(threading.Thread):
    """Transactions ``n`` = 0, 1, ...: records ``<n>-<i>``; every third one is aborted."""

    def __init__(self, bootstrap: str):
        super().__init__(daemon=True, name="txn-producer")
        self.producer = Producer({
            "bootstrap.servers": bootstrap, "broker.address.family": "v4",
            "transactional.id": TXN_ID, "transaction.timeout.ms": 60000,
            "message.timeout.ms": 60000, "request.timeout.ms": 5000,
            "retry.backoff.ms": 100, "retry.backoff.max.ms": 500,
            "reconnect.backoff.ms": 50, "reconnect.backoff.max.ms": 500,
            "topic.metadata.refresh.interval.ms": 1000, "linger.ms": 5,
            "logger": logging.getLogger("librdkafka"),
            # e.g. SPATE_FAULT_RDKAFKA_DEBUG=eos,protocol,broker (with --log-level=DEBUG)
            **({"debug": os.environ["SPATE_FAULT_RDKAFKA_DEBUG"]}
               if os.environ.get("SPATE_FAULT_RDKAFKA_DEBUG") else {}),
        })
        self.committed: list[int] = []
        self.committed_at: list[float] = []
        self.aborted: list[int] = []
        self.error: str | None = None
        self.stopping = threading.Event()

    def run(self):
        try:
            self.producer.init_transactions(60)
            n = 0
            while not self.stopping.is_set():
                self._one(n)
                n += 1
        except Exception as e:  # noqa: BLE001 - reported to the test thread
            self.error = repr(e)
            log.exception("transactional producer failed")

    def _one(self, n: int):
        p = self.producer
        p.begin_transaction()
        for i in range(RECORDS):
            while True:
                try:
                    p.produce(TOPIC, value=f"{n}-{i}".encode(), partition=i % PARTITIONS)
                    break
                except BufferError:
                    p.poll(0.1)
        if n % 3 != 2:
            if self._finish(p.commit_transaction, n):
                self.committed.append(n)
                self.committed_at.append(time.monotonic())
                return
            log.info("transaction %d: commit failed, aborting it", n)
        self._finish(p.abort_transaction, n, must=True)
        self.aborted.append(n)

    def _finish(self, end, n: int, must: bool = False) -> bool:
        """Calls commit_transaction / abort_transaction until it succeeds; False when the
        transaction must be aborted instead. Fatal errors and endless retries raise."""
        deadline = time.monotonic() + OUTCOME_DEADLINE_S
        while True:
            try:
                end(30)
                return True
            except KafkaException as e:
                err: KafkaError = e.args[0]
                if err.fatal():
                    raise AssertionError(f"transaction {n}: fatal producer error: {err}") from e
                if err.txn_requires_abort() and not must:
                    return False
                if time.monotonic() > deadline:
                    raise AssertionError(f"transaction {n}: no outcome after "
                                         f"{OUTCOME_DEADLINE_S}s: {err}") from e
                log.info("transaction %d: retrying its end after %s", n, err)
                time.sleep(0.2)

    def wait_committed(self, what: str, more: int, timeout: float):
        target = len(self.committed) + more
        wait_until(what, lambda: self.error or len(self.committed) >= target, timeout)
        assert self.error is None, self.error

    def stop(self):
        self.stopping.set()
        self.join(timeout=OUTCOME_DEADLINE_S + 30)
        assert not self.is_alive(), "the transactional producer did not stop"


@pytest.mark.parametrize("cluster", [
    {"transaction.partition.verification.enable": "true"},
    {"transaction.partition.verification.enable": "false"},
], indirect=True, ids=["verification", "no-verification"])
def test_transactions_stay_atomic_while_the_coordinator_is_isolated(cluster):
    create_topic(cluster, TOPIC, PARTITIONS)
    producer = TxnProducer(cluster.bootstrap)
    producer.start()
    try:
        producer.wait_committed("the first transactions", 3, 60)
        for round_no in range(1, ROUNDS + 1):
            coordinator = coordinator_of(cluster, TXN_ID)
            cluster.net.isolate(coordinator)
            cut_at = time.monotonic()
            done = len(producer.committed)
            log.info("round %d: isolated broker %d, the transaction coordinator "
                     "(%d committed, %d aborted)", round_no, coordinator, done,
                     len(producer.aborted))
            producer.wait_committed("transactions through a new coordinator", 3, 90)
            wait_until("a new coordinator on the majority side", lambda: coordinator_of(
                cluster, TXN_ID, exclude={coordinator}) not in (coordinator, -1), 30)
            first = producer.committed_at[done] - cut_at
            log.info("round %d: first commit %.2f s after the cut", round_no, first)
            cluster.net.heal()
            wait_in_sync(cluster, TOPIC, coordinator, timeout=90)
            producer.wait_committed("transactions after healing", 3, 60)
    finally:
        producer.stop()
    assert producer.error is None, producer.error
    log.info("%d transactions committed, %d aborted", len(producer.committed),
             len(producer.aborted))
    visible: dict[int, list[str]] = {}
    for records in read_committed(cluster.bootstrap, TOPIC, PARTITIONS).values():
        for _, value in records:
            visible.setdefault(int(value.split("-")[0]), []).append(value)
    _check(visible, producer.committed, producer.aborted)


def _check(visible: dict[int, list[str]], committed: list[int], aborted: list[int]):
    problems: list[str] = []
    for n in committed:
        got = sorted(visible.pop(n, []))
        want = sorted(f"{n}-{i}" for i in range(RECORDS))
        if got != want:
            problems.append(f"committed transaction {n}: {len(got)} of {RECORDS} records "
                            f"visible ({got[:4]}...)")
    for n in aborted:
        if n in visible:
            problems.append(f"aborted transaction {n}: {len(visible.pop(n))} records visible")
    for n, records in visible.items():
        problems.append(f"transaction {n} (outcome never reported): {len(records)} visible")
    assert not problems, "\n  ".join([f"{len(problems)} problems:", *problems[:20]])
