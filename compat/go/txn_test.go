package compat

import (
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// readAllValues reads every partition of topic from the start to its end offsets with the
// given isolation level and returns the values, sorted.
func readAllValues(t *testing.T, b *Broker, topic string, isolation kgo.IsolationLevel) []string {
	t.Helper()
	adm := b.Admin(t)
	ends, err := adm.ListEndOffsets(ctxT(t, 20*time.Second), topic)
	if err != nil {
		t.Fatalf("ListEndOffsets: %v", err)
	}
	// read_committed stops at the last stable offset; committed ends are what it can reach.
	if isolation == kgo.ReadCommitted() {
		ends, err = adm.ListCommittedOffsets(ctxT(t, 20*time.Second), topic)
		if err != nil {
			t.Fatalf("ListCommittedOffsets: %v", err)
		}
	}
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { want[o.Partition] = o.Offset })
	cl := b.Client(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(isolation), kgo.FetchMaxWait(100*time.Millisecond))
	var out []string
	pos := map[int32]int64{}
	done := func() bool {
		for p, end := range want {
			if pos[p] < end {
				return false
			}
		}
		return true
	}
	ctx := ctxT(t, 30*time.Second)
	for !done() {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s: positions %v of %v", topic, pos, want)
		}
		fs.EachRecord(func(r *kgo.Record) {
			out = append(out, string(r.Value))
		})
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			if p.HighWatermark >= 0 {
				// Control records and aborted records are skipped; the fetch moves past them.
				pos[p.Partition] = max(pos[p.Partition], p.LastStableOffset)
				if isolation != kgo.ReadCommitted() {
					pos[p.Partition] = max(pos[p.Partition], p.HighWatermark)
				}
			}
		})
	}
	sort.Strings(out)
	return out
}

func TestTransactionsCommitAndAbortVisibility(t *testing.T) {
	b := StartBroker(t)
	topic := fmt.Sprintf("txn-%d", time.Now().UnixNano())
	createTopic(t, b.Admin(t), topic, 2, nil)
	p := b.Client(t, kgo.TransactionalID("go-txn-"+topic), kgo.DefaultProduceTopic(topic))
	ctx := ctxT(t, 60*time.Second)
	produce := func(prefix string, commit kgo.TransactionEndTry) {
		if err := p.BeginTransaction(); err != nil {
			t.Fatalf("BeginTransaction: %v", err)
		}
		for i := 0; i < 6; i++ {
			r := &kgo.Record{Value: []byte(fmt.Sprintf("%s%d", prefix, i)), Partition: int32(i % 2)}
			if err := p.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatalf("produce: %v", err)
			}
		}
		if err := p.EndTransaction(ctx, commit); err != nil {
			t.Fatalf("EndTransaction: %v", err)
		}
	}
	produce("a", kgo.TryAbort)
	produce("c", kgo.TryCommit)
	committed := readAllValues(t, b, topic, kgo.ReadCommitted())
	if fmt.Sprint(committed) != "[c0 c1 c2 c3 c4 c5]" {
		t.Fatalf("read_committed saw %v", committed)
	}
	all := readAllValues(t, b, topic, kgo.ReadUncommitted())
	if len(all) != 12 {
		t.Fatalf("read_uncommitted saw %v", all)
	}
}

// TestGroupTransactSessionExactlyOnce runs franz-go's consume-transform-produce helper: input
// offsets and output records commit together, so the output holds every input exactly once,
// including a batch whose transaction was aborted and redone.
func TestGroupTransactSessionExactlyOnce(t *testing.T) {
	b := StartBroker(t, "group.initial.rebalance.delay.ms=0")
	stamp := time.Now().UnixNano()
	in, out := fmt.Sprintf("eos-in-%d", stamp), fmt.Sprintf("eos-out-%d", stamp)
	adm := b.Admin(t)
	createTopic(t, adm, in, 2, nil)
	createTopic(t, adm, out, 2, nil)
	src := b.Client(t, kgo.DefaultProduceTopic(in))
	ctx := ctxT(t, 90*time.Second)
	const n = 50
	for i := 0; i < n; i++ {
		r := &kgo.Record{Value: []byte(fmt.Sprintf("%02d", i))}
		if err := src.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("produce input: %v", err)
		}
	}
	group := fmt.Sprintf("eos-%d", stamp)
	opts := []kgo.Opt{
		kgo.SeedBrokers(b.Addr),
		kgo.TransactionalID(fmt.Sprintf("eos-txn-%d", stamp)),
		kgo.DefaultProduceTopic(out),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(in),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RequireStableFetchOffsets(),
		kgo.FetchMaxWait(100 * time.Millisecond),
	}
	sess, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		t.Fatalf("NewGroupTransactSession: %v", err)
	}
	defer sess.Close()
	processed, aborted := 0, false
	for processed < n {
		if ctx.Err() != nil {
			t.Fatalf("processed %d of %d", processed, n)
		}
		fs := sess.PollFetches(ctx)
		if fs.NumRecords() == 0 {
			continue
		}
		if err := sess.Begin(); err != nil {
			t.Fatalf("Begin: %v", err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			sess.Produce(ctx, &kgo.Record{Value: append([]byte("x"), r.Value...), Partition: r.Partition}, nil)
		})
		try := kgo.TryCommit
		if !aborted {
			// Abort the first batch: its output vanishes and the session rewinds to the
			// committed offsets, so the batch is read and produced again.
			try, aborted = kgo.TryAbort, true
		}
		committed, err := sess.End(ctx, try)
		if err != nil {
			t.Fatalf("End: %v", err)
		}
		if committed {
			processed += fs.NumRecords()
		}
	}
	got := readAllValues(t, b, out, kgo.ReadCommitted())
	var want []string
	for i := 0; i < n; i++ {
		want = append(want, fmt.Sprintf("x%02d", i))
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("output not exactly once:\n got %v\nwant %v", got, want)
	}
	offsets, err := adm.FetchOffsets(ctxT(t, 20*time.Second), group)
	if err != nil {
		t.Fatalf("FetchOffsets: %v", err)
	}
	var total int64
	offsets.Each(func(o kadm.OffsetResponse) { total += o.At })
	if total != n {
		t.Fatalf("committed offsets sum to %d, want %d", total, n)
	}
}

