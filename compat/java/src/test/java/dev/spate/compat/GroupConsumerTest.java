package dev.spate.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * KafkaConsumer (classic group protocol, 4.1.1) with subscribe(): two members split a 4-partition
 * topic 2/2, commitSync, a restarted consumer resumes at the committed offsets; static membership
 * (group.instance.id): a restarted static member gets its partitions back with no rebalance of the
 * other member. Each test starts its own broker.
 */
@Timeout(value = 90, unit = TimeUnit.SECONDS)
class GroupConsumerTest {
  static final String[] SETTINGS = {
    "auto.create.topics.enable=false", "group.initial.rebalance.delay.ms=0"
  };
  static final int PARTITIONS = 4;
  static final int PER_PARTITION = 10;
  static final Duration DEADLINE = Duration.ofSeconds(45);

  /** Records each rebalance callback, in order, with the partitions. */
  static final class Events implements ConsumerRebalanceListener {
    final List<String> log = Collections.synchronizedList(new ArrayList<>());

    @Override
    public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
      log.add("revoked " + nums(partitions));
    }

    @Override
    public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
      log.add("assigned " + nums(partitions));
    }

    @Override
    public void onPartitionsLost(Collection<TopicPartition> partitions) {
      log.add("lost " + nums(partitions));
    }
  }

  static Set<Integer> nums(Collection<TopicPartition> tps) {
    return tps.stream().map(TopicPartition::partition).collect(Collectors.toCollection(TreeSet::new));
  }

  static KafkaConsumer<byte[], byte[]> member(SpateBroker b, String group, String instanceId) {
    Map<String, Object> o = new HashMap<>();
    o.put(ConsumerConfig.GROUP_ID_CONFIG, group);
    o.put(ConsumerConfig.CLIENT_ID_CONFIG, "member-" + (instanceId == null ? "dyn" : instanceId));
    o.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, 10_000);
    o.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, 500);
    o.put(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG,
        "org.apache.kafka.clients.consumer.RangeAssignor");
    if (instanceId != null) {
      o.put(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, instanceId);
    }
    return Clients.consumer(b, o);
  }

  /** 10 records in each partition; value "p-o". */
  static void produce(SpateBroker b, String topic) throws Exception {
    try (KafkaProducer<byte[], byte[]> p = Clients.producer(b, Map.of())) {
      for (int part = 0; part < PARTITIONS; part++) {
        for (int i = 0; i < PER_PARTITION; i++) {
          var md = p.send(new ProducerRecord<>(topic, part, null,
              (part + "-" + i).getBytes(StandardCharsets.UTF_8))).get(20, TimeUnit.SECONDS);
          assertEquals(i, md.offset(), "offset of record " + i + " in partition " + part);
        }
      }
    }
  }

  /** Polls every consumer in turn (100 ms each) until cond holds or the deadline passes. */
  static void pollUntil(String what, List<KafkaConsumer<byte[], byte[]>> cs,
      Map<KafkaConsumer<byte[], byte[]>, List<ConsumerRecord<byte[], byte[]>>> sink,
      BooleanSupplier cond) {
    Instant deadline = Instant.now().plus(DEADLINE);
    while (!cond.getAsBoolean()) {
      if (Instant.now().isAfter(deadline)) {
        StringBuilder s = new StringBuilder();
        for (KafkaConsumer<byte[], byte[]> c : cs) {
          s.append(" [assignment ").append(nums(c.assignment()));
          if (sink != null) {
            s.append(", ").append(sink.getOrDefault(c, List.of()).size()).append(" records");
          }
          s.append(']');
        }
        throw new AssertionError("timed out after " + DEADLINE + " waiting for " + what + ";" + s);
      }
      for (KafkaConsumer<byte[], byte[]> c : cs) {
        var recs = c.poll(Duration.ofMillis(100));
        if (sink != null) {
          recs.forEach(r -> sink.computeIfAbsent(c, k -> new ArrayList<>()).add(r));
        }
      }
    }
  }

  static boolean split22(KafkaConsumer<byte[], byte[]> a, KafkaConsumer<byte[], byte[]> b) {
    Set<TopicPartition> x = a.assignment();
    Set<TopicPartition> y = b.assignment();
    Set<TopicPartition> all = new HashSet<>(x);
    all.addAll(y);
    return x.size() == 2 && y.size() == 2 && all.size() == 4;
  }

  static Map<Integer, Long> committed(KafkaConsumer<byte[], byte[]> c, String topic) {
    Map<Integer, Long> out = new TreeMap<>();
    c.committed(new HashSet<>(Clients.partitions(topic, PARTITIONS)), Duration.ofSeconds(15))
        .forEach((tp, om) -> {
          if (om != null) {
            out.put(tp.partition(), om.offset());
          }
        });
    return out;
  }

  @Test
  void twoMembersSplitCommitAndRestartResumes() throws Exception {
    try (SpateBroker b = SpateBroker.start("group-consumer-split", SETTINGS);
        Admin admin = Clients.admin(b)) {
      String topic = "split";
      String group = "g-split";
      Clients.createTopic(admin, topic, PARTITIONS);

      Map<Integer, Long> commitAt = new TreeMap<>();
      var sink = new HashMap<KafkaConsumer<byte[], byte[]>, List<ConsumerRecord<byte[], byte[]>>>();
      try (KafkaConsumer<byte[], byte[]> c1 = member(b, group, null);
          KafkaConsumer<byte[], byte[]> c2 = member(b, group, null)) {
        c1.subscribe(List.of(topic));
        c2.subscribe(List.of(topic));
        List<KafkaConsumer<byte[], byte[]>> both = List.of(c1, c2);
        pollUntil("a 2/2 split", both, sink, () -> split22(c1, c2));
        // produce only now, so that no member read a partition it did not keep
        produce(b, topic);
        pollUntil("all 40 records", both, sink,
            () -> sink.values().stream().mapToInt(List::size).sum() >= PARTITIONS * PER_PARTITION);
        assertTrue(split22(c1, c2), "still split 2/2");
        // each member got exactly the records of its own partitions
        for (KafkaConsumer<byte[], byte[]> c : both) {
          Set<Integer> mine = nums(c.assignment());
          Set<Integer> seen = sink.get(c).stream().map(ConsumerRecord::partition)
              .collect(Collectors.toCollection(TreeSet::new));
          assertEquals(mine, seen, "records came only from the member's own partitions");
          assertEquals(2 * PER_PARTITION, sink.get(c).size(), "each member reads its 2 partitions");
        }
        // commit a different prefix of each partition, each member for its own partitions
        for (KafkaConsumer<byte[], byte[]> c : both) {
          Map<TopicPartition, OffsetAndMetadata> offs = new HashMap<>();
          for (TopicPartition tp : c.assignment()) {
            long off = 2L + 2L * tp.partition(); // 2, 4, 6, 8
            offs.put(tp, new OffsetAndMetadata(off, "m" + tp.partition()));
            commitAt.put(tp.partition(), off);
          }
          c.commitSync(offs, Duration.ofSeconds(15));
        }
        assertEquals(commitAt, committed(c1, topic));
      }

      // the restarted consumer of the group gets all 4 partitions and resumes at the commits
      try (KafkaConsumer<byte[], byte[]> c3 = member(b, group, null)) {
        c3.subscribe(List.of(topic));
        var sink3 = new HashMap<KafkaConsumer<byte[], byte[]>, List<ConsumerRecord<byte[], byte[]>>>();
        int expected = commitAt.values().stream().mapToInt(o -> (int) (PER_PARTITION - o)).sum();
        pollUntil(expected + " records after the committed offsets", List.of(c3), sink3,
            () -> sink3.getOrDefault(c3, List.of()).size() >= expected);
        List<ConsumerRecord<byte[], byte[]>> got = sink3.get(c3);
        assertEquals(expected, got.size(), "no record before the committed offsets");
        Map<Integer, Long> first = new TreeMap<>();
        for (ConsumerRecord<byte[], byte[]> r : got) {
          first.merge(r.partition(), r.offset(), Math::min);
        }
        assertEquals(commitAt, first, "first offset read per partition = committed offset");
        assertEquals(Set.of(0, 1, 2, 3), nums(c3.assignment()));
        var meta = c3.committed(new HashSet<>(Clients.partitions(topic, PARTITIONS)),
            Duration.ofSeconds(15));
        for (var e : meta.entrySet()) {
          assertEquals("m" + e.getKey().partition(), e.getValue().metadata(), "commit metadata");
        }
      }
    }
  }

  /**
   * inst-1 joins first and alone (so it is the group leader, and stays leader across the
   * rebalance that inst-2's join causes), then inst-2 joins; they split 2/2. Then the member
   * {@code restart} is closed (a static member sends no LeaveGroup on close) and a new consumer
   * with the same group.instance.id takes its place: it must get the same partitions back, in the
   * same generation, with no rebalance callback on the other member (Kafka: the coordinator
   * replaces the member id and returns the stored assignment; for the leader, JoinGroup v9
   * answers with skip_assignment=true, KIP-814).
   */
  private void staticRestart(String name, String restart) throws Exception {
    try (SpateBroker b = SpateBroker.start(name, SETTINGS);
        Admin admin = Clients.admin(b)) {
      String topic = "static";
      String group = "g-static";
      Clients.createTopic(admin, topic, PARTITIONS);
      produce(b, topic);

      Map<String, Events> events = new HashMap<>();
      Map<String, KafkaConsumer<byte[], byte[]>> cs = new HashMap<>();
      try {
        for (String inst : List.of("inst-1", "inst-2")) {
          Events e = new Events();
          KafkaConsumer<byte[], byte[]> c = member(b, group, inst);
          c.subscribe(List.of(topic), e);
          events.put(inst, e);
          cs.put(inst, c);
          if (inst.equals("inst-1")) {
            pollUntil("inst-1 alone to get all partitions (it is the leader)", List.of(c), null,
                () -> c.assignment().size() == PARTITIONS);
          }
        }
        var c1 = cs.get("inst-1");
        var c2 = cs.get("inst-2");
        pollUntil("a 2/2 split of the two static members", List.of(c1, c2), null,
            () -> split22(c1, c2));
        String other = restart.equals("inst-1") ? "inst-2" : "inst-1";
        Set<Integer> mine = nums(cs.get(restart).assignment());
        Set<Integer> theirs = nums(cs.get(other).assignment());
        List<String> otherBefore = List.copyOf(events.get(other).log);

        cs.remove(restart).close(Duration.ofSeconds(10));
        Events eb = new Events();
        KafkaConsumer<byte[], byte[]> cb = member(b, group, restart);
        cb.subscribe(List.of(topic), eb);
        cs.put(restart, cb);
        KafkaConsumer<byte[], byte[]> oc = cs.get(other);
        pollUntil("the restarted static member " + restart + " to get partitions",
            List.of(cb, oc), null, () -> !cb.assignment().isEmpty());
        assertEquals(mine, nums(cb.assignment()), "restarted static member's partitions");

        // the other member keeps its partitions: no revocation, no new assignment. Absence can
        // only be observed over a window: 3 s = 6 heartbeat intervals of the other member.
        Instant until = Instant.now().plusSeconds(3);
        while (Instant.now().isBefore(until)) {
          oc.poll(Duration.ofMillis(100));
          cb.poll(Duration.ofMillis(100));
        }
        assertEquals(List.of("assigned " + mine), eb.log, "restarted member's callbacks");
        assertEquals(otherBefore, List.copyOf(events.get(other).log),
            "the other member (" + other + ") must see no rebalance when " + restart
                + " restarts");
        assertEquals(theirs, nums(oc.assignment()), "other member's partitions");
        assertEquals(mine, nums(cb.assignment()));

        ConsumerGroupDescription d = admin.describeConsumerGroups(List.of(group))
            .describedGroups().get(group).get(15, TimeUnit.SECONDS);
        assertEquals(GroupState.STABLE, d.groupState(), "group state " + d);
        Map<String, Set<Integer>> byInstance = new TreeMap<>();
        for (MemberDescription m : d.members()) {
          byInstance.put(m.groupInstanceId().orElse("?"), nums(m.assignment().topicPartitions()));
        }
        assertEquals(Map.of(restart, mine, other, theirs), byInstance, "members " + d);
      } finally {
        for (var c : cs.values()) {
          c.close(Duration.ofSeconds(10));
        }
      }
    }
  }

  @Test
  void staticLeaderRestartGetsSamePartitionsWithoutRebalance() throws Exception {
    staticRestart("group-consumer-static-leader", "inst-1");
  }

  @Test
  void staticFollowerRestartGetsSamePartitionsWithoutRebalance() throws Exception {
    staticRestart("group-consumer-static-follower", "inst-2");
  }
}
