package compat

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

// The authorization matrix: one broker with Kafka's StandardAuthorizer, a topic, a group and a
// transactional id made by the super user admin, and every API the broker serves that Kafka
// authorizes sent by alice, a user without ACLs, over SASL_PLAINTEXT. Each row names the code
// Kafka 4's KafkaApis answers (29 TOPIC_, 30 GROUP_, 31 CLUSTER_, 53
// TRANSACTIONAL_ID_AUTHORIZATION_FAILED) and checks that the answer leaks nothing. Then admin
// grants alice WRITE and READ on the topic, READ on the group and WRITE on the transactional id,
// and the rows run again with the codes Kafka answers then (what those ACLs imply and what
// they do not).
//
// SPATE_MATRIX_KAFKA=1 also runs the matrix against Apache Kafka (scripts/apache-kafka.sh) and
// reports every row where Spate's code differs from Kafka's.

const (
	authzTopic = "t"
	authzGroup = "g"
	authzTxn   = "tx"

	aliceUser     = "alice"
	alicePassword = "alice-secret"

	// skip marks a row that the second pass (after the grants) leaves out: its answer then
	// depends on group or transaction state, not on authorization.
	skip int16 = -1
)

// Kafka's authorization error codes.
const (
	codeTopicAuthz int16 = 29
	codeGroupAuthz int16 = 30
	codeClustAuthz int16 = 31
	codeTxnAuthz   int16 = 53
)

// authzEnv is what the rows' requests refer to.
type authzEnv struct {
	topicID   [16]byte
	nodeID    int32
	clusterID string
}

type authzRow struct {
	name string
	key  int16
	// maxVersion pins the request's version (-1: the newest both sides support).
	maxVersion int16
	req        func(e *authzEnv) kmsg.Request
	// codes returns the error codes of the answer that the row checks; all must equal the
	// expected code.
	codes func(r kmsg.Response) []int16
	// leak, if set, returns a description of what the answer shows that alice may not see.
	leak func(r kmsg.Response) string
	// denied is the code without ACLs; granted the code after the grants (skip: not checked).
	denied, granted int16
}

func kstr(s string) *string { return &s }

