package dev.spate.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Runs kafka-topics (org.apache.kafka.tools.TopicCommand from kafka-tools) as a `java -cp`
 * subprocess with the test classpath, and checks its output text.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class TopicCommandCompatTest extends BrokerTestBase {
  static final long COMMAND_TIMEOUT_S = 60;

  record Result(int exitCode, String stdout, String stderr) {
    @Override
    public String toString() {
      return "exit=" + exitCode + "\n--- stdout ---\n" + stdout + "\n--- stderr (tail) ---\n"
          + tail(stderr);
    }

    private static String tail(String s) {
      String[] lines = s.split("\n");
      return String.join("\n", Arrays.asList(lines).subList(Math.max(0, lines.length - 30), lines.length));
    }
  }

  @Override
  protected String brokerName() {
    return "topic-command";
  }

  static String testClasspath() {
    // Surefire exposes the real test classpath here even when it boots via a manifest-only jar.
    String cp = System.getProperty("surefire.test.class.path");
    if (cp == null || cp.isBlank()) {
      cp = System.getProperty("java.class.path");
    }
    return cp;
  }

  private Result kafkaTopics(String... args) throws Exception {
    return runTool("org.apache.kafka.tools.TopicCommand", null, args);
  }

  /** Runs a kafka-tools main class with --bootstrap-server and args; stdin from the given text. */
  private Result runTool(String mainClass, String stdin, String... args) throws Exception {
    List<String> cmd = new ArrayList<>();
    cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
    cmd.add("-Xshare:auto");
    cmd.add("-XX:TieredStopAtLevel=1");
    cmd.add("-cp");
    cmd.add(testClasspath());
    cmd.add(mainClass);
    cmd.add("--bootstrap-server");
    cmd.add(broker.bootstrap());
    cmd.addAll(List.of(args));
    Path out = Files.createTempFile("kafka-topics-", ".out");
    Path err = Files.createTempFile("kafka-topics-", ".err");
    try {
      ProcessBuilder pb = new ProcessBuilder(cmd);
      pb.redirectOutput(out.toFile());
      pb.redirectError(err.toFile());
      Path in = null;
      if (stdin != null) {
        in = Files.createTempFile("kafka-tool-", ".in");
        Files.writeString(in, stdin, StandardCharsets.UTF_8);
        pb.redirectInput(in.toFile());
      } else {
        pb.redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")));
      }
      Process p = pb.start();
      if (in != null) {
        Files.deleteIfExists(in);
      }
      if (!p.waitFor(COMMAND_TIMEOUT_S, TimeUnit.SECONDS)) {
        p.destroyForcibly();
        p.waitFor(10, TimeUnit.SECONDS);
        throw new AssertionError(
            mainClass + " " + String.join(" ", args) + " did not finish within "
                + COMMAND_TIMEOUT_S + "s\n" + new Result(-1, read(out), read(err)));
      }
      return new Result(p.exitValue(), read(out), read(err));
    } finally {
      Files.deleteIfExists(out);
      Files.deleteIfExists(err);
    }
  }

  private static String read(Path p) throws Exception {
    return Files.readString(p, StandardCharsets.UTF_8);
  }

  @Test
  void createListDescribe() throws Exception {
    String topic = "t";
    Result create =
        kafkaTopics("--create", "--topic", topic, "--partitions", "3", "--replication-factor", "1");
    assertEquals(0, create.exitCode(), "kafka-topics --create\n" + create);
    assertTrue(
        create.stdout().contains("Created topic " + topic + "."),
        "--create output should say 'Created topic t.'\n" + create);

    Result list = kafkaTopics("--list");
    assertEquals(0, list.exitCode(), "kafka-topics --list\n" + list);
    List<String> listed = Arrays.asList(list.stdout().strip().split("\\R"));
    assertTrue(listed.contains(topic), "--list should list '" + topic + "'\n" + list);

    Result describe = kafkaTopics("--describe", "--topic", topic);
    assertEquals(0, describe.exitCode(), "kafka-topics --describe\n" + describe);
    String text = describe.stdout();
    // Topic: t	TopicId: ...	PartitionCount: 3	ReplicationFactor: 1	Configs: ...
    Matcher header =
        Pattern.compile("(?m)^Topic: " + topic + "\\s.*PartitionCount: (\\d+)\\s+ReplicationFactor: (\\d+)")
            .matcher(text);
    assertTrue(header.find(), "--describe should print the topic summary line\n" + describe);
    assertEquals("3", header.group(1), "PartitionCount\n" + describe);
    assertEquals("1", header.group(2), "ReplicationFactor\n" + describe);
    //	Topic: t	Partition: 0	Leader: 1	Replicas: 1	Isr: 1 ...
    Pattern part =
        Pattern.compile(
            "(?m)^\\s+Topic: " + topic
                + "\\s+Partition: (\\d+)\\s+Leader: (-?\\d+|none)\\s+Replicas: ([\\d,]+)\\s+Isr: ([\\d,]*)");
    Matcher m = part.matcher(text);
    Set<Integer> partitions = new TreeSet<>();
    while (m.find()) {
      partitions.add(Integer.parseInt(m.group(1)));
      assertNotEquals("none", m.group(2), "partition " + m.group(1) + " has a leader\n" + describe);
      assertNotEquals("-1", m.group(2), "partition " + m.group(1) + " has a leader\n" + describe);
      assertEquals(m.group(2), m.group(3), "single replica = leader\n" + describe);
      assertEquals(m.group(2), m.group(4), "isr = leader\n" + describe);
    }
    assertEquals(Set.of(0, 1, 2), partitions, "partition lines 0..2\n" + describe);
  }

  @Test
  void createExistingFails() throws Exception {
    String topic = "t-dup";
    Result first =
        kafkaTopics("--create", "--topic", topic, "--partitions", "1", "--replication-factor", "1");
    assertEquals(0, first.exitCode(), "first --create\n" + first);
    Result second =
        kafkaTopics("--create", "--topic", topic, "--partitions", "1", "--replication-factor", "1");
    assertNotEquals(0, second.exitCode(), "second --create should fail\n" + second);
    assertTrue(
        (second.stdout() + second.stderr()).contains("already exists"),
        "second --create should report TopicExistsException\n" + second);
  }

  @Test
  void alterPartitionsAndDelete() throws Exception {
    String topic = "t-alter";
    Result create =
        kafkaTopics("--create", "--topic", topic, "--partitions", "2", "--replication-factor", "1");
    assertEquals(0, create.exitCode(), "--create\n" + create);
    Result alter = kafkaTopics("--alter", "--topic", topic, "--partitions", "4");
    assertEquals(0, alter.exitCode(), "--alter --partitions 4\n" + alter);
    Result describe = kafkaTopics("--describe", "--topic", topic);
    assertEquals(0, describe.exitCode(), "--describe\n" + describe);
    assertTrue(
        describe.stdout().contains("PartitionCount: 4"), "PartitionCount: 4 after alter\n" + describe);

    Result delete = kafkaTopics("--delete", "--topic", topic);
    assertEquals(0, delete.exitCode(), "--delete\n" + delete);
    Result list = kafkaTopics("--list");
    assertEquals(0, list.exitCode(), "--list\n" + list);
    assertTrue(
        !Arrays.asList(list.stdout().strip().split("\\R")).contains(topic),
        "deleted topic should not be listed\n" + list);
  }

  @Test
  void createWithConfigShowsInDescribe() throws Exception {
    String topic = "t-config";
    Result create =
        kafkaTopics(
            "--create", "--topic", topic, "--partitions", "1", "--replication-factor", "1",
            "--config", "retention.ms=3600000", "--config", "cleanup.policy=delete");
    assertEquals(0, create.exitCode(), "--create --config\n" + create);
    Result describe = kafkaTopics("--describe", "--topic", topic);
    assertEquals(0, describe.exitCode(), "--describe\n" + describe);
    Matcher m = Pattern.compile("(?m)^Topic: " + topic + "\\s.*Configs: (.*)$").matcher(describe.stdout());
    assertTrue(m.find(), "summary line with Configs:\n" + describe);
    assertTrue(m.group(1).contains("retention.ms=3600000"), "Configs shows retention.ms\n" + describe);
    assertTrue(m.group(1).contains("cleanup.policy=delete"), "Configs shows cleanup.policy\n" + describe);
  }

  @Test
  void consoleProducerThenGetOffsetShell() throws Exception {
    String topic = "t-console";
    assertEquals(
        0,
        kafkaTopics("--create", "--topic", topic, "--partitions", "1", "--replication-factor", "1")
            .exitCode());
    // kafka-console-producer: one record per stdin line (idempotent producer by default)
    Result produce =
        runTool(
            "org.apache.kafka.tools.ConsoleProducer",
            "alpha\nbeta\ngamma\n",
            "--topic", topic);
    assertEquals(0, produce.exitCode(), "kafka-console-producer\n" + produce);
    // kafka-get-offsets: prints topic:partition:offset (latest by default)
    Result offsets =
        runTool("org.apache.kafka.tools.GetOffsetShell", null, "--topic", topic);
    assertEquals(0, offsets.exitCode(), "kafka-get-offsets\n" + offsets);
    assertTrue(
        offsets.stdout().lines().anyMatch(l -> l.equals(topic + ":0:3")),
        "kafka-get-offsets should print " + topic + ":0:3\n" + offsets);
    Result earliest =
        runTool("org.apache.kafka.tools.GetOffsetShell", null, "--topic", topic, "--time", "-2");
    assertEquals(0, earliest.exitCode(), "kafka-get-offsets --time -2\n" + earliest);
    assertTrue(
        earliest.stdout().lines().anyMatch(l -> l.equals(topic + ":0:0")),
        "kafka-get-offsets --time -2 should print " + topic + ":0:0\n" + earliest);
  }
}
