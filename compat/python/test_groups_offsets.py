"""Consumer groups: committed offsets (confluent-kafka and kafka-python).

- a consumer commits, closes; the next consumer of the group resumes at the committed offsets;
- committed offsets survive a broker restart (SIGTERM and SIGKILL) - OffsetFetch/committed()
  returns them and a new member starts there;
- commit metadata over offset.metadata.max.bytes (4096) fails with OFFSET_METADATA_TOO_LARGE;
- raw requests (kafka-python's protocol classes): Heartbeat / OffsetCommit with a stale
  generation or an unknown member id get ILLEGAL_GENERATION / UNKNOWN_MEMBER_ID.
"""

from __future__ import annotations

import time

import pytest

from compat_util import unique_topic, wait_until
from group_util import GROUP_BROKER_SETTINGS, create_topic, make_client, produce_numbered

CLIENT_KINDS = [pytest.param("ck", id="confluent"), pytest.param("kp", id="kafka-python")]
PER_PARTITION = 10
COMMIT_AT = {0: 3, 1: 6, 2: 9, 3: 10}  # "processed" prefix of each partition


@pytest.fixture
def gbroker(broker_factory):
    return broker_factory(GROUP_BROKER_SETTINGS)


def _setup(b):
    topic, group = unique_topic("off"), unique_topic("grp")
    create_topic(b.bootstrap, topic, 4)
    produced = []
    for p in range(4):
        produced += produce_numbered(b.bootstrap, topic, p * 100, PER_PARTITION, partition=p)
    assert sorted((p, o) for p, o, _ in produced) == [(p, o) for p in range(4)
                                                       for o in range(PER_PARTITION)]
    return topic, group


def _consume(client, n: int, timeout: float = 45) -> list[tuple[int, int, str]]:
    got: list[tuple[int, int, str]] = []

    def enough():
        got.extend(client.poll(0.2))
        return len(got) >= n
    wait_until(enough, timeout, f"{n} records (have {len(got)})", interval=0)
    return got


def _first_run_commits(kind, b, topic, group):
    c = make_client(kind, b.bootstrap, group, topic)
    try:
        got = _consume(c, 4 * PER_PARTITION)
        assert len(got) == 4 * PER_PARTITION
        assert c.assignment() == {0, 1, 2, 3}
        c.commit(COMMIT_AT)
        assert c.committed(range(4)) == COMMIT_AT
    finally:
        c.close()


def _check_resume(kind, b, topic, group):
    c = make_client(kind, b.bootstrap, group, topic)
    try:
        want = sum(PER_PARTITION - o for o in COMMIT_AT.values())
        got = _consume(c, want)
        # anything more would be a re-delivery below the committed offset
        got += c.poll(0.5)
        firsts = {}
        for p, o, _ in got:
            firsts[p] = min(o, firsts.get(p, o))
        assert len(got) == want, f"expected {want} records after the commit, got {len(got)}"
        assert firsts == {p: o for p, o in COMMIT_AT.items() if o < PER_PARTITION}, (
            f"first offsets per partition {firsts}, committed {COMMIT_AT}")
        assert c.committed(range(4)) == COMMIT_AT
    finally:
        c.close()


@pytest.mark.parametrize("kind", CLIENT_KINDS)
def test_commit_then_restarted_consumer_resumes(gbroker, kind):
    topic, group = _setup(gbroker)
    _first_run_commits(kind, gbroker, topic, group)
    _check_resume(kind, gbroker, topic, group)


@pytest.mark.parametrize("restart", ["sigterm", "sigkill"])
@pytest.mark.parametrize("kind", CLIENT_KINDS)
def test_committed_offsets_survive_broker_restart(gbroker, kind, restart):
    topic, group = _setup(gbroker)
    _first_run_commits(kind, gbroker, topic, group)
    if restart == "sigterm":
        gbroker.restart()
    else:
        gbroker.crash_restart()
    # OffsetFetch from a client that is not (yet) a member, then a member resumes there
    c = make_client(kind, gbroker.bootstrap, group, topic)
    try:
        assert wait_until(lambda: c.committed(range(4)) == COMMIT_AT, 30,
                          "committed offsets after the restart") is True
    finally:
        c.close()
    _check_resume(kind, gbroker, topic, group)


@pytest.mark.parametrize("kind", CLIENT_KINDS)
def test_commit_metadata_too_large(gbroker, kind):
    topic, group = _setup(gbroker)
    c = make_client(kind, gbroker.bootstrap, group, topic)
    try:
        _consume(c, 4 * PER_PARTITION)
        # confluent-kafka-python sends the metadata string WITH its NUL terminator
        # (metadata_size = strlen + 1), so 4095 characters are 4096 bytes on the wire.
        ok_len = 4095 if kind == "ck" else 4096
        c.commit({0: 1}, metadata="m" * ok_len)  # exactly offset.metadata.max.bytes: accepted
        assert c.committed([0]) == {0: 1}
        with pytest.raises(Exception) as ei:
            c.commit({0: 2}, metadata="m" * (ok_len + 1))  # 4097 bytes on the wire
        e = ei.value
        if kind == "ck":
            from confluent_kafka import KafkaError, KafkaException
            assert isinstance(e, KafkaException), repr(e)
            assert e.args[0].code() == KafkaError.OFFSET_METADATA_TOO_LARGE, repr(e)
        else:
            from kafka import errors as Errors
            assert isinstance(e, Errors.OffsetMetadataTooLargeError), repr(e)
        assert c.committed([0]) == {0: 1}, "the rejected commit must not change the offset"
    finally:
        c.close()


