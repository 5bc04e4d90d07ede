"""A consume-transform-produce pipeline, exactly once, while brokers are killed.

Input: 6,000 numbered records (idempotent producer), fed at 100 a second throughout. The pipeline reads them with
read_committed in a consumer group and, per batch, in one transaction writes `out-<n>` for
each input `<n>` to the output topic and commits the input offsets. Meanwhile the test kill
-9s the transaction coordinator's broker, then the leader of an output partition, restarting
each. An aborted transaction rewinds the consumer to the committed offsets and tries again.
At the end the output, read with read_committed, holds each input's result exactly once;
read_uncommitted may also show results of aborted attempts (that is what the isolation level
is for).

Two pipelines: franz-go's GroupTransactSession (compat/go/cmd/eos-pipeline, in CI) and
confluent-kafka (librdkafka, on demand: see the comment on its test).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from confluent_kafka import (OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer,
                             TopicPartition)

from conftest import create_topic
from history import read_all, read_committed
from netcluster import wait_until
from scenarios import coordinator_of, leader_of, wait_in_sync

# Enough batches (of up to 200) that the pipeline still has input after the second kill:
# with 2000 it could run dry before the "+3 transactions" checks.
INPUTS = 6000
PARTITIONS = 3
TXN_ID = "faults-pipeline"
GROUP = "faults-pipeline"
log = logging.getLogger("faults")


class Pipeline(threading.Thread):
    """The confluent-kafka pipeline, in a thread of the test process."""

    txn_id = TXN_ID

    def __init__(self, bootstrap: str):
        super().__init__(daemon=True, name="pipeline")
        self.bootstrap = bootstrap
        self.committed = 0  # transactions committed
        self.aborted = 0
        self.done = threading.Event()
        self.error: str | None = None

    def stop(self):
        self.done.set()
        self.join(timeout=60)

    def run(self):
        try:
            self._run()
        except Exception as e:  # noqa: BLE001 - reported to the test thread
            self.error = repr(e)
            log.exception("pipeline failed")

    def _run(self):
        common = {"bootstrap.servers": self.bootstrap, "broker.address.family": "v4",
                  "logger": logging.getLogger("librdkafka")}
        p = Producer({**common, "transactional.id": TXN_ID, "transaction.timeout.ms": 20000,
                      "message.timeout.ms": 20000, "retry.backoff.max.ms": 500,
                      "reconnect.backoff.max.ms": 500, "linger.ms": 5})
        p.init_transactions(60)
        c = Consumer({**common, "group.id": GROUP, "isolation.level": "read_committed",
                      "enable.auto.commit": False, "auto.offset.reset": "earliest",
                      "session.timeout.ms": 10000, "heartbeat.interval.ms": 500})
        c.subscribe(["pipe-in"])
        seen_inputs = 0
        try:
            while not self.done.is_set():
                msgs = [m for m in c.consume(200, timeout=0.5) if not m.error()]
                if not msgs:
                    continue
                try:
                    p.begin_transaction()
                    for m in msgs:
                        n = m.value().decode()
                        p.produce("pipe-out", value=f"out-{n}".encode(), key=m.key())
                    p.send_offsets_to_transaction(c.position(c.assignment()),
                                                  c.consumer_group_metadata(), 60)
                    p.commit_transaction(60)
                    self.committed += 1
                    seen_inputs += len(msgs)
                except KafkaException as e:
                    err: KafkaError = e.args[0]
                    if err.fatal():
                        raise
                    log.info("transaction failed (%s), aborting and rewinding", err)
                    self._abort(p)
                    self.aborted += 1
                    self._rewind(c)
        finally:
            c.close()

    @staticmethod
    def _abort(p: Producer):
        deadline = time.monotonic() + 120
        while True:
            try:
                p.abort_transaction(30)
                return
            except KafkaException as e:
                if e.args[0].fatal() or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)  # retriable (coordinator moving): try the abort again

    @staticmethod
    def _rewind(c: Consumer):
        """Back to the last committed input offsets: the aborted batch is processed again."""
        assignment = c.assignment()
        committed = c.committed(assignment, timeout=30)
        for tp in committed:
            c.seek(TopicPartition(tp.topic, tp.partition,
                                  tp.offset if tp.offset >= 0 else OFFSET_BEGINNING))


REPO = Path(__file__).resolve().parents[1]
FEED_PER_S = 100  # input records a second: the input lasts through both kills


class Feeder(threading.Thread):
    """Produces the numbered inputs at FEED_PER_S (idempotent, acks=all), so the pipeline is
    still working when the brokers are killed."""

    def __init__(self, bootstrap: str):
        super().__init__(daemon=True, name="feeder")
        self.producer = Producer({"bootstrap.servers": bootstrap, "broker.address.family": "v4",
                                  "enable.idempotence": True, "acks": "all"})
        self.stopping = threading.Event()
        self.error: str | None = None

    def run(self):
        start = time.monotonic()
        for n in range(INPUTS):
            if self.stopping.is_set():
                return
            self.producer.produce("pipe-in", value=str(n).encode(), key=str(n).encode())
            self.producer.poll(max(0.0, start + n / FEED_PER_S - time.monotonic()))
        left = self.producer.flush(90)
        if left:
            self.error = f"{left} inputs not acknowledged"


class GoPipeline:
    """compat/go/cmd/eos-pipeline (franz-go's GroupTransactSession) in a child process; its
    stdout reports each committed or aborted transaction and each session restart."""

    txn_id = "faults-pipeline-go"

    def __init__(self, binary: Path, bootstrap: str):
        self.committed = 0
        self.aborted = 0
        self.restarts: list[str] = []
        self.error: str | None = None
        self.proc = subprocess.Popen(
            [str(binary), "-brokers", bootstrap, "-in", "pipe-in", "-out", "pipe-out",
             "-group", GROUP, "-transactional-id", self.txn_id],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.reader = threading.Thread(target=self._read, daemon=True, name="go-pipeline")
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            word, _, rest = line.strip().partition(" ")
            if word == "committed":
                self.committed = int(rest.split()[0])
            elif word == "aborted":
                self.aborted = int(rest)
            elif word == "restarted":
                self.restarts.append(rest)
                log.info("go pipeline restarted its session: %s", rest)
            else:
                log.info("go pipeline: %s", line.rstrip())
        if self.proc.wait() != 0 and self.error is None:
            self.error = f"eos-pipeline exited with {self.proc.returncode}"

    def start(self):
        pass  # started in __init__

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.reader.join(timeout=10)
        if self.proc.returncode not in (0, -15):
            self.error = self.error or f"eos-pipeline exited with {self.proc.returncode}"


@pytest.fixture(scope="module")
def eos_pipeline_binary(tmp_path_factory) -> Path:
    go = shutil.which("go")
    if go is None:
        pytest.skip("go is not installed (needed to build compat/go/cmd/eos-pipeline)")
    out = tmp_path_factory.mktemp("eos") / "eos-pipeline"
    subprocess.run([go, "build", "-o", str(out), "./cmd/eos-pipeline"], cwd=REPO / "compat" / "go",
                   check=True, timeout=600)
    return out


def committed_inputs(bootstrap: str) -> int:
    c = Consumer({"bootstrap.servers": bootstrap, "broker.address.family": "v4",
                  "group.id": GROUP})
    try:
        tps = c.committed([TopicPartition("pipe-in", p) for p in range(PARTITIONS)], timeout=10)
        return sum(max(tp.offset, 0) for tp in tps)
    finally:
        c.close()


def test_franz_go_pipeline_is_exactly_once_through_coordinator_and_leader_kills(
        cluster, eos_pipeline_binary):
    _scenario(cluster, lambda: GoPipeline(eos_pipeline_binary, cluster.bootstrap))


# On demand: librdkafka 2.16 (issues #5511, #5456) never sends the TxnOffsetCommit of a
# transaction whose cached group coordinator left the Metadata broker list (fenced after its
# kill; Kafka leaves fenced brokers out too), so send_offsets_to_transaction hangs and the
# scenario times out after the leader kill. Listing fenced brokers in Metadata works around it,
# but that is not what Kafka does.
@pytest.mark.skipif(os.environ.get("SPATE_FAULT_TXN") != "1",
                    reason="librdkafka bug, see the comment above; SPATE_FAULT_TXN=1 runs it")
def test_librdkafka_pipeline_is_exactly_once_through_coordinator_and_leader_kills(cluster):
    _scenario(cluster, lambda: Pipeline(cluster.bootstrap))


def _scenario(cluster, make_pipeline):
    create_topic(cluster, "pipe-in", PARTITIONS)
    create_topic(cluster, "pipe-out", PARTITIONS)
    feeder = Feeder(cluster.bootstrap)
    feeder.start()
    pipeline = make_pipeline()
    pipeline.start()
    try:
        progress = lambda n: lambda: pipeline.error or pipeline.committed >= n  # noqa: E731
        wait_until("a few committed transactions", progress(3), 60)
        victim = coordinator_of(cluster, pipeline.txn_id)
        cluster.nodes[victim].kill9()
        log.info("killed broker %d, the transaction coordinator", victim)
        done = pipeline.committed
        wait_until("transactions through the new coordinator", progress(done + 3), 90)
        cluster.nodes[victim].start()
        cluster.wait_ready([victim])
        wait_in_sync(cluster, "pipe-out", victim)

        leader = leader_of(cluster, "pipe-out", 0)
        cluster.nodes[leader].kill9()
        log.info("killed broker %d, leader of pipe-out-0", leader)
        done = pipeline.committed
        wait_until("transactions after the leader kill", progress(done + 3), 90)
        cluster.nodes[leader].start()
        cluster.wait_ready([leader])

        feeder.join(timeout=120)
        assert feeder.error is None and not feeder.is_alive(), feeder.error or "feeder stuck"
        wait_until("every input processed",
                   lambda: pipeline.error or committed_inputs(cluster.bootstrap) >= INPUTS, 180)
    finally:
        feeder.stopping.set()
        pipeline.stop()
    assert pipeline.error is None, pipeline.error
    log.info("pipeline: %d committed, %d aborted transactions",
             pipeline.committed, pipeline.aborted)

    inputs = read_all(cluster.bootstrap, "pipe-in", PARTITIONS)
    input_values = [v for records in inputs.values() for _, v in records]
    assert sorted(input_values) == sorted(str(n) for n in range(INPUTS)), (
        "the idempotent feeder wrote duplicates or lost inputs: "
        f"{_duplicates(inputs)} duplicated")
    out = read_committed(cluster.bootstrap, "pipe-out", PARTITIONS)
    values = sorted(v for records in out.values() for _, v in records)
    expected = sorted(f"out-{n}" for n in range(INPUTS))
    duplicates = len(values) - len(set(values))
    missing = set(expected) - set(values)
    assert not duplicates and not missing and values == expected, (
        f"{duplicates} duplicates ({_duplicates(out)}), {len(missing)} missing "
        f"(e.g. {sorted(missing)[:5]})")
    # Aborted attempts' records are in the log, hidden by read_committed only.
    raw = read_all(cluster.bootstrap, "pipe-out", PARTITIONS)
    assert sum(len(r) for r in raw.values()) >= len(values)


def _duplicates(by_partition: dict) -> dict:
    """value -> [(partition, offset), ...] for values that occur more than once (first 5)."""
    where: dict = {}
    for p, records in by_partition.items():
        for offset, v in records:
            where.setdefault(v.decode() if isinstance(v, bytes) else v, []).append((p, offset))
    return dict(list((v, w) for v, w in where.items() if len(w) > 1)[:5])
