package dev.spate.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.CreateTopicsOptions;
import org.apache.kafka.clients.admin.CreateTopicsResult;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.ListOffsetsResult;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.InvalidConfigurationException;
import org.apache.kafka.common.errors.InvalidPartitionsException;
import org.apache.kafka.common.errors.InvalidReplicationFactorException;
import org.apache.kafka.common.errors.InvalidTopicException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.apache.kafka.common.errors.TopicExistsException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(value = 60, unit = TimeUnit.SECONDS)
class AdminCompatTest extends BrokerTestBase {
  private Admin admin;

  @Override
  protected String brokerName() {
    return "admin";
  }

  @Override
  protected String[] brokerSettings() {
    return new String[] {"auto.create.topics.enable=false", "num.partitions=3"};
  }

  @Override
  protected void afterBrokerStart() {
    admin = Clients.admin(broker);
  }

  @Override
  protected void beforeBrokerStop() {
    if (admin != null) {
      admin.close(Duration.ofSeconds(5));
    }
  }

  @Test
  void describeClusterHasOneNode() throws Exception {
    DescribeClusterResult r = admin.describeCluster();
    Collection<Node> nodes = r.nodes().get(20, TimeUnit.SECONDS);
    assertEquals(1, nodes.size(), "nodes: " + nodes);
    Node n = nodes.iterator().next();
    assertEquals("127.0.0.1", n.host(), "advertised host");
    assertEquals(broker.port(), n.port(), "advertised port");
    assertNotNull(r.clusterId().get(20, TimeUnit.SECONDS), "clusterId");
    Node controller = r.controller().get(20, TimeUnit.SECONDS);
    assertNotNull(controller, "controller");
  }

  @Test
  void createListDescribeTopic() throws Exception {
    String topic = "admin-create";
    Clients.createTopic(admin, topic, 3);

    Set<String> names = admin.listTopics().names().get(20, TimeUnit.SECONDS);
    assertTrue(names.contains(topic), "listTopics should contain " + topic + ": " + names);
    assertFalse(
        names.stream().anyMatch(n -> n.startsWith("__")),
        "listTopics() without listInternal must not return internal topics: " + names);

    Node node = admin.describeCluster().nodes().get(20, TimeUnit.SECONDS).iterator().next();
    TopicDescription d =
        admin.describeTopics(List.of(topic)).allTopicNames().get(20, TimeUnit.SECONDS).get(topic);
    assertEquals(topic, d.name());
    assertFalse(d.isInternal());
    assertNotNull(d.topicId(), "topicId");
    assertEquals(3, d.partitions().size(), "partitions: " + d.partitions());
    for (int i = 0; i < 3; i++) {
      TopicPartitionInfo p = d.partitions().get(i);
      assertEquals(i, p.partition());
      assertNotNull(p.leader(), "leader of partition " + i);
      assertEquals(node.id(), p.leader().id(), "leader of partition " + i);
      assertEquals(1, p.replicas().size(), "replicas of partition " + i);
      assertEquals(node.id(), p.replicas().get(0).id());
      assertEquals(1, p.isr().size(), "isr of partition " + i);
    }
  }

  @Test
  void describeAndIncrementallyAlterTopicConfig() throws Exception {
    String topic = "admin-configs";
    Clients.createTopic(admin, topic, 1);
    ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, topic);

    Config before = admin.describeConfigs(List.of(res)).all().get(20, TimeUnit.SECONDS).get(res);
    ConfigEntry retention = before.get("retention.ms");
    assertNotNull(retention, "describeConfigs should return retention.ms; got " + before.entries());
    assertNotNull(before.get("cleanup.policy"), "cleanup.policy");

    admin
        .incrementalAlterConfigs(
            Map.of(
                res,
                List.of(
                    new AlterConfigOp(
                        new ConfigEntry("retention.ms", "123456789"), AlterConfigOp.OpType.SET))))
        .all()
        .get(20, TimeUnit.SECONDS);

    Config after = admin.describeConfigs(List.of(res)).all().get(20, TimeUnit.SECONDS).get(res);
    ConfigEntry e = after.get("retention.ms");
    assertNotNull(e, "retention.ms after alter");
    assertEquals("123456789", e.value(), "retention.ms after incrementalAlterConfigs SET");
    assertEquals(ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG, e.source(), "source of retention.ms");