# ------------------------------------------------------------------------------------------
# raw requests
# ------------------------------------------------------------------------------------------

class Raw:
    """kafka-python's low-level client: send one request, wait for its response."""

    def __init__(self, bootstrap):
        from kafka.client_async import KafkaClient
        self.client = KafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=20000,
                                  reconnect_backoff_ms=50)
        wait_until(lambda: self.client.poll(future=self.client.cluster.request_update(),
                                            timeout_ms=5000) is not None
                   and self.client.cluster.brokers(), 20, "metadata")
        self.node = next(iter(self.client.cluster.brokers())).nodeId
        wait_until(lambda: self.client.ready(self.node) or self.client.poll(timeout_ms=100)
                   and False, 20, "connection")

    def send(self, req):
        f = self.client.send(self.node, req)
        self.client.poll(future=f, timeout_ms=20000)
        assert f.is_done, f"no response to {req}"
        if f.failed():
            raise f.exception
        return f.value

    def close(self):
        self.client.close()


def test_raw_heartbeat_and_commit_errors(gbroker):
    from kafka.coordinator.protocol import (ConsumerProtocolMemberAssignment_v0,
                                            ConsumerProtocolMemberMetadata_v0)
    from kafka.protocol.commit import OffsetCommitRequest
    from kafka.protocol.find_coordinator import FindCoordinatorRequest
    from kafka.protocol.group import (HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest,
                                      SyncGroupRequest)
    topic, group = _setup(gbroker)
    raw = Raw(gbroker.bootstrap)
    try:
        meta_s = ConsumerProtocolMemberMetadata_v0(0, [topic], b"")
        meta = meta_s.encode()
        # FindCoordinator v1 until the coordinator is there (Kafka creates __consumer_offsets
        # on the first lookup and answers COORDINATOR_NOT_AVAILABLE meanwhile)
        fc = wait_until(lambda: (lambda r: r if r.error_code == 0 else None)(
            raw.send(FindCoordinatorRequest[1](group, 0))), 30, "FindCoordinator")
        assert fc.coordinator_id == raw.node, fc
        # JoinGroup v2 (before KIP-394, so no MEMBER_ID_REQUIRED round trip); retried while
        # the coordinator still loads (NOT_COORDINATOR / COORDINATOR_LOAD_IN_PROGRESS)
        join = wait_until(lambda: (lambda r: r if r.error_code not in (14, 15, 16) else None)(
            raw.send(JoinGroupRequest[2](group, 10000, 30000, "", "consumer",
                                         [("range", meta)]))), 30, "JoinGroup")
        assert join.error_code == 0, join
        member, gen = join.member_id, join.generation_id
        assert member and join.leader_id == member and gen >= 1, join
        assign_s = ConsumerProtocolMemberAssignment_v0(0, [(topic, [0, 1, 2, 3])], b"")
        assign = assign_s.encode()
        sync = raw.send(SyncGroupRequest[1](group, gen, member, [(member, assign)]))
        assert sync.error_code == 0, sync
        assert bytes(sync.member_assignment) == assign, sync

        hb = raw.send(HeartbeatRequest[1](group, gen, member))
        assert hb.error_code == 0, f"Heartbeat v1 with the current generation: {hb}"
        hb = raw.send(HeartbeatRequest[1](group, gen - 1, member))
        assert hb.error_code == 22, f"Heartbeat v1 stale generation -> ILLEGAL_GENERATION: {hb}"
        hb = raw.send(HeartbeatRequest[1](group, gen + 1, member))
        assert hb.error_code == 22, f"Heartbeat v1 future generation -> ILLEGAL_GENERATION: {hb}"
        hb = raw.send(HeartbeatRequest[1](group, gen, "no-such-member"))
        assert hb.error_code == 25, f"Heartbeat v1 unknown member -> UNKNOWN_MEMBER_ID: {hb}"

        def commit(g, m, md="", off=5):
            r = raw.send(OffsetCommitRequest[2](group, g, m, -1, [(topic, [(0, off, md)])]))
            return r.topics[0][1][0][1]
        assert commit(gen, member) == 0, "OffsetCommit v2 by the member"
        assert commit(gen - 1, member) == 22, "OffsetCommit v2 stale generation"
        assert commit(gen, "no-such-member") == 25, "OffsetCommit v2 unknown member"
        assert commit(gen, member, md="x" * 4097) == 12, (
            "OffsetCommit v2 metadata of 4097 bytes -> OFFSET_METADATA_TOO_LARGE")
        assert commit(gen, member, md="x" * 4096, off=6) == 0, "metadata of 4096 bytes is ok"

        lv = raw.send(LeaveGroupRequest[1](group, "no-such-member"))
        assert lv.error_code == 25, f"LeaveGroup v1 unknown member -> UNKNOWN_MEMBER_ID: {lv}"
        lv = raw.send(LeaveGroupRequest[1](group, member))
        assert lv.error_code == 0, lv
        hb = raw.send(HeartbeatRequest[1](group, gen, member))
        assert hb.error_code == 25, f"Heartbeat v1 after LeaveGroup -> UNKNOWN_MEMBER_ID: {hb}"
    finally:
        raw.close()
