package compat

// Group protocol semantics with hand-built requests (kmsg through a kgo
// client, which picks the highest version both sides support and routes
// group requests to the coordinator), plus a real group consumer pinned to
// older protocol versions. Expectations checked against Apache Kafka 3.9.1
// (scripts/apache-kafka.sh; see README.md for what differs on Kafka 4).

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

func errName(code int16) string {
	if code == 0 {
		return "none"
	}
	if e := kerr.ErrorForCode(code); e != nil {
		return e.Error()
	}
	return fmt.Sprint(code)
}

func expectCode(t *testing.T, what string, got int16, want error) {
	t.Helper()
	var wcode int16
	if want != nil {
		wcode = want.(*kerr.Error).Code
	}
	if got != wcode {
		t.Errorf("%s: error %s, want %s", what, errName(got), errName(wcode))
	}
}

func rawJoin(t *testing.T, cl *kgo.Client, group, memberID, protoType string, session int32) *kmsg.JoinGroupResponse {
	t.Helper()
	req := kmsg.NewPtrJoinGroupRequest()
	req.Group = group
	req.MemberID = memberID
	req.SessionTimeoutMillis = session
	req.RebalanceTimeoutMillis = 10000
	req.ProtocolType = protoType
	p := kmsg.NewJoinGroupRequestProtocol()
	p.Name = "range"
	p.Metadata = []byte{0, 1, 2}
	req.Protocols = append(req.Protocols, p)
	resp, err := req.RequestWith(ctxT(t, 20*time.Second), cl)
	if err != nil {
		t.Fatalf("JoinGroup(%s, member %q): %v", group, memberID, err)
	}
	return resp
}

// rawJoinNew does the v4+ two-step join (MEMBER_ID_REQUIRED, then join with the id).
func rawJoinNew(t *testing.T, cl *kgo.Client, group string) *kmsg.JoinGroupResponse {
	t.Helper()
	r := rawJoin(t, cl, group, "", "consumer", 6000)
	expectCode(t, "JoinGroup without member id (v4+)", r.ErrorCode, kerr.MemberIDRequired)
	if r.MemberID == "" {
		t.Fatalf("MEMBER_ID_REQUIRED response without a member id")
	}
	return rawJoin(t, cl, group, r.MemberID, "consumer", 6000)
}

func rawSync(t *testing.T, cl *kgo.Client, group, member string, gen int32, assign map[string][]byte) *kmsg.SyncGroupResponse {
	t.Helper()
	req := kmsg.NewPtrSyncGroupRequest()
	req.Group, req.MemberID, req.Generation = group, member, gen
	req.ProtocolType, req.Protocol = kmsg.StringPtr("consumer"), kmsg.StringPtr("range")
	for m, a := range assign {
		ga := kmsg.NewSyncGroupRequestGroupAssignment()
		ga.MemberID, ga.MemberAssignment = m, a
		req.GroupAssignment = append(req.GroupAssignment, ga)
	}
	resp, err := req.RequestWith(ctxT(t, 20*time.Second), cl)
	if err != nil {
		t.Fatalf("SyncGroup(%s, %s, gen %d): %v", group, member, gen, err)
	}
	return resp
}

func rawHeartbeat(t *testing.T, cl *kgo.Client, group, member string, gen int32) int16 {
	t.Helper()
	req := kmsg.NewPtrHeartbeatRequest()
	req.Group, req.MemberID, req.Generation = group, member, gen
	resp, err := req.RequestWith(ctxT(t, 10*time.Second), cl)
	if err != nil {
		t.Fatalf("Heartbeat: %v", err)
	}
	return resp.ErrorCode
}

