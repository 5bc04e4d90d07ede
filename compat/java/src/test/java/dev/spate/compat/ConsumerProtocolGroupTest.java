package dev.spate.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.BooleanSupplier;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.GroupListing;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.GroupType;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.UnsupportedAssignorException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The consumer rebalance protocol (KIP-848, {@code group.protocol=consumer}): ConsumerGroupHeartbeat,
 * server-side assignors, revocation before reassignment, OffsetCommit with member epochs, as the
 * Apache Kafka 4.1.1 Java client (AsyncKafkaConsumer), Admin and kafka-consumer-groups use them.
 *
 * <p>The broker runs with a 500 ms heartbeat interval and a 6 s session timeout. Assignments are
 * tracked with a ConsumerRebalanceListener (the consumer protocol calls it incrementally); several
 * members are driven from the test thread by polling each in turn until a condition holds or a
 * deadline passes. The killed member is a {@code java} subprocess running {@link ChildMember}.
 *
 * <p>Against Apache Kafka (scripts/apache-kafka.sh, a binary path ending in {@code .sh}) the
 * minimum heartbeat interval and session timeout are lowered too, since Kafka refuses to start
 * with an interval or session timeout below them (spate-broker rejects those keys as unknown).
 */
@Timeout(value = 150, unit = TimeUnit.SECONDS)
class ConsumerProtocolGroupTest extends BrokerTestBase {
  static final int PARTITIONS = 4;
  static final int HEARTBEAT_MS = 500;
  static final int SESSION_TIMEOUT_MS = 6000;
  static final Duration REBALANCE = Duration.ofSeconds(20);

  private Admin admin;
  private final List<Member> open = new ArrayList<>();

  @Override
  protected String brokerName() {
    return "consumer-protocol-group";
  }

  @Override
  protected String[] brokerSettings() {
    List<String> s =
        new ArrayList<>(
            List.of(
                "auto.create.topics.enable=false",
                "group.consumer.heartbeat.interval.ms=" + HEARTBEAT_MS,
                "group.consumer.session.timeout.ms=" + SESSION_TIMEOUT_MS,
                "group.initial.rebalance.delay.ms=0"));
    if (SpateBroker.binaryPath().getFileName().toString().endsWith(".sh")) {
      s.add("group.consumer.min.heartbeat.interval.ms=" + HEARTBEAT_MS);
      s.add("group.consumer.min.session.timeout.ms=" + SESSION_TIMEOUT_MS);
    }
    return s.toArray(new String[0]);
  }

  @Override
  protected void afterBrokerStart() {
    admin = Clients.admin(broker);
  }

  @Override
  protected void beforeBrokerStop() {
    for (Member m : open) {
      m.closeQuietly();
    }
    if (admin != null) {
      admin.close(Duration.ofSeconds(5));
    }
  }

  // ---------------------------------------------------------------------------------------------
  // members