func authzRows() []authzRow {
	return []authzRow{
		{
			name: "Metadata named topic", key: 3, maxVersion: -1,
			req: func(e *authzEnv) kmsg.Request {
				r := kmsg.NewPtrMetadataRequest()
				mt := kmsg.NewMetadataRequestTopic()
				mt.Topic = kstr(authzTopic)
				r.Topics = []kmsg.MetadataRequestTopic{mt}
				r.IncludeTopicAuthorizedOperations = true
				return r
			},
			codes: func(r kmsg.Response) (c []int16) {
				for _, t := range r.(*kmsg.MetadataResponse).Topics {
					c = append(c, t.ErrorCode)
				}
				return c
			},
			leak: func(r kmsg.Response) string {
				for _, t := range r.(*kmsg.MetadataResponse).Topics {
					if t.ErrorCode != 0 && (t.TopicID != [16]byte{} || len(t.Partitions) > 0) {
						return fmt.Sprintf("refused topic shows id %x and %d partitions", t.TopicID, len(t.Partitions))
					}
				}
				return ""
			},
			denied: codeTopicAuthz, granted: 0,
		},
		{
			// An unknown topic looks like an unauthorized one: existence is not leaked.
			name: "Metadata unknown topic", key: 3, maxVersion: -1,
			req: func(e *authzEnv) kmsg.Request {
				r := kmsg.NewPtrMetadataRequest()
				mt := kmsg.NewMetadataRequestTopic()
				mt.Topic = kstr("no-such-topic")
				r.Topics = []kmsg.MetadataRequestTopic{mt}
				r.AllowAutoTopicCreation = true
				return r
			},
			codes: func(r kmsg.Response) (c []int16) {
				for _, t := range r.(*kmsg.MetadataResponse).Topics {
					c = append(c, t.ErrorCode)
				}
				return c
			},
			denied: codeTopicAuthz, granted: codeTopicAuthz,
		},
		{
			name: "Metadata all topics", key: 3, maxVersion: -1,
			req: func(e *authzEnv) kmsg.Request {
				return kmsg.NewPtrMetadataRequest() // Topics nil: all topics
			},
			codes: func(r kmsg.Response) []int16 { return []int16{0} },
			leak: func(r kmsg.Response) string {
				if ts := r.(*kmsg.MetadataResponse).Topics; len(ts) > 0 {
					return fmt.Sprintf("all-topics answer lists %d topics (%s)", len(ts), *ts[0].Topic)
				}
				return ""
			},
			denied: 0, granted: 0,
		},
		{
			name: "Produce", key: 0, maxVersion: -1,
			req: func(e *authzEnv) kmsg.Request {
				r := kmsg.NewPtrProduceRequest()
				r.Acks = -1
				r.TimeoutMillis = 10000
				rt := kmsg.NewProduceRequestTopic()
				rt.Topic, rt.TopicID = authzTopic, e.topicID
				rp := kmsg.NewProduceRequestTopicPartition()
				rp.Partition = 0
				rp.Records = rawBatch(-1, -1, -1, time.Now().UnixMilli(), "from-alice")
				rt.Partitions = []kmsg.ProduceRequestTopicPartition{rp}
				r.Topics = []kmsg.ProduceRequestTopic{rt}
				return r
			},
			codes: func(r kmsg.Response) (c []int16) {
				for _, t := range r.(*kmsg.ProduceResponse).Topics {
					for _, p := range t.Partitions {
						c = append(c, p.ErrorCode)
					}
				}
				return c
			},
			denied: codeTopicAuthz, granted: 0,
		},
		{
			name: "Fetch", key: 1, maxVersion: -1,
			req: func(e *authzEnv) kmsg.Request {
				r := kmsg.NewPtrFetchRequest()
				r.ReplicaID = -1
				r.MaxWaitMillis = 0
				r.MaxBytes = 1 << 20
				r.SessionID, r.SessionEpoch = 0, -1
				ft := kmsg.NewFetchRequestTopic()
				ft.Topic, ft.TopicID = authzTopic, e.topicID
				fp := kmsg.NewFetchRequestTopicPartition()
				fp.Partition, fp.FetchOffset, fp.PartitionMaxBytes = 0, 0, 1<<20
				fp.CurrentLeaderEpoch, fp.LastFetchedEpoch, fp.LogStartOffset = -1, -1, -1
				ft.Partitions = []kmsg.FetchRequestTopicPartition{fp}
				r.Topics = []kmsg.FetchRequestTopic{ft}
				return r
			},
			codes: func(r kmsg.Response) (c []int16) {
				f := r.(*kmsg.FetchResponse)
				if f.ErrorCode != 0 {
					return []int16{f.ErrorCode}
				}
				for _, t := range f.Topics {
					for _, p := range t.Partitions {
						c = append(c, p.ErrorCode)
					}
				}
				return c
			},
			leak: func(r kmsg.Response) string {
				for _, t := range r.(*kmsg.FetchResponse).Topics {
					for _, p := range t.Partitions {
						if p.ErrorCode != 0 && (len(p.RecordBatches) > 0 || p.HighWatermark > 0) {
							return fmt.Sprintf("refused fetch returns %d bytes, high watermark %d", len(p.RecordBatches), p.HighWatermark)
						}
					}
				}
				return ""
			},
			denied: codeTopicAuthz, granted: 0,
		},
		{
			name: "ListOffsets", key: 2, maxVersion: -1,
			req: func(e *authzEnv) kmsg.Request {
				r := kmsg.NewPtrListOffsetsRequest()
				r.ReplicaID = -1
				lt := kmsg.NewListOffsetsRequestTopic()
				lt.Topic = authzTopic
				lp := kmsg.NewListOffsetsRequestTopicPartition()
				lp.Partition, lp.Timestamp, lp.CurrentLeaderEpoch = 0, -1, -1
				lt.Partitions = []kmsg.ListOffsetsRequestTopicPartition{lp}
				r.Topics = []kmsg.ListOffsetsRequestTopic{lt}
				return r
			},
			codes: func(r kmsg.Response) (c []int16) {
				for _, t := range r.(*kmsg.ListOffsetsResponse).Topics {
					for _, p := range t.Partitions {
						c = append(c, p.ErrorCode)
					}
				}
				return c
			},
			leak: func(r kmsg.Response) string {
				for _, t := range r.(*kmsg.ListOffsetsResponse).Topics {
					for _, p := range t.Partitions {
						if p.ErrorCode != 0 && p.Offset > 0 {
							return fmt.Sprintf("refused ListOffsets shows offset %d", p.Offset)
						}
					}
				}
				return ""
			},
			denied: codeTopicAuthz, granted: 0,
		},
		{
			name: "CreateTopics", key: 19, maxVersion: -1,
			req: func(e *authzEnv) kmsg.Request {
				r := kmsg.NewPtrCreateTopicsRequest()
				r.TimeoutMillis = 10000
				ct := kmsg.NewCreateTopicsRequestTopic()
				ct.Topic, ct.NumPartitions, ct.ReplicationFactor = "t-by-alice", 1, 1
				r.Topics = []kmsg.CreateTopicsRequestTopic{ct}
				return r
			},
			codes: func(r kmsg.Response) (c []int16) {
				for _, t := range r.(*kmsg.CreateTopicsResponse).Topics {
					c = append(c, t.ErrorCode)
				}
				return c
			},
			denied: codeTopicAuthz, granted: codeTopicAuthz,
		},
		{
			name: "DeleteTopics", key: 20, maxVersion: -1,
			req: func(e *authzEnv) kmsg.Request {
				r := kmsg.NewPtrDeleteTopicsRequest()
				r.TimeoutMillis = 10000
				r.TopicNames = []string{authzTopic}
				dt := kmsg.NewDeleteTopicsRequestTopic()
				dt.Topic = kstr(authzTopic)
				r.Topics = []kmsg.DeleteTopicsRequestTopic{dt}
				return r
			},
			codes: func(r kmsg.Response) (c []int16) {
				for _, t := range r.(*kmsg.DeleteTopicsResponse).Topics {
					c = append(c, t.ErrorCode)
				}
				return c
			},
			denied: codeTopicAuthz, granted: codeTopicAuthz,
		},
		{
			name: "CreatePartitions", key: 37, maxVersion: -1,
			req: func(e *authzEnv) kmsg.Request {
				r := kmsg.NewPtrCreatePartitionsRequest()
				r.TimeoutMillis = 10000
				cp := kmsg.NewCreatePartitionsRequestTopic()
				cp.Topic, cp.Count = authzTopic, 2
				r.Topics = []kmsg.CreatePartitionsRequestTopic{cp}
				return r
			},
			codes: func(r kmsg.Response) (c []int16) {
				for _, t := range r.(*kmsg.CreatePartitionsResponse).Topics {
					c = append(c, t.ErrorCode)
				}
				return c
			},
			denied: codeTopicAuthz, granted: codeTopicAuthz,
		},
		{
			name: "DeleteRecords", key: 21, maxVersion: -1,
			req: func(e *authzEnv) kmsg.Request {
				r := kmsg.NewPtrDeleteRecordsRequest()
				r.TimeoutMillis = 10000
				dt := kmsg.NewDeleteRecordsRequestTopic()
				dt.Topic = authzTopic
				dp := kmsg.NewDeleteRecordsRequestTopicPartition()
				dp.Partition, dp.Offset = 0, 1
				dt.Partitions = []kmsg.DeleteRecordsRequestTopicPartition{dp}
				r.Topics = []kmsg.DeleteRecordsRequestTopic{dt}
				return r
			},
			codes: func(r kmsg.Response) (c []int16) {
				for _, t := range r.(*kmsg.DeleteRecordsResponse).Topics {
					for _, p := range t.Partitions {
						c = append(c, p.ErrorCode)
					}
				}
				return c
			},
			denied: codeTopicAuthz, granted: codeTopicAuthz,
		},
		{
			name: "DescribeConfigs topic", key: 32, maxVersion: -1,
			req: func(e *authzEnv) kmsg.Request {
				return describeConfigsReq(kmsg.ConfigResourceTypeTopic, authzTopic)
			},
			codes:  describeConfigsCodes,
			leak:   describeConfigsLeak,
			denied: codeTopicAuthz, granted: codeTopicAuthz,
		},
		{
			name: "DescribeConfigs broker", key: 32, maxVersion: -1,
			req: func(e *authzEnv) kmsg.Request {
				return describeConfigsReq(kmsg.ConfigResourceTypeBroker, fmt.Sprint(e.nodeID))
			},
			codes:  describeConfigsCodes,
			leak:   describeConfigsLeak,
			denied: codeClustAuthz, granted: codeClustAuthz,
		},
		{
			name: "AlterConfigs topic", key: 33, maxVersion: -1,
			req: func(e *authzEnv) kmsg.Request {
				r := kmsg.NewPtrAlterConfigsRequest()
				ar := kmsg.NewAlterConfigsRequestResource()
				ar.ResourceType, ar.ResourceName = kmsg.ConfigResourceTypeTopic, authzTopic
				c := kmsg.NewAlterConfigsRequestResourceConfig()
				c.Name, c.Value = "retention.ms", kstr("1000")
				ar.Configs = []kmsg.AlterConfigsRequestResourceConfig{c}
				r.Resources = []kmsg.AlterConfigsRequestResource{ar}
				return r
			},
			codes: func(r kmsg.Response) (c []int16) {
				for _, res := range r.(*kmsg.AlterConfigsResponse).Resources {
					c = append(c, res.ErrorCode)
				}
				return c
			},
			denied: codeTopicAuthz, granted: codeTopicAuthz,
		},
		{
			name: "IncrementalAlterConfigs topic", key: 44, maxVersion: -1,
			req: func(e *authzEnv) kmsg.Request {
				return incrementalAlterReq(kmsg.ConfigResourceTypeTopic, authzTopic, "retention.ms", "1000")
			},
			codes:  incrementalAlterCodes,
			denied: codeTopicAuthz, granted: codeTopicAuthz,
		},
		{
			name: "IncrementalAlterConfigs broker", key: 44, maxVersion: -1,
			req: func(e *authzEnv) kmsg.Request {
				return incrementalAlterReq(kmsg.ConfigResourceTypeBroker, fmt.Sprint(e.nodeID), "log.cleaner.threads", "2")
			},
			codes:  incrementalAlterCodes,
			denied: codeClustAuthz, granted: codeClustAuthz,
		},
		{
			name: "FindCoordinator group", key: 10, maxVersion: -1,
			req:    func(e *authzEnv) kmsg.Request { return findCoordinatorReq(0, authzGroup) },
			codes:  findCoordinatorCodes,
			leak:   findCoordinatorLeak,
			denied: codeGroupAuthz, granted: 0,
		},
		{
			name: "FindCoordinator transaction", key: 10, maxVersion: -1,
			req:    func(e *authzEnv) kmsg.Request { return findCoordinatorReq(1, authzTxn) },
			codes:  findCoordinatorCodes,
			leak:   findCoordinatorLeak,
			denied: codeTxnAuthz, granted: 0,
		},
		{
			name: "JoinGroup", key: 11, maxVersion: -1,
			req: func(e *authzEnv) kmsg.Request {
				r := kmsg.NewPtrJoinGroupRequest()
				r.Group, r.MemberID, r.ProtocolType = authzGroup, "", "consumer"
				r.SessionTimeoutMillis, r.RebalanceTimeoutMillis = 10000, 10000
				p := kmsg.NewJoinGroupRequestProtocol()
				p.Name, p.Metadata = "range", []byte{0, 1, 0, 0, 0, 0, 0, 0, 0, 0}
				r.Protocols = []kmsg.JoinGroupRequestProtocol{p}
				return r
			},
			codes: func(r kmsg.Response) []int16 { return []int16{r.(*kmsg.JoinGroupResponse).ErrorCode} },
			// MEMBER_ID_REQUIRED: the first join of a new member (v4+)
			denied: codeGroupAuthz, granted: 79,
		},
		{
			name: "Heartbeat", key: 12, maxVersion: -1,
			req: func(e *authzEnv) kmsg.Request {
				r := kmsg.NewPtrHeartbeatRequest()
				r.Group, r.Generation, r.MemberID = authzGroup, 1, "m"
				return r
			},
			codes:  func(r kmsg.Response) []int16 { return []int16{r.(*kmsg.HeartbeatResponse).ErrorCode} },
			denied: codeGroupAuthz, granted: skip,
		},
		{
			name: "SyncGroup", key: 14, maxVersion: -1,
			req: func(e *authzEnv) kmsg.Request {
				r := kmsg.NewPtrSyncGroupRequest()
				r.Group, r.Generation, r.MemberID = authzGroup, 1, "m"
				r.ProtocolType, r.Protocol = kstr("consumer"), kstr("range")
				return r
			},
			codes:  func(r kmsg.Response) []int16 { return []int16{r.(*kmsg.SyncGroupResponse).ErrorCode} },
			denied: codeGroupAuthz, granted: skip,
		},
		{
			name: "LeaveGroup", key: 13, maxVersion: -1,
			req: func(e *authzEnv) kmsg.Request {
				r := kmsg.NewPtrLeaveGroupRequest()
				r.Group, r.MemberID = authzGroup, "m"
				m := kmsg.NewLeaveGroupRequestMember()
				m.MemberID = "m"
				r.Members = []kmsg.LeaveGroupRequestMember{m}
				return r
			},
			codes:  func(r kmsg.Response) []int16 { return []int16{r.(*kmsg.LeaveGroupResponse).ErrorCode} },
			denied: codeGroupAuthz, granted: skip,
		},
		{
			name: "OffsetCommit", key: 8, maxVersion: -1,
			req: func(e *authzEnv) kmsg.Request {
				r := kmsg.NewPtrOffsetCommitRequest()
				r.Group, r.Generation, r.MemberID = authzGroup, -1, ""
				ot := kmsg.NewOffsetCommitRequestTopic()
				ot.Topic, ot.TopicID = authzTopic, e.topicID
				op := kmsg.NewOffsetCommitRequestTopicPartition()
				op.Partition, op.Offset, op.LeaderEpoch = 0, 1, -1
				ot.Partitions = []kmsg.OffsetCommitRequestTopicPartition{op}
				r.Topics = []kmsg.OffsetCommitRequestTopic{ot}
				return r
			},
			codes: func(r kmsg.Response) (c []int16) {
				for _, t := range r.(*kmsg.OffsetCommitResponse).Topics {
					for _, p := range t.Partitions {
						c = append(c, p.ErrorCode)
					}
				}
				return c
			},
			// READ on the group and the topic: the simple (generation -1) commit goes through.
			denied: codeGroupAuthz, granted: 0,
		},
		{
			name: "OffsetFetch", key: 9, maxVersion: -1,
			req: func(e *authzEnv) kmsg.Request {
				r := kmsg.NewPtrOffsetFetchRequest()
				r.Group = authzGroup
				ot := kmsg.NewOffsetFetchRequestTopic()
				ot.Topic, ot.Partitions = authzTopic, []int32{0}
				r.Topics = []kmsg.OffsetFetchRequestTopic{ot}
				g := kmsg.NewOffsetFetchRequestGroup()
				g.Group = authzGroup
				gt := kmsg.NewOffsetFetchRequestGroupTopic()
				gt.Topic, gt.TopicID, gt.Partitions = authzTopic, e.topicID, []int32{0}
				g.Topics = []kmsg.OffsetFetchRequestGroupTopic{gt}
				r.Groups = []kmsg.OffsetFetchRequestGroup{g}
				return r
			},
			codes: func(r kmsg.Response) (c []int16) {
				f := r.(*kmsg.OffsetFetchResponse)
				if len(f.Groups) == 0 {
					c = append(c, f.ErrorCode)
					for _, t := range f.Topics {
						for _, p := range t.Partitions {
							c = append(c, p.ErrorCode)
						}
					}
					return c
				}
				for _, g := range f.Groups {
					c = append(c, g.ErrorCode)
					for _, t := range g.Topics {
						for _, p := range t.Partitions {
							c = append(c, p.ErrorCode)
						}
					}
				}
				return c
			},
			leak: func(r kmsg.Response) string {
				f := r.(*kmsg.OffsetFetchResponse)
				for _, g := range f.Groups {
					for _, t := range g.Topics {
						for _, p := range t.Partitions {
							if g.ErrorCode != 0 && p.Offset >= 0 {
								return fmt.Sprintf("refused OffsetFetch shows offset %d", p.Offset)
							}
						}
					}
				}
				return ""
			},
			denied: codeGroupAuthz, granted: 0,
		},
		{
			name: "ListGroups", key: 16, maxVersion: -1,
			req:   func(e *authzEnv) kmsg.Request { return kmsg.NewPtrListGroupsRequest() },
			codes: func(r kmsg.Response) []int16 { return []int16{r.(*kmsg.ListGroupsResponse).ErrorCode} },
			leak: func(r kmsg.Response) string {
				var gs []string
				for _, g := range r.(*kmsg.ListGroupsResponse).Groups {
					gs = append(gs, g.Group)
				}
				if len(gs) > 0 {
					return fmt.Sprintf("lists groups %v", gs)
				}
				return ""
			},
			denied: 0, granted: skip,
		},
		{
			name: "DescribeGroups", key: 15, maxVersion: -1,
			req: func(e *authzEnv) kmsg.Request {
				r := kmsg.NewPtrDescribeGroupsRequest()
				r.Groups = []string{authzGroup}
				r.IncludeAuthorizedOperations = true
				return r
			},
			codes: func(r kmsg.Response) (c []int16) {
				for _, g := range r.(*kmsg.DescribeGroupsResponse).Groups {
					c = append(c, g.ErrorCode)
				}
				return c
			},
			leak: func(r kmsg.Response) string {
				for _, g := range r.(*kmsg.DescribeGroupsResponse).Groups {
					if g.ErrorCode != 0 && (g.ProtocolType != "" || len(g.Members) > 0) {
						return fmt.Sprintf("refused group shows protocol type %q, %d members", g.ProtocolType, len(g.Members))
					}
				}
				return ""
			},
			denied: codeGroupAuthz, granted: 0,
		},
		{
			name: "DeleteGroups", key: 42, maxVersion: -1,
			req: func(e *authzEnv) kmsg.Request {
				r := kmsg.NewPtrDeleteGroupsRequest()
				r.Groups = []string{authzGroup}
				return r
			},
			codes: func(r kmsg.Response) (c []int16) {
				for _, g := range r.(*kmsg.DeleteGroupsResponse).Groups {
					c = append(c, g.ErrorCode)
				}
				return c
			},
			denied: codeGroupAuthz, granted: codeGroupAuthz,
		},
		{
			name: "OffsetDelete", key: 47, maxVersion: -1,
			req: func(e *authzEnv) kmsg.Request {
				r := kmsg.NewPtrOffsetDeleteRequest()
				r.Group = authzGroup
				ot := kmsg.NewOffsetDeleteRequestTopic()
				ot.Topic = authzTopic
				op := kmsg.NewOffsetDeleteRequestTopicPartition()
				op.Partition = 0
				ot.Partitions = []kmsg.OffsetDeleteRequestTopicPartition{op}
				r.Topics = []kmsg.OffsetDeleteRequestTopic{ot}
				return r
			},
			codes:  func(r kmsg.Response) []int16 { return []int16{r.(*kmsg.OffsetDeleteResponse).ErrorCode} },
			denied: codeGroupAuthz, granted: codeGroupAuthz,
		},
		{
			name: "ConsumerGroupHeartbeat", key: 68, maxVersion: -1,
			req: func(e *authzEnv) kmsg.Request {
				r := kmsg.NewPtrConsumerGroupHeartbeatRequest()
				r.Group, r.MemberID, r.MemberEpoch = "g-848", "aliceMember00000000000", 0
				r.RebalanceTimeoutMillis = 10000
				r.SubscribedTopicNames = []string{authzTopic}
				r.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
				return r
			},
			codes:  func(r kmsg.Response) []int16 { return []int16{r.(*kmsg.ConsumerGroupHeartbeatResponse).ErrorCode} },
			denied: codeGroupAuthz, granted: codeGroupAuthz,
		},
		{
			name: "ConsumerGroupDescribe", key: 69, maxVersion: -1,
			req: func(e *authzEnv) kmsg.Request {
				r := kmsg.NewPtrConsumerGroupDescribeRequest()
				r.Groups = []string{authzGroup}
				return r
			},
			codes: func(r kmsg.Response) (c []int16) {
				for _, g := range r.(*kmsg.ConsumerGroupDescribeResponse).Groups {
					c = append(c, g.ErrorCode)
				}
				return c
			},
			denied: codeGroupAuthz, granted: skip,
		},
		{
			name: "InitProducerId idempotent", key: 22, maxVersion: -1,
			req: func(e *authzEnv) kmsg.Request {
				r := kmsg.NewPtrInitProducerIDRequest()
				r.TransactionTimeoutMillis = -1
				return r
			},
			codes: func(r kmsg.Response) []int16 { return []int16{r.(*kmsg.InitProducerIDResponse).ErrorCode} },
			leak: func(r kmsg.Response) string {
				if p := r.(*kmsg.InitProducerIDResponse); p.ErrorCode != 0 && p.ProducerID >= 0 {
					return fmt.Sprintf("refused InitProducerId hands out producer id %d", p.ProducerID)
				}
				return ""
			},
			// WRITE on any topic is enough for an idempotent producer.
			denied: codeClustAuthz, granted: 0,
		},
		{
			name: "InitProducerId transactional", key: 22, maxVersion: -1,
			req: func(e *authzEnv) kmsg.Request {
				r := kmsg.NewPtrInitProducerIDRequest()
				r.TransactionalID = kstr(authzTxn)
				r.TransactionTimeoutMillis = 60000
				return r
			},
			codes:  func(r kmsg.Response) []int16 { return []int16{r.(*kmsg.InitProducerIDResponse).ErrorCode} },
			denied: codeTxnAuthz, granted: 0,
		},
		{
			// v3 is the newest clients send; v4+ is the brokers' verification request.
			name: "AddPartitionsToTxn v3", key: 24, maxVersion: 3,
			req: func(e *authzEnv) kmsg.Request {
				r := kmsg.NewPtrAddPartitionsToTxnRequest()
				r.TransactionalID, r.ProducerID, r.ProducerEpoch = authzTxn, 1, 0
				at := kmsg.NewAddPartitionsToTxnRequestTopic()
				at.Topic, at.Partitions = authzTopic, []int32{0}
				r.Topics = []kmsg.AddPartitionsToTxnRequestTopic{at}
				return r
			},
			codes: func(r kmsg.Response) (c []int16) {
				for _, t := range r.(*kmsg.AddPartitionsToTxnResponse).Topics {
					for _, p := range t.Partitions {
						c = append(c, p.ErrorCode)
					}
				}
				return c
			},
			denied: codeTxnAuthz, granted: skip,
		},
		{
			name: "AddPartitionsToTxn v4 verifyOnly", key: 24, maxVersion: 4,
			req: func(e *authzEnv) kmsg.Request {
				r := kmsg.NewPtrAddPartitionsToTxnRequest()
				tx := kmsg.NewAddPartitionsToTxnRequestTransaction()
				tx.TransactionalID, tx.ProducerID, tx.ProducerEpoch, tx.VerifyOnly = authzTxn, 1, 0, true
				tt := kmsg.NewAddPartitionsToTxnRequestTransactionTopic()
				tt.Topic, tt.Partitions = authzTopic, []int32{0}
				tx.Topics = []kmsg.AddPartitionsToTxnRequestTransactionTopic{tt}
				r.Transactions = []kmsg.AddPartitionsToTxnRequestTransaction{tx}
				return r
			},
			codes:  func(r kmsg.Response) []int16 { return []int16{r.(*kmsg.AddPartitionsToTxnResponse).ErrorCode} },
			denied: codeClustAuthz, granted: codeClustAuthz,
		},
		{
			name: "AddOffsetsToTxn", key: 25, maxVersion: -1,
			req: func(e *authzEnv) kmsg.Request {
				r := kmsg.NewPtrAddOffsetsToTxnRequest()
				r.TransactionalID, r.ProducerID, r.ProducerEpoch, r.Group = authzTxn, 1, 0, authzGroup
				return r
			},
			codes:  func(r kmsg.Response) []int16 { return []int16{r.(*kmsg.AddOffsetsToTxnResponse).ErrorCode} },
			denied: codeTxnAuthz, granted: skip,
		},
		{
			name: "TxnOffsetCommit", key: 28, maxVersion: -1,
			req: func(e *authzEnv) kmsg.Request {
				r := kmsg.NewPtrTxnOffsetCommitRequest()
				r.TransactionalID, r.Group, r.ProducerID, r.ProducerEpoch = authzTxn, authzGroup, 1, 0
				r.Generation = -1
				tt := kmsg.NewTxnOffsetCommitRequestTopic()
				tt.Topic, tt.TopicID = authzTopic, e.topicID
				tp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
				tp.Partition, tp.Offset, tp.LeaderEpoch = 0, 1, -1
				tt.Partitions = []kmsg.TxnOffsetCommitRequestTopicPartition{tp}
				r.Topics = []kmsg.TxnOffsetCommitRequestTopic{tt}
				return r
			},
			codes: func(r kmsg.Response) (c []int16) {
				for _, t := range r.(*kmsg.TxnOffsetCommitResponse).Topics {
					for _, p := range t.Partitions {
						c = append(c, p.ErrorCode)
					}
				}
				return c
			},
			denied: codeTxnAuthz, granted: skip,
		},
		{
			name: "EndTxn", key: 26, maxVersion: -1,
			req: func(e *authzEnv) kmsg.Request {
				r := kmsg.NewPtrEndTxnRequest()
				r.TransactionalID, r.ProducerID, r.ProducerEpoch, r.Commit = authzTxn, 1, 0, true
				return r
			},
			codes:  func(r kmsg.Response) []int16 { return []int16{r.(*kmsg.EndTxnResponse).ErrorCode} },
			denied: codeTxnAuthz, granted: skip,
		},
		{
			name: "WriteTxnMarkers", key: 27, maxVersion: -1,
			req: func(e *authzEnv) kmsg.Request {
				r := kmsg.NewPtrWriteTxnMarkersRequest()
				m := kmsg.NewWriteTxnMarkersRequestMarker()
				m.ProducerID, m.ProducerEpoch, m.Committed = 1, 0, true
				mt := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
				mt.Topic, mt.Partitions = authzTopic, []int32{0}
				m.Topics = []kmsg.WriteTxnMarkersRequestMarkerTopic{mt}
				r.Markers = []kmsg.WriteTxnMarkersRequestMarker{m}
				return r
			},
			codes: func(r kmsg.Response) (c []int16) {
				for _, m := range r.(*kmsg.WriteTxnMarkersResponse).Markers {
					for _, t := range m.Topics {
						for _, p := range t.Partitions {
							c = append(c, p.ErrorCode)
						}
					}
				}
				return c
			},
			denied: codeClustAuthz, granted: codeClustAuthz,
		},
		{
			name: "DescribeProducers", key: 61, maxVersion: -1,
			req: func(e *authzEnv) kmsg.Request {
				r := kmsg.NewPtrDescribeProducersRequest()
				dt := kmsg.NewDescribeProducersRequestTopic()
				dt.Topic, dt.Partitions = authzTopic, []int32{0}
				r.Topics = []kmsg.DescribeProducersRequestTopic{dt}
				return r
			},
			codes: func(r kmsg.Response) (c []int16) {
				for _, t := range r.(*kmsg.DescribeProducersResponse).Topics {
					for _, p := range t.Partitions {
						c = append(c, p.ErrorCode)
					}
				}
				return c
			},
			leak: func(r kmsg.Response) string {
				for _, t := range r.(*kmsg.DescribeProducersResponse).Topics {
					for _, p := range t.Partitions {
						if p.ErrorCode != 0 && len(p.ActiveProducers) > 0 {
							return fmt.Sprintf("refused DescribeProducers lists %d producers", len(p.ActiveProducers))
						}
					}
				}
				return ""
			},
			denied: codeTopicAuthz, granted: 0,
		},
		{
			name: "DescribeTransactions", key: 65, maxVersion: -1,
			req: func(e *authzEnv) kmsg.Request {
				r := kmsg.NewPtrDescribeTransactionsRequest()
				r.TransactionalIDs = []string{authzTxn}
				return r
			},
			codes: func(r kmsg.Response) (c []int16) {
				for _, s := range r.(*kmsg.DescribeTransactionsResponse).TransactionStates {
					c = append(c, s.ErrorCode)
				}
				return c
			},
			leak: func(r kmsg.Response) string {
				for _, s := range r.(*kmsg.DescribeTransactionsResponse).TransactionStates {
					if s.ErrorCode != 0 && (s.State != "" || s.ProducerID > 0) {
						return fmt.Sprintf("refused transaction shows state %q, producer id %d", s.State, s.ProducerID)
					}
				}
				return ""
			},
			denied: codeTxnAuthz, granted: 0,
		},
		{
			name: "ListTransactions", key: 66, maxVersion: -1,
			req:   func(e *authzEnv) kmsg.Request { return kmsg.NewPtrListTransactionsRequest() },
			codes: func(r kmsg.Response) []int16 { return []int16{r.(*kmsg.ListTransactionsResponse).ErrorCode} },
			leak: func(r kmsg.Response) string {
				var ids []string
				for _, s := range r.(*kmsg.ListTransactionsResponse).TransactionStates {
					ids = append(ids, s.TransactionalID)
				}
				if len(ids) > 0 {
					return fmt.Sprintf("lists transactions %v", ids)
				}
				return ""
			},
			denied: 0, granted: skip,
		},
		{
			name: "DescribeAcls", key: 29, maxVersion: -1,
			req: func(e *authzEnv) kmsg.Request {
				r := kmsg.NewPtrDescribeACLsRequest()
				r.ResourceType, r.ResourcePatternType = kmsg.ACLResourceTypeAny, kmsg.ACLResourcePatternTypeAny
				r.Operation, r.PermissionType = kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
				return r
			},
			codes: func(r kmsg.Response) []int16 { return []int16{r.(*kmsg.DescribeACLsResponse).ErrorCode} },
			leak: func(r kmsg.Response) string {
				if rs := r.(*kmsg.DescribeACLsResponse).Resources; len(rs) > 0 {
					return fmt.Sprintf("refused DescribeAcls lists %d resources", len(rs))
				}
				return ""
			},
			denied: codeClustAuthz, granted: codeClustAuthz,
		},
		{
			// alice trying to grant herself everything
			name: "CreateAcls", key: 30, maxVersion: -1,
			req: func(e *authzEnv) kmsg.Request {
				r := kmsg.NewPtrCreateACLsRequest()
				c := kmsg.NewCreateACLsRequestCreation()
				c.ResourceType, c.ResourceName, c.ResourcePatternType = kmsg.ACLResourceTypeTopic, "*", kmsg.ACLResourcePatternTypeLiteral
				c.Principal, c.Host = "User:"+aliceUser, "*"
				c.Operation, c.PermissionType = kmsg.ACLOperationAll, kmsg.ACLPermissionTypeAllow
				r.Creations = []kmsg.CreateACLsRequestCreation{c}
				return r
			},
			codes: func(r kmsg.Response) (c []int16) {
				for _, res := range r.(*kmsg.CreateACLsResponse).Results {
					c = append(c, res.ErrorCode)
				}
				return c
			},
			denied: codeClustAuthz, granted: codeClustAuthz,
		},
		{
			name: "DeleteAcls", key: 31, maxVersion: -1,
			req: func(e *authzEnv) kmsg.Request {
				r := kmsg.NewPtrDeleteACLsRequest()
				f := kmsg.NewDeleteACLsRequestFilter()
				f.ResourceType, f.ResourcePatternType = kmsg.ACLResourceTypeAny, kmsg.ACLResourcePatternTypeAny
				f.Operation, f.PermissionType = kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
				r.Filters = []kmsg.DeleteACLsRequestFilter{f}
				return r
			},
			codes: func(r kmsg.Response) (c []int16) {
				for _, res := range r.(*kmsg.DeleteACLsResponse).Results {
					c = append(c, res.ErrorCode)
				}
				return c
			},
			denied: codeClustAuthz, granted: codeClustAuthz,
		},
		{
			name: "DescribeUserScramCredentials", key: 50, maxVersion: -1,
			req: func(e *authzEnv) kmsg.Request {
				// An empty list (all users), not null: Kafka 4.4 throws a NullPointerException
				// building the refusal for a null list and never answers.
				r := kmsg.NewPtrDescribeUserSCRAMCredentialsRequest()
				r.Users = []kmsg.DescribeUserSCRAMCredentialsRequestUser{}
				return r
			},
			codes: func(r kmsg.Response) []int16 {
				return []int16{r.(*kmsg.DescribeUserSCRAMCredentialsResponse).ErrorCode}
			},
			leak: func(r kmsg.Response) string {
				if rs := r.(*kmsg.DescribeUserSCRAMCredentialsResponse).Results; len(rs) > 0 {
					return fmt.Sprintf("refused answer lists %d users", len(rs))
				}
				return ""
			},
			denied: codeClustAuthz, granted: codeClustAuthz,
		},
		{
			name: "AlterUserScramCredentials", key: 51, maxVersion: -1,
			req: func(e *authzEnv) kmsg.Request {
				r := kmsg.NewPtrAlterUserSCRAMCredentialsRequest()
				u := kmsg.NewAlterUserSCRAMCredentialsRequestUpsertion()
				u.Name, u.Mechanism, u.Iterations = "mallory", 2, 4096
				u.Salt = []byte("0123456789abcdef")
				u.SaltedPassword = make([]byte, 64)
				r.Upsertions = []kmsg.AlterUserSCRAMCredentialsRequestUpsertion{u}
				return r
			},
			codes: func(r kmsg.Response) (c []int16) {
				for _, res := range r.(*kmsg.AlterUserSCRAMCredentialsResponse).Results {
					c = append(c, res.ErrorCode)
				}
				return c
			},
			denied: codeClustAuthz, granted: codeClustAuthz,
		},
		{
			name: "DescribeClientQuotas", key: 48, maxVersion: -1,
			req: func(e *authzEnv) kmsg.Request {
				r := kmsg.NewPtrDescribeClientQuotasRequest()
				r.Components = []kmsg.DescribeClientQuotasRequestComponent{}
				return r
			},
			codes: func(r kmsg.Response) []int16 { return []int16{r.(*kmsg.DescribeClientQuotasResponse).ErrorCode} },
			leak: func(r kmsg.Response) string {
				if es := r.(*kmsg.DescribeClientQuotasResponse).Entries; len(es) > 0 {
					return fmt.Sprintf("refused answer lists %d quota entries", len(es))
				}
				return ""
			},
			denied: codeClustAuthz, granted: codeClustAuthz,
		},
		{
			name: "AlterClientQuotas", key: 49, maxVersion: -1,
			req: func(e *authzEnv) kmsg.Request {
				r := kmsg.NewPtrAlterClientQuotasRequest()
				en := kmsg.NewAlterClientQuotasRequestEntry()
				ent := kmsg.NewAlterClientQuotasRequestEntryEntity()
				ent.Type, ent.Name = "user", kstr(aliceUser)
				op := kmsg.NewAlterClientQuotasRequestEntryOp()
				op.Key, op.Value = "producer_byte_rate", 1e9
				en.Entity = []kmsg.AlterClientQuotasRequestEntryEntity{ent}
				en.Ops = []kmsg.AlterClientQuotasRequestEntryOp{op}
				r.Entries = []kmsg.AlterClientQuotasRequestEntry{en}
				return r
			},
			codes: func(r kmsg.Response) (c []int16) {
				for _, en := range r.(*kmsg.AlterClientQuotasResponse).Entries {
					c = append(c, en.ErrorCode)
				}
				return c
			},
			denied: codeClustAuthz, granted: codeClustAuthz,
		},
		{
			// No check in Kafka; what alice may do on the cluster is reported as nothing.
			name: "DescribeCluster", key: 60, maxVersion: -1,
			req: func(e *authzEnv) kmsg.Request {
				r := kmsg.NewPtrDescribeClusterRequest()
				r.IncludeClusterAuthorizedOperations = true
				return r
			},
			codes: func(r kmsg.Response) []int16 { return []int16{r.(*kmsg.DescribeClusterResponse).ErrorCode} },
			leak: func(r kmsg.Response) string {
				if ops := r.(*kmsg.DescribeClusterResponse).ClusterAuthorizedOperations; ops != 0 {
					return fmt.Sprintf("cluster authorized operations %#x, want 0", ops)
				}
				return ""
			},
			denied: 0, granted: 0,
		},
		{
			name: "DescribeQuorum", key: 55, maxVersion: -1,
			req: func(e *authzEnv) kmsg.Request {
				r := kmsg.NewPtrDescribeQuorumRequest()
				qt := kmsg.NewDescribeQuorumRequestTopic()
				qt.Topic = "__cluster_metadata"
				qp := kmsg.NewDescribeQuorumRequestTopicPartition()
				qp.Partition = 0
				qt.Partitions = []kmsg.DescribeQuorumRequestTopicPartition{qp}
				r.Topics = []kmsg.DescribeQuorumRequestTopic{qt}
				return r
			},
			codes:  func(r kmsg.Response) []int16 { return []int16{r.(*kmsg.DescribeQuorumResponse).ErrorCode} },
			denied: codeClustAuthz, granted: codeClustAuthz,
		},
		{
			name: "ElectLeaders", key: 43, maxVersion: -1,
			req: func(e *authzEnv) kmsg.Request {
				r := kmsg.NewPtrElectLeadersRequest()
				r.ElectionType, r.TimeoutMillis = 0, 10000
				et := kmsg.NewElectLeadersRequestTopic()
				et.Topic, et.Partitions = authzTopic, []int32{0}
				r.Topics = []kmsg.ElectLeadersRequestTopic{et}
				return r
			},
			codes:  func(r kmsg.Response) []int16 { return []int16{r.(*kmsg.ElectLeadersResponse).ErrorCode} },
			denied: codeClustAuthz, granted: codeClustAuthz,
		},
		{
			name: "AlterPartitionReassignments", key: 45, maxVersion: -1,
			req: func(e *authzEnv) kmsg.Request {
				r := kmsg.NewPtrAlterPartitionAssignmentsRequest()
				r.TimeoutMillis = 10000
				at := kmsg.NewAlterPartitionAssignmentsRequestTopic()
				at.Topic = authzTopic
				ap := kmsg.NewAlterPartitionAssignmentsRequestTopicPartition()
				ap.Partition, ap.Replicas = 0, []int32{e.nodeID}
				at.Partitions = []kmsg.AlterPartitionAssignmentsRequestTopicPartition{ap}
				r.Topics = []kmsg.AlterPartitionAssignmentsRequestTopic{at}
				return r
			},
			codes:  func(r kmsg.Response) []int16 { return []int16{r.(*kmsg.AlterPartitionAssignmentsResponse).ErrorCode} },
			denied: codeClustAuthz, granted: codeClustAuthz,
		},
		{
			name: "ListPartitionReassignments", key: 46, maxVersion: -1,
			req: func(e *authzEnv) kmsg.Request {
				r := kmsg.NewPtrListPartitionReassignmentsRequest()
				r.TimeoutMillis = 10000
				return r
			},
			codes:  func(r kmsg.Response) []int16 { return []int16{r.(*kmsg.ListPartitionReassignmentsResponse).ErrorCode} },
			denied: codeClustAuthz, granted: codeClustAuthz,
		},
		{
			name: "UnregisterBroker", key: 64, maxVersion: -1,
			req: func(e *authzEnv) kmsg.Request {
				r := kmsg.NewPtrUnregisterBrokerRequest()
				r.BrokerID = 99
				return r
			},
			codes:  func(r kmsg.Response) []int16 { return []int16{r.(*kmsg.UnregisterBrokerResponse).ErrorCode} },
			denied: codeClustAuthz, granted: codeClustAuthz,
		},
		{
			name: "AddRaftVoter", key: 80, maxVersion: -1,
			req: func(e *authzEnv) kmsg.Request {
				r := kmsg.NewPtrAddRaftVoterRequest()
				r.ClusterID, r.TimeoutMillis, r.VoterID = kstr(e.clusterID), 10000, 99
				r.VoterDirectoryID = [16]byte{1}
				l := kmsg.NewAddRaftVoterRequestListener()
				l.Name, l.Host, l.Port = "CONTROLLER", "127.0.0.1", 1
				r.Listeners = []kmsg.AddRaftVoterRequestListener{l}
				return r
			},
			codes:  func(r kmsg.Response) []int16 { return []int16{r.(*kmsg.AddRaftVoterResponse).ErrorCode} },
			denied: codeClustAuthz, granted: codeClustAuthz,
		},
		{
			name: "RemoveRaftVoter", key: 81, maxVersion: -1,
			req: func(e *authzEnv) kmsg.Request {
				r := kmsg.NewPtrRemoveRaftVoterRequest()
				r.ClusterID, r.VoterID = kstr(e.clusterID), 99
				r.VoterDirectoryID = [16]byte{1}
				return r
			},
			codes:  func(r kmsg.Response) []int16 { return []int16{r.(*kmsg.RemoveRaftVoterResponse).ErrorCode} },
			denied: codeClustAuthz, granted: codeClustAuthz,
		},
	}
}

