package compat

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// rawBatch hand-encodes an uncompressed v2 record batch (magic 2) with the
// given producer id/epoch/base sequence and one record per value.
func rawBatch(pid int64, epoch int16, seq int32, ts int64, values ...string) []byte {
	var recs []byte
	for i, v := range values {
		var body []byte
		body = append(body, 0)                     // attributes
		body = binary.AppendVarint(body, 0)        // timestamp delta
		body = binary.AppendVarint(body, int64(i)) // offset delta
		body = binary.AppendVarint(body, -1)       // null key
		body = binary.AppendVarint(body, int64(len(v)))
		body = append(body, v...)
		body = binary.AppendVarint(body, 0) // no headers
		recs = binary.AppendVarint(recs, int64(len(body)))
		recs = append(recs, body...)
	}
	// From attributes on: this is what the CRC covers.
	var tail []byte
	tail = binary.BigEndian.AppendUint16(tail, 0)                     // attributes
	tail = binary.BigEndian.AppendUint32(tail, uint32(len(values)-1)) // last offset delta
	tail = binary.BigEndian.AppendUint64(tail, uint64(ts))            // base timestamp
	tail = binary.BigEndian.AppendUint64(tail, uint64(ts))            // max timestamp
	tail = binary.BigEndian.AppendUint64(tail, uint64(pid))
	tail = binary.BigEndian.AppendUint16(tail, uint16(epoch))
	tail = binary.BigEndian.AppendUint32(tail, uint32(seq))
	tail = binary.BigEndian.AppendUint32(tail, uint32(len(values)))
	tail = append(tail, recs...)

	var b []byte
	b = binary.BigEndian.AppendUint64(b, 0)                       // base offset
	b = binary.BigEndian.AppendUint32(b, uint32(4+1+4+len(tail))) // batch length: after this field
	b = binary.BigEndian.AppendUint32(b, uint32(0xffffffff))      // partition leader epoch -1
	b = append(b, 2)                                              // magic
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(tail, castagnoli))
	return append(b, tail...)
}

// rawProduce sends one batch to topic[partition] with acks=all, directly to the broker.
func rawProduce(t *testing.T, cl *kgo.Client, topic string, partition int32, batch []byte) kmsg.ProduceResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.Acks = -1
	req.TimeoutMillis = 10000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition = partition
	rp.Records = batch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	kresp, err := cl.Broker(int(onlyNode(t, cl))).Request(ctxT(t, 15*time.Second), req)
	if err != nil {
		t.Fatalf("Produce(%s[%d]): %v", topic, partition, err)
	}
	resp := kresp.(*kmsg.ProduceResponse)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("Produce(%s[%d]): malformed response %+v", topic, partition, resp.Topics)
	}
	return resp.Topics[0].Partitions[0]
}

func initProducerID(t *testing.T, cl *kgo.Client) (int64, int16) {
	t.Helper()
	req := kmsg.NewPtrInitProducerIDRequest()
	req.ProducerID = -1
	req.ProducerEpoch = -1
	req.TransactionTimeoutMillis = 60000
	var resp *kmsg.InitProducerIDResponse
	// Retriable errors (e.g. Kafka's COORDINATOR_LOAD_IN_PROGRESS right after start) are retried.
	eventually(t, 20*time.Second, "InitProducerID", func() error {
		kresp, err := cl.Broker(int(onlyNode(t, cl))).Request(ctxT(t, 15*time.Second), req)
		if err != nil {
			return err
		}
		resp = kresp.(*kmsg.InitProducerIDResponse)
		if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
			if !kerr.IsRetriable(err) {
				t.Fatalf("InitProducerID: non-retriable %v", err)
			}
			return err
		}
		return nil
	})
	return resp.ProducerID, resp.ProducerEpoch
}

