package compat

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kversion"
)

const (
	numRecords    = 300
	numPartitions = 3
)

// baseTS is the CreateTime of record 0; record i has baseTS + i seconds.
var baseTS = time.UnixMilli(1_700_000_000_000)

func recordTS(i int) time.Time { return baseTS.Add(time.Duration(i) * time.Second) }

// consumeN reads exactly n records (without a group) from the given
// partitions/offsets, failing if they do not arrive within the deadline.
func consumeN(t *testing.T, b *Broker, parts map[string]map[int32]kgo.Offset, n int, opts ...kgo.Opt) []*kgo.Record {
	t.Helper()
	cl := b.Client(t, append([]kgo.Opt{
		kgo.ConsumePartitions(parts),
		kgo.FetchMaxWait(500 * time.Millisecond),
	}, opts...)...)
	defer cl.Close()
	ctx := ctxT(t, 30*time.Second)
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records before the 30s deadline (ctx: %v)", len(out), n, ctx.Err())
		}
		fs.EachError(func(topic string, p int32, err error) {
			t.Errorf("fetch error on %s[%d]: %v", topic, p, err)
		})
		if t.Failed() {
			t.FailNow()
		}
		out = append(out, fs.Records()...)
	}
	if len(out) > n {
		t.Errorf("consumed %d records, want exactly %d", len(out), n)
	}
	return out
}

type producedRec struct {
	idx       int
	partition int32
	offset    int64
	key       []byte
	value     []byte // nil = null value
	headers   []kgo.RecordHeader
	ts        time.Time
}

type variant struct {
	name       string
	opts       []kgo.Opt
	codec      uint8 // expected batch compression attribute: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd
	idempotent bool
}

func variants() []variant {
	return []variant{
		// Default kgo settings: idempotent (InitProducerId), acks=all, snappy.
		{name: "default", codec: 2, idempotent: true},
		{name: "acks-leader-noidem", codec: 0, idempotent: false, opts: []kgo.Opt{
			kgo.DisableIdempotentWrite(), kgo.RequiredAcks(kgo.LeaderAck()), kgo.ProducerBatchCompression(kgo.NoCompression()),
		}},
		{name: "none", codec: 0, idempotent: true, opts: []kgo.Opt{kgo.ProducerBatchCompression(kgo.NoCompression())}},
		{name: "gzip", codec: 1, idempotent: true, opts: []kgo.Opt{kgo.ProducerBatchCompression(kgo.GzipCompression())}},
		{name: "snappy", codec: 2, idempotent: true, opts: []kgo.Opt{kgo.ProducerBatchCompression(kgo.SnappyCompression())}},
		{name: "lz4", codec: 3, idempotent: true, opts: []kgo.Opt{kgo.ProducerBatchCompression(kgo.Lz4Compression())}},
		{name: "zstd", codec: 4, idempotent: true, opts: []kgo.Opt{kgo.ProducerBatchCompression(kgo.ZstdCompression())}},
		// Older protocol versions: the whole client (produce, fetch, list
		// offsets, metadata) is pinned to what that Kafka release spoke.
		{name: "proto-0.11", codec: 2, idempotent: true, opts: []kgo.Opt{kgo.MaxVersions(kversion.V0_11_0())}},
		{name: "proto-2.1-zstd", codec: 4, idempotent: true, opts: []kgo.Opt{kgo.MaxVersions(kversion.V2_1_0()), kgo.ProducerBatchCompression(kgo.ZstdCompression())}},
		{name: "proto-2.4-lz4-acks1", codec: 3, idempotent: false, opts: []kgo.Opt{
			kgo.MaxVersions(kversion.V2_4_0()), kgo.ProducerBatchCompression(kgo.Lz4Compression()), kgo.DisableIdempotentWrite(), kgo.RequiredAcks(kgo.LeaderAck()),
		}},
		{name: "proto-3.0-gzip", codec: 1, idempotent: true, opts: []kgo.Opt{kgo.MaxVersions(kversion.V3_0_0()), kgo.ProducerBatchCompression(kgo.GzipCompression())}},
	}
}