func describeConfigsReq(typ kmsg.ConfigResourceType, name string) kmsg.Request {
	r := kmsg.NewPtrDescribeConfigsRequest()
	dr := kmsg.NewDescribeConfigsRequestResource()
	dr.ResourceType, dr.ResourceName = typ, name
	r.Resources = []kmsg.DescribeConfigsRequestResource{dr}
	return r
}

func describeConfigsCodes(r kmsg.Response) (c []int16) {
	for _, res := range r.(*kmsg.DescribeConfigsResponse).Resources {
		c = append(c, res.ErrorCode)
	}
	return c
}

func describeConfigsLeak(r kmsg.Response) string {
	for _, res := range r.(*kmsg.DescribeConfigsResponse).Resources {
		if res.ErrorCode != 0 && len(res.Configs) > 0 {
			return fmt.Sprintf("refused DescribeConfigs lists %d configs", len(res.Configs))
		}
	}
	return ""
}

func incrementalAlterReq(typ kmsg.ConfigResourceType, name, key, value string) kmsg.Request {
	r := kmsg.NewPtrIncrementalAlterConfigsRequest()
	ir := kmsg.NewIncrementalAlterConfigsRequestResource()
	ir.ResourceType, ir.ResourceName = typ, name
	c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
	c.Name, c.Op, c.Value = key, kmsg.IncrementalAlterConfigOpSet, kstr(value)
	ir.Configs = []kmsg.IncrementalAlterConfigsRequestResourceConfig{c}
	r.Resources = []kmsg.IncrementalAlterConfigsRequestResource{ir}
	return r
}