func rawCommit(t *testing.T, cl *kgo.Client, group, member string, gen int32, topic string, offset int64, meta string) int16 {
	t.Helper()
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Group, req.MemberID, req.Generation = group, member, gen
	rt := kmsg.NewOffsetCommitRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewOffsetCommitRequestTopicPartition()
	rp.Partition, rp.Offset, rp.LeaderEpoch, rp.Metadata = 0, offset, -1, kmsg.StringPtr(meta)
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctxT(t, 10*time.Second), cl)
	if err != nil {
		t.Fatalf("OffsetCommit: %v", err)
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("OffsetCommit response shape: %+v", resp.Topics)
	}
	return resp.Topics[0].Partitions[0].ErrorCode
}

// TestGroupProtocolSemantics walks one group through join/sync/heartbeat/
// commit/leave with two hand-driven members and checks Kafka's error codes.
func TestGroupProtocolSemantics(t *testing.T) {
	b, adm, topic := startGroupBroker(t)
	c1 := b.Client(t)
	c2 := b.Client(t) // separate connection: a JoinGroup may park
	group := "g-raw"

	// FindCoordinator (v4+ batched keys) names this broker. (Kafka answers
	// COORDINATOR_NOT_AVAILABLE until __consumer_offsets exists: retry.)
	eventually(t, 20*time.Second, "FindCoordinator names this broker for both keys", func() error {
		fc := kmsg.NewPtrFindCoordinatorRequest()
		fc.CoordinatorKey = group
		fc.CoordinatorKeys = []string{group, "g-other"}
		fcr, err := fc.RequestWith(ctxT(t, 10*time.Second), c1)
		if err != nil {
			return err
		}
		if fcr.Version >= 4 {
			if len(fcr.Coordinators) != 2 {
				return fmt.Errorf("v%d: %d coordinators for 2 keys", fcr.Version, len(fcr.Coordinators))
			}
			for _, c := range fcr.Coordinators {
				if c.ErrorCode != 0 || fmt.Sprintf("%s:%d", c.Host, c.Port) != b.Addr {
					return fmt.Errorf("v%d key %s: %s:%d err %s, want %s", fcr.Version, c.Key, c.Host, c.Port, errName(c.ErrorCode), b.Addr)
				}
			}
		} else if fcr.ErrorCode != 0 || fmt.Sprintf("%s:%d", fcr.Host, fcr.Port) != b.Addr {
			return fmt.Errorf("v%d: %s:%d err %s, want %s", fcr.Version, fcr.Host, fcr.Port, errName(fcr.ErrorCode), b.Addr)
		}
		return nil
	})

	// Session timeout below group.min.session.timeout.ms.
	r := rawJoin(t, c1, group, "", "consumer", 1000)
	expectCode(t, "JoinGroup with session timeout 1000 < min 6000", r.ErrorCode, kerr.InvalidSessionTimeout)

	// m1 alone: generation 1, leader, sees itself with its metadata.
	j1 := rawJoinNew(t, c1, group)
	expectCode(t, "JoinGroup m1", j1.ErrorCode, nil)
	m1 := j1.MemberID
	if j1.Generation != 1 || j1.LeaderID != m1 || len(j1.Members) != 1 || j1.Protocol == nil || *j1.Protocol != "range" {
		t.Fatalf("JoinGroup m1: gen %d leader %q (me %q) %d members protocol %v; want gen 1, leader me, 1 member, range", j1.Generation, j1.LeaderID, m1, len(j1.Members), j1.Protocol)
	}
	if string(j1.Members[0].ProtocolMetadata) != "\x00\x01\x02" {
		t.Errorf("JoinGroup m1: member metadata %x, want 000102", j1.Members[0].ProtocolMetadata)
	}
	// Before SyncGroup the group is CompletingRebalance: Kafka treats a
	// heartbeat as a normal one, but refuses commits.
	expectCode(t, "Heartbeat in CompletingRebalance", rawHeartbeat(t, c1, group, m1, 1), nil)
	expectCode(t, "OffsetCommit in CompletingRebalance", rawCommit(t, c1, group, m1, 1, topic, 1, ""), kerr.RebalanceInProgress)
	s1 := rawSync(t, c1, group, m1, 1, map[string][]byte{m1: []byte("assign-m1")})
	expectCode(t, "SyncGroup m1", s1.ErrorCode, nil)
	if string(s1.MemberAssignment) != "assign-m1" {
		t.Errorf("SyncGroup m1 assignment %q, want assign-m1", s1.MemberAssignment)
	}

	expectCode(t, "Heartbeat gen 1", rawHeartbeat(t, c1, group, m1, 1), nil)
	expectCode(t, "Heartbeat gen 2 (future)", rawHeartbeat(t, c1, group, m1, 2), kerr.IllegalGeneration)
	expectCode(t, "Heartbeat unknown member", rawHeartbeat(t, c1, group, "nobody", 1), kerr.UnknownMemberID)
	expectCode(t, "Heartbeat unknown group", rawHeartbeat(t, c1, "g-none", "nobody", 1), kerr.UnknownMemberID)

	expectCode(t, "OffsetCommit gen 1", rawCommit(t, c1, group, m1, 1, topic, 7, "meta-7"), nil)
	expectCode(t, "OffsetCommit gen 5", rawCommit(t, c1, group, m1, 5, topic, 8, ""), kerr.IllegalGeneration)
	expectCode(t, "OffsetCommit unknown member", rawCommit(t, c1, group, "nobody", 1, topic, 8, ""), kerr.UnknownMemberID)
	expectCode(t, "OffsetCommit gen -1 (admin) on a live group", rawCommit(t, c1, group, "", -1, topic, 8, ""), kerr.UnknownMemberID)
	// Simple (generation -1) commits to a group with no members are fine.
	expectCode(t, "OffsetCommit gen -1 to a fresh group", rawCommit(t, c1, "g-simple", "", -1, topic, 3, "simple"), nil)

	or, err := adm.FetchOffsets(ctxT(t, 10*time.Second), group)
	if err != nil {
		t.Fatalf("FetchOffsets: %v", err)
	}
	if o, ok := or.Lookup(topic, 0); !ok || o.Err != nil || o.At != 7 || o.Metadata != "meta-7" {
		t.Errorf("FetchOffsets(%s) %s[0]: %+v (found %v), want offset 7 metadata meta-7", group, topic, o, ok)
	}
	or, err = adm.FetchOffsets(ctxT(t, 10*time.Second), "g-simple")
	if err != nil {
		t.Fatalf("FetchOffsets(g-simple): %v", err)
	}
	if o, ok := or.Lookup(topic, 0); !ok || o.At != 3 || o.Metadata != "simple" {
		t.Errorf("FetchOffsets(g-simple): %+v (found %v), want 3/simple", o, ok)
	}

	// m2 joins: its JoinGroup parks until m1 rejoins; m1 learns via heartbeat.
	var wg sync.WaitGroup
	var j2 *kmsg.JoinGroupResponse
	wg.Add(1)
	go func() {
		defer wg.Done()
		req := kmsg.NewPtrJoinGroupRequest()
		req.Group, req.SessionTimeoutMillis, req.RebalanceTimeoutMillis, req.ProtocolType = group, 6000, 10000, "consumer"
		p := kmsg.NewJoinGroupRequestProtocol()
		p.Name, p.Metadata = "range", []byte("m2")
		req.Protocols = append(req.Protocols, p)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		r, err := req.RequestWith(ctx, c2)
		if err == nil && r.ErrorCode == kerr.MemberIDRequired.Code {
			req.MemberID = r.MemberID
			r, err = req.RequestWith(ctx, c2)
		}
		if err != nil {
			t.Errorf("JoinGroup m2: %v", err)
			return
		}
		j2 = r
	}()
	eventually(t, 10*time.Second, "m1 heartbeat sees REBALANCE_IN_PROGRESS after m2 joined", func() error {
		if c := rawHeartbeat(t, c1, group, m1, 1); c != kerr.RebalanceInProgress.Code {
			return fmt.Errorf("heartbeat: %s", errName(c))
		}
		return nil
	})
	// Commits from the current generation are still accepted while preparing.
	expectCode(t, "OffsetCommit gen 1 during PreparingRebalance", rawCommit(t, c1, group, m1, 1, topic, 9, ""), nil)
	j1b := rawJoin(t, c1, group, m1, "consumer", 6000)
	wg.Wait()
	if j2 == nil {
		t.FailNow()
	}
	expectCode(t, "JoinGroup m1 (rejoin)", j1b.ErrorCode, nil)
	expectCode(t, "JoinGroup m2", j2.ErrorCode, nil)
	if j1b.Generation != 2 || j2.Generation != 2 || j1b.LeaderID != j2.LeaderID {
		t.Fatalf("rejoin: m1 gen %d leader %s, m2 gen %d leader %s; want both gen 2, same leader", j1b.Generation, j1b.LeaderID, j2.Generation, j2.LeaderID)
	}
	leaderCl, leaderID, leaderResp, followerCl, followerID, followerResp := c1, m1, j1b, c2, j2.MemberID, j2
	if j1b.LeaderID != m1 {
		leaderCl, leaderID, leaderResp, followerCl, followerID, followerResp = c2, j2.MemberID, j2, c1, m1, j1b
	}
	if len(leaderResp.Members) != 2 || len(followerResp.Members) != 0 {
		t.Errorf("rejoin: leader got %d members, follower %d; want 2 and 0", len(leaderResp.Members), len(followerResp.Members))
	}
	expectCode(t, "OffsetCommit stale gen 1 after rebalance", rawCommit(t, c1, group, m1, 1, topic, 10, ""), kerr.IllegalGeneration)
	// The follower's SyncGroup parks until the leader's arrives.
	var sf *kmsg.SyncGroupResponse
	wg.Add(1)
	go func() { defer wg.Done(); sf = rawSync(t, followerCl, group, followerID, 2, nil) }()
	sl := rawSync(t, leaderCl, group, leaderID, 2, map[string][]byte{leaderID: []byte("L"), followerID: []byte("F")})
	wg.Wait()
	expectCode(t, "SyncGroup leader", sl.ErrorCode, nil)
	expectCode(t, "SyncGroup follower", sf.ErrorCode, nil)
	if string(sl.MemberAssignment) != "L" || string(sf.MemberAssignment) != "F" {
		t.Errorf("SyncGroup assignments leader %q follower %q, want L and F", sl.MemberAssignment, sf.MemberAssignment)
	}
	dg, err := adm.DescribeGroups(ctxT(t, 10*time.Second), group, "g-none")
	if err != nil {
		t.Fatalf("DescribeGroups: %v", err)
	}
	if g := dg[group]; g.State != "Stable" || len(g.Members) != 2 || g.Protocol != "range" {
		t.Errorf("DescribeGroups(%s): state %s, %d members, protocol %s; want Stable, 2, range", group, g.State, len(g.Members), g.Protocol)
	}
	if g := dg["g-none"]; g.Err != nil || g.State != "Dead" {
		t.Errorf("DescribeGroups(unknown group): state %q err %v, want Dead, no error", g.State, g.Err)
	}

	// JoinGroup with another protocol type is refused.
	r = rawJoin(t, c1, group, "", "connect", 6000)
	if r.ErrorCode == kerr.MemberIDRequired.Code {
		r = rawJoin(t, c1, group, r.MemberID, "connect", 6000)
	}
	expectCode(t, "JoinGroup with protocol type connect into a consumer group", r.ErrorCode, kerr.InconsistentGroupProtocol)

	// LeaveGroup (v3+ batch): the follower leaves, an unknown member is refused per member.
	lv := kmsg.NewPtrLeaveGroupRequest()
	lv.Group, lv.MemberID = group, followerID
	for _, id := range []string{followerID, "nobody"} {
		m := kmsg.NewLeaveGroupRequestMember()
		m.MemberID = id
		lv.Members = append(lv.Members, m)
	}
	lr, err := lv.RequestWith(ctxT(t, 10*time.Second), c1)
	if err != nil {
		t.Fatalf("LeaveGroup: %v", err)
	}
	if lr.Version >= 3 {
		expectCode(t, "LeaveGroup top level", lr.ErrorCode, nil)
		codes := map[string]int16{}
		for _, m := range lr.Members {
			codes[m.MemberID] = m.ErrorCode
		}
		expectCode(t, "LeaveGroup follower", codes[followerID], nil)
		expectCode(t, "LeaveGroup unknown member", codes["nobody"], kerr.UnknownMemberID)
	}
	expectCode(t, "leader Heartbeat after the follower left", rawHeartbeat(t, leaderCl, group, leaderID, 2), kerr.RebalanceInProgress)
	expectCode(t, "follower Heartbeat after leaving", rawHeartbeat(t, followerCl, group, followerID, 2), kerr.UnknownMemberID)
}

