package compat

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// createTopic creates topic with n partitions (RF 1) and fails the test on error.
func createTopic(t *testing.T, adm *kadm.Client, topic string, n int32, configs map[string]*string) kadm.CreateTopicResponse {
	t.Helper()
	ctx := ctxT(t, 30*time.Second)
	resp, err := adm.CreateTopics(ctx, n, 1, configs, topic)
	if err != nil {
		t.Fatalf("CreateTopics(%s, %d partitions): request failed: %v", topic, n, err)
	}
	r, err := resp.On(topic, nil)
	if err != nil {
		t.Fatalf("CreateTopics(%s): topic missing from response: %v", topic, err)
	}
	if r.Err != nil {
		t.Fatalf("CreateTopics(%s): %v (%s)", topic, r.Err, r.ErrMessage)
	}
	return r
}

// waitPartitions waits until Metadata reports topic with exactly n healthy partitions.
func waitPartitions(t *testing.T, adm *kadm.Client, topic string, n int) kadm.Metadata {
	t.Helper()
	var md kadm.Metadata
	eventually(t, 15*time.Second, fmt.Sprintf("metadata for %s with %d partitions", topic, n), func() error {
		var err error
		md, err = adm.Metadata(ctxT(t, 10*time.Second), topic)
		if err != nil {
			return err
		}
		td, ok := md.Topics[topic]
		if !ok {
			return fmt.Errorf("topic %s not in metadata response", topic)
		}
		if td.Err != nil {
			return fmt.Errorf("topic %s error: %w", topic, td.Err)
		}
		if len(td.Partitions) != n {
			return fmt.Errorf("topic %s has %d partitions, want %d", topic, len(td.Partitions), n)
		}
		for p, pd := range td.Partitions {
			if pd.Err != nil {
				return fmt.Errorf("partition %d error: %w", p, pd.Err)
			}
			if pd.Leader < 0 {
				return fmt.Errorf("partition %d has no leader", p)
			}
		}
		return nil
	})
	return md
}

// produceTo synchronously produces n small records to one partition.
func produceTo(t *testing.T, cl *kgo.Client, topic string, partition int32, n int, prefix string) {
	t.Helper()
	var recs []*kgo.Record
	for i := 0; i < n; i++ {
		recs = append(recs, &kgo.Record{
			Topic:     topic,
			Partition: partition,
			Key:       []byte(fmt.Sprintf("%s-k%d", prefix, i)),
			Value:     []byte(fmt.Sprintf("%s-v%d", prefix, i)),
		})
	}
	if err := cl.ProduceSync(ctxT(t, 30*time.Second), recs...).FirstErr(); err != nil {
		t.Fatalf("produce %d records to %s[%d]: %v", n, topic, partition, err)
	}
}

func startOffsets(t *testing.T, adm *kadm.Client, topic string) map[int32]int64 {
	t.Helper()
	lo, err := adm.ListStartOffsets(ctxT(t, 10*time.Second), topic)
	return offsetsOf(t, "ListStartOffsets", lo, err, topic)
}

func endOffsets(t *testing.T, adm *kadm.Client, topic string) map[int32]int64 {
	t.Helper()
	lo, err := adm.ListEndOffsets(ctxT(t, 10*time.Second), topic)
	return offsetsOf(t, "ListEndOffsets", lo, err, topic)
}

func offsetsOf(t *testing.T, what string, lo kadm.ListedOffsets, err error, topic string) map[int32]int64 {
	t.Helper()
	if err != nil {
		t.Fatalf("%s(%s): %v", what, topic, err)
	}
	if e := lo.Error(); e != nil {
		t.Fatalf("%s(%s): partition error: %v", what, topic, e)
	}
	out := map[int32]int64{}
	for p, o := range lo[topic] {
		out[p] = o.Offset
	}
	return out
}