func incrementalAlterCodes(r kmsg.Response) (c []int16) {
	for _, res := range r.(*kmsg.IncrementalAlterConfigsResponse).Resources {
		c = append(c, res.ErrorCode)
	}
	return c
}

func findCoordinatorReq(keyType int8, key string) kmsg.Request {
	r := kmsg.NewPtrFindCoordinatorRequest()
	r.CoordinatorType, r.CoordinatorKey, r.CoordinatorKeys = keyType, key, []string{key}
	return r
}

func findCoordinatorCodes(r kmsg.Response) []int16 {
	f := r.(*kmsg.FindCoordinatorResponse)
	if len(f.Coordinators) == 0 {
		return []int16{f.ErrorCode}
	}
	var c []int16
	for _, co := range f.Coordinators {
		c = append(c, co.ErrorCode)
	}
	return c
}

func findCoordinatorLeak(r kmsg.Response) string {
	for _, co := range r.(*kmsg.FindCoordinatorResponse).Coordinators {
		if co.ErrorCode != 0 && co.NodeID >= 0 {
			return fmt.Sprintf("refused FindCoordinator names node %d", co.NodeID)
		}
	}
	return ""
}

// authzBrokerSets are the settings of an authorizing broker: PLAINTEXT (inter-broker, what the
// harness waits for; User:ANONYMOUS, a super user) and SASL_PLAINTEXT for the clients.
func authzBrokerSets(addr, saslAddr string) []string {
	return []string{
		"auto.create.topics.enable=false",
		fmt.Sprintf("listeners=PLAINTEXT://%s,SASL_PLAINTEXT://%s", addr, saslAddr),
		"listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
		"inter.broker.listener.name=PLAINTEXT",
		"sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512",
		"authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
		"super.users=User:admin;User:ANONYMOUS",
		"group.initial.rebalance.delay.ms=0",
	}
}

