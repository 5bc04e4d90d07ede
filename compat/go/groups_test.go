package compat

// Consumer groups (classic protocol) through franz-go: assignment splits,
// leave vs. session-timeout removal (SIGKILLed subprocess member), commit and
// resume (also across a broker restart), no-duplicate processing across a
// series of rebalances (cooperative-sticky and range), and kadm group admin
// (ListGroups, DescribeGroups, Lag, DeleteGroups, DeleteOffsets).
//
// Every broker here runs with group.initial.rebalance.delay.ms=0; the session
// timeout is the broker minimum (group.min.session.timeout.ms, 6 s).

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const (
	groupParts       = 4
	groupSession     = 6 * time.Second
	groupHeartbeat   = 500 * time.Millisecond
	groupRebalanceTO = 10 * time.Second
	convergeDeadline = 20 * time.Second
)

func startGroupBroker(t *testing.T, extra ...string) (*Broker, *kadm.Client, string) {
	t.Helper()
	b := StartBroker(t, append([]string{"group.initial.rebalance.delay.ms=0"}, extra...)...)
	adm := b.Admin(t)
	topic := "compat-go-" + strings.ReplaceAll(strings.ToLower(t.Name()), "/", "-")
	createTopic(t, adm, topic, groupParts, nil)
	waitPartitions(t, adm, topic, groupParts)
	return b, adm, topic
}

// groupClientOpts are the base client options (same as Broker.Client) plus
// group options shared by every member in this file.
func groupClientOpts(b *Broker, name, group, topic string) []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SeedBrokers(b.Addr),
		kgo.ClientID("spate-compat-go-" + name),
		kgo.RetryTimeout(20 * time.Second),
		kgo.RequestTimeoutOverhead(10 * time.Second),
		kgo.MetadataMinAge(100 * time.Millisecond),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.SessionTimeout(groupSession),
		kgo.HeartbeatInterval(groupHeartbeat),
		kgo.RebalanceTimeout(groupRebalanceTO),
		kgo.FetchMaxWait(200 * time.Millisecond),
	}
	if debugEnabled() {
		opts = append(opts, kgo.WithLogger(kgo.BasicLogger(os.Stderr, kgo.LogLevelDebug, func() string {
			return "[" + name + "] "
		})))
	}
	return opts
}

