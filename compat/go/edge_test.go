package compat

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

// Crash SIGKILLs the broker, waits for it to die, and starts it again on the
// same data dir and address (BROKER.md: restart after SIGKILL recovers the log).
func (b *Broker) Crash() {
	b.t.Helper()
	b.mu.Lock()
	cmd, done := b.cmd, b.done
	b.mu.Unlock()
	killGroup(cmd)
	select {
	case <-done:
	case <-time.After(stopDeadline):
		b.t.Fatalf("broker did not die within %v of SIGKILL", stopDeadline)
	}
	if err := b.start(); err != nil {
		b.t.Fatalf("starting broker after SIGKILL: %v", err)
	}
}

// Records acknowledged with acks=all must survive a SIGKILL of the broker
// process (the OS still has the written pages; Kafka semantics).
func TestCrashRecovery(t *testing.T) {
	b := StartBroker(t)
	adm := b.Admin(t)
	v := variant{name: "crash", codec: 1, idempotent: true, opts: []kgo.Opt{kgo.ProducerBatchCompression(kgo.GzipCompression())}}
	const topic = "compat-crash"
	want := produceVariant(t, b, adm, topic, v)
	verifyTopic(t, b, topic, v, want)

	b.Crash()

	waitPartitions(t, adm, topic, numPartitions)
	verifyTopic(t, b, topic, v, want)
	verifyOffsets(t, adm, topic, want)

	// And the log is writable after recovery, continuing the offsets.
	cl := b.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	r := &kgo.Record{Topic: topic, Partition: 0, Value: []byte("after-crash")}
	if err := cl.ProduceSync(ctxT(t, 30*time.Second), r).FirstErr(); err != nil {
		t.Fatalf("produce after crash recovery: %v", err)
	}
	if r.Offset != int64(len(want[0])) {
		t.Errorf("first offset after crash recovery = %d, want %d", r.Offset, len(want[0]))
	}
}

// onlyNode returns the node ID of the (single) broker from Metadata.
func onlyNode(t *testing.T, cl *kgo.Client) int32 {
	t.Helper()
	md, err := kmsg.NewPtrMetadataRequest().RequestWith(ctxT(t, 10*time.Second), cl)
	if err != nil {
		t.Fatalf("Metadata: %v", err)
	}
	if len(md.Brokers) != 1 {
		t.Fatalf("Metadata lists %d brokers, want 1", len(md.Brokers))
	}
	return md.Brokers[0].NodeID
}

// rawFetch issues one Fetch (v12, topic names) for topic[partition] at offset.
func rawFetch(t *testing.T, cl *kgo.Client, topic string, partition int32, offset int64) kmsg.FetchResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID = -1
	req.MaxWaitMillis = 200
	req.MinBytes = 1
	req.MaxBytes = 1 << 20
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition = partition
	rp.FetchOffset = offset
	rp.CurrentLeaderEpoch = -1
	rp.LastFetchedEpoch = -1
	rp.LogStartOffset = -1
	rp.PartitionMaxBytes = 1 << 20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	kresp, err := cl.Broker(int(onlyNode(t, cl))).Request(ctxT(t, 10*time.Second), req)
	resp, _ := kresp.(*kmsg.FetchResponse)
	if err != nil {
		t.Fatalf("Fetch(%s[%d]@%d): %v", topic, partition, offset, err)
	}
	if resp.ErrorCode != 0 {
		t.Fatalf("Fetch(%s[%d]@%d): top-level error %v", topic, partition, offset, kerr.ErrorForCode(resp.ErrorCode))
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("Fetch(%s[%d]@%d): response has %d topics, want 1 topic with 1 partition: %+v", topic, partition, offset, len(resp.Topics), resp.Topics)
	}
	return resp.Topics[0].Partitions[0]
}

// rawListOffset issues one ListOffsets for topic[partition] at timestamp.
func rawListOffset(t *testing.T, cl *kgo.Client, topic string, partition int32, ts int64) kmsg.ListOffsetsResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID = -1
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Partition = partition
	rp.Timestamp = ts
	rp.CurrentLeaderEpoch = -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	// Sent to the broker directly: kgo would answer an unknown partition itself.
	kresp, err := cl.Broker(int(onlyNode(t, cl))).Request(ctxT(t, 10*time.Second), req)
	resp, _ := kresp.(*kmsg.ListOffsetsResponse)
	if err != nil {
		t.Fatalf("ListOffsets(%s[%d], ts %d): %v", topic, partition, ts, err)
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("ListOffsets(%s[%d], ts %d): malformed response %+v", topic, partition, ts, resp.Topics)
	}
	return resp.Topics[0].Partitions[0]
}