// startAuthzBroker starts a broker with the authorizer on and users admin (a super user) and
// alice (no ACLs) from --add-scram. Only its SASL_PLAINTEXT listener is for clients.
func startAuthzBroker(t *testing.T) *saslBroker {
	t.Helper()
	sb := &saslBroker{}
	sb.Broker = StartBrokerArgs(t, func(addr string) []string {
		sb.saslPlaintext = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		var args []string
		for _, s := range authzBrokerSets(addr, sb.saslPlaintext) {
			args = append(args, "--set", s)
		}
		return append(args,
			"--add-scram", fmt.Sprintf("SCRAM-SHA-512=[name=%s,password=%s]", saslAdmin, saslAdminPassword),
			"--add-scram", fmt.Sprintf("SCRAM-SHA-512=[name=%s,password=%s]", aliceUser, alicePassword))
	})
	return sb
}

// as is a kgo client logged in as user over SASL_PLAINTEXT.
func (sb *saslBroker) as(t *testing.T, user, password string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	return sb.Client(t, append(sb.login("SASL_PLAINTEXT", "SCRAM-SHA-512", user, password), opts...)...)
}

// authzSetup makes, as admin, the topic (with three records), the group (a committed offset)
// and the transactional id (a committed transaction) the rows refer to.
func authzSetup(t *testing.T, sb *saslBroker) *authzEnv {
	t.Helper()
	admCl := sb.as(t, saslAdmin, saslAdminPassword)
	adm := kadm.NewClient(admCl)
	adm.SetTimeoutMillis(15000)
	createTopic(t, adm, authzTopic, 1, nil)
	md := waitPartitions(t, adm, authzTopic, 1)
	e := &authzEnv{topicID: md.Topics[authzTopic].ID, clusterID: md.Cluster}
	if len(md.Brokers) != 1 {
		t.Fatalf("metadata lists %d brokers, want 1", len(md.Brokers))
	}
	e.nodeID = md.Brokers[0].NodeID

	produceTo(t, admCl, authzTopic, 0, 3, "admin")

	offsets := kadm.Offsets{}
	offsets.Add(kadm.Offset{Topic: authzTopic, Partition: 0, At: 2, LeaderEpoch: -1})
	eventually(t, 30*time.Second, "admin commits an offset for group "+authzGroup, func() error {
		r, err := adm.CommitOffsets(ctxT(t, 15*time.Second), authzGroup, offsets)
		if err != nil {
			return err
		}
		return r.Error()
	})

	txCl := sb.as(t, saslAdmin, saslAdminPassword, kgo.TransactionalID(authzTxn), kgo.DefaultProduceTopic(authzTopic))
	ctx := ctxT(t, 60*time.Second)
	if err := txCl.BeginTransaction(); err != nil {
		t.Fatalf("BeginTransaction: %v", err)
	}
	if err := txCl.ProduceSync(ctx, kgo.StringRecord("in-a-transaction")).FirstErr(); err != nil {
		t.Fatalf("transactional produce: %v", err)
	}
	if err := txCl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatalf("EndTransaction(commit): %v", err)
	}
	txCl.Close()

	// What alice must not see is there for admin.
	groups, err := adm.ListGroups(ctxT(t, 15*time.Second))
	if err != nil || len(groups.Groups()) == 0 {
		t.Fatalf("admin ListGroups: %v %v", groups, err)
	}
	eventually(t, 15*time.Second, "admin sees transaction "+authzTxn, func() error {
		txs, err := adm.ListTransactions(ctxT(t, 15*time.Second), nil, nil)
		if err != nil {
			return err
		}
		if len(txs.TransactionalIDs()) == 0 {
			return fmt.Errorf("ListTransactions is empty")
		}
		return nil
	})
	return e
}