// member is one group consumer with its current assignment tracked through
// the OnPartitions{Assigned,Revoked,Lost} callbacks.
type member struct {
	t     testing.TB
	name  string
	topic string
	cl    *kgo.Client

	mu     sync.Mutex
	owned  map[int32]bool
	events []string

	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// pollFn is the member's poll loop body; it returns false to stop.
type pollFn func(ctx context.Context, m *member) bool

// newMember starts a group member. poll == nil: a plain loop that polls and
// discards (the group must keep being polled for franz-go to make progress).
func newMember(t testing.TB, b *Broker, name, group, topic string, poll pollFn, opts ...kgo.Opt) *member {
	t.Helper()
	return newMemberHooked(t, b, name, group, topic, poll, nil, opts...)
}

// newMemberHooked: onRevoke (if set) runs in OnPartitionsRevoked before the
// assignment tracking (e.g. to commit).
func newMemberHooked(t testing.TB, b *Broker, name, group, topic string, poll pollFn, onRevoke func(context.Context, *kgo.Client), opts ...kgo.Opt) *member {
	t.Helper()
	m := &member{t: t, name: name, topic: topic, owned: map[int32]bool{}, done: make(chan struct{})}
	all := append(groupClientOpts(b, name, group, topic),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, a map[string][]int32) { m.track("assigned", a[topic], true) }),
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, r map[string][]int32) {
			if onRevoke != nil {
				onRevoke(ctx, cl)
			}
			m.track("revoked", r[topic], false)
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, l map[string][]int32) { m.track("lost", l[topic], false) }),
	)
	cl, err := kgo.NewClient(append(all, opts...)...)
	if err != nil {
		t.Fatalf("%s: kgo.NewClient: %v", name, err)
	}
	m.cl = cl
	if poll == nil {
		poll = func(ctx context.Context, m *member) bool {
			fs := m.cl.PollFetches(ctx)
			return !fs.IsClientClosed() && ctx.Err() == nil
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	go func() {
		defer close(m.done)
		for poll(ctx, m) {
		}
	}()
	t.Cleanup(m.Close)
	return m
}

// track records an assignment change reported by a callback.
func (m *member) track(what string, ps []int32, add bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range ps {
		if add {
			m.owned[p] = true
		} else {
			delete(m.owned, p)
		}
	}
	sorted := append([]int32(nil), ps...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	m.events = append(m.events, fmt.Sprintf("%s %s %v", time.Now().Format("15:04:05.000"), what, sorted))
}

func (m *member) Owned() []int32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []int32
	for p := range m.owned {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func (m *member) history() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return strings.Join(m.events, "; ")
}

// Close leaves the group (franz-go: revoke callback, then LeaveGroup) and
// stops the poll loop. Idempotent.
func (m *member) Close() {
	m.once.Do(func() {
		m.cl.Close()
		m.cancel()
		select {
		case <-m.done:
		case <-time.After(30 * time.Second):
			m.t.Errorf("%s: poll loop did not stop within 30 s of Close", m.name)
		}
	})
}

// balancedSizes is the assignment-size multiset (descending) any balancer
// should produce for n members over groupParts partitions.
func balancedSizes(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = groupParts / n
		if i < groupParts%n {
			out[i]++
		}
	}
	return out
}

// assignmentState checks the members' own view: disjoint, covering all
// partitions, with the wanted sizes.
func assignmentState(ms []*member, want []int) error {
	seen := map[int32]string{}
	var sizes []int
	var desc []string
	for _, m := range ms {
		o := m.Owned()
		sizes = append(sizes, len(o))
		desc = append(desc, fmt.Sprintf("%s=%v", m.name, o))
		for _, p := range o {
			if prev, dup := seen[p]; dup {
				return fmt.Errorf("partition %d owned by both %s and %s (%s)", p, prev, m.name, strings.Join(desc, " "))
			}
			seen[p] = m.name
		}
	}
	sort.Sort(sort.Reverse(sort.IntSlice(sizes)))
	if len(seen) != groupParts || fmt.Sprint(sizes) != fmt.Sprint(want) {
		return fmt.Errorf("assignment %s: sizes %v, want %v covering %d partitions", strings.Join(desc, " "), sizes, want, groupParts)
	}
	return nil
}

func waitAssignment(t *testing.T, within time.Duration, what string, ms ...*member) {
	t.Helper()
	want := balancedSizes(len(ms))
	deadline := time.Now().Add(within)
	for {
		err := assignmentState(ms, want)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			var hist []string
			for _, m := range ms {
				hist = append(hist, fmt.Sprintf("  %s: %s", m.name, m.history()))
			}
			t.Fatalf("%s: not converged within %v: %v\ncallback history:\n%s", what, within, err, strings.Join(hist, "\n"))
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// describeMatches checks the coordinator's view (DescribeGroups) against the
// members' own: state Stable, same member ids, same assignment per member.
func describeMatches(t *testing.T, adm *kadm.Client, group, topic string, ms ...*member) {
	t.Helper()
	eventually(t, 10*time.Second, "DescribeGroups("+group+") matches the members' view", func() error {
		dg, err := adm.DescribeGroups(ctxT(t, 10*time.Second), group)
		if err != nil {
			return err
		}
		g := dg[group]
		if g.Err != nil {
			return fmt.Errorf("describe error: %v", g.Err)
		}
		if g.State != "Stable" || g.ProtocolType != "consumer" {
			return fmt.Errorf("state %q protocol type %q, want Stable/consumer", g.State, g.ProtocolType)
		}
		if len(g.Members) != len(ms) {
			return fmt.Errorf("%d members described, want %d", len(g.Members), len(ms))
		}
		byID := map[string]kadm.DescribedGroupMember{}
		for _, dm := range g.Members {
			byID[dm.MemberID] = dm
		}
		for _, m := range ms {
			id, gen := m.cl.GroupMetadata()
			dm, ok := byID[id]
			if !ok {
				return fmt.Errorf("%s (member id %q gen %d) not among described members", m.name, id, gen)
			}
			if !strings.HasPrefix(dm.ClientID, "spate-compat-go-") {
				return fmt.Errorf("%s: described client id %q", m.name, dm.ClientID)
			}
			if dm.ClientHost == "" {
				return fmt.Errorf("%s: described client host empty", m.name)
			}
			join, ok := dm.Join.AsConsumer()
			if !ok || len(join.Topics) != 1 || join.Topics[0] != topic {
				return fmt.Errorf("%s: described join metadata %+v, want consumer subscription to [%s]", m.name, join, topic)
			}
			asg, ok := dm.Assigned.AsConsumer()
			if !ok {
				return fmt.Errorf("%s: described assignment is not a consumer assignment", m.name)
			}
			var got []int32
			for _, at := range asg.Topics {
				if at.Topic != topic {
					return fmt.Errorf("%s: assigned unexpected topic %q", m.name, at.Topic)
				}
				got = append(got, at.Partitions...)
			}
			sort.Slice(got, func(i, j int) bool { return got[i] < got[j] })
			if fmt.Sprint(got) != fmt.Sprint(m.Owned()) {
				return fmt.Errorf("%s: described assignment %v, client owns %v", m.name, got, m.Owned())
			}
		}
		return nil
	})
}

// TestGroupSplit: 1 member gets 4 partitions, 2 split 2/2, 4 get one each, a
// fifth gets none; both with franz-go's default (cooperative-sticky) and range.
func TestGroupSplit(t *testing.T) {
	for _, bal := range []struct {
		name string
		opt  []kgo.Opt
	}{
		{"cooperative-sticky", nil},
		{"range", []kgo.Opt{kgo.Balancers(kgo.RangeBalancer())}},
	} {
		t.Run(bal.name, func(t *testing.T) {
			b, adm, topic := startGroupBroker(t)
			group := "g-split-" + bal.name
			var ms []*member
			add := func() {
				ms = append(ms, newMember(t, b, fmt.Sprintf("m%d", len(ms)+1), group, topic, nil, bal.opt...))
			}
			add()
			waitAssignment(t, convergeDeadline, "1 member", ms...)
			describeMatches(t, adm, group, topic, ms...)
			add()
			waitAssignment(t, convergeDeadline, "2 members", ms...)
			describeMatches(t, adm, group, topic, ms...)
			add()
			add()
			waitAssignment(t, convergeDeadline, "4 members", ms...)
			describeMatches(t, adm, group, topic, ms...)
			add()
			waitAssignment(t, convergeDeadline, "5 members", ms...)
			describeMatches(t, adm, group, topic, ms...)
			if o := ms[4].Owned(); len(o) != 0 && bal.name == "cooperative-sticky" {
				// sticky: the four earlier members keep theirs, the newcomer gets nothing
				t.Errorf("fifth member owns %v, want none (sticky)", o)
			}
		})
	}
}

// TestGroupLeaveRebalancesAtOnce: Close (LeaveGroup) moves the partitions to
// the remaining member well before a session timeout could have.
func TestGroupLeaveRebalancesAtOnce(t *testing.T) {
	b, adm, topic := startGroupBroker(t)
	group := "g-leave"
	m1 := newMember(t, b, "m1", group, topic, nil)
	m2 := newMember(t, b, "m2", group, topic, nil)
	waitAssignment(t, convergeDeadline, "2 members", m1, m2)
	start := time.Now()
	m2.Close()
	waitAssignment(t, groupSession/2, "m1 alone after m2 left (LeaveGroup)", m1)
	t.Logf("rebalanced %v after m2 left", time.Since(start))
	describeMatches(t, adm, group, topic, m1)
}

const helperEnv = "SPATE_GROUP_HELPER" // "addr|group|topic"

// TestGroupHelperProcess is not a test: TestGroupKilledMemberSessionTimeout
// runs the test binary with it as a group member in a child process.
func TestGroupHelperProcess(t *testing.T) {
	spec := os.Getenv(helperEnv)
	if spec == "" {
		t.Skip("helper for TestGroupKilledMemberSessionTimeout (runs only in its subprocess)")
	}
	parts := strings.Split(spec, "|")
	b := &Broker{Addr: parts[0]}
	var mu sync.Mutex
	cl, err := kgo.NewClient(append(groupClientOpts(b, "helper", parts[1], parts[2]),
		kgo.OnPartitionsAssigned(func(_ context.Context, cl *kgo.Client, a map[string][]int32) {
			id, gen := cl.GroupMetadata()
			mu.Lock()
			fmt.Printf("HELPER assigned %v member=%s gen=%d\n", a[parts[2]], id, gen)
			mu.Unlock()
		}))...)
	if err != nil {
		fmt.Printf("HELPER error %v\n", err)
		os.Exit(1)
	}
	fmt.Println("HELPER started")
	// Poll until killed; exit on its own after 2 minutes so nothing lingers.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for ctx.Err() == nil {
		cl.PollFetches(ctx)
	}
	os.Exit(0)
}

// TestGroupKilledMemberSessionTimeout: a member in a SIGKILLed process sends no
// LeaveGroup; the coordinator must expire it after its session timeout (6 s)
// and hand its partitions to the survivor — not before, and not much after.
func TestGroupKilledMemberSessionTimeout(t *testing.T) {
	b, adm, topic := startGroupBroker(t)
	group := "g-killed"
	m1 := newMember(t, b, "m1", group, topic, nil)
	waitAssignment(t, convergeDeadline, "m1 alone", m1)

	cmd := exec.Command(os.Args[0], "-test.run=^TestGroupHelperProcess$", "-test.v")
	cmd.Env = append(os.Environ(), helperEnv+"="+b.Addr+"|"+group+"|"+topic, "SPATE_COMPAT_DEBUG=")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting helper subprocess: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	var (
		hmu      sync.Mutex
		hlines   []string
		helperAs = make(chan []int32, 16)
	)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			hmu.Lock()
			hlines = append(hlines, line)
			hmu.Unlock()
			if rest, ok := strings.CutPrefix(line, "HELPER assigned ["); ok {
				var ps []int32
				for _, f := range strings.Fields(rest[:strings.Index(rest, "]")]) {
					n, _ := strconv.Atoi(f)
					ps = append(ps, int32(n))
				}
				helperAs <- ps
			}
		}
	}()
	// The helper is in when m1 is down to 2 partitions and the coordinator
	// describes 2 members in a Stable group.
	eventually(t, convergeDeadline, "helper joined: m1 owns 2 partitions, group Stable with 2 members", func() error {
		if o := m1.Owned(); len(o) != 2 {
			return fmt.Errorf("m1 owns %v", o)
		}
		dg, err := adm.DescribeGroups(ctxT(t, 5*time.Second), group)
		if err != nil {
			return err
		}
		if g := dg[group]; g.State != "Stable" || len(g.Members) != 2 {
			return fmt.Errorf("group state %s with %d members", g.State, len(g.Members))
		}
		return nil
	})
	select {
	case <-helperAs:
	case <-time.After(5 * time.Second):
		hmu.Lock()
		t.Fatalf("helper never reported an assignment; its stdout: %q", hlines)
	}

	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("SIGKILL helper: %v", err)
	}
	killed := time.Now()
	_ = cmd.Wait()

	// Until the session expires, the dead member keeps its partitions.
	earliest := groupSession - groupHeartbeat - time.Second // last heartbeat may precede the kill
	waitAssignment(t, groupSession+groupRebalanceTO+5*time.Second, "m1 alone after the helper was SIGKILLed", m1)
	took := time.Since(killed)
	t.Logf("partitions reassigned %v after SIGKILL (session timeout %v)", took, groupSession)
	if took < earliest {
		t.Errorf("killed member removed after %v, before its session timeout %v could have expired", took, groupSession)
	}
	describeMatches(t, adm, group, topic, m1)
}