    // DELETE reverts to the default
    admin
        .incrementalAlterConfigs(
            Map.of(
                res,
                List.of(
                    new AlterConfigOp(
                        new ConfigEntry("retention.ms", ""), AlterConfigOp.OpType.DELETE))))
        .all()
        .get(20, TimeUnit.SECONDS);
    Config reverted = admin.describeConfigs(List.of(res)).all().get(20, TimeUnit.SECONDS).get(res);
    assertEquals(
        retention.value(), reverted.get("retention.ms").value(), "retention.ms after DELETE");
  }

  @Test
  void createPartitionsThreeToFive() throws Exception {
    String topic = "admin-grow";
    Clients.createTopic(admin, topic, 3);
    admin
        .createPartitions(Map.of(topic, NewPartitions.increaseTo(5)))
        .all()
        .get(20, TimeUnit.SECONDS);
    TopicDescription d = Clients.awaitTopic(admin, topic, 5);
    assertEquals(5, d.partitions().size(), "partitions after createPartitions: " + d.partitions());
    for (int i = 0; i < 5; i++) {
      assertEquals(i, d.partitions().get(i).partition());
      assertNotNull(d.partitions().get(i).leader(), "leader of new partition " + i);
    }
    // the new partition takes writes
    try (KafkaProducer<byte[], byte[]> p = Clients.producer(broker, Map.of())) {
      RecordMetadata md =
          p.send(new ProducerRecord<>(topic, 4, null, "v".getBytes(StandardCharsets.UTF_8)))
              .get(30, TimeUnit.SECONDS);
      assertEquals(4, md.partition());
      assertEquals(0, md.offset());
    }
  }

  @Test
  void deleteRecordsMovesLowWatermark() throws Exception {
    String topic = "admin-delete-records";
    Clients.createTopic(admin, topic, 1);
    TopicPartition tp = new TopicPartition(topic, 0);
    try (KafkaProducer<byte[], byte[]> p = Clients.producer(broker, Map.of())) {
      for (int i = 0; i < 10; i++) {
        p.send(new ProducerRecord<>(topic, 0, null, ("v" + i).getBytes(StandardCharsets.UTF_8)));
      }
      p.flush();
    }
    Map<TopicPartition, ListOffsetsResult.ListOffsetsResultInfo> end =
        admin.listOffsets(Map.of(tp, OffsetSpec.latest())).all().get(20, TimeUnit.SECONDS);
    assertEquals(10, end.get(tp).offset(), "end offset before deleteRecords");

    long low =
        admin
            .deleteRecords(Map.of(tp, RecordsToDelete.beforeOffset(6)))
            .lowWatermarks()
            .get(tp)
            .get(20, TimeUnit.SECONDS)
            .lowWatermark();
    assertEquals(6, low, "low watermark returned by deleteRecords");

    long earliest =
        admin
            .listOffsets(Map.of(tp, OffsetSpec.earliest()))
            .all()
            .get(20, TimeUnit.SECONDS)
            .get(tp)
            .offset();
    assertEquals(6, earliest, "ListOffsets EARLIEST after deleteRecords");
    long latest =
        admin
            .listOffsets(Map.of(tp, OffsetSpec.latest()))
            .all()
            .get(20, TimeUnit.SECONDS)
            .get(tp)
            .offset();
    assertEquals(10, latest, "ListOffsets LATEST after deleteRecords");
    // consumers start at the new log start offset
    try (KafkaConsumer<byte[], byte[]> c = Clients.consumer(broker)) {
      c.assign(List.of(tp));
      assertEquals(6L, c.beginningOffsets(List.of(tp), Duration.ofSeconds(20)).get(tp));
      c.seekToBeginning(List.of(tp));
      ConsumerRecord<byte[], byte[]> first = Clients.pollUntil(c, 1, Duration.ofSeconds(30)).get(0);
      assertEquals(6, first.offset(), "first record after deleteRecords");
      assertEquals("v6", new String(first.value(), StandardCharsets.UTF_8));
      // fetching below the log start offset is out of range -> reset to earliest (6)
      c.seek(tp, 2);
      ConsumerRecord<byte[], byte[]> reset = Clients.pollUntil(c, 1, Duration.ofSeconds(30)).get(0);
      assertEquals(6, reset.offset(), "reset after fetching a deleted offset");
    }

    // -1 = up to the high watermark
    long all =
        admin
            .deleteRecords(Map.of(tp, RecordsToDelete.beforeOffset(-1)))
            .lowWatermarks()
            .get(tp)
            .get(20, TimeUnit.SECONDS)
            .lowWatermark();
    assertEquals(10, all, "low watermark after deleteRecords(beforeOffset=-1)");
  }

  @Test
  void deleteTopic() throws Exception {
    String topic = "admin-delete-me";
    Clients.createTopic(admin, topic, 2);
    admin.deleteTopics(List.of(topic)).all().get(20, TimeUnit.SECONDS);
    Clients.waitFor(
        "topic " + topic + " to disappear from listTopics",
        Duration.ofSeconds(15),
        () -> {
          try {
            return !admin.listTopics().names().get(10, TimeUnit.SECONDS).contains(topic);
          } catch (Exception e) {
            throw new RuntimeException(e);
          }
        });
    // and the name can be reused
    Clients.createTopic(admin, topic, 1);
    TopicDescription d =
        admin.describeTopics(List.of(topic)).allTopicNames().get(20, TimeUnit.SECONDS).get(topic);
    assertEquals(1, d.partitions().size());
  }

  @Test
  void invalidTopicNamesAreRejected() {
    for (String bad : List.of("has space", "slash/name", "..", "x".repeat(250))) {
      ExecutionException ex =
          assertThrows(
              ExecutionException.class,
              () ->
                  admin
                      .createTopics(List.of(new NewTopic(bad, 1, (short) 1)))
                      .all()
                      .get(20, TimeUnit.SECONDS),
              "createTopics(\"" + abbreviate(bad) + "\") should fail");
      assertInstanceOf(
          InvalidTopicException.class,
          ex.getCause(),
          "createTopics(\"" + abbreviate(bad) + "\") cause: " + ex.getCause());
    }
  }

  @Test
  void existingTopicIsRejected() throws Exception {
    String topic = "admin-exists";
    Clients.createTopic(admin, topic, 1);
    ExecutionException ex =
        assertThrows(ExecutionException.class, () -> Clients.createTopic(admin, topic, 1));
    assertInstanceOf(TopicExistsException.class, ex.getCause(), "cause: " + ex.getCause());
  }

  @Test
  void invalidConfigValueIsRejectedOnCreate() {
    Map<String, String> cfg = new HashMap<>();
    cfg.put("retention.ms", "not-a-number");
    ExecutionException ex =
        assertThrows(
            ExecutionException.class,
            () -> Clients.createTopic(admin, "admin-bad-config", 1, cfg));
    assertInstanceOf(
        InvalidConfigurationException.class, ex.getCause(), "cause: " + ex.getCause());
  }

  @Test
  void invalidConfigValueIsRejectedOnAlter() throws Exception {
    String topic = "admin-bad-alter";
    Clients.createTopic(admin, topic, 1);
    ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, topic);
    ExecutionException ex =
        assertThrows(
            ExecutionException.class,
            () ->
                admin
                    .incrementalAlterConfigs(
                        Map.of(
                            res,
                            List.of(
                                new AlterConfigOp(
                                    new ConfigEntry("retention.ms", "not-a-number"),
                                    AlterConfigOp.OpType.SET))))
                    .all()
                    .get(20, TimeUnit.SECONDS));
    assertInstanceOf(
        InvalidConfigurationException.class, ex.getCause(), "cause: " + ex.getCause());
  }

  @Test
  void createTopicWithConfigsAndDefaults() throws Exception {
    String topic = "admin-with-configs";
    Clients.createTopic(
        admin, topic, 2, Map.of("retention.ms", "86400000", "cleanup.policy", "delete"));
    ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, topic);
    Config c = admin.describeConfigs(List.of(res)).all().get(20, TimeUnit.SECONDS).get(res);
    assertEquals("86400000", c.get("retention.ms").value());
    assertEquals(ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG, c.get("retention.ms").source());
    // an unset config comes from the broker default
    ConfigEntry seg = c.get("segment.bytes");
    assertNotNull(seg, "segment.bytes should be described");
    assertFalse(
        seg.source() == ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG,
        "segment.bytes was not set on the topic: source " + seg.source());

    // default partitions/replication (NewTopic with empty optionals -> broker num.partitions)
    String dflt = "admin-default-partitions";
    admin
        .createTopics(List.of(new NewTopic(dflt, Optional.empty(), Optional.empty())))
        .all()
        .get(20, TimeUnit.SECONDS);
    TopicDescription d = Clients.awaitTopic(admin, dflt, 3);
    assertEquals(3, d.partitions().size(), "partitions from --set num.partitions=3");
  }

  @Test
  void createTopicsValidateOnlyCreatesNothing() throws Exception {
    String topic = "admin-validate-only";
    CreateTopicsResult r =
        admin.createTopics(
            List.of(new NewTopic(topic, 4, (short) 1)), new CreateTopicsOptions().validateOnly(true));
    r.all().get(20, TimeUnit.SECONDS);
    assertEquals(4, r.numPartitions(topic).get(20, TimeUnit.SECONDS), "validateOnly numPartitions");
    assertFalse(
        admin.listTopics().names().get(20, TimeUnit.SECONDS).contains(topic),
        "validateOnly must not create the topic");
  }

  @Test
  void replicationFactorAboveBrokerCountIsRejected() {
    ExecutionException ex =
        assertThrows(
            ExecutionException.class,
            () ->
                admin
                    .createTopics(List.of(new NewTopic("admin-rf3", 1, (short) 3)))
                    .all()
                    .get(20, TimeUnit.SECONDS));
    assertInstanceOf(
        InvalidReplicationFactorException.class, ex.getCause(), "cause: " + ex.getCause());
  }

  @Test
  void shrinkingPartitionsIsRejected() throws Exception {
    String topic = "admin-shrink";
    Clients.createTopic(admin, topic, 3);
    ExecutionException ex =
        assertThrows(
            ExecutionException.class,
            () ->
                admin
                    .createPartitions(Map.of(topic, NewPartitions.increaseTo(2)))
                    .all()
                    .get(20, TimeUnit.SECONDS));
    assertInstanceOf(InvalidPartitionsException.class, ex.getCause(), "cause: " + ex.getCause());
  }

  @Test
  void unknownTopicErrors() {
    String missing = "admin-no-such-topic";
    ExecutionException del =
        assertThrows(
            ExecutionException.class,
            () -> admin.deleteTopics(List.of(missing)).all().get(20, TimeUnit.SECONDS));
    assertInstanceOf(
        UnknownTopicOrPartitionException.class, del.getCause(), "deleteTopics cause: " + del.getCause());
    ExecutionException desc =
        assertThrows(
            ExecutionException.class,
            () -> admin.describeTopics(List.of(missing)).allTopicNames().get(20, TimeUnit.SECONDS));
    assertInstanceOf(
        UnknownTopicOrPartitionException.class,
        desc.getCause(),
        "describeTopics cause: " + desc.getCause());
  }

  @Test
  void describeBrokerConfigs() throws Exception {
    Node node = admin.describeCluster().nodes().get(20, TimeUnit.SECONDS).iterator().next();
    ConfigResource res = new ConfigResource(ConfigResource.Type.BROKER, node.idString());
    Config c = admin.describeConfigs(List.of(res)).all().get(20, TimeUnit.SECONDS).get(res);
    assertNotNull(c.get("num.partitions"), "broker config num.partitions; got " + c.entries());
    assertEquals("3", c.get("num.partitions").value(), "num.partitions set with --set");
  }

  @Test
  void listOffsetsMaxTimestamp() throws Exception {
    // KIP-734: OffsetSpec.maxTimestamp() -> ListOffsets v7, timestamp -3
    String topic = "admin-max-ts";
    Clients.createTopic(admin, topic, 1);
    TopicPartition tp = new TopicPartition(topic, 0);
    long base = System.currentTimeMillis() - 60_000;
    long[] ts = {base + 10, base + 50, base + 20};
    try (KafkaProducer<byte[], byte[]> p = Clients.producer(broker, Map.of())) {
      for (long t : ts) {
        p.send(new ProducerRecord<>(topic, 0, t, null, "v".getBytes(StandardCharsets.UTF_8)));
      }
      p.flush();
    }
    ListOffsetsResult.ListOffsetsResultInfo info =
        admin
            .listOffsets(Map.of(tp, OffsetSpec.maxTimestamp()))
            .all()
            .get(20, TimeUnit.SECONDS)
            .get(tp);
    assertEquals(1, info.offset(), "offset of the record with the max timestamp");
    assertEquals(base + 50, info.timestamp(), "max timestamp");
  }

  private static String abbreviate(String s) {
    return s.length() > 20 ? s.substring(0, 10) + "...(" + s.length() + " chars)" : s;
  }
}