// authzResult is one row's answer: its codes, or the request's error.
type authzResult struct {
	codes []int16
	leak  string
	err   error
}

func (r authzResult) String() string {
	if r.err != nil {
		return "error: " + r.err.Error()
	}
	var names []string
	for _, c := range r.codes {
		names = append(names, fmt.Sprintf("%d %s", c, errName(c)))
	}
	return strings.Join(names, ", ")
}

// matches reports whether every code is want (and there is at least one).
func (r authzResult) matches(want int16) bool {
	if r.err != nil || len(r.codes) == 0 {
		return false
	}
	for _, c := range r.codes {
		if c != want {
			return false
		}
	}
	return true
}

// runAuthzRow sends the row's request as alice straight to the broker (no client-side
// sharding or retries).
func runAuthzRow(t *testing.T, sb *saslBroker, e *authzEnv, row authzRow, clients map[int16]*kgo.Client) authzResult {
	t.Helper()
	cl, ok := clients[row.maxVersion]
	if !ok {
		var opts []kgo.Opt
		if row.maxVersion >= 0 {
			vs := kversion.Stable()
			vs.SetMaxKeyVersion(row.key, row.maxVersion)
			opts = append(opts, kgo.MaxVersions(vs))
		}
		cl = sb.as(t, aliceUser, alicePassword, opts...)
		onlyNode(t, cl) // learn the broker's address
		clients[row.maxVersion] = cl
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := cl.Broker(int(e.nodeID)).Request(ctx, row.req(e))
	if err != nil {
		return authzResult{err: err}
	}
	res := authzResult{codes: row.codes(resp)}
	if row.leak != nil {
		res.leak = row.leak(resp)
	}
	return res
}

// authzGrants are the ACLs of the second pass.
func authzGrants() []kmsg.CreateACLsRequestCreation {
	acl := func(rt kmsg.ACLResourceType, name string, op kmsg.ACLOperation) kmsg.CreateACLsRequestCreation {
		c := kmsg.NewCreateACLsRequestCreation()
		c.ResourceType, c.ResourceName, c.ResourcePatternType = rt, name, kmsg.ACLResourcePatternTypeLiteral
		c.Principal, c.Host = "User:"+aliceUser, "*"
		c.Operation, c.PermissionType = op, kmsg.ACLPermissionTypeAllow
		return c
	}
	return []kmsg.CreateACLsRequestCreation{
		acl(kmsg.ACLResourceTypeTopic, authzTopic, kmsg.ACLOperationWrite),
		acl(kmsg.ACLResourceTypeTopic, authzTopic, kmsg.ACLOperationRead),
		acl(kmsg.ACLResourceTypeGroup, authzGroup, kmsg.ACLOperationRead),
		acl(kmsg.ACLResourceTypeTransactionalId, authzTxn, kmsg.ACLOperationWrite),
	}
}

// checkNothingChanged checks, as admin, that alice's refused requests changed nothing.
func checkNothingChanged(t *testing.T, sb *saslBroker) {
	t.Helper()
	adm := kadm.NewClient(sb.as(t, saslAdmin, saslAdminPassword))
	adm.SetTimeoutMillis(15000)
	ctx := ctxT(t, 30*time.Second)
	topics, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatalf("admin ListTopics: %v", err)
	}
	if names := topics.Names(); len(names) != 1 || names[0] != authzTopic {
		t.Errorf("topics after the refused requests: %v, want [%s]", names, authzTopic)
	}
	if d := topics[authzTopic]; len(d.Partitions) != 1 {
		t.Errorf("topic %s has %d partitions after the refused CreatePartitions, want 1", authzTopic, len(d.Partitions))
	}
	starts, err := adm.ListStartOffsets(ctx, authzTopic)
	if err != nil {
		t.Fatalf("ListStartOffsets: %v", err)
	}
	if o, _ := starts.Lookup(authzTopic, 0); o.Offset != 0 {
		t.Errorf("log start offset %d after the refused DeleteRecords, want 0", o.Offset)
	}
	rc := describeTopic(t, adm, authzTopic)
	if c, ok := configByName(rc, "retention.ms"); ok && c.Value != nil && *c.Value == "1000" {
		t.Errorf("retention.ms changed by a refused AlterConfigs")
	}
	dreq := kmsg.NewPtrDescribeACLsRequest()
	dreq.ResourceType, dreq.ResourcePatternType = kmsg.ACLResourceTypeAny, kmsg.ACLResourcePatternTypeAny
	dreq.Operation, dreq.PermissionType = kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
	acls, err := dreq.RequestWith(ctx, sb.as(t, saslAdmin, saslAdminPassword))
	if err != nil || acls.ErrorCode != 0 {
		t.Fatalf("admin DescribeAcls: %v %v", err, errName(acls.ErrorCode))
	}
	if len(acls.Resources) > 0 {
		t.Errorf("ACLs after alice's refused CreateAcls: %+v", acls.Resources)
	}
	users, err := adm.DescribeUserSCRAMs(ctx)
	if err != nil {
		t.Fatalf("admin DescribeUserSCRAMs: %v", err)
	}
	if _, ok := users["mallory"]; ok {
		t.Errorf("alice's refused AlterUserScramCredentials made user mallory")
	}
	quotas, err := adm.DescribeClientQuotas(ctx, false, nil)
	if err != nil {
		t.Fatalf("admin DescribeClientQuotas: %v", err)
	}
	if len(quotas) != 0 {
		t.Errorf("quotas after alice's refused AlterClientQuotas: %+v", quotas)
	}
	committed, err := adm.FetchOffsets(ctx, authzGroup)
	if err != nil {
		t.Fatalf("admin FetchOffsets: %v", err)
	}
	if o, ok := committed.Lookup(authzTopic, 0); !ok || o.At != 2 {
		t.Errorf("group %s's committed offset after the refused requests: %+v, want 2", authzGroup, o)
	}
}