// pollUntil polls cl (a member without a poll loop of its own) until cond holds.
func pollUntil(t *testing.T, cl *kgo.Client, within time.Duration, what string, each func(*kgo.Record), cond func() bool) {
	t.Helper()
	ctx := ctxT(t, within)
	for !cond() {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%s: not done within %v", what, within)
		}
		fs.EachError(func(topic string, p int32, err error) {
			t.Errorf("%s: fetch error %s[%d]: %v", what, topic, p, err)
		})
		fs.EachRecord(each)
	}
}

func fetchCommitted(t *testing.T, adm *kadm.Client, group, topic string) map[int32]int64 {
	t.Helper()
	or, err := adm.FetchOffsets(ctxT(t, 15*time.Second), group)
	if err != nil {
		t.Fatalf("FetchOffsets(%s): %v", group, err)
	}
	if err := or.Error(); err != nil {
		t.Fatalf("FetchOffsets(%s): partition error: %v", group, err)
	}
	out := map[int32]int64{}
	for p, r := range or[topic] {
		out[p] = r.At
	}
	return out
}

// TestGroupCommitResume: committed offsets are where a restarted member
// resumes, and they survive a broker restart (kadm.FetchOffsets and a new
// member after the restart).
func TestGroupCommitResume(t *testing.T) {
	b, adm, topic := startGroupBroker(t)
	group := "g-resume"
	prod := b.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for p := int32(0); p < groupParts; p++ {
		produceTo(t, prod, topic, p, 40, fmt.Sprintf("a%d", p))
	}
	noLoop := func(context.Context, *member) bool { return false }

	// A: read everything, commit the record at offset 10(p+1)-1 on each
	// partition -> committed 10, 20, 30, 40.
	a := newMember(t, b, "A", group, topic, noLoop, kgo.DisableAutoCommit())
	byOff := map[int32]map[int64]*kgo.Record{}
	n := 0
	pollUntil(t, a.cl, 30*time.Second, "A reads 160 records", func(r *kgo.Record) {
		if byOff[r.Partition] == nil {
			byOff[r.Partition] = map[int64]*kgo.Record{}
		}
		byOff[r.Partition][r.Offset] = r
		n++
	}, func() bool { return n >= 4*40 })
	var commit []*kgo.Record
	want := map[int32]int64{}
	for p := int32(0); p < groupParts; p++ {
		off := int64(10*(p+1)) - 1
		commit = append(commit, byOff[p][off])
		want[p] = off + 1
	}
	if err := a.cl.CommitRecords(ctxT(t, 15*time.Second), commit...); err != nil {
		t.Fatalf("A: CommitRecords: %v", err)
	}
	a.Close()
	if got := fetchCommitted(t, adm, group, topic); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("FetchOffsets after A's commit: %v, want %v", got, want)
	}

	// B resumes at 10/20/30/40; 5 more per partition make 45 each.
	for p := int32(0); p < groupParts; p++ {
		produceTo(t, prod, topic, p, 5, fmt.Sprintf("b%d", p))
	}
	bm := newMember(t, b, "B", group, topic, noLoop, kgo.DisableAutoCommit())
	gotB := map[int32][]int64{}
	total := 0
	pollUntil(t, bm.cl, 30*time.Second, "B resumes and reads to the end", func(r *kgo.Record) {
		gotB[r.Partition] = append(gotB[r.Partition], r.Offset)
		total++
	}, func() bool { return total >= 35+25+15+5 })
	for p := int32(0); p < groupParts; p++ {
		offs := gotB[p]
		if len(offs) == 0 || offs[0] != want[p] || offs[len(offs)-1] != 44 || len(offs) != int(45-want[p]) {
			t.Errorf("B on partition %d read offsets %v, want %d..44 exactly once", p, offs, want[p])
		}
	}
	if err := bm.cl.CommitUncommittedOffsets(ctxT(t, 15*time.Second)); err != nil {
		t.Fatalf("B: CommitUncommittedOffsets: %v", err)
	}
	bm.Close()
	want45 := map[int32]int64{0: 45, 1: 45, 2: 45, 3: 45}
	if got := fetchCommitted(t, adm, group, topic); fmt.Sprint(got) != fmt.Sprint(want45) {
		t.Fatalf("FetchOffsets after B's commit: %v, want %v", got, want45)
	}

	b.Restart()
	// The coordinator may answer COORDINATOR_LOAD_IN_PROGRESS for a while.
	eventually(t, 20*time.Second, "FetchOffsets after broker restart", func() error {
		or, err := adm.FetchOffsets(ctxT(t, 10*time.Second), group)
		if err != nil {
			return err
		}
		if err := or.Error(); err != nil {
			return err
		}
		got := map[int32]int64{}
		for p, r := range or[topic] {
			got[p] = r.At
		}
		if fmt.Sprint(got) != fmt.Sprint(want45) {
			return fmt.Errorf("got %v, want %v", got, want45)
		}
		return nil
	})
	for p := int32(0); p < groupParts; p++ {
		produceTo(t, prod, topic, p, 3, fmt.Sprintf("c%d", p))
	}
	c := newMember(t, b, "C", group, topic, noLoop, kgo.DisableAutoCommit())
	gotC := map[int32][]int64{}
	total = 0
	pollUntil(t, c.cl, 30*time.Second, "C (after broker restart) reads the 12 new records", func(r *kgo.Record) {
		gotC[r.Partition] = append(gotC[r.Partition], r.Offset)
		total++
	}, func() bool { return total >= 12 })
	for p := int32(0); p < groupParts; p++ {
		if fmt.Sprint(gotC[p]) != "[45 46 47]" {
			t.Errorf("C on partition %d read offsets %v, want [45 46 47]", p, gotC[p])
		}
	}

	// Commits acknowledged before a SIGKILL survive it too.
	if err := c.cl.CommitUncommittedOffsets(ctxT(t, 15*time.Second)); err != nil {
		t.Fatalf("C: CommitUncommittedOffsets: %v", err)
	}
	c.Close()
	b.Crash()
	want48 := map[int32]int64{0: 48, 1: 48, 2: 48, 3: 48}
	eventually(t, 20*time.Second, "FetchOffsets after SIGKILL + restart", func() error {
		or, err := adm.FetchOffsets(ctxT(t, 10*time.Second), group)
		if err != nil {
			return err
		}
		if err := or.Error(); err != nil {
			return err
		}
		got := map[int32]int64{}
		for p, r := range or[topic] {
			got[p] = r.At
		}
		if fmt.Sprint(got) != fmt.Sprint(want48) {
			return fmt.Errorf("got %v, want %v", got, want48)
		}
		return nil
	})
}

