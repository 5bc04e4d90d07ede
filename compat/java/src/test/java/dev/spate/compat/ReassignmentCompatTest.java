package dev.spate.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewPartitionReassignment;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.ElectionType;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.ElectionNotNeededException;
import org.apache.kafka.common.errors.NoReassignmentInProgressException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.Timeout;

/**
 * Reassignment and elections with the Java Admin client and kafka-reassign-partitions against a
 * three-broker Spate cluster (separate processes): move an RF 2 partition with data, reorder and
 * elect the preferred leader, errors, and the tool's --execute --throttle / --verify cycle.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@Timeout(value = 180, unit = TimeUnit.SECONDS)
class ReassignmentCompatTest {
  private static final Duration WAIT = Duration.ofSeconds(60);
  private SpateCluster cluster;
  private Admin admin;

  @BeforeAll
  void start() throws Exception {
    if (!SpateBroker.binaryPresent()) {
      return;
    }
    cluster =
        SpateCluster.start(
            "reassign", 3, "replica.lag.time.max.ms=1500", "auto.leader.rebalance.enable=false");
    Properties p = new Properties();
    p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, cluster.bootstrap());
    p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, 15_000);
    p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 30_000);
    p.put(AdminClientConfig.RETRY_BACKOFF_MS_CONFIG, 100);
    admin = Admin.create(p);
    Clients.waitFor(
        "3 brokers",
        WAIT,
        () -> {
          try {
            return admin.describeCluster().nodes().get().size() == 3;
          } catch (Exception e) {
            return false;
          }
        });
  }

  @AfterAll
  void stop() throws Exception {
    if (admin != null) {
      admin.close();
    }
    if (cluster != null) {
      cluster.close();
    }
  }

  private TopicDescription describe(String topic) {
    try {
      return admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic);
    } catch (Exception e) {
      return null;
    }
  }

  private static List<Integer> ids(List<Node> nodes) {
    return nodes.stream().map(Node::id).toList();
  }

  private List<Integer> replicas(String topic) {
    TopicDescription d = describe(topic);
    return d == null ? List.of() : ids(d.partitions().get(0).replicas());
  }

  private int leader(String topic) {
    TopicDescription d = describe(topic);
    Node l = d == null ? null : d.partitions().get(0).leader();
    return l == null ? -1 : l.id();
  }

  private boolean noReassignments() {
    try {
      return admin.listPartitionReassignments().reassignments().get().isEmpty();
    } catch (Exception e) {
      return false;
    }
  }

  private void createWithData(String topic, int n) throws Exception {
    admin.createTopics(List.of(new NewTopic(topic, 1, (short) 2))).all().get();
    Clients.waitFor(
        "a full ISR",
        WAIT,
        () -> {
          TopicDescription d = describe(topic);
          return d != null && d.partitions().get(0).isr().size() == 2;
        });
    Properties p = new Properties();
    p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, cluster.bootstrap());
    p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
    p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
    try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p)) {
      for (int i = 0; i < n; i++) {
        producer.send(new ProducerRecord<>(topic, 0, null, ("v" + i).getBytes(StandardCharsets.UTF_8))).get();
      }
    }
  }

  private List<String> readAll(String topic, int n) throws Exception {
    Properties p = new Properties();
    p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, cluster.bootstrap());
    p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
    p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
    p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    List<String> out = new ArrayList<>();
    try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(p)) {
      TopicPartition tp = new TopicPartition(topic, 0);
      c.assign(List.of(tp));
      c.seekToBeginning(List.of(tp));
      long deadline = System.nanoTime() + WAIT.toNanos();
      while (out.size() < n && System.nanoTime() < deadline) {
        for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(200))) {
          assertEquals(out.size(), r.offset(), "dense offsets");
          out.add(new String(r.value(), StandardCharsets.UTF_8));
        }
      }
    }
    return out;
  }

  private static List<String> expected(int n) {
    List<String> l = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      l.add("v" + i);
    }
    return l;
  }

  @Test
  void adminMovesAPartitionReordersItAndElectsThePreferredLeader() throws Exception {
    SpateBroker.binaryOrSkip();
    String topic = "java-moving";
    TopicPartition tp = new TopicPartition(topic, 0);
    createWithData(topic, 100);
    List<Integer> before = replicas(topic);
    int a = before.get(0);
    int b = before.get(1);
    int c = 6 - a - b;

    admin.alterPartitionReassignments(Map.of(tp, Optional.of(new NewPartitionReassignment(List.of(b, c)))))
        .all()
        .get();
    Clients.waitFor(
        "the move to [" + b + ", " + c + "]",
        WAIT,
        () -> replicas(topic).equals(List.of(b, c)) && noReassignments() && leader(topic) == b);
    assertEquals(expected(100), readAll(topic, 100));

    // Nothing to cancel.
    ExecutionException e =
        org.junit.jupiter.api.Assertions.assertThrows(
            ExecutionException.class,
            () -> admin.alterPartitionReassignments(Map.of(tp, Optional.empty())).all().get());
    assertInstanceOf(NoReassignmentInProgressException.class, e.getCause());

    // Already preferred.
    Map<TopicPartition, Optional<Throwable>> r =
        admin.electLeaders(ElectionType.PREFERRED, Set.of(tp)).partitions().get();
    assertInstanceOf(ElectionNotNeededException.class, r.get(tp).orElseThrow());

    // Reorder: c becomes preferred; an election moves leadership there.
    admin.alterPartitionReassignments(Map.of(tp, Optional.of(new NewPartitionReassignment(List.of(c, b)))))
        .all()
        .get();
    Clients.waitFor("the reorder", WAIT, () -> replicas(topic).equals(List.of(c, b)));
    r = admin.electLeaders(ElectionType.PREFERRED, Set.of(tp)).partitions().get();
    assertTrue(r.get(tp).isEmpty(), "elected: " + r);
    Clients.waitFor("leader " + c, WAIT, () -> leader(topic) == c);
    assertEquals(expected(100), readAll(topic, 100));
  }

  @Test
  void kafkaReassignPartitionsExecutesWithAThrottleAndVerifies() throws Exception {
    SpateBroker.binaryOrSkip();
    String topic = "java-tool";
    createWithData(topic, 50);
    List<Integer> before = replicas(topic);
    int a = before.get(0);
    int b = before.get(1);
    int c = 6 - a - b;
    Path plan = Files.createTempFile("reassign-", ".json");
    Files.writeString(
        plan,
        "{\"version\":1,\"partitions\":[{\"topic\":\"" + topic + "\",\"partition\":0,\"replicas\":["
            + c + "," + a + "]}]}");
    try {
      Result exec = runTool("--reassignment-json-file", plan.toString(), "--execute", "--throttle", "10000000");
      assertEquals(0, exec.exitCode, exec.toString());
      assertTrue(exec.stdout.contains("Successfully started partition reassignment"), exec.toString());
      Clients.waitFor("the tool's move", WAIT, () -> replicas(topic).equals(List.of(c, a)) && noReassignments());
      Result verify = runTool("--reassignment-json-file", plan.toString(), "--verify");
      assertEquals(0, verify.exitCode, verify.toString());
      assertTrue(verify.stdout.contains("is completed"), verify.toString());
      assertEquals(expected(50), readAll(topic, 50));
    } finally {
      Files.deleteIfExists(plan);
    }
  }

  record Result(int exitCode, String stdout, String stderr) {
    @Override
    public String toString() {
      return "exit=" + exitCode + "\n--- stdout ---\n" + stdout + "\n--- stderr ---\n" + stderr;
    }
  }

  private Result runTool(String... args) throws Exception {
    List<String> cmd = new ArrayList<>();
    cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
    cmd.add("-XX:TieredStopAtLevel=1");
    cmd.add("-cp");
    cmd.add(TopicCommandCompatTest.testClasspath());
    cmd.add("org.apache.kafka.tools.reassign.ReassignPartitionsCommand");
    cmd.add("--bootstrap-server");
    cmd.add(cluster.bootstrap());
    cmd.addAll(List.of(args));
    Path out = Files.createTempFile("reassign-", ".out");
    Path err = Files.createTempFile("reassign-", ".err");
    try {
      Process p =
          new ProcessBuilder(cmd)
              .redirectOutput(out.toFile())
              .redirectError(err.toFile())
              .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")))
              .start();
      if (!p.waitFor(60, TimeUnit.SECONDS)) {
        p.destroyForcibly();
        throw new AssertionError("kafka-reassign-partitions did not finish: " + String.join(" ", args));
      }
      return new Result(
          p.exitValue(),
          Files.readString(out, StandardCharsets.UTF_8),
          Files.readString(err, StandardCharsets.UTF_8));
    } finally {
      Files.deleteIfExists(out);
      Files.deleteIfExists(err);
    }
  }
}