func makeRecords(topic, vname string) []*kgo.Record {
	recs := make([]*kgo.Record, numRecords)
	for i := range recs {
		key := []byte(fmt.Sprintf("user-%d", i%97)) // keys repeat: per-key order matters
		var value []byte
		if i%50 != 7 { // every 50th record (from 7) has a null value
			value = []byte(fmt.Sprintf("%s value %d %s", vname, i, strings.Repeat("x", i%40)))
		}
		headers := []kgo.RecordHeader{
			{Key: "idx", Value: []byte(strconv.Itoa(i))},
			{Key: "variant", Value: []byte(vname)},
			{Key: "bin", Value: []byte{0, 1, 0xfe, 0xff, byte(i)}},
		}
		if i%3 == 0 {
			headers = append(headers, kgo.RecordHeader{Key: "idx", Value: []byte("dup")}) // duplicate header keys are legal
		}
		recs[i] = &kgo.Record{Topic: topic, Key: key, Value: value, Headers: headers, Timestamp: recordTS(i)}
	}
	return recs
}

func headersEqual(a, b []kgo.RecordHeader) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Key != b[i].Key || !bytes.Equal(a[i].Value, b[i].Value) {
			return false
		}
	}
	return true
}

// produceVariant creates topic, produces the records and returns what was
// produced grouped by partition in produce order.
func produceVariant(t *testing.T, b *Broker, adm *kadm.Client, topic string, v variant) map[int32][]producedRec {
	t.Helper()
	createTopic(t, adm, topic, numPartitions, nil)
	waitPartitions(t, adm, topic, numPartitions)

	cl := b.Client(t, v.opts...)
	recs := makeRecords(topic, v.name)
	// Three ProduceSync calls so each partition gets several batches.
	for lo := 0; lo < numRecords; lo += 100 {
		res := cl.ProduceSync(ctxT(t, 30*time.Second), recs[lo:lo+100]...)
		if err := res.FirstErr(); err != nil {
			t.Fatalf("ProduceSync(%s records %d..%d): %v", v.name, lo, lo+99, err)
		}
	}
	cl.Close()

	byPart := map[int32][]producedRec{}
	for i, r := range recs {
		want := kafkaPartition(r.Key, numPartitions)
		if r.Partition != want {
			t.Errorf("record %d key %q went to partition %d, Kafka murmur2 says %d", i, r.Key, r.Partition, want)
		}
		byPart[r.Partition] = append(byPart[r.Partition], producedRec{
			idx: i, partition: r.Partition, offset: r.Offset, key: r.Key, value: r.Value, headers: r.Headers, ts: r.Timestamp,
		})
	}
	for p, prs := range byPart {
		for j, pr := range prs {
			if pr.offset != int64(j) {
				t.Errorf("produce ack: %s[%d] record idx %d got offset %d, want %d (offsets must be dense from 0 in produce order)", topic, p, pr.idx, pr.offset, j)
				break
			}
		}
	}
	return byPart
}