  static Properties memberProps(String bootstrap, String group, String clientId) {
    Properties p = new Properties();
    p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
    p.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "consumer");
    p.put(ConsumerConfig.CLIENT_ID_CONFIG, clientId);
    p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
    p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
    p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
    p.put(ConsumerConfig.REQUEST_TIMEOUT_MS_CONFIG, 10_000);
    p.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 20_000);
    p.put(ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG, 100);
    p.put(ConsumerConfig.RETRY_BACKOFF_MS_CONFIG, 100);
    return p;
  }

  /** One group member: a KafkaConsumer subscribed to one topic, with its assignment as seen by
   * its rebalance listener, and everything it consumed. Used only from the test thread. */
  final class Member implements ConsumerRebalanceListener {
    final String name;
    final String topic;
    final KafkaConsumer<byte[], byte[]> consumer;
    final TreeSet<Integer> owned = new TreeSet<>();
    final List<ConsumerRecord<byte[], byte[]>> consumed = new ArrayList<>();
    /** Next offset to consume, per partition, from what poll() returned. */
    final Map<TopicPartition, Long> next = new HashMap<>();
    final List<String> events = new ArrayList<>();
    /** onPartitionsLost calls and failed commits: healthy members never see either. */
    final List<String> troubles = new ArrayList<>();
    boolean commitOnRevoke;
    boolean closed;

    Member(String name, String group, String topic, Map<String, Object> overrides) {
      this.name = name;
      this.topic = topic;
      Properties p = memberProps(broker.bootstrap(), group, name);
      p.putAll(overrides);
      consumer = new KafkaConsumer<>(p);
      consumer.subscribe(List.of(topic), this);
      open.add(this);
    }

    @Override
    public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
      partitions.forEach(tp -> owned.add(tp.partition()));
      events.add("+" + parts(partitions) + "=" + owned);
    }

    @Override
    public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
      if (commitOnRevoke) {
        Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
        for (TopicPartition tp : partitions) {
          Long n = next.get(tp);
          if (n != null) {
            offsets.put(tp, new OffsetAndMetadata(n));
          }
        }
        if (!offsets.isEmpty()) {
          try {
            consumer.commitSync(offsets);
            events.add("commit " + offsets);
          } catch (RuntimeException e) {
            troubles.add("commitSync in onPartitionsRevoked" + parts(partitions) + " failed: " + e);
            events.add("commit failed " + offsets + ": " + e);
          }
        }
      }
      partitions.forEach(tp -> owned.remove(tp.partition()));
      events.add("-" + parts(partitions) + "=" + owned);
    }

    @Override
    public void onPartitionsLost(Collection<TopicPartition> partitions) {
      partitions.forEach(tp -> owned.remove(tp.partition()));
      events.add("lost" + parts(partitions) + "=" + owned);
      troubles.add("onPartitionsLost" + parts(partitions) + " (member fenced or removed by the broker)");
    }

    void poll(Duration d) {
      for (ConsumerRecord<byte[], byte[]> r : consumer.poll(d)) {
        consumed.add(r);
        next.put(new TopicPartition(r.topic(), r.partition()), r.offset() + 1);
      }
    }

    int epoch() {
      return consumer.groupMetadata().generationId();
    }

    /** Where this member would fetch {@code tp} next (null if unknown yet). Not {@link #next}:
     * a partition taken over at its end yields no record to set that from. */
    Long position(TopicPartition tp) {
      try {
        return consumer.position(tp, Duration.ofSeconds(1));
      } catch (RuntimeException e) {
        return null;
      }
    }

    void close() {
      if (!closed) {
        closed = true;
        consumer.close(Duration.ofSeconds(15));
      }
    }

    void closeQuietly() {
      try {
        close();
      } catch (RuntimeException e) {
        // best effort at teardown
      }
    }

    @Override
    public String toString() {
      return name + owned + "@" + (closed ? "closed" : epoch()) + " events=" + events;
    }
  }

  private static String parts(Collection<TopicPartition> tps) {
    return tps.stream().map(TopicPartition::partition).sorted().toList().toString();
  }

  Member member(String name, String group, String topic) {
    return new Member(name, group, topic, Map.of());
  }

  /** Polls every open member of {@code ms} in turn until {@code cond} holds, failing at the deadline. */
  static void pollUntil(String what, Duration timeout, List<Member> ms, BooleanSupplier cond) {
    pollUntilStable(what, timeout, Duration.ZERO, ms, cond);
  }

  /** As pollUntil, but {@code cond} must hold without a break for {@code hold}. */
  static void pollUntilStable(
      String what, Duration timeout, Duration hold, List<Member> ms, BooleanSupplier cond) {
    Instant deadline = Instant.now().plus(timeout);
    Instant since = null;
    while (true) {
      for (Member m : ms) {
        if (!m.closed) {
          m.poll(Duration.ofMillis(20));
        }
      }
      if (cond.getAsBoolean()) {
        if (since == null) {
          since = Instant.now();
        }
        if (!Instant.now().isBefore(since.plus(hold))) {
          return;
        }
      } else {
        since = null;
      }
      if (Instant.now().isAfter(deadline)) {
        throw new AssertionError(
            "timed out after " + timeout + " waiting for " + what + "; members: " + ms);
      }
    }
  }

  /** Every partition owned by exactly one of {@code ms}, each owning the given count. */
  static boolean split(List<Member> ms, int... counts) {
    TreeSet<Integer> all = new TreeSet<>();
    int total = 0;
    for (int i = 0; i < ms.size(); i++) {
      if (ms.get(i).owned.size() != counts[i]) {
        return false;
      }
      all.addAll(ms.get(i).owned);
      total += ms.get(i).owned.size();
    }
    return total == PARTITIONS && all.size() == PARTITIONS;
  }

  /** Members that heartbeat every 500 ms and revoke at once must never be fenced or removed. */
  static void assertNoTroubles(List<Member> ms) {
    List<String> t = new ArrayList<>();
    for (Member m : ms) {
      m.troubles.forEach(x -> t.add(m.name + ": " + x));
    }
    assertTrue(t.isEmpty(), "healthy members lost partitions or failed to commit: " + t + "\nmembers: " + ms);
  }

  static boolean sameEpoch(List<Member> ms) {
    return ms.stream().map(Member::epoch).distinct().count() == 1 && ms.get(0).epoch() > 0;
  }

  void produceNumbered(String topic, int from, int to) throws Exception {
    try (KafkaProducer<byte[], byte[]> p = Clients.producer(broker, Map.of())) {
      for (int i = from; i < to; i++) {
        p.send(new ProducerRecord<>(topic, i % PARTITIONS, null, Integer.toString(i).getBytes()))
            .get(20, TimeUnit.SECONDS);
      }
    }
  }

  Map<TopicPartition, Long> endOffsets(String topic) throws Exception {
    try (KafkaConsumer<byte[], byte[]> c = Clients.consumer(broker)) {
      return c.endOffsets(Clients.partitions(topic, PARTITIONS), Duration.ofSeconds(20));
    }
  }

  static int seq(ConsumerRecord<byte[], byte[]> r) {
    return Integer.parseInt(new String(r.value(), StandardCharsets.UTF_8));
  }

  // ---------------------------------------------------------------------------------------------
  // tests

  @Test
  void assignmentSpreadsOverOneTwoFourAndFiveMembers() throws Exception {
    String topic = "spread";
    String group = "g-spread";
    Clients.createTopic(admin, topic, PARTITIONS);
    Member m1 = member("spread-1", group, topic);
    List<Member> ms = new ArrayList<>(List.of(m1));
    pollUntil("1 member owns all 4 partitions", REBALANCE, ms, () -> split(ms, 4));

    Member m2 = member("spread-2", group, topic);
    ms.add(m2);
    pollUntilStable(
        "2 members split 2/2", REBALANCE, Duration.ofMillis(3 * HEARTBEAT_MS), ms,
        () -> split(ms, 2, 2) && sameEpoch(ms));

    ms.add(member("spread-3", group, topic));
    ms.add(member("spread-4", group, topic));
    pollUntilStable(
        "4 members own one partition each", REBALANCE, Duration.ofMillis(3 * HEARTBEAT_MS), ms,
        () -> split(ms, 1, 1, 1, 1) && sameEpoch(ms));

    Member m5 = member("spread-5", group, topic);
    ms.add(m5);
    // the fifth member joins (gets an epoch) and stays empty while the others keep one each
    pollUntilStable(
        "5th member joined with no partitions", REBALANCE, Duration.ofMillis(4 * HEARTBEAT_MS), ms,
        () -> split(ms, 1, 1, 1, 1, 0) && sameEpoch(ms));
    assertTrue(m5.consumer.assignment().isEmpty(), "5th member's assignment(): " + m5);
    assertNoTroubles(ms);

    // a member that closes is rebalanced away well within the session timeout
    int freed = m1.owned.first();
    Instant t0 = Instant.now();
    m1.close();
    List<Member> rest = ms.subList(1, ms.size());
    pollUntil(
        "partition " + freed + " of the closed member handed over", REBALANCE, rest,
        () -> split(rest, 1, 1, 1, 1));
    long ms1 = Duration.between(t0, Instant.now()).toMillis();
    assertTrue(m5.owned.contains(freed), "the idle member takes over the freed partition: " + rest);
    assertTrue(
        ms1 < SESSION_TIMEOUT_MS - 1000,
        "leave-group on close must rebalance at once, not after the session timeout: " + ms1 + " ms");
    assertNoTroubles(ms);
    for (Member m : rest) {
      m.close();
    }
  }

  @Test
  void killedMemberIsRemovedAfterSessionTimeout() throws Exception {
    String topic = "killed";
    String group = "g-killed";
    Clients.createTopic(admin, topic, PARTITIONS);
    Member a = member("killed-a", group, topic);
    List<Member> ms = List.of(a);
    pollUntil("first member owns all partitions", REBALANCE, ms, () -> a.owned.size() == PARTITIONS);

    Child child = Child.start(broker.bootstrap(), group, topic);
    try {
      pollUntilStable(
          "child member owns 2 partitions", Duration.ofSeconds(40), Duration.ofMillis(2 * HEARTBEAT_MS),
          ms, () -> a.owned.size() == 2 && child.owned().size() == 2);
      TreeSet<Integer> union = new TreeSet<>(a.owned);
      union.addAll(child.owned());
      assertEquals(PARTITIONS, union.size(), "disjoint: " + a + " child=" + child.owned());

      Instant killed = Instant.now();
      child.kill();
      pollUntil(
          "killed member's partitions reassigned after the session timeout",
          Duration.ofMillis(SESSION_TIMEOUT_MS + 15_000), ms, () -> a.owned.size() == PARTITIONS);
      long took = Duration.between(killed, Instant.now()).toMillis();
      assertTrue(
          took >= SESSION_TIMEOUT_MS - 2 * HEARTBEAT_MS - 500,
          "reassigned after " + took + " ms: sooner than the " + SESSION_TIMEOUT_MS
              + " ms session timeout allows (the member was killed, it never left)");
    } finally {
      child.kill();
      a.close();
    }
  }

  @Test
  void commitSyncThenRestartResumesAndOffsetsSurviveBrokerRestart() throws Exception {
    String topic = "resume";
    String group = "g-resume";
    Clients.createTopic(admin, topic, PARTITIONS);
    produceNumbered(topic, 0, 80);

    Member c1 = new Member("resume-1", group, topic, Map.of(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, 7));
    pollUntil("first consumer read 30 records", REBALANCE, List.of(c1), () -> c1.consumed.size() >= 30);
    c1.consumer.commitSync();
    Map<TopicPartition, Long> committed = new HashMap<>();
    for (TopicPartition tp : Clients.partitions(topic, PARTITIONS)) {
      committed.put(tp, c1.consumer.position(tp));
    }
    int readBefore = c1.consumed.size();
    c1.close();

    Member c2 = member("resume-2", group, topic);
    pollUntil(
        "second consumer read the remaining " + (80 - readBefore), REBALANCE, List.of(c2),
        () -> c2.consumed.size() >= 80 - readBefore && c2.owned.size() == PARTITIONS);
    Map<TopicPartition, Long> first = new HashMap<>();
    for (ConsumerRecord<byte[], byte[]> r : c2.consumed) {
      first.putIfAbsent(new TopicPartition(r.topic(), r.partition()), r.offset());
    }
    for (TopicPartition tp : committed.keySet()) {
      if (committed.get(tp) < 20) {
        assertEquals(committed.get(tp), first.get(tp), "resumed at the committed offset of " + tp);
      }
    }
    TreeSet<Integer> seen = new TreeSet<>();
    c1.consumed.forEach(r -> seen.add(seq(r)));
    c2.consumed.forEach(r -> seen.add(seq(r)));
    assertEquals(80, seen.size(), "all 80 records, none twice across the restart");
    assertEquals(80, c1.consumed.size() + c2.consumed.size(), "no record read twice");
    c2.consumer.commitSync();
    c2.close();

    broker.restart();

    Map<TopicPartition, OffsetAndMetadata> after =
        Clients.waitForValue(
            "committed offsets readable after the broker restart", Duration.ofSeconds(30),
            () -> {
              try {
                return admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata()
                    .get(10, TimeUnit.SECONDS);
              } catch (Exception e) {
                return null;
              }
            },
            m -> m != null && m.size() == PARTITIONS);
    for (TopicPartition tp : Clients.partitions(topic, PARTITIONS)) {
      assertEquals(20L, after.get(tp).offset(), "committed offset of " + tp + " after restart: " + after);
    }
    produceNumbered(topic, 80, 88);
    Member c3 = member("resume-3", group, topic);
    // keep polling a second past the 8th record, so that records read twice would show up
    pollUntilStable(
        "8 new records after the restart", REBALANCE, Duration.ofSeconds(1), List.of(c3),
        () -> c3.consumed.size() >= 8);
    assertEquals(
        List.of(80, 81, 82, 83, 84, 85, 86, 87),
        c3.consumed.stream().map(ConsumerProtocolGroupTest::seq).sorted().toList(),
        "after the broker restart the group resumes at the committed offsets");
    c3.close();
  }

  @Test
  void noDuplicatesNoLossWhileMembersJoinAndLeave() throws Exception {
    String topic = "churn";
    String group = "g-churn";
    int n = 5000;
    Clients.createTopic(admin, topic, PARTITIONS);
    AtomicInteger sent = new AtomicInteger();
    AtomicReference<Throwable> producerError = new AtomicReference<>();
    Thread producer =
        new Thread(
            () -> {
              try (KafkaProducer<byte[], byte[]> p = Clients.producer(broker, Map.of())) {
                for (int i = 0; i < n; i++) {
                  ProducerRecord<byte[], byte[]> rec =
                      new ProducerRecord<>(topic, i % PARTITIONS, null, Integer.toString(i).getBytes());
                  if (i < PARTITIONS) {
                    // one synchronous send per partition first: real Kafka may answer the first
                    // writes to a new partition NOT_LEADER_OR_FOLLOWER, and pipelined idempotent
                    // batches behind such an error then loop on OUT_OF_ORDER_SEQUENCE_NUMBER
                    p.send(rec).get(30, TimeUnit.SECONDS);
                    sent.incrementAndGet();
                    continue;
                  }
                  p.send(
                      rec,
                      (md, e) -> {
                        if (e != null) {
                          producerError.compareAndSet(null, e);
                        }
                      });
                  sent.incrementAndGet();
                  if (i % 20 == 19) {
                    // pace the writes (~1000/s) so the rebalances below happen while records flow
                    Thread.sleep(20);
                  }
                }
                p.flush();
              } catch (Throwable t) {
                producerError.compareAndSet(null, t);
              }
            },
            "churn-producer");
    producer.start();
    List<Member> all = new ArrayList<>();
    List<Member> live = new ArrayList<>();
    java.util.function.Function<String, Member> join =
        name -> {
          Member m = member(name, group, topic);
          m.commitOnRevoke = true;
          all.add(m);
          live.add(m);
          return m;
        };
    BooleanSupplier covered =
        () -> {
          TreeSet<Integer> u = new TreeSet<>();
          int total = 0;
          for (Member m : live) {
            u.addAll(m.owned);
            total += m.owned.size();
            if (m.owned.isEmpty()) {
              return false;
            }
          }
          return u.size() == PARTITIONS && total == PARTITIONS;
        };
    try {
      Member a = join.apply("churn-a");
      pollUntil("a owns all and consumes", REBALANCE, live, () -> covered.getAsBoolean() && !a.consumed.isEmpty());
      join.apply("churn-b");
      pollUntil("a+b", REBALANCE, live, covered);
      join.apply("churn-c");
      pollUntil("a+b+c", REBALANCE, live, covered);
      a.close();
      live.remove(a);
      pollUntil("b+c after a closed", REBALANCE, live, covered);
      join.apply("churn-d");
      pollUntil("b+c+d", REBALANCE, live, covered);
      Member b = live.get(0);
      b.close();
      live.remove(b);
      pollUntil("c+d after b closed", REBALANCE, live, covered);
      producer.join(60_000);
      assertEquals(null, producerError.get(), "producer");
      Map<TopicPartition, Long> end = endOffsets(topic);
      pollUntil(
          "the remaining members reach the end of every partition", Duration.ofSeconds(90), live,
          () -> {
            for (Map.Entry<TopicPartition, Long> e : end.entrySet()) {
              boolean reached = false;
              for (Member m : live) {
                if (!m.owned.contains(e.getKey().partition())) {
                  continue;
                }
                Long pos = m.position(e.getKey());
                if (pos != null && pos >= e.getValue()) {
                  reached = true;
                }
              }
              if (!reached) {
                return false;
              }
            }
            return true;
          });
    } finally {
      producer.join(30_000);
      for (Member m : all) {
        m.closeQuietly();
      }
    }

    // the checker: every number exactly once, and per partition offsets 0..end-1 each once
    Map<Integer, List<String>> bySeq = new TreeMap<>();
    Map<Integer, TreeMap<Long, List<String>>> byOffset = new TreeMap<>();
    for (Member m : all) {
      for (ConsumerRecord<byte[], byte[]> r : m.consumed) {
        bySeq.computeIfAbsent(seq(r), k -> new ArrayList<>()).add(m.name + "@" + r.partition() + ":" + r.offset());
        byOffset.computeIfAbsent(r.partition(), k -> new TreeMap<>())
            .computeIfAbsent(r.offset(), k -> new ArrayList<>()).add(m.name);
      }
    }
    List<String> dups =
        bySeq.entrySet().stream().filter(e -> e.getValue().size() > 1)
            .map(e -> e.getKey() + "=" + e.getValue()).limit(20).toList();
    List<Integer> missing = new ArrayList<>();
    for (int i = 0; i < n && missing.size() < 20; i++) {
      if (!bySeq.containsKey(i)) {
        missing.add(i);
      }
    }
    String history =
        all.stream().map(m -> m.name + " read " + m.consumed.size() + " " + m.events)
            .collect(Collectors.joining("\n"));
    assertTrue(
        dups.isEmpty() && missing.isEmpty() && bySeq.size() == n,
        "consumed " + bySeq.size() + " distinct of " + n + "; duplicates (first 20): " + dups
            + "; missing (first 20): " + missing + "\n" + history);
    for (Map.Entry<Integer, TreeMap<Long, List<String>>> e : byOffset.entrySet()) {
      assertEquals(0L, e.getValue().firstKey(), "partition " + e.getKey() + " read from offset 0");
      assertEquals(
          e.getValue().lastKey() + 1, e.getValue().size(), "partition " + e.getKey() + " contiguous");
    }
    assertNoTroubles(all);
  }

  @Test
  void rangeAssignorGivesContiguousRanges() throws Exception {
    String topic = "ranged";
    String group = "g-range";
    Clients.createTopic(admin, topic, PARTITIONS);
    Map<String, Object> range = Map.of(ConsumerConfig.GROUP_REMOTE_ASSIGNOR_CONFIG, "range");
    List<Member> ms = new ArrayList<>();
    ms.add(new Member("range-1", group, topic, range));
    ms.add(new Member("range-2", group, topic, range));
    pollUntilStable(
        "range: 2 members own 2 each", REBALANCE, Duration.ofMillis(3 * HEARTBEAT_MS), ms,
        () -> split(ms, 2, 2) && sameEpoch(ms));
    for (Member m : ms) {
      assertTrue(contiguous(m.owned), "range gives contiguous partitions: " + ms);
    }
    ms.add(new Member("range-3", group, topic, range));
    pollUntilStable(
        "range: 3 members", REBALANCE, Duration.ofMillis(3 * HEARTBEAT_MS), ms,
        () -> ms.stream().allMatch(m -> !m.owned.isEmpty())
            && ms.stream().mapToInt(m -> m.owned.size()).sum() == PARTITIONS
            && sameEpoch(ms));
    List<Integer> sizes = ms.stream().map(m -> m.owned.size()).sorted().toList();
    assertEquals(List.of(1, 1, 2), sizes, "4 partitions over 3 members: " + ms);
    for (Member m : ms) {
      assertTrue(contiguous(m.owned), "range gives contiguous partitions: " + ms);
    }
    Optional<ConsumerGroupDescription> d = describe(group);
    d.ifPresent(g -> assertEquals("range", g.partitionAssignor(), "describe: " + g));
    for (Member m : ms) {
      m.close();
    }
  }

  static boolean contiguous(TreeSet<Integer> s) {
    return !s.isEmpty() && s.last() - s.first() + 1 == s.size();
  }

  @Test
  void unknownAssignorIsRejected() throws Exception {
    String topic = "bad-assignor";
    Clients.createTopic(admin, topic, PARTITIONS);
    Member m =
        new Member("bad-assignor", "g-bad-assignor", topic,
            Map.of(ConsumerConfig.GROUP_REMOTE_ASSIGNOR_CONFIG, "no-such-assignor"));
    Throwable thrown = null;
    Instant deadline = Instant.now().plusSeconds(20);
    while (thrown == null && Instant.now().isBefore(deadline)) {
      try {
        m.poll(Duration.ofMillis(100));
      } catch (RuntimeException e) {
        thrown = e;
      }
    }
    try {
      assertNotNull(thrown, "poll() with group.remote.assignor=no-such-assignor should fail; " + m);
      assertInstanceOf(UnsupportedAssignorException.class, thrown, "error: " + thrown);
      assertTrue(m.owned.isEmpty(), "no partitions assigned: " + m);
    } finally {
      m.closeQuietly();
    }
  }

  Optional<ConsumerGroupDescription> describe(String group) {
    try {
      return Optional.of(
          admin.describeConsumerGroups(List.of(group)).all().get(20, TimeUnit.SECONDS).get(group));
    } catch (Exception e) {
      return Optional.empty();
    }
  }

  @Test
  void adminAndConsumerGroupsCommandShowTheGroup() throws Exception {
    String topic = "described";
    String group = "g-described";
    Clients.createTopic(admin, topic, PARTITIONS);
    produceNumbered(topic, 0, 40); // 10 per partition
    List<Member> ms = new ArrayList<>();
    ms.add(member("described-1", group, topic));
    ms.add(member("described-2", group, topic));
    pollUntilStable(
        "2 members split 2/2 and read their partitions", REBALANCE, Duration.ofMillis(3 * HEARTBEAT_MS),
        ms, () -> split(ms, 2, 2) && sameEpoch(ms) && ms.stream().mapToInt(m -> m.consumed.size()).sum() >= 40);
    // commit partition p at offset p+3: LAG = 10 - (p+3)
    for (Member m : ms) {
      Map<TopicPartition, OffsetAndMetadata> offs = new HashMap<>();
      for (int p : m.owned) {
        offs.put(new TopicPartition(topic, p), new OffsetAndMetadata(p + 3));
      }
      m.consumer.commitSync(offs);
    }

    Collection<GroupListing> listed = admin.listGroups().all().get(20, TimeUnit.SECONDS);
    GroupListing gl =
        listed.stream().filter(g -> g.groupId().equals(group)).findFirst()
            .orElseThrow(() -> new AssertionError("listGroups lacks " + group + ": " + listed));
    assertEquals(Optional.of(GroupType.CONSUMER), gl.type(), "listGroups type: " + gl);
    assertEquals("consumer", gl.protocol(), "listGroups protocol: " + gl);
    assertEquals(Optional.of(GroupState.STABLE), gl.groupState(), "listGroups state: " + gl);

    ConsumerGroupDescription d =
        admin.describeConsumerGroups(List.of(group)).all().get(20, TimeUnit.SECONDS).get(group);
    String ds = d.toString();
    assertEquals(GroupState.STABLE, d.groupState(), ds);
    assertEquals(2, d.members().size(), ds);
    Map<String, TreeSet<Integer>> described = new TreeMap<>();
    for (MemberDescription md : d.members()) {
      described.put(
          md.clientId(),
          md.assignment().topicPartitions().stream().map(TopicPartition::partition)
              .collect(Collectors.toCollection(TreeSet::new)));
      assertTrue(md.host().contains("127.0.0.1"), "member host: " + md);
    }
    Map<String, TreeSet<Integer>> actual = new TreeMap<>();
    for (Member m : ms) {
      actual.put(m.name, new TreeSet<>(m.owned));
    }
    assertEquals(actual, described, "describeConsumerGroups member assignments: " + ds);
    assertEquals("uniform", d.partitionAssignor(), ds);

    ToolResult r =
        runTool("org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
            "--bootstrap-server", broker.bootstrap(), "--describe", "--group", group);
    assertEquals(0, r.exitCode(), "kafka-consumer-groups --describe\n" + r);
    Map<Integer, Map<String, String>> rows = describeRows(r.stdout(), topic);
    assertEquals(Set.of(0, 1, 2, 3), rows.keySet(), "one row per partition\n" + r);
    Map<String, String> memberIds = new HashMap<>();
    d.members().forEach(md -> memberIds.put(md.consumerId(), md.clientId()));
    for (int p = 0; p < PARTITIONS; p++) {
      Map<String, String> row = rows.get(p);
      assertEquals(group, row.get("GROUP"), "row " + p + "\n" + r);
      assertEquals(String.valueOf(p + 3), row.get("CURRENT-OFFSET"), "row " + p + "\n" + r);
      assertEquals("10", row.get("LOG-END-OFFSET"), "row " + p + "\n" + r);
      assertEquals(String.valueOf(10 - (p + 3)), row.get("LAG"), "row " + p + "\n" + r);
      String client = row.get("CLIENT-ID");
      assertTrue(actual.containsKey(client), "row " + p + " client\n" + r);
      assertTrue(actual.get(client).contains(p), "row " + p + " belongs to its owner\n" + r);
      assertEquals(client, memberIds.get(row.get("CONSUMER-ID")), "row " + p + " consumer id\n" + r);
    }
    // last, so that the checks above run either way: ConsumerGroupDescribe (API 69) describes a
    // consumer-protocol group as such; DescribeGroups (the Admin client's fallback) says Classic
    assertEquals(GroupType.CONSUMER, d.type(), "describeConsumerGroups type: " + ds);
    for (Member m : ms) {
      m.close();
    }
  }

  /** kafka-consumer-groups --describe rows for {@code topic}, by partition, keyed by header. */
  static Map<Integer, Map<String, String>> describeRows(String out, String topic) {
    List<String> header = null;
    Map<Integer, Map<String, String>> rows = new TreeMap<>();
    for (String line : out.split("\\R")) {
      List<String> f = Arrays.stream(line.trim().split("\\s+")).toList();
      if (f.contains("CURRENT-OFFSET")) {
        header = f;
      } else if (header != null && f.size() == header.size() && topic.equals(f.get(header.indexOf("TOPIC")))) {
        Map<String, String> row = new HashMap<>();
        for (int i = 0; i < f.size(); i++) {
          row.put(header.get(i), f.get(i));
        }
        rows.put(Integer.parseInt(row.get("PARTITION")), row);
      }
    }
    return rows;
  }

  record ToolResult(int exitCode, String stdout, String stderr) {
    @Override
    public String toString() {
      String[] l = stderr.split("\n");
      return "exit=" + exitCode + "\n--- stdout ---\n" + stdout + "\n--- stderr (tail) ---\n"
          + String.join("\n", Arrays.asList(l).subList(Math.max(0, l.length - 30), l.length));
    }
  }

  static ToolResult runTool(String mainClass, String... args) throws Exception {
    List<String> cmd = new ArrayList<>(javaCmd());
    cmd.add(mainClass);
    cmd.addAll(List.of(args));
    Path out = Files.createTempFile("cpg-tool-", ".out");
    Path err = Files.createTempFile("cpg-tool-", ".err");
    try {
      Process p =
          new ProcessBuilder(cmd).redirectOutput(out.toFile()).redirectError(err.toFile())
              .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null"))).start();
      if (!p.waitFor(60, TimeUnit.SECONDS)) {
        p.destroyForcibly();
        p.waitFor(10, TimeUnit.SECONDS);
        fail(mainClass + " did not finish in 60 s: " + Files.readString(out) + Files.readString(err));
      }
      return new ToolResult(p.exitValue(), Files.readString(out), Files.readString(err));
    } finally {
      Files.deleteIfExists(out);
      Files.deleteIfExists(err);
    }
  }

  static List<String> javaCmd() {
    List<String> cmd = new ArrayList<>();
    cmd.add(Paths.get(System.getProperty("java.home"), "bin", "java").toString());
    cmd.add("-Xshare:auto");
    cmd.add("-XX:TieredStopAtLevel=1");
    String level = System.getProperty("org.slf4j.simpleLogger.log.org.apache.kafka");
    if (level != null) {
      cmd.add("-Dorg.slf4j.simpleLogger.log.org.apache.kafka=" + level);
    }
    cmd.add("-cp");
    String cp = System.getProperty("surefire.test.class.path");
    cmd.add(cp == null || cp.isBlank() ? System.getProperty("java.class.path") : cp);
    return cmd;
  }

  // ---------------------------------------------------------------------------------------------
  // the member in a subprocess

  /** A group member in its own JVM; its owned partitions are read from its stdout. */
  static final class Child {
    final Process process;
    final AtomicReference<TreeSet<Integer>> owned = new AtomicReference<>(new TreeSet<>());
    final List<String> lines = new CopyOnWriteArrayList<>();
    final Path stderr;

    private Child(Process process, Path stderr) {
      this.process = process;
      this.stderr = stderr;
      Thread reader =
          new Thread(
              () -> {
                try (BufferedReader r =
                    new BufferedReader(new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8))) {
                  String line;
                  while ((line = r.readLine()) != null) {
                    lines.add(line);
                    if (line.startsWith("OWNED ")) {
                      TreeSet<Integer> s = new TreeSet<>();
                      String body = line.substring(6).replaceAll("[\\[\\] ]", "");
                      if (!body.isEmpty()) {
                        for (String x : body.split(",")) {
                          s.add(Integer.parseInt(x));
                        }
                      }
                      owned.set(s);
                    }
                  }
                } catch (Exception e) {
                  // process gone
                }
              },
              "child-member-stdout");
      reader.setDaemon(true);
      reader.start();
    }

    static Child start(String bootstrap, String group, String topic) throws Exception {
      List<String> cmd = new ArrayList<>(javaCmd());
      cmd.add(ChildMember.class.getName());
      cmd.add(bootstrap);
      cmd.add(group);
      cmd.add(topic);
      Path err = Files.createTempFile("cpg-child-", ".err");
      Process p = new ProcessBuilder(cmd).redirectError(err.toFile()).start();
      return new Child(p, err);
    }

    TreeSet<Integer> owned() {
      if (!process.isAlive()) {
        String tail;
        try {
          tail = Files.readString(stderr);
        } catch (Exception e) {
          tail = e.toString();
        }
        throw new AssertionError("child member exited " + process.exitValue() + "; stdout " + lines + "; stderr " + tail);
      }
      return owned.get();
    }

    /** SIGKILL (Process.destroyForcibly on Unix). */
    void kill() throws InterruptedException {
      if (process.isAlive()) {
        process.destroyForcibly();
        process.waitFor(10, TimeUnit.SECONDS);
      }
    }
  }

  /** main() of the subprocess member: args bootstrap, group, topic. Prints "OWNED [..]" lines. */
  public static final class ChildMember {
    public static void main(String[] args) {
      Properties p = memberProps(args[0], args[1], "killed-child");
      TreeSet<Integer> owned = new TreeSet<>();
      try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(p)) {
        c.subscribe(
            List.of(args[2]),
            new ConsumerRebalanceListener() {
              @Override
              public void onPartitionsAssigned(Collection<TopicPartition> tps) {
                tps.forEach(tp -> owned.add(tp.partition()));
                System.out.println("OWNED " + owned);
                System.out.flush();
              }

              @Override
              public void onPartitionsRevoked(Collection<TopicPartition> tps) {
                tps.forEach(tp -> owned.remove(tp.partition()));
                System.out.println("OWNED " + owned);
                System.out.flush();
              }
            });
        while (true) {
          c.poll(Duration.ofMillis(100));
        }
      }
    }
  }
}