// TestGroupMemberSurvivesBrokerRestart: a live member keeps consuming across a
// graceful broker restart (its coordinator goes away and comes back), ends up
// in a Stable group again, and reads every record exactly once.
func TestGroupMemberSurvivesBrokerRestart(t *testing.T) {
	b, adm, topic := startGroupBroker(t)
	group := "g-restart"
	prod := b.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	var mu sync.Mutex
	seen := map[string]int{}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(seen) }
	poll := func(ctx context.Context, m *member) bool {
		fs := m.cl.PollFetches(ctx)
		if fs.IsClientClosed() || ctx.Err() != nil {
			return false
		}
		fs.EachRecord(func(r *kgo.Record) {
			mu.Lock()
			seen[fmt.Sprintf("%d@%d", r.Partition, r.Offset)]++
			mu.Unlock()
		})
		return true
	}
	m := newMember(t, b, "m1", group, topic, poll, kgo.AutoCommitInterval(200*time.Millisecond))
	for p := int32(0); p < groupParts; p++ {
		produceTo(t, prod, topic, p, 10, "before")
	}
	eventually(t, 20*time.Second, "m1 reads the first 40 records", func() error {
		if n := count(); n < 40 {
			return fmt.Errorf("%d of 40", n)
		}
		return nil
	})
	waitAssignment(t, convergeDeadline, "m1 alone", m)
	// Autocommit (200 ms) must have stored the position before the restart.
	eventually(t, 10*time.Second, "autocommit reached 10 on every partition", func() error {
		if got := fetchCommitted(t, adm, group, topic); fmt.Sprint(got) != fmt.Sprint(map[int32]int64{0: 10, 1: 10, 2: 10, 3: 10}) {
			return fmt.Errorf("committed %v", got)
		}
		return nil
	})
	b.Restart()
	for p := int32(0); p < groupParts; p++ {
		produceTo(t, prod, topic, p, 10, "after")
	}
	eventually(t, 40*time.Second, "m1 reads the 40 records produced after the restart", func() error {
		if n := count(); n < 80 {
			return fmt.Errorf("%d of 80", n)
		}
		return nil
	})
	waitAssignment(t, convergeDeadline, "m1 alone after the restart", m)
	describeMatches(t, adm, group, topic, m)
	mu.Lock()
	for k, n := range seen {
		if n != 1 {
			t.Errorf("%s read %d times", k, n)
		}
	}
	mu.Unlock()
}