// verifyTopic consumes the whole topic from the start and checks it against
// what was produced, returning the consumed records for later comparison.
func verifyTopic(t *testing.T, b *Broker, topic string, v variant, want map[int32][]producedRec) map[int32][]*kgo.Record {
	t.Helper()
	parts := map[int32]kgo.Offset{}
	for p := int32(0); p < numPartitions; p++ {
		parts[p] = kgo.NewOffset().AtStart()
	}
	got := map[int32][]*kgo.Record{}
	for _, r := range consumeN(t, b, map[string]map[int32]kgo.Offset{topic: parts}, numRecords, v.opts...) {
		got[r.Partition] = append(got[r.Partition], r)
	}
	var pid int64 = -2
	// franz-go sends a batch uncompressed when compressing would not shrink it (a lone
	// small record, say); the broker must keep whichever codec each batch came with, and
	// at least the topic's larger batches carry the variant's.
	sawCodec := v.codec == 0
	for p := int32(0); p < numPartitions; p++ {
		w, g := want[p], got[p]
		if len(g) != len(w) {
			t.Errorf("%s[%d]: consumed %d records, produced %d", topic, p, len(g), len(w))
		}
		errs := 0
		for j := 0; j < len(w) && j < len(g); j++ {
			if errs >= 5 {
				t.Errorf("%s[%d]: further mismatches suppressed", topic, p)
				break
			}
			wr, gr := w[j], g[j]
			var diffs []string
			if gr.Offset != int64(j) {
				diffs = append(diffs, fmt.Sprintf("offset %d want %d", gr.Offset, j))
			}
			if !bytes.Equal(gr.Key, wr.key) {
				diffs = append(diffs, fmt.Sprintf("key %q want %q", gr.Key, wr.key))
			}
			if !bytes.Equal(gr.Value, wr.value) || (gr.Value == nil) != (wr.value == nil) {
				diffs = append(diffs, fmt.Sprintf("value %q (nil=%v) want %q (nil=%v)", gr.Value, gr.Value == nil, wr.value, wr.value == nil))
			}
			if !headersEqual(gr.Headers, wr.headers) {
				diffs = append(diffs, fmt.Sprintf("headers %v want %v", gr.Headers, wr.headers))
			}
			if gr.Timestamp.UnixMilli() != wr.ts.UnixMilli() {
				diffs = append(diffs, fmt.Sprintf("timestamp %d want %d", gr.Timestamp.UnixMilli(), wr.ts.UnixMilli()))
			}
			if tt := gr.Attrs.TimestampType(); tt != 0 {
				diffs = append(diffs, fmt.Sprintf("timestamp type %d want 0 (CreateTime)", tt))
			}
			c := gr.Attrs.CompressionType()
			sawCodec = sawCodec || c == v.codec
			if c != v.codec && c != 0 {
				diffs = append(diffs, fmt.Sprintf("batch compression %d want %d (compression.type=producer keeps the producer's codec)", c, v.codec))
			}
			if v.idempotent {
				if gr.ProducerID < 0 {
					diffs = append(diffs, fmt.Sprintf("producer id %d, want the idempotent producer's id (>= 0)", gr.ProducerID))
				} else if pid == -2 {
					pid = gr.ProducerID
				} else if gr.ProducerID != pid {
					diffs = append(diffs, fmt.Sprintf("producer id %d, other batches had %d", gr.ProducerID, pid))
				}
			} else if gr.ProducerID != -1 {
				diffs = append(diffs, fmt.Sprintf("producer id %d, want -1 (non-idempotent)", gr.ProducerID))
			}
			if len(diffs) > 0 {
				errs++
				t.Errorf("%s[%d] offset %d (record idx %d): %s", topic, p, j, wr.idx, strings.Join(diffs, "; "))
			}
		}
	}
	if !sawCodec {
		t.Errorf("%s: no batch kept compression %d (compression.type=producer keeps the producer's codec)", topic, v.codec)
	}
	return got
}

// verifyOffsets checks ListStartOffsets / ListEndOffsets / ListOffsetsAfterMilli.
func verifyOffsets(t *testing.T, adm *kadm.Client, topic string, want map[int32][]producedRec) {
	t.Helper()
	starts := startOffsets(t, adm, topic)
	ends := endOffsets(t, adm, topic)
	for p := int32(0); p < numPartitions; p++ {
		if starts[p] != 0 {
			t.Errorf("ListStartOffsets %s[%d] = %d, want 0", topic, p, starts[p])
		}
		if ends[p] != int64(len(want[p])) {
			t.Errorf("ListEndOffsets %s[%d] = %d, want %d", topic, p, ends[p], len(want[p]))
		}
	}

	targets := []int64{
		baseTS.UnixMilli() - 1,                   // before everything -> first record
		recordTS(150).UnixMilli(),                // exact hit on record 150's timestamp
		recordTS(150).UnixMilli() + 500,          // between records
		recordTS(numRecords - 1).UnixMilli(),     // last record
		recordTS(numRecords-1).UnixMilli() + 1,   // after everything -> end offset (kadm fallback)
		recordTS(numRecords + 10000).UnixMilli(), // far future
	}
	for _, target := range targets {
		lo, err := adm.ListOffsetsAfterMilli(ctxT(t, 10*time.Second), target, topic)
		if err != nil {
			t.Fatalf("ListOffsetsAfterMilli(%d): %v", target, err)
		}
		if e := lo.Error(); e != nil {
			t.Fatalf("ListOffsetsAfterMilli(%d): %v", target, e)
		}
		for p := int32(0); p < numPartitions; p++ {
			// First record with ts >= target (timestamps are monotonic per partition).
			wantOff, wantTS := int64(len(want[p])), int64(-1)
			for j, pr := range want[p] {
				if pr.ts.UnixMilli() >= target {
					wantOff, wantTS = int64(j), pr.ts.UnixMilli()
					break
				}
			}
			got, ok := lo.Lookup(topic, p)
			if !ok {
				t.Errorf("ListOffsetsAfterMilli(%d) %s[%d] missing", target, topic, p)
				continue
			}
			if got.Offset != wantOff {
				t.Errorf("ListOffsetsAfterMilli(%d) %s[%d] = offset %d (ts %d), want offset %d (ts %d)", target, topic, p, got.Offset, got.Timestamp, wantOff, wantTS)
			} else if wantTS >= 0 && got.Timestamp != wantTS {
				t.Errorf("ListOffsetsAfterMilli(%d) %s[%d] returned timestamp %d, want the found record's timestamp %d", target, topic, p, got.Timestamp, wantTS)
			}
		}
	}
}

