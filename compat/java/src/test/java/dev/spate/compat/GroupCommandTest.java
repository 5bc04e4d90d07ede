package dev.spate.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * kafka-consumer-groups (org.apache.kafka.tools.consumer.group.ConsumerGroupCommand, kafka-tools
 * 4.1.1) as a `java -cp` subprocess: --describe (CURRENT-OFFSET / LOG-END-OFFSET / LAG per
 * partition, with an active member and with an empty group), --list, --delete on an empty and on
 * a non-empty group, --reset-offsets --to-earliest --execute. Each test starts its own broker.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class GroupCommandTest {
  static final String MAIN = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand";
  static final long COMMAND_TIMEOUT_S = 60;
  static final int PARTITIONS = 4;
  static final int PER_PARTITION = 10;
  /** committed offsets; partition 3 has none. */
  static final Map<Integer, Long> COMMITS = Map.of(0, 3L, 1, 6L, 2, 10L);

  record Result(int exitCode, String stdout, String stderr) {
    @Override
    public String toString() {
      String[] lines = stderr.split("\n");
      String tail = String.join("\n",
          Arrays.asList(lines).subList(Math.max(0, lines.length - 30), lines.length));
      return "exit=" + exitCode + "\n--- stdout ---\n" + stdout + "\n--- stderr (tail) ---\n" + tail;
    }
  }

  static Result tool(SpateBroker b, String... args) throws Exception {
    List<String> cmd = new ArrayList<>();
    cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
    cmd.add("-Xshare:auto");
    cmd.add("-XX:TieredStopAtLevel=1");
    cmd.add("-cp");
    cmd.add(TopicCommandCompatTest.testClasspath());
    cmd.add(MAIN);
    cmd.add("--bootstrap-server");
    cmd.add(b.bootstrap());
    cmd.addAll(List.of(args));
    Path out = Files.createTempFile("kafka-consumer-groups-", ".out");
    Path err = Files.createTempFile("kafka-consumer-groups-", ".err");
    try {
      ProcessBuilder pb = new ProcessBuilder(cmd);
      pb.redirectOutput(out.toFile());
      pb.redirectError(err.toFile());
      pb.redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")));
      Process p = pb.start();
      if (!p.waitFor(COMMAND_TIMEOUT_S, TimeUnit.SECONDS)) {
        p.destroyForcibly();
        p.waitFor(10, TimeUnit.SECONDS);
        throw new AssertionError("kafka-consumer-groups " + String.join(" ", args)
            + " did not finish within " + COMMAND_TIMEOUT_S + "s\n"
            + new Result(-1, Files.readString(out), Files.readString(err)));
      }
      return new Result(p.exitValue(), Files.readString(out, StandardCharsets.UTF_8),
          Files.readString(err, StandardCharsets.UTF_8));
    } finally {
      Files.deleteIfExists(out);
      Files.deleteIfExists(err);
    }
  }

  /** Rows of the first table whose header starts with GROUP, keyed by PARTITION. */
  static Map<Integer, Map<String, String>> table(Result r) {
    String[] lines = r.stdout().split("\\R");
    List<String> header = null;
    Map<Integer, Map<String, String>> rows = new TreeMap<>();
    for (String line : lines) {
      String[] tok = line.trim().split("\\s+");
      if (header == null) {
        if (tok.length > 2 && tok[0].equals("GROUP") && line.contains("PARTITION")) {
          header = List.of(tok);
        }
        continue;
      }
      if (line.isBlank()) {
        continue;
      }
      assertEquals(header.size(), tok.length, "row has as many columns as the header: '" + line
          + "'\n" + r);
      Map<String, String> row = new LinkedHashMap<>();
      for (int i = 0; i < tok.length; i++) {
        row.put(header.get(i), tok[i]);
      }
      rows.put(Integer.parseInt(row.get("PARTITION")), row);
    }
    assertTrue(header != null, "output has a GROUP ... PARTITION header\n" + r);
    return rows;
  }

  static void setup(SpateBroker b, Admin admin, String topic) throws Exception {
    Clients.createTopic(admin, topic, PARTITIONS);
    try (var p = Clients.producer(b, Map.of())) {
      for (int part = 0; part < PARTITIONS; part++) {
        for (int i = 0; i < PER_PARTITION; i++) {
          p.send(new org.apache.kafka.clients.producer.ProducerRecord<>(topic, part, null,
              ("v" + i).getBytes(StandardCharsets.UTF_8))).get(20, TimeUnit.SECONDS);
        }
      }
    }
  }

  static KafkaConsumer<byte[], byte[]> member(SpateBroker b, String group) {
    Map<String, Object> o = new HashMap<>();
    o.put(ConsumerConfig.GROUP_ID_CONFIG, group);
    o.put(ConsumerConfig.CLIENT_ID_CONFIG, "cg-member");
    o.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, 10_000);
    o.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, 500);
    return Clients.consumer(b, o);
  }

  /** Subscribes, waits for all 4 partitions, commits COMMITS (partition 3 uncommitted). */
  static KafkaConsumer<byte[], byte[]> subscribedAndCommitted(SpateBroker b, String group,
      String topic) throws Exception {
    KafkaConsumer<byte[], byte[]> c = member(b, group);
    c.subscribe(List.of(topic));
    Clients.pollUntil(c, PARTITIONS * PER_PARTITION, Duration.ofSeconds(45));
    assertEquals(4, c.assignment().size(), "one member holds all partitions");
    Map<TopicPartition, OffsetAndMetadata> offs = new HashMap<>();
    COMMITS.forEach((p, o) -> offs.put(new TopicPartition(topic, p), new OffsetAndMetadata(o)));
    c.commitSync(offs, Duration.ofSeconds(15));
    return c;
  }

  static Map<Integer, Long> committedOffsets(Admin admin, String group) throws Exception {
    Map<Integer, Long> out = new TreeMap<>();
    admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get(15, TimeUnit.SECONDS)
        .forEach((tp, om) -> {
          if (om != null) {
            out.put(tp.partition(), om.offset());
          }
        });
    return out;
  }

  @Test
  void describeShowsCurrentOffsetLogEndAndLag() throws Exception {
    try (SpateBroker b = SpateBroker.start("group-command-describe", GroupConsumerTest.SETTINGS);
        Admin admin = Clients.admin(b)) {
      String topic = "t";
      String group = "g";
      setup(b, admin, topic);
      try (KafkaConsumer<byte[], byte[]> c = subscribedAndCommitted(b, group, topic)) {
        // active member: every assigned partition has a row, with the member's ids
        Result r = tool(b, "--describe", "--group", group);
        assertEquals(0, r.exitCode(), "--describe (active)\n" + r);
        Map<Integer, Map<String, String>> rows = table(r);
        assertEquals(Set.of(0, 1, 2, 3), rows.keySet(), "one row per partition\n" + r);
        for (int p = 0; p < PARTITIONS; p++) {
          Map<String, String> row = rows.get(p);
          assertEquals(group, row.get("GROUP"), r.toString());
          assertEquals(topic, row.get("TOPIC"), r.toString());
          assertEquals(String.valueOf(PER_PARTITION), row.get("LOG-END-OFFSET"), "p" + p + "\n" + r);
          Long committed = COMMITS.get(p);
          assertEquals(committed == null ? "-" : committed.toString(), row.get("CURRENT-OFFSET"),
              "p" + p + "\n" + r);
          assertEquals(committed == null ? "-" : String.valueOf(PER_PARTITION - committed),
              row.get("LAG"), "p" + p + "\n" + r);
          assertTrue(row.get("CONSUMER-ID").startsWith("cg-member-"), "CONSUMER-ID p" + p + "\n" + r);
          assertEquals("cg-member", row.get("CLIENT-ID"), "CLIENT-ID p" + p + "\n" + r);
          assertTrue(row.get("HOST").contains("127.0.0.1"), "HOST p" + p + "\n" + r);
        }

        Result st = tool(b, "--describe", "--group", group, "--state");
        assertEquals(0, st.exitCode(), "--describe --state\n" + st);
        assertTrue(st.stdout().matches("(?s).*\\bg\\s+\\S+:\\d+\\s+\\(\\d+\\)\\s+range\\s+Stable\\s+1\\b.*"),
            "--state shows group g, coordinator, strategy range, Stable, 1 member\n" + st);
      }

      // empty group: only the committed partitions, no member columns
      Result r = tool(b, "--describe", "--group", group);
      assertEquals(0, r.exitCode(), "--describe (empty)\n" + r);
      assertTrue((r.stdout() + r.stderr()).contains(
              "Consumer group '" + group + "' has no active members."),
          "empty group notice\n" + r);
      Map<Integer, Map<String, String>> rows = table(r);
      assertEquals(COMMITS.keySet(), rows.keySet(), "rows for the committed partitions\n" + r);
      for (var e : COMMITS.entrySet()) {
        Map<String, String> row = rows.get(e.getKey());
        assertEquals(e.getValue().toString(), row.get("CURRENT-OFFSET"), "p" + e.getKey() + "\n" + r);
        assertEquals(String.valueOf(PER_PARTITION), row.get("LOG-END-OFFSET"), "p" + e.getKey() + "\n" + r);
        assertEquals(String.valueOf(PER_PARTITION - e.getValue()), row.get("LAG"),
            "p" + e.getKey() + "\n" + r);
        assertEquals("-", row.get("CONSUMER-ID"), "p" + e.getKey() + "\n" + r);
      }
    }
  }

  @Test
  void listAndDelete() throws Exception {
    try (SpateBroker b = SpateBroker.start("group-command-delete", GroupConsumerTest.SETTINGS);
        Admin admin = Clients.admin(b)) {
      String topic = "t";
      setup(b, admin, topic);
      subscribedAndCommitted(b, "g-empty", topic).close();
      try (KafkaConsumer<byte[], byte[]> active = subscribedAndCommitted(b, "g-active", topic)) {
        Result list = tool(b, "--list");
        assertEquals(0, list.exitCode(), "--list\n" + list);
        Set<String> groups = new TreeSet<>(Arrays.asList(list.stdout().strip().split("\\R")));
        assertEquals(Set.of("g-active", "g-empty"), groups, "--list\n" + list);

        // a group with a member cannot be deleted (NON_EMPTY_GROUP)
        Result busy = tool(b, "--delete", "--group", "g-active");
        assertTrue(busy.stdout().contains("Deletion of some consumer groups failed")
                && busy.stdout().contains("g-active")
                && busy.stdout().contains("GroupNotEmptyException"),
            "--delete of an active group fails with GroupNotEmptyException\n" + busy);

        Result del = tool(b, "--delete", "--group", "g-empty");
        assertEquals(0, del.exitCode(), "--delete\n" + del);
        assertTrue(del.stdout().contains(
                "Deletion of requested consumer groups ('g-empty') was successful."),
            "--delete success message\n" + del);

        Result list2 = tool(b, "--list");
        assertEquals(0, list2.exitCode(), "--list after delete\n" + list2);
        assertEquals(Set.of("g-active"),
            new TreeSet<>(Arrays.asList(list2.stdout().strip().split("\\R"))),
            "--list after delete\n" + list2);
        assertEquals(Map.of(), committedOffsets(admin, "g-empty"),
            "a deleted group has no committed offsets");
        assertEquals(new TreeMap<>(COMMITS), committedOffsets(admin, "g-active"));
      }
    }
  }

  @Test
  void resetOffsetsToEarliest() throws Exception {
    try (SpateBroker b = SpateBroker.start("group-command-reset", GroupConsumerTest.SETTINGS);
        Admin admin = Clients.admin(b)) {
      String topic = "t";
      String group = "g";
      setup(b, admin, topic);
      subscribedAndCommitted(b, group, topic).close();
      // earliest of partition 1 becomes 4
      admin.deleteRecords(Map.of(new TopicPartition(topic, 1), RecordsToDelete.beforeOffset(4)))
          .all().get(15, TimeUnit.SECONDS);

      Result dry = tool(b, "--reset-offsets", "--group", group, "--topic", topic, "--to-earliest",
          "--dry-run");
      assertEquals(0, dry.exitCode(), "--reset-offsets --dry-run\n" + dry);
      assertEquals(new TreeMap<>(COMMITS), committedOffsets(admin, group), "dry run changes nothing");

      Result r = tool(b, "--reset-offsets", "--group", group, "--topic", topic, "--to-earliest",
          "--execute");
      assertEquals(0, r.exitCode(), "--reset-offsets --execute\n" + r);
      Map<Integer, Map<String, String>> rows = table(r);
      Map<Integer, String> newOffsets = new TreeMap<>();
      rows.forEach((p, row) -> newOffsets.put(p, row.get("NEW-OFFSET")));
      assertEquals(Map.of(0, "0", 1, "4", 2, "0", 3, "0"), newOffsets, "NEW-OFFSET column\n" + r);
      assertEquals(Map.of(0, 0L, 1, 4L, 2, 0L, 3, 0L), committedOffsets(admin, group),
          "committed offsets after --reset-offsets --to-earliest --execute");

      Result d = tool(b, "--describe", "--group", group);
      assertEquals(0, d.exitCode(), "--describe after reset\n" + d);
      Map<Integer, Map<String, String>> drows = table(d);
      assertEquals(Set.of(0, 1, 2, 3), drows.keySet(), d.toString());
      assertEquals("6", drows.get(1).get("LAG"), "lag of p1 = 10 - 4\n" + d);
      assertEquals("10", drows.get(0).get("LAG"), d.toString());

      // and a consumer of the group now starts at earliest
      try (KafkaConsumer<byte[], byte[]> c = member(b, group)) {
        c.subscribe(List.of(topic));
        var recs = Clients.pollUntil(c, 3 * PER_PARTITION + (PER_PARTITION - 4),
            Duration.ofSeconds(45));
        assertEquals(3 * PER_PARTITION + (PER_PARTITION - 4), recs.size());
      }
    }
  }

  @Test
  void resetRefusedWhileGroupActive() throws Exception {
    try (SpateBroker b = SpateBroker.start("group-command-reset-active", GroupConsumerTest.SETTINGS);
        Admin admin = Clients.admin(b)) {
      String topic = "t";
      String group = "g";
      setup(b, admin, topic);
      try (KafkaConsumer<byte[], byte[]> c = subscribedAndCommitted(b, group, topic)) {
        Result r = tool(b, "--reset-offsets", "--group", group, "--topic", topic, "--to-earliest",
            "--execute");
        assertNotEquals("", r.stdout() + r.stderr());
        assertTrue((r.stdout() + r.stderr()).contains("inactive"),
            "reset of an active group is refused ('Assignments can only be reset if the group '"
                + group + "' is inactive')\n" + r);
        assertEquals(new TreeMap<>(COMMITS), committedOffsets(admin, group));
      }
    }
  }
}