// consumedLog is what all members of the no-duplicates test processed.
type consumedLog struct {
	mu   sync.Mutex
	seen map[int32]map[int64][]string // partition -> offset -> member names
	n    int
}

func (l *consumedLog) add(name string, r *kgo.Record) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen[r.Partition] == nil {
		l.seen[r.Partition] = map[int64][]string{}
	}
	if want := fmt.Sprintf("p%d-%d", r.Partition, r.Offset); string(r.Value) != want {
		// value = "p<partition>-<n>" where n counts records produced to that partition,
		// so it must equal the offset.
		l.seen[r.Partition][r.Offset] = append(l.seen[r.Partition][r.Offset], name+"(value "+string(r.Value)+"!)")
	}
	l.seen[r.Partition][r.Offset] = append(l.seen[r.Partition][r.Offset], name)
	l.n++
}

func (l *consumedLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}

func (l *consumedLog) distinct() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	d := 0
	for _, m := range l.seen {
		d += len(m)
	}
	return d
}

// check: every produced offset exactly once, nothing else.
func (l *consumedLog) check(t *testing.T, produced map[int32]int64) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var problems []string
	for p := int32(0); p < groupParts; p++ {
		for off := int64(0); off < produced[p]; off++ {
			if who := l.seen[p][off]; len(who) != 1 {
				problems = append(problems, fmt.Sprintf("p%d@%d processed %d times %v", p, off, len(who), who))
			}
		}
		for off := range l.seen[p] {
			if off >= produced[p] {
				problems = append(problems, fmt.Sprintf("p%d@%d beyond the %d produced", p, off, produced[p]))
			}
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		if len(problems) > 30 {
			problems = append(problems[:30], fmt.Sprintf("... %d more", len(problems)-30))
		}
		t.Errorf("exactly-once violated (%d problems):\n%s", len(problems), strings.Join(problems, "\n"))
	}
}