// TestRequireStableOffsetFetchWaitsForTheTransaction is KIP-447's rule: while a transaction
// holds uncommitted offsets for a group's partition, an OffsetFetch with require_stable answers
// UNSTABLE_OFFSET_COMMIT for it (a consumer taking over must not start from the older
// offsets); without require_stable it answers the last committed offset; after the commit both
// see the new offset.
func TestRequireStableOffsetFetchWaitsForTheTransaction(t *testing.T) {
	b := StartBroker(t)
	stamp := time.Now().UnixNano()
	topic, group := fmt.Sprintf("stable-%d", stamp), fmt.Sprintf("stable-g-%d", stamp)
	createTopic(t, b.Admin(t), topic, 1, nil)
	ctx := ctxT(t, 60*time.Second)
	cl := b.Client(t, kgo.TransactionalID(fmt.Sprintf("stable-txn-%d", stamp)),
		kgo.DefaultProduceTopic(topic))
	if err := cl.BeginTransaction(); err != nil {
		t.Fatalf("BeginTransaction: %v", err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	id, epoch, err := cl.ProducerID(ctx)
	if err != nil {
		t.Fatalf("ProducerID: %v", err)
	}
	txnID := fmt.Sprintf("stable-txn-%d", stamp)
	add := kmsg.NewPtrAddOffsetsToTxnRequest()
	add.TransactionalID, add.ProducerID, add.ProducerEpoch, add.Group = txnID, id, epoch, group
	if r, err := add.RequestWith(ctx, cl); err != nil || r.ErrorCode != 0 {
		t.Fatalf("AddOffsetsToTxn: %v %v", err, r)
	}
	commit := kmsg.NewPtrTxnOffsetCommitRequest()
	commit.TransactionalID, commit.Group, commit.ProducerID, commit.ProducerEpoch = txnID, group, id, epoch
	rt := kmsg.NewTxnOffsetCommitRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
	rp.Partition, rp.Offset, rp.LeaderEpoch = 0, 1, -1
	rt.Partitions = append(rt.Partitions, rp)
	commit.Topics = append(commit.Topics, rt)
	if r, err := commit.RequestWith(ctx, cl); err != nil || r.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("TxnOffsetCommit: %v %v", err, r)
	}

	fetch := func(stable bool) (int64, int16) {
		req := kmsg.NewPtrOffsetFetchRequest()
		req.Version = 7 // one group per request, require_stable
		req.Group, req.RequireStable = group, stable
		ft := kmsg.NewOffsetFetchRequestTopic()
		ft.Topic, ft.Partitions = topic, []int32{0}
		req.Topics = append(req.Topics, ft)
		r, err := req.RequestWith(ctx, cl)
		if err != nil || r.ErrorCode != 0 {
			t.Fatalf("OffsetFetch: %v %v", err, r)
		}
		p := r.Topics[0].Partitions[0]
		return p.Offset, p.ErrorCode
	}
	if _, code := fetch(true); code != kerr.UnstableOffsetCommit.Code {
		t.Fatalf("require_stable during the transaction: error %d, want UNSTABLE_OFFSET_COMMIT", code)
	}
	if off, code := fetch(false); code != 0 || off != -1 {
		t.Fatalf("without require_stable: offset %d error %d, want -1 and no error", off, code)
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatalf("EndTransaction: %v", err)
	}
	eventually(t, 10*time.Second, "the committed offset", func() error {
		if off, code := fetch(true); code != 0 || off != 1 {
			return fmt.Errorf("offset %d error %d", off, code)
		}
		return nil
	})
}