func TestAdminCreateTopicsAndMetadata(t *testing.T) {
	b := StartBroker(t)
	adm := b.Admin(t)
	const topic = "compat-admin-create"

	r := createTopic(t, adm, topic, 3, nil)
	if r.NumPartitions != 3 && r.NumPartitions != -1 {
		t.Errorf("CreateTopics response NumPartitions = %d, want 3", r.NumPartitions)
	}
	if r.ID == (kadm.TopicID{}) {
		t.Errorf("CreateTopics response has an all-zero topic ID (CreateTopics v7+ returns the new topic's UUID)")
	}

	// Creating it again is TOPIC_ALREADY_EXISTS.
	resp, err := adm.CreateTopics(ctxT(t, 20*time.Second), 3, 1, nil, topic)
	if err != nil {
		t.Fatalf("second CreateTopics request failed: %v", err)
	}
	if got := resp[topic].Err; !errors.Is(got, kerr.TopicAlreadyExists) {
		t.Errorf("second CreateTopics(%s): err = %v, want TOPIC_ALREADY_EXISTS", topic, got)
	}

	md := waitPartitions(t, adm, topic, 3)
	if len(md.Brokers) != 1 {
		t.Fatalf("Metadata brokers = %+v, want exactly 1", md.Brokers)
	}
	br := md.Brokers[0]
	if br.Host != "127.0.0.1" || br.Port != b.Port() {
		t.Errorf("Metadata advertises %s:%d, want %s (the --listen address)", br.Host, br.Port, b.Addr)
	}
	if md.Controller != br.NodeID {
		t.Errorf("Metadata controller = %d, want the only broker %d", md.Controller, br.NodeID)
	}
	td := md.Topics[topic]
	if td.IsInternal {
		t.Errorf("topic %s reported internal", topic)
	}
	for p := int32(0); p < 3; p++ {
		pd, ok := td.Partitions[p]
		if !ok {
			t.Errorf("partition %d missing from metadata", p)
			continue
		}
		if pd.Leader != br.NodeID {
			t.Errorf("partition %d leader = %d, want %d", p, pd.Leader, br.NodeID)
		}
		if !slices.Contains(pd.Replicas, br.NodeID) || !slices.Contains(pd.ISR, br.NodeID) {
			t.Errorf("partition %d replicas=%v isr=%v, want both to contain %d", p, pd.Replicas, pd.ISR, br.NodeID)
		}
	}
	if r.ID != (kadm.TopicID{}) && td.ID != r.ID {
		t.Errorf("Metadata topic ID %v != CreateTopics topic ID %v", td.ID, r.ID)
	}

	// An unknown topic is UNKNOWN_TOPIC_OR_PARTITION (kadm never asks for auto-creation).
	md2, err := adm.Metadata(ctxT(t, 10*time.Second), "compat-no-such-topic")
	if err != nil {
		t.Fatalf("Metadata(unknown topic): %v", err)
	}
	if got := md2.Topics["compat-no-such-topic"].Err; !errors.Is(got, kerr.UnknownTopicOrPartition) {
		t.Errorf("Metadata(unknown topic) err = %v, want UNKNOWN_TOPIC_OR_PARTITION", got)
	}

	// Listing all topics includes ours.
	all, err := adm.ListTopics(ctxT(t, 10*time.Second))
	if err != nil {
		t.Fatalf("ListTopics: %v", err)
	}
	if !all.Has(topic) {
		t.Errorf("ListTopics() = %v, missing %s", all.Names(), topic)
	}

	// Empty topic: start and end offsets are 0 everywhere.
	ends := endOffsets(t, adm, topic)
	starts := startOffsets(t, adm, topic)
	for p := int32(0); p < 3; p++ {
		if ends[p] != 0 || starts[p] != 0 {
			t.Errorf("fresh partition %d: start=%d end=%d, want 0/0", p, starts[p], ends[p])
		}
	}
}

func configByName(rc kadm.ResourceConfig, name string) (kadm.Config, bool) {
	for _, c := range rc.Configs {
		if c.Key == name {
			return c, true
		}
	}
	return kadm.Config{}, false
}