// TestGroupNoDuplicatesAcrossRebalances: members join and leave while a
// producer writes numbered records; processing happens between poll and
// AllowRebalance (BlockRebalanceOnPoll), processed records are marked and the
// marks are committed on every revoke. Every record must be processed exactly
// once, and the final commits must equal the end offsets.
func TestGroupNoDuplicatesAcrossRebalances(t *testing.T) {
	for _, bal := range []struct {
		name string
		opt  []kgo.Opt
	}{
		{"cooperative-sticky", nil},
		{"range", []kgo.Opt{kgo.Balancers(kgo.RangeBalancer())}},
	} {
		t.Run(bal.name, func(t *testing.T) {
			b, adm, topic := startGroupBroker(t)
			group := "g-once-" + bal.name
			log := &consumedLog{seen: map[int32]map[int64][]string{}}
			var commitErrs sync.Map

			// Producer: numbered records round-robin over the partitions.
			prod := b.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
			var pmu sync.Mutex
			produced := map[int32]int64{}
			stopProd := make(chan struct{})
			prodDone := make(chan error, 1)
			go func() {
				tick := time.NewTicker(10 * time.Millisecond)
				defer tick.Stop()
				for {
					select {
					case <-stopProd:
						prodDone <- nil
						return
					case <-tick.C:
					}
					var recs []*kgo.Record
					pmu.Lock()
					for p := int32(0); p < groupParts; p++ {
						for k := 0; k < 2; k++ {
							recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Value: []byte(fmt.Sprintf("p%d-%d", p, produced[p]))})
							produced[p]++
						}
					}
					pmu.Unlock()
					// One partition's records are in order (idempotent producer, sync).
					if err := prod.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
						prodDone <- err
						return
					}
				}
			}()

			poll := func(ctx context.Context, m *member) bool {
				fs := m.cl.PollRecords(ctx, 100)
				defer m.cl.AllowRebalance()
				if fs.IsClientClosed() || ctx.Err() != nil {
					return false
				}
				fs.EachRecord(func(r *kgo.Record) { log.add(m.name, r) })
				m.cl.MarkCommitRecords(fs.Records()...)
				return true
			}
			var ms []*member
			nextID := 1
			join := func() {
				name := fmt.Sprintf("m%d", nextID)
				nextID++
				opts := append([]kgo.Opt{
					kgo.BlockRebalanceOnPoll(),
					kgo.AutoCommitMarks(),
					kgo.AutoCommitInterval(time.Second),
				}, bal.opt...)
				commitOnRevoke := func(ctx context.Context, cl *kgo.Client) {
					if err := cl.CommitMarkedOffsets(ctx); err != nil {
						commitErrs.Store(name+" "+time.Now().Format("15:04:05.000"), err)
					}
				}
				ms = append(ms, newMemberHooked(t, b, name, group, topic, poll, commitOnRevoke, opts...))
			}
			leave := func(name string) {
				for i, m := range ms {
					if m.name == name {
						m.Close()
						ms = append(ms[:i], ms[i+1:]...)
						return
					}
				}
				t.Fatalf("no member %s", name)
			}
			// After each step: the members agree on a balanced assignment and
			// the group keeps consuming.
			settle := func(what string) {
				t.Helper()
				waitAssignment(t, convergeDeadline, what, ms...)
				before := log.count()
				eventually(t, 15*time.Second, what+": consumption continues", func() error {
					if log.count() < before+200 {
						return fmt.Errorf("consumed %d since the step, want 200", log.count()-before)
					}
					return nil
				})
			}

			ms = nil
			join()
			settle("m1")
			join()
			settle("m1+m2")
			join()
			settle("m1+m2+m3")
			leave("m1")
			settle("m2+m3 after m1 left")
			join()
			join()
			settle("m2+m3+m4+m5")
			leave("m2")
			leave("m4")
			settle("m3+m5")
			join()
			settle("m3+m5+m6")
			leave("m3")
			leave("m5")
			settle("m6 alone")

			close(stopProd)
			if err := <-prodDone; err != nil {
				t.Fatalf("producer: %v", err)
			}
			pmu.Lock()
			final := map[int32]int64{}
			var total int64
			for p, n := range produced {
				final[p] = n
				total += n
			}
			pmu.Unlock()
			eventually(t, 30*time.Second, "all produced records consumed", func() error {
				if d := log.distinct(); int64(d) < total {
					return fmt.Errorf("%d of %d distinct records consumed", d, total)
				}
				return nil
			})
			leave("m6") // commits its marks on revoke, then LeaveGroup
			log.check(t, final)
			commitErrs.Range(func(k, v any) bool {
				t.Errorf("commit on revoke failed: %s: %v", k, v)
				return true
			})
			if got := fetchCommitted(t, adm, group, topic); fmt.Sprint(got) != fmt.Sprint(final) {
				t.Errorf("final committed offsets %v, want the end offsets %v", got, final)
			}
			t.Logf("%d records, %d processed", total, log.count())
		})
	}
}

