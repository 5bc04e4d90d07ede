package dev.spate.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.clients.consumer.OffsetOutOfRangeException;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.Timeout;

/**
 * assign()-only consumer (no group.id): per-partition order and record contents, seekToBeginning,
 * offsetsForTimes, beginning/end offsets, and identical reads after a graceful restart and after a
 * SIGKILL restart.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
@Timeout(value = 90, unit = TimeUnit.SECONDS)
class ConsumerCompatTest extends BrokerTestBase {
  static final String TOPIC = "consume-me";
  static final int PARTITIONS = 3;
  static final int COUNT = 300;
  static final long STEP_MS = 10;

  private List<Dataset.Rec> recs;
  private long base;
  /** expected records per partition, in offset order (offset = list index) */
  private final Map<Integer, List<Dataset.Rec>> byPartition = new HashMap<>();
  private final List<TopicPartition> tps = Clients.partitions(TOPIC, PARTITIONS);

  @Override
  protected String brokerName() {
    return "consumer";
  }

  @Override
  protected void afterBrokerStart() throws Exception {
    try (Admin admin = Clients.admin(broker)) {
      Clients.createTopic(admin, TOPIC, PARTITIONS);
    }
    base = (System.currentTimeMillis() / 1000) * 1000 - 7_200_000L;
    recs = Dataset.generate(COUNT, base, STEP_MS);
    for (int p = 0; p < PARTITIONS; p++) {
      byPartition.put(p, new ArrayList<>());
    }
    try (KafkaProducer<byte[], byte[]> producer = Clients.producer(broker, Map.of())) {
      List<java.util.concurrent.Future<RecordMetadata>> fs = new ArrayList<>();
      for (Dataset.Rec r : recs) {
        fs.add(producer.send(r.toProducerRecord(TOPIC)));
      }
      producer.flush();
      for (int i = 0; i < COUNT; i++) {
        RecordMetadata md = fs.get(i).get(30, TimeUnit.SECONDS);
        List<Dataset.Rec> l = byPartition.get(md.partition());
        assertEquals(l.size(), md.offset(), "producer offset for " + recs.get(i));
        l.add(recs.get(i));
      }
    }
  }

  private void readAllAndVerify(String phase) {
    try (KafkaConsumer<byte[], byte[]> c = Clients.consumer(broker)) {
      c.assign(tps);
      c.seekToBeginning(tps);
      verifyAll(phase, Clients.pollUntil(c, total(), Duration.ofSeconds(30)));
    }
  }

  private void verifyAll(String phase, List<ConsumerRecord<byte[], byte[]>> got) {
    assertEquals(total(), got.size(), phase + ": record count");
    Map<Integer, Integer> seen = new HashMap<>();
    for (ConsumerRecord<byte[], byte[]> r : got) {
      int n = seen.getOrDefault(r.partition(), 0);
      assertEquals(n, r.offset(), phase + ": offsets in partition " + r.partition() + " in order");
      Dataset.assertRecord(byPartition.get(r.partition()).get(n), r);
      seen.put(r.partition(), n + 1);
    }
    for (int p = 0; p < PARTITIONS; p++) {
      assertEquals(
          byPartition.get(p).size(), seen.getOrDefault(p, 0), phase + ": count in partition " + p);
    }
  }

  @Test
  @Order(1)
  void readsBackPerPartitionInOrder() {
    readAllAndVerify("first read");
  }

  @Test
  @Order(2)
  void seekToBeginningRereads() {
    try (KafkaConsumer<byte[], byte[]> c = Clients.consumer(broker)) {
      TopicPartition tp0 = tps.get(0);
      c.assign(List.of(tp0));
      int n0 = byPartition.get(0).size();
      // read partition 0 fully, then seekToBeginning and read it again
      List<ConsumerRecord<byte[], byte[]>> first = Clients.pollUntil(c, n0, Duration.ofSeconds(30));
      assertEquals(n0, first.size());
      assertEquals((long) n0, c.position(tp0, Duration.ofSeconds(10)), "position at end");
      c.seekToBeginning(List.of(tp0));
      assertEquals(0L, c.position(tp0, Duration.ofSeconds(10)), "position after seekToBeginning");
      List<ConsumerRecord<byte[], byte[]>> again = Clients.pollUntil(c, n0, Duration.ofSeconds(30));
      for (int i = 0; i < n0; i++) {
        assertEquals(i, again.get(i).offset());
        Dataset.assertRecord(byPartition.get(0).get(i), again.get(i));
      }
      // seek to the middle
      c.seek(tp0, n0 / 2);
      List<ConsumerRecord<byte[], byte[]>> mid =
          Clients.pollUntil(c, n0 - n0 / 2, Duration.ofSeconds(30));
      assertEquals(n0 / 2, mid.get(0).offset(), "first offset after seek(" + n0 / 2 + ")");
      Dataset.assertRecord(byPartition.get(0).get(n0 / 2), mid.get(0));
    }
  }

  /** first offset in the partition with timestamp >= target, or null */
  private Long expectedOffsetForTime(int partition, long target) {
    List<Dataset.Rec> l = byPartition.get(partition);
    for (int i = 0; i < l.size(); i++) {
      if (l.get(i).timestamp() >= target) {
        return (long) i;
      }
    }
    return null;
  }

  @Test
  @Order(3)
  void offsetsForTimesFindsFirstRecordAtOrAfterTarget() {
    long last = base + (COUNT - 1) * STEP_MS;
    List<Long> targets =
        List.of(
            base - 60_000, // before everything -> offset 0
            base, // exactly the first record
            base + 1005, // between records (step 10ms)
            base + 1500, // exact timestamp of record 150
            base + 2222 + 3,
            last, // only the very last record qualifies
            last + 1); // after everything -> null
    try (KafkaConsumer<byte[], byte[]> c = Clients.consumer(broker)) {
      for (long target : targets) {
        Map<TopicPartition, Long> query = new HashMap<>();
        for (TopicPartition tp : tps) {
          query.put(tp, target);
        }
        Map<TopicPartition, OffsetAndTimestamp> res =
            c.offsetsForTimes(query, Duration.ofSeconds(20));
        for (TopicPartition tp : tps) {
          Long want = expectedOffsetForTime(tp.partition(), target);
          OffsetAndTimestamp got = res.get(tp);
          String what = "offsetsForTimes(" + tp + ", base+" + (target - base) + ")";
          if (want == null) {
            assertNull(got, what + " should be null (no record at or after target)");
          } else {
            assertNotNull(got, what + " should be offset " + want);
            assertEquals(want.longValue(), got.offset(), what + " offset");
            assertEquals(
                byPartition.get(tp.partition()).get(want.intValue()).timestamp(),
                got.timestamp(),
                what + " timestamp");
          }
        }
      }
    }
  }

  @Test
  @Order(4)
  void beginningAndEndOffsets() {
    try (KafkaConsumer<byte[], byte[]> c = Clients.consumer(broker)) {
      Map<TopicPartition, Long> begin = c.beginningOffsets(tps, Duration.ofSeconds(20));
      Map<TopicPartition, Long> end = c.endOffsets(tps, Duration.ofSeconds(20));
      for (TopicPartition tp : tps) {
        assertEquals(0L, begin.get(tp), "beginningOffsets " + tp);
        assertEquals((long) byPartition.get(tp.partition()).size(), end.get(tp), "endOffsets " + tp);
      }
    }
  }

  @Test
  @Order(4)
  void tinyFetchSizesStillMakeProgress() {
    // KIP-74: the first batch is returned even if larger than max.partition.fetch.bytes/fetch.max.bytes
    try (KafkaConsumer<byte[], byte[]> c =
        Clients.consumer(
            broker,
            Map.of(
                ConsumerConfig.MAX_PARTITION_FETCH_BYTES_CONFIG, 512,
                ConsumerConfig.FETCH_MAX_BYTES_CONFIG, 1024))) {
      c.assign(tps);
      c.seekToBeginning(tps);
      verifyAll("tiny fetch sizes", Clients.pollUntil(c, total(), Duration.ofSeconds(60)));
    }
  }

  @Test
  @Order(4)
  void readCommittedSeesEverything() {
    // no transactions: last stable offset == high watermark
    try (KafkaConsumer<byte[], byte[]> c =
        Clients.consumer(broker, Map.of(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed"))) {
      c.assign(tps);
      c.seekToBeginning(tps);
      verifyAll("read_committed", Clients.pollUntil(c, total(), Duration.ofSeconds(30)));
      Map<TopicPartition, Long> end = c.endOffsets(tps, Duration.ofSeconds(20));
      for (TopicPartition tp : tps) {
        assertEquals(
            (long) byPartition.get(tp.partition()).size(), end.get(tp), "read_committed endOffsets " + tp);
      }
    }
  }

  @Test
  @Order(4)
  void outOfRangeOffset() {
    TopicPartition tp0 = tps.get(0);
    long end = byPartition.get(0).size();
    // auto.offset.reset=none -> OffsetOutOfRangeException
    try (KafkaConsumer<byte[], byte[]> c =
        Clients.consumer(broker, Map.of(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "none"))) {
      c.assign(List.of(tp0));
      c.seek(tp0, end + 1000);
      OffsetOutOfRangeException ex =
          assertThrows(
              OffsetOutOfRangeException.class,
              () -> {
                Instant deadline = Instant.now().plusSeconds(30);
                while (Instant.now().isBefore(deadline)) {
                  c.poll(Duration.ofMillis(200));
                }
              });
      assertEquals(end + 1000, ex.offsetOutOfRangePartitions().get(tp0));
    }
    // auto.offset.reset=earliest -> position resets to 0 and records flow
    try (KafkaConsumer<byte[], byte[]> c = Clients.consumer(broker)) {
      c.assign(List.of(tp0));
      c.seek(tp0, end + 1000);
      List<ConsumerRecord<byte[], byte[]>> got = Clients.pollUntil(c, 1, Duration.ofSeconds(30));
      assertEquals(0, got.get(0).offset(), "reset to earliest after out-of-range");
    }
    // auto.offset.reset=latest -> position resets to the end
    try (KafkaConsumer<byte[], byte[]> c =
        Clients.consumer(broker, Map.of(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "latest"))) {
      c.assign(List.of(tp0));
      assertEquals(end, c.position(tp0, Duration.ofSeconds(20)), "latest position");
    }
  }

  @Test
  @Order(4)
  void longPollReceivesNewRecords() throws Exception {
    String topic = "consume-live";
    try (Admin admin = Clients.admin(broker)) {
      Clients.createTopic(admin, topic, 1);
    }
    TopicPartition tp = new TopicPartition(topic, 0);
    try (KafkaConsumer<byte[], byte[]> c =
            Clients.consumer(broker, Map.of(ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG, 2000));
        KafkaProducer<byte[], byte[]> p = Clients.producer(broker, Map.of())) {
      c.assign(List.of(tp));
      assertEquals(0, c.poll(Duration.ofMillis(300)).count(), "empty topic");
      for (int i = 0; i < 5; i++) {
        p.send(new ProducerRecord<>(topic, 0, null, ("live-" + i).getBytes(StandardCharsets.UTF_8)))
            .get(30, TimeUnit.SECONDS);
        long t0 = System.nanoTime();
        ConsumerRecord<byte[], byte[]> r = Clients.pollUntil(c, 1, Duration.ofSeconds(15)).get(0);
        assertEquals(i, r.offset());
        assertEquals("live-" + i, new String(r.value(), StandardCharsets.UTF_8));
        assertTrue(
            System.nanoTime() - t0 < TimeUnit.SECONDS.toNanos(5),
            "record " + i + " should arrive within fetch.max.wait, took "
                + TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0) + " ms");
      }
    }
  }

  @Test
  @Order(5)
  void identicalAfterGracefulRestart() throws Exception {
    broker.restart();
    readAllAndVerify("after SIGTERM restart");
    appendOneAndCheckOffset("after SIGTERM restart");
  }

  @Test
  @Order(6)
  void identicalAfterCrashRestart() throws Exception {
    broker.crashRestart();
    readAllAndVerify("after SIGKILL restart");
    appendOneAndCheckOffset("after SIGKILL restart");
  }

  private int total() {
    return byPartition.values().stream().mapToInt(List::size).sum();
  }

  /** A new record goes to the end offset of partition 0 and is expected in later reads. */
  private void appendOneAndCheckOffset(String phase) throws Exception {
    TopicPartition tp0 = tps.get(0);
    long endBefore;
    try (KafkaConsumer<byte[], byte[]> c = Clients.consumer(broker)) {
      endBefore = c.endOffsets(List.of(tp0), Duration.ofSeconds(20)).get(tp0);
    }
    assertEquals((long) byPartition.get(0).size(), endBefore, phase + ": end offset of " + tp0);
    Dataset.Rec extra =
        new Dataset.Rec(
            -1,
            ("after-" + phase).getBytes(StandardCharsets.UTF_8),
            ("value-after-" + phase).getBytes(StandardCharsets.UTF_8),
            System.currentTimeMillis(),
            List.of(new RecordHeader("idx", "-1".getBytes(StandardCharsets.UTF_8))));
    try (KafkaProducer<byte[], byte[]> p = Clients.producer(broker, Map.of())) {
      RecordMetadata md =
          p.send(
                  new ProducerRecord<>(
                      TOPIC, 0, extra.timestamp(), extra.key(), extra.value(), extra.headers()))
              .get(30, TimeUnit.SECONDS);
      assertEquals(endBefore, md.offset(), phase + ": offset of a new record in " + tp0);
    }
    byPartition.get(0).add(extra);
    try (KafkaConsumer<byte[], byte[]> c = Clients.consumer(broker)) {
      c.assign(List.of(tp0));
      c.seek(tp0, endBefore);
      ConsumerRecord<byte[], byte[]> r = Clients.pollUntil(c, 1, Duration.ofSeconds(30)).get(0);
      assertEquals(endBefore, r.offset());
      Dataset.assertRecord(extra, r);
    }
  }
}