// Idempotent producer semantics on the wire: duplicates of a recent batch
// are acknowledged with the original offset and not appended again; a
// sequence gap is OUT_OF_ORDER_SEQUENCE_NUMBER.
func TestIdempotentProduceRaw(t *testing.T) {
	b := StartBroker(t)
	adm := b.Admin(t)
	const topic = "compat-idempotence"
	createTopic(t, adm, topic, 1, nil)
	waitPartitions(t, adm, topic, 1)
	// Produce v8 (names; v13+ would use topic IDs).
	cl := b.Client(t, kgo.MaxVersions(kversion.V2_8_0()))
	pid, epoch := initProducerID(t, cl)
	ts := time.Now().UnixMilli()

	hw := func() int64 { return endOffsets(t, adm, topic)[0] }
	expect := func(what string, p kmsg.ProduceResponseTopicPartition, wantErr error, wantOffset int64) {
		t.Helper()
		got := kerr.ErrorForCode(p.ErrorCode)
		if !errors.Is(got, wantErr) && !(got == nil && wantErr == nil) {
			t.Errorf("%s: error %v, want %v", what, got, wantErr)
		}
		if wantErr == nil && p.BaseOffset != wantOffset {
			t.Errorf("%s: base offset %d, want %d", what, p.BaseOffset, wantOffset)
		}
	}

	expect("seq 0..2", rawProduce(t, cl, topic, 0, rawBatch(pid, epoch, 0, ts, "a", "b", "c")), nil, 0)
	expect("seq 3..4", rawProduce(t, cl, topic, 0, rawBatch(pid, epoch, 3, ts, "d", "e")), nil, 3)
	if got := hw(); got != 5 {
		t.Fatalf("high watermark after 5 records = %d", got)
	}

	t.Run("duplicate of the last batch", func(t *testing.T) {
		expect("resend seq 3..4", rawProduce(t, cl, topic, 0, rawBatch(pid, epoch, 3, ts, "d", "e")), nil, 3)
		if got := hw(); got != 5 {
			t.Errorf("duplicate batch was appended: high watermark %d, want 5", got)
		}
	})
	t.Run("duplicate of an older batch", func(t *testing.T) {
		expect("resend seq 0..2", rawProduce(t, cl, topic, 0, rawBatch(pid, epoch, 0, ts, "a", "b", "c")), nil, 0)
		if got := hw(); got != 5 {
			t.Errorf("duplicate batch was appended: high watermark %d, want 5", got)
		}
	})
	t.Run("sequence gap", func(t *testing.T) {
		expect("seq 10 after 4", rawProduce(t, cl, topic, 0, rawBatch(pid, epoch, 10, ts, "x")), kerr.OutOfOrderSequenceNumber, 0)
		if got := hw(); got != 5 {
			t.Errorf("out-of-order batch was appended: high watermark %d, want 5", got)
		}
	})
	t.Run("non-idempotent batch alongside", func(t *testing.T) {
		expect("pid -1", rawProduce(t, cl, topic, 0, rawBatch(-1, -1, -1, ts, "plain")), nil, 5)
	})
	t.Run("next in-order batch", func(t *testing.T) {
		expect("seq 5", rawProduce(t, cl, topic, 0, rawBatch(pid, epoch, 5, ts, "f")), nil, 6)
	})
	t.Run("corrupt CRC is rejected", func(t *testing.T) {
		bad := rawBatch(-1, -1, -1, ts, "corrupt")
		bad[len(bad)-2] ^= 0xff // flip a byte inside the record, after the CRC was computed
		p := rawProduce(t, cl, topic, 0, bad)
		if p.ErrorCode == 0 {
			t.Errorf("batch with a bad CRC accepted at offset %d, want CORRUPT_MESSAGE", p.BaseOffset)
		} else if !errors.Is(kerr.ErrorForCode(p.ErrorCode), kerr.CorruptMessage) {
			t.Logf("bad CRC rejected with %v (Kafka: CORRUPT_MESSAGE)", kerr.ErrorForCode(p.ErrorCode))
		}
	})
	t.Run("producer state survives a restart", func(t *testing.T) {
		b.Restart()
		cl := b.Client(t, kgo.MaxVersions(kversion.V2_8_0()))
		waitPartitions(t, adm, topic, 1)
		expect("resend seq 5 after restart", rawProduce(t, cl, topic, 0, rawBatch(pid, epoch, 5, ts, "f")), nil, 6)
		if got := hw(); got != 7 {
			t.Errorf("duplicate after restart was appended: high watermark %d, want 7", got)
		}
		expect("seq 6 after restart", rawProduce(t, cl, topic, 0, rawBatch(pid, epoch, 6, ts, "g")), nil, 7)
	})
}