// TestGroupAdmin: kadm ListGroups / DescribeGroups / Lag on a live group,
// then on the Empty group; DeleteGroups and DeleteOffsets refusals on a live
// group, DeleteOffsets and DeleteGroups on the Empty group, durable across a
// broker restart.
func TestGroupAdmin(t *testing.T) {
	b, adm, topic := startGroupBroker(t)
	group := "g-admin"
	prod := b.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for p := int32(0); p < groupParts; p++ {
		produceTo(t, prod, topic, p, 25, fmt.Sprintf("x%d", p))
	}
	noLoop := func(context.Context, *member) bool { return false }
	m1 := newMember(t, b, "m1", group, topic, noLoop, kgo.DisableAutoCommit())
	n := 0
	pollUntil(t, m1.cl, 30*time.Second, "m1 reads 100 records", func(*kgo.Record) { n++ }, func() bool { return n >= 100 })
	waitAssignment(t, convergeDeadline, "m1 alone", m1)
	describeMatches(t, adm, group, topic, m1)

	// A second group with another member, to see both listed.
	other := newMember(t, b, "o1", "g-admin-other", topic, nil)
	waitAssignment(t, convergeDeadline, "other group", other)

	lg, err := adm.ListGroups(ctxT(t, 10*time.Second))
	if err != nil {
		t.Fatalf("ListGroups: %v", err)
	}
	for _, g := range []string{group, "g-admin-other"} {
		l, ok := lg[g]
		if !ok {
			t.Errorf("ListGroups: %s missing (got %v)", g, lg.Groups())
			continue
		}
		if l.ProtocolType != "consumer" {
			t.Errorf("ListGroups: %s protocol type %q, want consumer", g, l.ProtocolType)
		}
		if l.State != "" && l.State != "Stable" {
			t.Errorf("ListGroups: %s state %q, want Stable", g, l.State)
		}
	}
	if _, ok := lg["__consumer_offsets"]; ok {
		t.Errorf("ListGroups lists __consumer_offsets as a group")
	}

	// Commit 5, 10, 25 on partitions 0..2, nothing on 3.
	commits := map[string]map[int32]kgo.EpochOffset{topic: {0: {Epoch: -1, Offset: 5}, 1: {Epoch: -1, Offset: 10}, 2: {Epoch: -1, Offset: 25}}}
	var cerr error
	m1.cl.CommitOffsetsSync(ctxT(t, 15*time.Second), commits, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			cerr = err
			return
		}
		for _, rt := range resp.Topics {
			for _, rp := range rt.Partitions {
				if e := kerr.ErrorForCode(rp.ErrorCode); e != nil && cerr == nil {
					cerr = fmt.Errorf("%s[%d]: %w", rt.Topic, rp.Partition, e)
				}
			}
		}
	})
	if cerr != nil {
		t.Fatalf("m1 CommitOffsetsSync: %v", cerr)
	}
	wantLag := map[int32]int64{0: 20, 1: 15, 2: 0, 3: 25}
	checkLag := func(when string, wantEmpty bool) {
		t.Helper()
		lags, err := adm.Lag(ctxT(t, 15*time.Second), group)
		if err != nil {
			t.Fatalf("%s: Lag: %v", when, err)
		}
		l := lags[group]
		if e := l.Error(); e != nil {
			t.Fatalf("%s: Lag(%s): %v", when, group, e)
		}
		wantState := "Stable"
		if wantEmpty {
			wantState = "Empty"
		}
		if l.State != wantState {
			t.Errorf("%s: Lag: state %q, want %s", when, l.State, wantState)
		}
		for p := int32(0); p < groupParts; p++ {
			gl, ok := l.Lag.Lookup(topic, p)
			if !ok {
				t.Errorf("%s: no lag for partition %d", when, p)
				continue
			}
			if gl.Err != nil || gl.Lag != wantLag[p] || gl.End.Offset != 25 {
				t.Errorf("%s: partition %d lag %d (commit %d, end %d, err %v), want %d", when, p, gl.Lag, gl.Commit.At, gl.End.Offset, gl.Err, wantLag[p])
			}
			if wantEmpty != gl.IsEmpty() {
				t.Errorf("%s: partition %d member %+v, want member present = %v", when, p, gl.Member, !wantEmpty)
			}
			if !wantEmpty && gl.Member != nil {
				id, _ := m1.cl.GroupMetadata()
				if gl.Member.MemberID != id {
					t.Errorf("%s: partition %d lag attributed to member %s, want m1 %s", when, p, gl.Member.MemberID, id)
				}
			}
		}
	}
	checkLag("live group", false)

	// Refusals while the group has a member.
	dr, err := adm.DeleteGroups(ctxT(t, 10*time.Second), group)
	if err != nil {
		t.Fatalf("DeleteGroups(live): %v", err)
	}
	if e := dr[group].Err; !errors.Is(e, kerr.NonEmptyGroup) {
		t.Errorf("DeleteGroups on a group with a member: err %v, want NON_EMPTY_GROUP", e)
	}
	do, err := adm.DeleteOffsets(ctxT(t, 10*time.Second), group, kadm.TopicsSet{topic: {0: {}}})
	if err != nil {
		t.Fatalf("DeleteOffsets(live): %v", err)
	}
	if e := do[topic][0]; !errors.Is(e, kerr.GroupSubscribedToTopic) {
		t.Errorf("DeleteOffsets on a topic the live group subscribes to: err %v, want GROUP_SUBSCRIBED_TO_TOPIC", e)
	}

	// Empty group: describe, lag, delete offsets, delete group.
	m1.Close()
	dg, err := adm.DescribeGroups(ctxT(t, 10*time.Second), group)
	if err != nil {
		t.Fatalf("DescribeGroups(empty): %v", err)
	}
	if g := dg[group]; g.Err != nil || g.State != "Empty" || len(g.Members) != 0 {
		t.Errorf("DescribeGroups after the only member left: state %q, %d members, err %v; want Empty, 0", g.State, len(g.Members), g.Err)
	}
	checkLag("empty group", true)

	do, err = adm.DeleteOffsets(ctxT(t, 10*time.Second), group, kadm.TopicsSet{topic: {0: {}}})
	if err != nil {
		t.Fatalf("DeleteOffsets(empty): %v", err)
	}
	if e := do[topic][0]; e != nil {
		t.Errorf("DeleteOffsets(%s[0]) on the Empty group: %v", topic, e)
	}
	if got := fetchCommitted(t, adm, group, topic); fmt.Sprint(got) != fmt.Sprint(map[int32]int64{1: 10, 2: 25}) {
		t.Errorf("FetchOffsets after DeleteOffsets(partition 0): %v, want map[1:10 2:25]", got)
	}

	dr, err = adm.DeleteGroups(ctxT(t, 10*time.Second), group)
	if err != nil {
		t.Fatalf("DeleteGroups(empty): %v", err)
	}
	if e := dr[group].Err; e != nil {
		t.Fatalf("DeleteGroups on the Empty group: %v", e)
	}
	checkGone := func(when string) {
		t.Helper()
		eventually(t, 20*time.Second, when+": deleted group is gone", func() error {
			lg, err := adm.ListGroups(ctxT(t, 10*time.Second))
			if err != nil {
				return err
			}
			if _, ok := lg[group]; ok {
				return fmt.Errorf("ListGroups still lists %s: %+v", group, lg[group])
			}
			if _, ok := lg["g-admin-other"]; !ok {
				return fmt.Errorf("ListGroups lost the other group: %v", lg.Groups())
			}
			or, err := adm.FetchOffsets(ctxT(t, 10*time.Second), group)
			if err != nil {
				return err
			}
			if len(or[topic]) != 0 {
				return fmt.Errorf("FetchOffsets still returns %v", or[topic])
			}
			dg, err := adm.DescribeGroups(ctxT(t, 10*time.Second), group)
			if err != nil {
				return err
			}
			if g := dg[group]; g.State != "Dead" || len(g.Members) != 0 {
				return fmt.Errorf("DescribeGroups: state %q, %d members (err %v), want Dead", g.State, len(g.Members), g.Err)
			}
			return nil
		})
	}
	checkGone("after DeleteGroups")
	dr, err = adm.DeleteGroups(ctxT(t, 10*time.Second), group)
	if err != nil {
		t.Fatalf("DeleteGroups(again): %v", err)
	}
	if e := dr[group].Err; !errors.Is(e, kerr.GroupIDNotFound) {
		t.Errorf("DeleteGroups on a deleted group: %v, want GROUP_ID_NOT_FOUND", e)
	}
	other.Close()
	b.Restart()
	checkGone("after broker restart")
}