func TestFetchAndListOffsetsEdgeCases(t *testing.T) {
	b := StartBroker(t)
	adm := b.Admin(t)
	const topic = "compat-edge"
	createTopic(t, adm, topic, 3, nil)
	waitPartitions(t, adm, topic, 3)

	// 100 records to partition 0 in as few gzip batches as kgo makes.
	pcl := b.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchCompression(kgo.GzipCompression()),
		kgo.ProducerLinger(200*time.Millisecond))
	var recs []*kgo.Record
	for i := 0; i < 100; i++ {
		recs = append(recs, &kgo.Record{Topic: topic, Partition: 0, Value: []byte(fmt.Sprintf("v%d", i)), Timestamp: recordTS(i)})
	}
	if err := pcl.ProduceSync(ctxT(t, 30*time.Second), recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}

	t.Run("consume from the middle of a compressed batch", func(t *testing.T) {
		got := consumeN(t, b, map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().At(50)}}, 50)
		for i, r := range got {
			if r.Offset != int64(50+i) || string(r.Value) != fmt.Sprintf("v%d", 50+i) {
				t.Fatalf("record %d: offset %d value %q, want offset %d value v%d", i, r.Offset, r.Value, 50+i, 50+i)
			}
		}
	})

	// Fetch v12 carries topic names (v13+ uses topic IDs).
	cl12 := b.Client(t, kgo.MaxVersions(kversion.V2_8_0()))

	t.Run("Fetch beyond the high watermark is OFFSET_OUT_OF_RANGE", func(t *testing.T) {
		p := rawFetch(t, cl12, topic, 0, 1000)
		if !errors.Is(kerr.ErrorForCode(p.ErrorCode), kerr.OffsetOutOfRange) {
			t.Errorf("Fetch @1000 (HW 100): error %v, want OFFSET_OUT_OF_RANGE", kerr.ErrorForCode(p.ErrorCode))
		}
	})

	t.Run("Fetch at the high watermark waits and returns nothing", func(t *testing.T) {
		start := time.Now()
		p := rawFetch(t, cl12, topic, 0, 100)
		if p.ErrorCode != 0 || len(p.RecordBatches) != 0 || p.HighWatermark != 100 {
			t.Errorf("Fetch @HW: error %v, %d bytes of batches, HW %d; want no error, no data, HW 100",
				kerr.ErrorForCode(p.ErrorCode), len(p.RecordBatches), p.HighWatermark)
		}
		if el := time.Since(start); el < 100*time.Millisecond {
			t.Logf("note: Fetch @HW with MaxWaitMillis=200 returned after %v (Kafka long-polls up to MaxWait)", el)
		}
	})

	t.Run("Fetch of an unknown partition", func(t *testing.T) {
		p := rawFetch(t, cl12, topic, 99, 0)
		if !errors.Is(kerr.ErrorForCode(p.ErrorCode), kerr.UnknownTopicOrPartition) {
			t.Errorf("Fetch %s[99]: error %v, want UNKNOWN_TOPIC_OR_PARTITION", topic, kerr.ErrorForCode(p.ErrorCode))
		}
	})

	t.Run("Fetch returns the log start offset and high watermark", func(t *testing.T) {
		p := rawFetch(t, cl12, topic, 0, 0)
		if p.ErrorCode != 0 || p.HighWatermark != 100 || p.LogStartOffset != 0 || p.LastStableOffset != 100 || len(p.RecordBatches) == 0 {
			t.Errorf("Fetch @0: err %v HW %d LSO %d logStart %d batches %d bytes; want nil 100 100 0 >0",
				kerr.ErrorForCode(p.ErrorCode), p.HighWatermark, p.LastStableOffset, p.LogStartOffset, len(p.RecordBatches))
		}
	})

	t.Run("ListOffsets by timestamp after the last record is -1/-1", func(t *testing.T) {
		p := rawListOffset(t, pcl, topic, 0, recordTS(1000).UnixMilli())
		if p.ErrorCode != 0 || p.Offset != -1 || p.Timestamp != -1 {
			t.Errorf("ListOffsets(ts after last): err %v offset %d ts %d, want nil, -1, -1",
				kerr.ErrorForCode(p.ErrorCode), p.Offset, p.Timestamp)
		}
		p = rawListOffset(t, pcl, topic, 0, recordTS(42).UnixMilli())
		if p.ErrorCode != 0 || p.Offset != 42 || p.Timestamp != recordTS(42).UnixMilli() {
			t.Errorf("ListOffsets(ts of record 42): err %v offset %d ts %d, want nil, 42, %d",
				kerr.ErrorForCode(p.ErrorCode), p.Offset, p.Timestamp, recordTS(42).UnixMilli())
		}
		p = rawListOffset(t, pcl, topic, 99, -1)
		if !errors.Is(kerr.ErrorForCode(p.ErrorCode), kerr.UnknownTopicOrPartition) {
			t.Errorf("ListOffsets(%s[99]): err %v, want UNKNOWN_TOPIC_OR_PARTITION", topic, kerr.ErrorForCode(p.ErrorCode))
		}
	})

	t.Run("ListOffsets max timestamp (-3)", func(t *testing.T) {
		vs, err := adm.ApiVersions(ctxT(t, 10*time.Second))
		if err != nil || len(vs) == 0 {
			t.Fatalf("ApiVersions: %v", err)
		}
		var maxV int16 = -1
		for _, v := range vs {
			maxV, _ = v.KeyMaxVersion(2)
		}
		if maxV < 7 {
			t.Skipf("broker ListOffsets max version %d < 7: no MAX_TIMESTAMP lookup", maxV)
		}
		lo, err := adm.ListMaxTimestampOffsets(ctxT(t, 10*time.Second), topic)
		if err != nil {
			t.Fatalf("ListMaxTimestampOffsets: %v", err)
		}
		o, _ := lo.Lookup(topic, 0)
		if o.Err != nil || o.Offset != 99 || o.Timestamp != recordTS(99).UnixMilli() {
			t.Errorf("ListMaxTimestampOffsets %s[0] = offset %d ts %d err %v, want 99 / %d", topic, o.Offset, o.Timestamp, o.Err, recordTS(99).UnixMilli())
		}
	})

	t.Run("Produce larger than max.message.bytes is MESSAGE_TOO_LARGE", func(t *testing.T) {
		const small = "compat-edge-small"
		createTopic(t, adm, small, 1, map[string]*string{"max.message.bytes": kadm.StringPtr("10000")})
		waitPartitions(t, adm, small, 1)
		cl := b.Client(t, kgo.ProducerBatchCompression(kgo.NoCompression()))
		err := cl.ProduceSync(ctxT(t, 30*time.Second), &kgo.Record{Topic: small, Value: bytes.Repeat([]byte("x"), 50000)}).FirstErr()
		if !errors.Is(err, kerr.MessageTooLarge) {
			t.Errorf("produce 50000-byte record to a topic with max.message.bytes=10000: err %v, want MESSAGE_TOO_LARGE", err)
		}
		// A small one still works.
		if err := cl.ProduceSync(ctxT(t, 30*time.Second), &kgo.Record{Topic: small, Value: []byte("ok")}).FirstErr(); err != nil {
			t.Errorf("small record after a rejected one: %v", err)
		}
	})
}