// variantAdmin is a kadm client speaking the variant's protocol versions.
func variantAdmin(t *testing.T, b *Broker, v variant) *kadm.Client {
	adm := kadm.NewClient(b.Client(t, v.opts...))
	adm.SetTimeoutMillis(15000)
	return adm
}

func TestProduceConsume(t *testing.T) {
	b := StartBroker(t)
	adm := b.Admin(t)

	type done struct {
		v     variant
		topic string
		want  map[int32][]producedRec
		first map[int32][]*kgo.Record
	}
	var all []done
	for _, v := range variants() {
		topic := "compat-produce-" + v.name
		t.Run(v.name, func(t *testing.T) {
			want := produceVariant(t, b, adm, topic, v)
			first := verifyTopic(t, b, topic, v, want)
			verifyOffsets(t, variantAdmin(t, b, v), topic, want)
			all = append(all, done{v, topic, want, first})
		})
	}
	if len(all) == 0 {
		t.Fatalf("no variant produced successfully; not restarting")
	}

	b.Restart()

	for _, d := range all {
		t.Run("after-restart/"+d.v.name, func(t *testing.T) {
			waitPartitions(t, adm, d.topic, numPartitions)
			again := verifyTopic(t, b, d.topic, d.v, d.want)
			verifyOffsets(t, variantAdmin(t, b, d.v), d.topic, d.want)
			// Byte-for-byte the same as the first read (offsets, keys, values, headers, ts, attrs).
			for p, recs := range d.first {
				if len(again[p]) != len(recs) {
					continue // already reported by verifyTopic
				}
				for j, r := range recs {
					a := again[p][j]
					if a.Offset != r.Offset || !bytes.Equal(a.Key, r.Key) || !bytes.Equal(a.Value, r.Value) ||
						!headersEqual(a.Headers, r.Headers) || !a.Timestamp.Equal(r.Timestamp) || a.Attrs != r.Attrs ||
						a.ProducerID != r.ProducerID || a.ProducerEpoch != r.ProducerEpoch {
						t.Errorf("%s[%d] offset %d differs after restart: before %+v, after %+v", d.topic, p, r.Offset, *r, *a)
						break
					}
				}
			}
		})
	}

	// Producing after the restart continues each partition's offsets.
	t.Run("produce-after-restart", func(t *testing.T) {
		d := all[0]
		cl := b.Client(t, d.v.opts...)
		key := []byte("after-restart")
		p := kafkaPartition(key, numPartitions)
		r := &kgo.Record{Topic: d.topic, Key: key, Value: []byte("v"), Timestamp: recordTS(numRecords)}
		if err := cl.ProduceSync(ctxT(t, 30*time.Second), r).FirstErr(); err != nil {
			t.Fatalf("produce after restart: %v", err)
		}
		if r.Partition != p || r.Offset != int64(len(d.want[p])) {
			t.Errorf("post-restart record landed at %s[%d]@%d, want [%d]@%d", d.topic, r.Partition, r.Offset, p, len(d.want[p]))
		}
		recs := consumeN(t, b, map[string]map[int32]kgo.Offset{d.topic: {p: kgo.NewOffset().At(int64(len(d.want[p])))}}, 1)
		if string(recs[0].Key) != "after-restart" {
			t.Errorf("read back %q, want after-restart", recs[0].Key)
		}
	})
}

// TestPartitionerMatchesKafka pins the expectation used above: franz-go's
// keyed partitioning (StickyKeyPartitioner(nil) = KafkaHasher(murmur2), also
// what the default UniformBytesPartitioner uses for keys) is Kafka's.
func TestPartitionerMatchesKafka(t *testing.T) {
	tp := kgo.StickyKeyPartitioner(nil).ForTopic("x")
	for i := 0; i < 500; i++ {
		k := []byte(fmt.Sprintf("user-%d", i))
		for _, n := range []int{1, 3, 5, 7} {
			if got, want := tp.Partition(&kgo.Record{Key: k}, n), int(kafkaPartition(k, n)); got != want {
				t.Fatalf("key %q n=%d: franz-go StickyKeyPartitioner=%d, Kafka murmur2=%d", k, n, got, want)
			}
		}
	}
}