func TestCreateTopicsValidation(t *testing.T) {
	b := StartBroker(t)
	adm := b.Admin(t)

	cases := []struct {
		name    string
		topic   string
		parts   int32
		rf      int16
		wantErr error
	}{
		{"invalid character", "bad/name", 1, 1, kerr.InvalidTopicException},
		{"dot", ".", 1, 1, kerr.InvalidTopicException},
		{"too long", strings.Repeat("a", 250), 1, 1, kerr.InvalidTopicException},
		{"zero partitions", "compat-zero-partitions", 0, 1, kerr.InvalidPartitions},
		{"replication factor above broker count", "compat-rf3", 1, 3, kerr.InvalidReplicationFactor},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, err := adm.CreateTopics(ctxT(t, 10*time.Second), c.parts, c.rf, nil, c.topic)
			if err != nil {
				t.Fatalf("CreateTopics request: %v", err)
			}
			if got := resp[c.topic].Err; !errors.Is(got, c.wantErr) {
				t.Errorf("CreateTopics(%q, %d partitions, rf %d): err %v, want %v", c.topic, c.parts, c.rf, got, c.wantErr)
			}
		})
	}

	t.Run("validateOnly creates nothing", func(t *testing.T) {
		const topic = "compat-validate-only"
		resp, err := adm.ValidateCreateTopics(ctxT(t, 10*time.Second), 3, 1, nil, topic)
		if err != nil {
			t.Fatalf("ValidateCreateTopics: %v", err)
		}
		if r := resp[topic]; r.Err != nil {
			t.Fatalf("ValidateCreateTopics(%s): %v (%s)", topic, r.Err, r.ErrMessage)
		}
		md, err := adm.Metadata(ctxT(t, 10*time.Second), topic)
		if err != nil {
			t.Fatalf("Metadata: %v", err)
		}
		if !errors.Is(md.Topics[topic].Err, kerr.UnknownTopicOrPartition) {
			t.Errorf("validateOnly CreateTopics created %s (metadata err %v)", topic, md.Topics[topic].Err)
		}
	})

	t.Run("Metadata with an empty topic list returns no topics", func(t *testing.T) {
		createTopic(t, adm, "compat-md-some-topic", 1, nil)
		cl := b.Client(t)
		req := kmsg.NewPtrMetadataRequest()
		req.Topics = []kmsg.MetadataRequestTopic{} // empty, not null
		resp, err := req.RequestWith(ctxT(t, 10*time.Second), cl)
		if err != nil {
			t.Fatalf("Metadata: %v", err)
		}
		if len(resp.Topics) != 0 {
			t.Errorf("Metadata(topics=[]) returned %d topics, want 0 (null means all, empty means none)", len(resp.Topics))
		}
		req.Topics = nil // null = all topics
		resp, err = req.RequestWith(ctxT(t, 10*time.Second), cl)
		if err != nil {
			t.Fatalf("Metadata: %v", err)
		}
		found := false
		for _, tp := range resp.Topics {
			found = found || (tp.Topic != nil && *tp.Topic == "compat-md-some-topic")
		}
		if !found {
			t.Errorf("Metadata(topics=null) did not list compat-md-some-topic")
		}
	})
}

func TestLogAppendTime(t *testing.T) {
	b := StartBroker(t)
	adm := b.Admin(t)
	const topic = "compat-log-append-time"
	createTopic(t, adm, topic, 1, map[string]*string{"message.timestamp.type": kadm.StringPtr("LogAppendTime")})
	waitPartitions(t, adm, topic, 1)

	cl := b.Client(t)
	before := time.Now().Add(-time.Second)
	var recs []*kgo.Record
	for i := 0; i < 10; i++ {
		recs = append(recs, &kgo.Record{Topic: topic, Value: []byte("v"), Timestamp: recordTS(i)}) // 2023 timestamps
	}
	if err := cl.ProduceSync(ctxT(t, 30*time.Second), recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	after := time.Now().Add(time.Second)
	for _, r := range consumeN(t, b, map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}, 10) {
		if r.Attrs.TimestampType() != 1 {
			t.Errorf("offset %d: timestamp type %d, want 1 (LogAppendTime)", r.Offset, r.Attrs.TimestampType())
		}
		if r.Timestamp.Before(before) || r.Timestamp.After(after) {
			t.Errorf("offset %d: timestamp %v, want the broker's append time (between %v and %v), not the producer's", r.Offset, r.Timestamp, before, after)
		}
	}
}

func TestFetchBelowLogStartOffset(t *testing.T) {
	b := StartBroker(t)
	adm := b.Admin(t)
	const topic = "compat-below-start"
	createTopic(t, adm, topic, 1, nil)
	waitPartitions(t, adm, topic, 1)
	produceTo(t, b.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner())), topic, 0, 10, "x")
	var os kadm.Offsets
	os.AddOffset(topic, 0, 6, -1)
	if resp, err := adm.DeleteRecords(ctxT(t, 10*time.Second), os); err != nil || resp.Error() != nil {
		t.Fatalf("DeleteRecords: %v / %v", err, resp.Error())
	}
	cl12 := b.Client(t, kgo.MaxVersions(kversion.V2_8_0()))
	p := rawFetch(t, cl12, topic, 0, 2)
	if !errors.Is(kerr.ErrorForCode(p.ErrorCode), kerr.OffsetOutOfRange) {
		t.Errorf("Fetch @2 below log start 6: err %v, want OFFSET_OUT_OF_RANGE", kerr.ErrorForCode(p.ErrorCode))
	}
	p = rawFetch(t, cl12, topic, 0, 6)
	if p.ErrorCode != 0 || p.LogStartOffset != 6 || len(p.RecordBatches) == 0 {
		t.Errorf("Fetch @6: err %v logStart %d %d bytes, want nil 6 >0", kerr.ErrorForCode(p.ErrorCode), p.LogStartOffset, len(p.RecordBatches))
	}
}