// Kafka's default auto.create.topics.enable=true creates a topic with
// num.partitions partitions when a client asks for it in Metadata.
func TestAutoCreateTopics(t *testing.T) {
	t.Run("enabled", func(t *testing.T) {
		b := StartBroker(t, "num.partitions=3")
		cl := b.Client(t, kgo.AllowAutoTopicCreation())
		r := &kgo.Record{Topic: "compat-auto-created", Key: []byte("k"), Value: []byte("v")}
		if err := cl.ProduceSync(ctxT(t, 30*time.Second), r).FirstErr(); err != nil {
			t.Fatalf("produce with AllowAutoTopicCreation: %v", err)
		}
		waitPartitions(t, b.Admin(t), "compat-auto-created", 3)
		if want := kafkaPartition([]byte("k"), 3); r.Partition != want {
			t.Errorf("record went to partition %d, murmur2 says %d", r.Partition, want)
		}
	})
	t.Run("disabled", func(t *testing.T) {
		b := StartBroker(t, "auto.create.topics.enable=false")
		cl := b.Client(t, kgo.AllowAutoTopicCreation(), kgo.UnknownTopicRetries(2))
		err := cl.ProduceSync(ctxT(t, 30*time.Second), &kgo.Record{Topic: "compat-not-created", Value: []byte("v")}).FirstErr()
		if !errors.Is(err, kerr.UnknownTopicOrPartition) {
			t.Errorf("produce to a missing topic with auto-create disabled: err %v, want UNKNOWN_TOPIC_OR_PARTITION", err)
		}
		md, err := b.Admin(t).Metadata(ctxT(t, 10*time.Second), "compat-not-created")
		if err != nil {
			t.Fatalf("Metadata: %v", err)
		}
		if !errors.Is(md.Topics["compat-not-created"].Err, kerr.UnknownTopicOrPartition) {
			t.Errorf("topic was created although auto.create.topics.enable=false")
		}
	})
}