func describeTopic(t *testing.T, adm *kadm.Client, topic string) kadm.ResourceConfig {
	t.Helper()
	rcs, err := adm.DescribeTopicConfigs(ctxT(t, 10*time.Second), topic)
	if err != nil {
		t.Fatalf("DescribeTopicConfigs(%s): %v", topic, err)
	}
	rc, err := rcs.On(topic, nil)
	if err != nil {
		t.Fatalf("DescribeTopicConfigs(%s): topic missing from response: %v", topic, err)
	}
	if rc.Err != nil {
		t.Fatalf("DescribeTopicConfigs(%s): %v (%s)", topic, rc.Err, rc.ErrMessage)
	}
	return rc
}

// cfgCheck returns a problem description, or "" if rc is as expected.
type cfgCheck func(rc kadm.ResourceConfig) string

func hasConfig(name, value string, source kmsg.ConfigSource) cfgCheck {
	return func(rc kadm.ResourceConfig) string {
		c, ok := configByName(rc, name)
		switch {
		case !ok:
			return fmt.Sprintf("config %s missing from DescribeConfigs of %s", name, rc.Name)
		case c.MaybeValue() != value:
			return fmt.Sprintf("config %s = %q, want %q", name, c.MaybeValue(), value)
		case source != kmsg.ConfigSourceUnknown && c.Source != source:
			return fmt.Sprintf("config %s source = %v, want %v", name, c.Source, source)
		}
		return ""
	}
}

// notOverridden: the config is present and no longer a topic-level override.
func notOverridden(name, oldValue string) cfgCheck {
	return func(rc kadm.ResourceConfig) string {
		c, ok := configByName(rc, name)
		if !ok || c.Source == kmsg.ConfigSourceDynamicTopicConfig || c.MaybeValue() == oldValue {
			return fmt.Sprintf("config %s = %q source %v (present=%v), want its default value with a non-topic source", name, c.MaybeValue(), c.Source, ok)
		}
		return ""
	}
}

