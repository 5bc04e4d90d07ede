"""Consumer groups: who gets which partitions (confluent-kafka and kafka-python).

Topic with 4 partitions; members are threads (group_util.Member) or a child process (for
SIGKILL).  Every wait is a deadline poll on the members' assignment snapshots.
"""

from __future__ import annotations

import time

import pytest

from compat_util import unique_topic, wait_until
from group_util import (GROUP_BROKER_SETTINGS, Member, SubprocessMember, create_topic,
                        wait_for_distribution)

VARIANTS = [
    pytest.param("ck", "range", id="confluent-range"),
    pytest.param("ck", "cooperative-sticky", id="confluent-cooperative"),
    pytest.param("kp", "range", id="kafka-python-range"),
]


@pytest.fixture
def gbroker(broker_factory):
    return broker_factory(GROUP_BROKER_SETTINGS)


def _start(kind, strategy, b, group, topic, name, **kw):
    m = Member(kind, b.bootstrap, group, topic, name, strategy=strategy, **kw)
    m.start()
    return m


@pytest.mark.parametrize("kind,strategy", VARIANTS)
def test_partitions_split_1_2_4_5_members(gbroker, kind, strategy):
    topic, group = unique_topic("g4"), unique_topic("grp")
    create_topic(gbroker.bootstrap, topic, 4)
    members = []
    try:
        members.append(_start(kind, strategy, gbroker, group, topic, "m1"))
        snaps = wait_for_distribution(members, [4], what="(1 member)")
        assert snaps["m1"] == {0, 1, 2, 3}

        members.append(_start(kind, strategy, gbroker, group, topic, "m2"))
        wait_for_distribution(members, [2, 2], what="(2 members)")

        members.append(_start(kind, strategy, gbroker, group, topic, "m3"))
        members.append(_start(kind, strategy, gbroker, group, topic, "m4"))
        wait_for_distribution(members, [1, 1, 1, 1], what="(4 members)")

        members.append(_start(kind, strategy, gbroker, group, topic, "m5"))
        snaps = wait_for_distribution(members, [1, 1, 1, 1, 0], what="(5 members)")
        assert sum(1 for s in snaps.values() if not s) == 1
    finally:
        for m in members:
            m.leave()
    for m in members:
        assert not m.errors, m.errors


@pytest.mark.parametrize("kind,strategy", VARIANTS)
def test_leaving_member_rebalanced_at_once(gbroker, kind, strategy):
    """close() sends LeaveGroup: the survivor gets all partitions long before the 30 s
    session timeout would have expired the member."""
    topic, group = unique_topic("leave"), unique_topic("grp")
    create_topic(gbroker.bootstrap, topic, 4)
    session_ms = 30000
    a = _start(kind, strategy, gbroker, group, topic, "a", session_ms=session_ms)
    b = _start(kind, strategy, gbroker, group, topic, "b", session_ms=session_ms)
    try:
        wait_for_distribution([a, b], [2, 2], what="(2 members)")
        t0 = time.monotonic()
        b.leave()
        snaps = wait_for_distribution([a], [4], timeout=session_ms / 1000 - 5,
                                      what="after the other member's close()")
        took = time.monotonic() - t0
        assert snaps["a"] == {0, 1, 2, 3}
        assert took < 15, f"rebalance after LeaveGroup took {took:.1f}s (session timeout 30s)"
    finally:
        for m in (a, b):
            if m.is_alive():
                m.leave()


@pytest.mark.parametrize("kind,strategy", VARIANTS)
def test_killed_member_expires_after_session_timeout(gbroker, kind, strategy, tmp_path):
    """A SIGKILLed member sends no LeaveGroup: it stays in the group until its 6 s session
    timeout expires, then its partitions go to the survivor."""
    topic, group = unique_topic("kill"), unique_topic("grp")
    create_topic(gbroker.bootstrap, topic, 4)
    session_ms = 6000
    a = _start(kind, strategy, gbroker, group, topic, "a", session_ms=session_ms)
    child = SubprocessMember(kind, gbroker.bootstrap, group, topic, session_ms=session_ms,
                             strategy=strategy, log_path=tmp_path / "child.log")
    try:
        wait_until(lambda: a.snapshot is not None and len(a.snapshot) == 2
                   and child.assignment is not None and len(child.assignment) == 2
                   and a.snapshot.isdisjoint(child.assignment), 45,
                   "2/2 split between the thread member and the child process "
                   f"(child stderr: {child.stderr_tail()})")
        child_parts = set(child.assignment)
        child.kill9()
        t0 = time.monotonic()
        # still the old split for a while: the broker must not drop the member early
        snaps = wait_for_distribution([a], [4], timeout=session_ms / 1000 + 25,
                                      what="after SIGKILL of the other member")
        took = time.monotonic() - t0
        assert snaps["a"] == {0, 1, 2, 3}
        assert child_parts <= snaps["a"]
        assert took >= session_ms / 1000 - 2, (
            f"killed member's partitions moved after {took:.1f}s, before its "
            f"{session_ms / 1000:.0f}s session timeout")
    finally:
        if child.proc.poll() is None:
            child.kill9()
        a.leave()