// runAuthzMatrix runs both passes on the broker SPATE_BROKER_BIN names and returns each
// row's result, by pass and row name.
func runAuthzMatrix(t *testing.T, checkCoverage bool) map[string]authzResult {
	sb := startAuthzBroker(t)
	e := authzSetup(t, sb)
	rows := authzRows()
	results := map[string]authzResult{}

	if checkCoverage {
		alice := sb.as(t, aliceUser, alicePassword)
		av, err := kmsg.NewPtrApiVersionsRequest().RequestWith(ctxT(t, 15*time.Second), alice)
		if err != nil {
			t.Fatalf("ApiVersions: %v", err)
		}
		covered := map[int16]bool{18: true, 17: true, 36: true} // ApiVersions, SaslHandshake, SaslAuthenticate
		for _, r := range rows {
			covered[r.key] = true
		}
		for _, k := range av.ApiKeys {
			if !covered[k.ApiKey] {
				t.Errorf("the broker serves API key %d (%s), which has no row in the authorization matrix", k.ApiKey, kmsg.NameForKey(k.ApiKey))
			}
		}
	}

	t.Run("without ACLs", func(t *testing.T) {
		clients := map[int16]*kgo.Client{} // by pinned version; closed with the subtest
		for _, row := range rows {
			res := runAuthzRow(t, sb, e, row, clients)
			results["denied/"+row.name] = res
			t.Logf("%-34s %v", row.name, res)
			if !res.matches(row.denied) {
				t.Errorf("%s: got %v, want %d %s", row.name, res, row.denied, errName(row.denied))
			}
			if res.leak != "" {
				t.Errorf("%s: %s", row.name, res.leak)
			}
		}
		checkNothingChanged(t, sb)
	})

	t.Run("with ACLs", func(t *testing.T) {
		clients := map[int16]*kgo.Client{}
		adm := sb.as(t, saslAdmin, saslAdminPassword)
		req := kmsg.NewPtrCreateACLsRequest()
		req.Creations = authzGrants()
		resp, err := req.RequestWith(ctxT(t, 15*time.Second), adm)
		if err != nil {
			t.Fatalf("CreateAcls: %v", err)
		}
		for i, r := range resp.Results {
			if r.ErrorCode != 0 {
				t.Fatalf("CreateAcls[%d]: %s", i, errName(r.ErrorCode))
			}
		}
		// ACLs reach the authorizer through the metadata log: wait for the first grant (the
		// four are one CreateAcls, applied together).
		var produce authzRow
		for _, r := range rows {
			if r.name == "Produce" {
				produce = r
			}
		}
		eventually(t, 15*time.Second, "alice's WRITE on "+authzTopic+" to apply", func() error {
			if res := runAuthzRow(t, sb, e, produce, clients); !res.matches(0) {
				return fmt.Errorf("Produce: %v", res)
			}
			return nil
		})
		for _, row := range rows {
			if row.granted == skip {
				continue
			}
			res := runAuthzRow(t, sb, e, row, clients)
			results["granted/"+row.name] = res
			t.Logf("%-34s %v", row.name, res)
			if !res.matches(row.granted) {
				t.Errorf("%s: got %v, want %d %s", row.name, res, row.granted, errName(row.granted))
			}
		}

		// What the grants make visible.
		alice := sb.as(t, aliceUser, alicePassword)
		md, err := kmsg.NewPtrMetadataRequest().RequestWith(ctxT(t, 15*time.Second), alice)
		if err != nil {
			t.Fatalf("Metadata: %v", err)
		}
		if len(md.Topics) != 1 || md.Topics[0].Topic == nil || *md.Topics[0].Topic != authzTopic {
			t.Errorf("all-topics Metadata with READ on %s lists %d topics, want just it", authzTopic, len(md.Topics))
		}
		lg, err := kmsg.NewPtrListGroupsRequest().RequestWith(ctxT(t, 15*time.Second), alice)
		if err != nil {
			t.Fatalf("ListGroups: %v", err)
		}
		var groups []string
		for _, g := range lg.Groups {
			groups = append(groups, g.Group)
		}
		if strings.Join(groups, ",") != authzGroup {
			t.Errorf("ListGroups with READ on group %s: %v, want just it", authzGroup, groups)
		}
	})
	return results
}

func TestAuthzMatrix(t *testing.T) {
	spate := runAuthzMatrix(t, true)
	if os.Getenv("SPATE_MATRIX_KAFKA") == "" {
		return
	}
	var kafka map[string]authzResult
	t.Run("Apache Kafka", func(t *testing.T) {
		script, err := filepath.Abs(filepath.Join("..", "..", "scripts", "apache-kafka.sh"))
		if err != nil {
			t.Fatal(err)
		}
		t.Setenv("SPATE_BROKER_BIN", script)
		kafka = runAuthzMatrix(t, false)
	})
	var names []string
	for n := range spate {
		names = append(names, n)
	}
	sort.Strings(names)
	var diffs []string
	for _, n := range names {
		k, ok := kafka[n]
		if !ok {
			continue
		}
		if s := spate[n]; s.String() != k.String() {
			diffs = append(diffs, fmt.Sprintf("%s: Spate %v, Kafka %v", n, s, k))
		}
	}
	if len(diffs) > 0 {
		t.Errorf("rows where Spate answers differently from Apache Kafka:\n%s", strings.Join(diffs, "\n"))
	}
}