// expectConfigs describes topic until every check passes. Config changes
// propagate asynchronously in Kafka (KRaft metadata), so this polls with a
// deadline and reports the last problems seen.
func expectConfigs(t *testing.T, adm *kadm.Client, topic string, checks ...cfgCheck) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		rc := describeTopic(t, adm, topic)
		var problems []string
		for _, c := range checks {
			if p := c(rc); p != "" {
				problems = append(problems, p)
			}
		}
		if len(problems) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, p := range problems {
				t.Errorf("DescribeConfigs(%s) after 10s: %s", topic, p)
			}
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestAdminTopicConfigs(t *testing.T) {
	b := StartBroker(t)
	adm := b.Admin(t)
	const topic = "compat-admin-configs"

	createTopic(t, adm, topic, 3, map[string]*string{"retention.ms": kadm.StringPtr("3600000")})

	// Kafka describes every topic config, defaults included.
	defaults := func(rc kadm.ResourceConfig) string {
		for _, name := range []string{"cleanup.policy", "segment.bytes", "max.message.bytes", "message.timestamp.type", "compression.type"} {
			c, ok := configByName(rc, name)
			if !ok {
				return fmt.Sprintf("default config %s missing from DescribeConfigs", name)
			}
			if c.Source == kmsg.ConfigSourceDynamicTopicConfig {
				return fmt.Sprintf("default config %s has source DYNAMIC_TOPIC_CONFIG, want a default/static source", name)
			}
		}
		return ""
	}
	expectConfigs(t, adm, topic,
		hasConfig("retention.ms", "3600000", kmsg.ConfigSourceDynamicTopicConfig),
		defaults,
		hasConfig("cleanup.policy", "delete", kmsg.ConfigSourceUnknown),
		hasConfig("message.timestamp.type", "CreateTime", kmsg.ConfigSourceUnknown),
		hasConfig("compression.type", "producer", kmsg.ConfigSourceUnknown),
	)

	t.Run("IncrementalAlterConfigs", func(t *testing.T) {
		resp, err := adm.AlterTopicConfigs(ctxT(t, 10*time.Second), []kadm.AlterConfig{
			{Op: kadm.SetConfig, Name: "retention.ms", Value: kadm.StringPtr("7200000")},
			{Op: kadm.SetConfig, Name: "max.message.bytes", Value: kadm.StringPtr("2097152")},
		}, topic)
		if err != nil {
			t.Fatalf("AlterTopicConfigs(set): %v", err)
		}
		if r, _ := resp.On(topic, nil); r.Err != nil {
			t.Fatalf("AlterTopicConfigs(set): %v (%s)", r.Err, r.ErrMessage)
		}
		expectConfigs(t, adm, topic,
			hasConfig("retention.ms", "7200000", kmsg.ConfigSourceDynamicTopicConfig),
			hasConfig("max.message.bytes", "2097152", kmsg.ConfigSourceDynamicTopicConfig),
		)

		// DELETE reverts retention.ms to its default; max.message.bytes stays.
		resp, err = adm.AlterTopicConfigs(ctxT(t, 10*time.Second), []kadm.AlterConfig{
			{Op: kadm.DeleteConfig, Name: "retention.ms"},
		}, topic)
		if err != nil {
			t.Fatalf("AlterTopicConfigs(delete): %v", err)
		}
		if r, _ := resp.On(topic, nil); r.Err != nil {
			t.Fatalf("AlterTopicConfigs(delete): %v (%s)", r.Err, r.ErrMessage)
		}
		expectConfigs(t, adm, topic,
			notOverridden("retention.ms", "7200000"),
			hasConfig("max.message.bytes", "2097152", kmsg.ConfigSourceDynamicTopicConfig),
		)

		// Unknown config names are rejected (Kafka: INVALID_CONFIG).
		resp, err = adm.AlterTopicConfigs(ctxT(t, 10*time.Second), []kadm.AlterConfig{
			{Op: kadm.SetConfig, Name: "no.such.config", Value: kadm.StringPtr("1")},
		}, topic)
		if err == nil {
			if r, _ := resp.On(topic, nil); r.Err == nil {
				t.Errorf("AlterTopicConfigs(no.such.config) succeeded, want INVALID_CONFIG")
			}
		}
	})

	t.Run("AlterConfigsLegacyState", func(t *testing.T) {
		// Legacy AlterConfigs replaces the whole dynamic config set.
		resp, err := adm.AlterTopicConfigsState(ctxT(t, 10*time.Second), []kadm.AlterConfig{
			{Name: "retention.ms", Value: kadm.StringPtr("1800000")},
		}, topic)
		if err != nil {
			t.Fatalf("AlterTopicConfigsState: %v", err)
		}
		if r, _ := resp.On(topic, nil); r.Err != nil {
			t.Fatalf("AlterTopicConfigsState: %v (%s)", r.Err, r.ErrMessage)
		}
		expectConfigs(t, adm, topic,
			hasConfig("retention.ms", "1800000", kmsg.ConfigSourceDynamicTopicConfig),
			notOverridden("max.message.bytes", "2097152"), // AlterConfigs replaces the full set
		)
	})

	t.Run("UnknownTopic", func(t *testing.T) {
		rcs, err := adm.DescribeTopicConfigs(ctxT(t, 10*time.Second), "compat-no-such-topic")
		if err == nil {
			rc, _ := rcs.On("compat-no-such-topic", nil)
			if !errors.Is(rc.Err, kerr.UnknownTopicOrPartition) {
				t.Errorf("DescribeTopicConfigs(unknown) err = %v, want UNKNOWN_TOPIC_OR_PARTITION", rc.Err)
			}
		}
	})

	t.Run("SurvivesRestart", func(t *testing.T) {
		b.Restart()
		eventually(t, 20*time.Second, "describe configs after restart", func() error {
			rcs, err := adm.DescribeTopicConfigs(ctxT(t, 10*time.Second), topic)
			if err != nil {
				return err
			}
			rc, err := rcs.On(topic, nil)
			if err != nil {
				return err
			}
			return rc.Err
		})
		expectConfigs(t, adm, topic, hasConfig("retention.ms", "1800000", kmsg.ConfigSourceDynamicTopicConfig))
	})
}