// TestGroupStaticMembership (KIP-345, group.instance.id): a static member that
// closes (franz-go sends no LeaveGroup for static members) and comes back with
// the same instance id within its session timeout gets its old partitions
// back without a rebalance: the other member sees no revoke/assign and the
// generation stays the same. Checked for a follower and for the leader (Kafka:
// GroupCoordinator "Static member which joins during Stable stage and doesn't
// affect selectProtocol will not trigger rebalance"; the leader gets the member
// list with SkipAssignment=true on JoinGroup v9).
func TestGroupStaticMembership(t *testing.T) {
	b, adm, topic := startGroupBroker(t)
	group := "g-static"
	// Eager (range): with cooperative-sticky the restarted member's metadata
	// (owned partitions) changes, and Kafka rebalances then too.
	rng := kgo.Balancers(kgo.RangeBalancer())
	leader := newMember(t, b, "leader", group, topic, nil, kgo.InstanceID("static-leader"), rng)
	waitAssignment(t, convergeDeadline, "first static member (the leader)", leader)
	follower := newMember(t, b, "follower", group, topic, nil, kgo.InstanceID("static-follower"), rng)
	waitAssignment(t, convergeDeadline, "2 static members", leader, follower)
	describeMatches(t, adm, group, topic, leader, follower)

	restart := func(old, other *member, instance string) *member {
		t.Helper()
		own := fmt.Sprint(old.Owned())
		_, gen := other.cl.GroupMetadata()
		hist := other.history()
		old.Close()
		again := newMember(t, b, old.name+"-again", group, topic, nil, kgo.InstanceID(instance), rng)
		eventually(t, groupSession/2, instance+" back with its partitions", func() error {
			if got := fmt.Sprint(again.Owned()); got != own {
				return fmt.Errorf("owns %s, want %s", got, own)
			}
			return nil
		})
		describeMatches(t, adm, group, topic, again, other)
		if _, gen2 := other.cl.GroupMetadata(); gen2 != gen {
			t.Errorf("restart of %s: generation moved %d -> %d; a static rejoin in a Stable group must not rebalance", instance, gen, gen2)
		}
		if h := other.history(); h != hist {
			t.Errorf("restart of %s: %s saw a rebalance: callbacks before %q, after %q", instance, other.name, hist, h)
		}
		return again
	}
	follower = restart(follower, leader, "static-follower")
	restart(leader, follower, "static-leader")
	dg, err := adm.DescribeGroups(ctxT(t, 10*time.Second), group)
	if err != nil {
		t.Fatalf("DescribeGroups: %v", err)
	}
	for _, m := range dg[group].Members {
		if m.InstanceID == nil {
			t.Errorf("described member %s has no instance id", m.MemberID)
		}
	}
}