// TestGroupPinnedVersions: a franz-go group consumer and kadm pinned to the
// protocol versions of older Kafka releases (JoinGroup v2..v5, OffsetCommit
// v3..v8, OffsetFetch v3..v7, ...) consumes, commits and describes.
func TestGroupPinnedVersions(t *testing.T) {
	for _, v := range []struct {
		name string
		ver  *kversion.Versions
	}{
		{"0.11", kversion.V0_11_0()},
		{"2.1", kversion.V2_1_0()},
		{"2.4", kversion.V2_4_0()},
		{"3.0", kversion.V3_0_0()},
	} {
		t.Run(v.name, func(t *testing.T) {
			b, _, topic := startGroupBroker(t)
			pin := kgo.MaxVersions(v.ver)
			prod := b.Client(t, pin, kgo.RecordPartitioner(kgo.ManualPartitioner()))
			for p := int32(0); p < groupParts; p++ {
				produceTo(t, prod, topic, p, 5, "v")
			}
			group := "g-pin-" + v.name
			noLoop := func(context.Context, *member) bool { return false }
			opts := []kgo.Opt{pin, kgo.DisableAutoCommit()}
			if v.name == "0.11" || v.name == "2.1" {
				opts = append(opts, kgo.Balancers(kgo.RangeBalancer())) // no cooperative before 2.4
			}
			m := newMember(t, b, "pinned", group, topic, noLoop, opts...)
			n := 0
			pollUntil(t, m.cl, 30*time.Second, "pinned member reads 20 records", func(*kgo.Record) { n++ }, func() bool { return n >= 20 })
			if err := m.cl.CommitUncommittedOffsets(ctxT(t, 15*time.Second)); err != nil {
				t.Fatalf("commit: %v", err)
			}
			adm := kadm.NewClient(b.Client(t, pin))
			describeMatches(t, adm, group, topic, m)
			m.Close()
			got := fetchCommitted(t, adm, group, topic)
			if fmt.Sprint(got) != fmt.Sprint(map[int32]int64{0: 5, 1: 5, 2: 5, 3: 5}) {
				t.Errorf("committed %v, want 5 on every partition", got)
			}
			lg, err := adm.ListGroups(ctxT(t, 10*time.Second))
			if err != nil {
				t.Fatalf("ListGroups: %v", err)
			}
			if _, ok := lg[group]; !ok {
				t.Errorf("ListGroups misses %s: %v", group, lg.Groups())
			}
			if v.name != "0.11" { // DeleteGroups is Kafka 1.1+
				dr, err := adm.DeleteGroups(ctxT(t, 10*time.Second), group)
				if err == nil {
					err = dr[group].Err
				}
				if err != nil {
					t.Errorf("DeleteGroups of the Empty group: %v", err)
				}
			}
		})
	}
}