func TestAdminCreatePartitions(t *testing.T) {
	b := StartBroker(t)
	adm := b.Admin(t)
	const topic = "compat-admin-partitions"
	createTopic(t, adm, topic, 3, nil)
	waitPartitions(t, adm, topic, 3)

	resp, err := adm.CreatePartitions(ctxT(t, 20*time.Second), 2, topic)
	if err != nil {
		t.Fatalf("CreatePartitions(+2): %v", err)
	}
	if r := resp[topic]; r.Err != nil {
		t.Fatalf("CreatePartitions(+2): %v (%s)", r.Err, r.ErrMessage)
	}
	waitPartitions(t, adm, topic, 5)

	ends := endOffsets(t, adm, topic)
	if len(ends) != 5 {
		t.Errorf("ListEndOffsets after CreatePartitions = %v, want 5 partitions", ends)
	}

	// The new partition is usable.
	cl := b.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	produceTo(t, cl, topic, 4, 3, "p4")
	ends = endOffsets(t, adm, topic)
	if ends[4] != 3 {
		t.Errorf("end offset of new partition 4 = %d, want 3", ends[4])
	}

	// Shrinking is INVALID_PARTITIONS.
	resp, err = adm.UpdatePartitions(ctxT(t, 20*time.Second), 4, topic)
	if err != nil {
		t.Fatalf("UpdatePartitions(4) request: %v", err)
	}
	if r := resp[topic]; !errors.Is(r.Err, kerr.InvalidPartitions) {
		t.Errorf("UpdatePartitions(5->4) err = %v, want INVALID_PARTITIONS", r.Err)
	}

	b.Restart()
	waitPartitions(t, adm, topic, 5)
}

func TestAdminDeleteRecords(t *testing.T) {
	b := StartBroker(t)
	adm := b.Admin(t)
	const topic = "compat-admin-deleterecords"
	createTopic(t, adm, topic, 3, nil)
	waitPartitions(t, adm, topic, 3)

	cl := b.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	produceTo(t, cl, topic, 0, 10, "p0")
	produceTo(t, cl, topic, 1, 5, "p1")

	var os kadm.Offsets
	os.AddOffset(topic, 0, 4, -1)
	resp, err := adm.DeleteRecords(ctxT(t, 20*time.Second), os)
	if err != nil {
		t.Fatalf("DeleteRecords(p0 < 4): %v", err)
	}
	r, err := resp.On(topic, 0, nil)
	if err != nil || r.Err != nil {
		t.Fatalf("DeleteRecords(p0 < 4): %v / %v", err, r.Err)
	}
	if r.LowWatermark != 4 {
		t.Errorf("DeleteRecords(p0 < 4) low watermark = %d, want 4", r.LowWatermark)
	}

	// -1 means "up to the high watermark".
	os = nil
	os.AddOffset(topic, 1, -1, -1)
	resp, err = adm.DeleteRecords(ctxT(t, 20*time.Second), os)
	if err != nil {
		t.Fatalf("DeleteRecords(p1 < HW): %v", err)
	}
	if r, _ := resp.On(topic, 1, nil); r.Err != nil || r.LowWatermark != 5 {
		t.Errorf("DeleteRecords(p1, -1) = low watermark %d err %v, want 5, nil", r.LowWatermark, r.Err)
	}

	// Beyond the high watermark is OFFSET_OUT_OF_RANGE.
	os = nil
	os.AddOffset(topic, 0, 11, -1)
	resp, err = adm.DeleteRecords(ctxT(t, 20*time.Second), os)
	if err != nil {
		t.Fatalf("DeleteRecords(p0 < 11): %v", err)
	}
	if r, _ := resp.On(topic, 0, nil); !errors.Is(r.Err, kerr.OffsetOutOfRange) {
		t.Errorf("DeleteRecords(p0 < 11, HW 10) err = %v, want OFFSET_OUT_OF_RANGE", r.Err)
	}

	check := func(when string) {
		t.Helper()
		starts := startOffsets(t, adm, topic)
		ends := endOffsets(t, adm, topic)
		want := map[int32][2]int64{0: {4, 10}, 1: {5, 5}, 2: {0, 0}}
		for p, w := range want {
			if starts[p] != w[0] || ends[p] != w[1] {
				t.Errorf("%s: partition %d start/end = %d/%d, want %d/%d", when, p, starts[p], ends[p], w[0], w[1])
			}
		}
		// Consuming p0 from the start begins at offset 4.
		recs := consumeN(t, b, map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}, 6)
		if len(recs) > 0 && recs[0].Offset != 4 {
			t.Errorf("%s: first consumed offset of p0 = %d, want 4", when, recs[0].Offset)
		}
		for i, rec := range recs {
			if want := fmt.Sprintf("p0-v%d", 4+i); string(rec.Value) != want || rec.Offset != int64(4+i) {
				t.Errorf("%s: p0 record %d = offset %d value %q, want offset %d value %q", when, i, rec.Offset, rec.Value, 4+i, want)
			}
		}
	}
	check("before restart")
	b.Restart()
	check("after restart")
}

func TestAdminDeleteTopics(t *testing.T) {
	b := StartBroker(t)
	adm := b.Admin(t)
	const gone, kept = "compat-admin-delete-me", "compat-admin-keep-me"
	old := createTopic(t, adm, gone, 3, nil)
	createTopic(t, adm, kept, 1, nil)
	waitPartitions(t, adm, gone, 3)

	cl := b.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	produceTo(t, cl, gone, 0, 5, "gone")
	produceTo(t, cl, kept, 0, 2, "kept")

	resp, err := adm.DeleteTopics(ctxT(t, 20*time.Second), gone)
	if err != nil {
		t.Fatalf("DeleteTopics(%s): %v", gone, err)
	}
	if r := resp[gone]; r.Err != nil {
		t.Fatalf("DeleteTopics(%s): %v (%s)", gone, r.Err, r.ErrMessage)
	}
	eventually(t, 15*time.Second, "deleted topic disappears from metadata", func() error {
		md, err := adm.Metadata(ctxT(t, 10*time.Second), gone)
		if err != nil {
			return err
		}
		if e := md.Topics[gone].Err; !errors.Is(e, kerr.UnknownTopicOrPartition) {
			return fmt.Errorf("Metadata(%s) err = %v, want UNKNOWN_TOPIC_OR_PARTITION", gone, e)
		}
		all, err := adm.ListTopics(ctxT(t, 10*time.Second))
		if err != nil {
			return err
		}
		if all.Has(gone) {
			return fmt.Errorf("ListTopics still has %s", gone)
		}
		if !all.Has(kept) {
			return fmt.Errorf("ListTopics lost %s", kept)
		}
		return nil
	})

	resp, err = adm.DeleteTopics(ctxT(t, 20*time.Second), gone)
	if err != nil {
		t.Fatalf("second DeleteTopics(%s) request: %v", gone, err)
	}
	if r := resp[gone]; !errors.Is(r.Err, kerr.UnknownTopicOrPartition) {
		t.Errorf("second DeleteTopics(%s) err = %v, want UNKNOWN_TOPIC_OR_PARTITION", gone, r.Err)
	}

	// Recreating the name gives a new, empty topic.
	var recreated kadm.CreateTopicResponse
	eventually(t, 15*time.Second, "recreate deleted topic name", func() error {
		resp, err := adm.CreateTopics(ctxT(t, 10*time.Second), 1, 1, nil, gone)
		if err != nil {
			return err
		}
		recreated = resp[gone]
		return recreated.Err
	})
	if old.ID != (kadm.TopicID{}) && recreated.ID == old.ID {
		t.Errorf("recreated topic reuses the deleted topic's ID %v", old.ID)
	}
	check := func(when string) {
		t.Helper()
		waitPartitions(t, adm, gone, 1)
		ends := endOffsets(t, adm, gone)
		if len(ends) != 1 || ends[0] != 0 {
			t.Errorf("%s: recreated %s end offsets = %v, want {0:0}", when, gone, ends)
		}
		keptEnds := endOffsets(t, adm, kept)
		if keptEnds[0] != 2 {
			t.Errorf("%s: %s end offset = %d, want 2", when, kept, keptEnds[0])
		}
	}
	check("before restart")
	b.Restart()
	check("after restart")
}
