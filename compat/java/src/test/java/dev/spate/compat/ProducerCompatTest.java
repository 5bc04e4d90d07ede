package dev.spate.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.RecordTooLargeException;
import org.apache.kafka.common.record.TimestampType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Produces ~300 keyed records with headers and explicit timestamps under several producer
 * configurations, checks the default partitioner placement from RecordMetadata, and reads them back
 * with an assign()-only consumer.
 */
@Timeout(value = 90, unit = TimeUnit.SECONDS)
class ProducerCompatTest extends BrokerTestBase {
  static final int PARTITIONS = 3;
  static final int COUNT = 300;

  private Admin admin;

  @Override
  protected String brokerName() {
    return "producer";
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

  static Stream<Arguments> configs() {
    return Stream.of(
        // Java producer defaults: acks=all, enable.idempotence=true (needs InitProducerId)
        Arguments.of("default-idempotent", Map.of()),
        Arguments.of("gzip", Map.of(ProducerConfig.COMPRESSION_TYPE_CONFIG, "gzip")),
        Arguments.of("snappy", Map.of(ProducerConfig.COMPRESSION_TYPE_CONFIG, "snappy")),
        Arguments.of("lz4", Map.of(ProducerConfig.COMPRESSION_TYPE_CONFIG, "lz4")),
        Arguments.of("zstd", Map.of(ProducerConfig.COMPRESSION_TYPE_CONFIG, "zstd")),
        // without idempotence, ordering across retries needs max.in.flight=1
        Arguments.of(
            "acks1-nonidempotent",
            Map.of(
                ProducerConfig.ACKS_CONFIG, "1",
                ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, false,
                ProducerConfig.MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION, 1)),
        Arguments.of(
            "acks0-nonidempotent",
            Map.of(
                ProducerConfig.ACKS_CONFIG, "0",
                ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, false,
                ProducerConfig.MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION, 1)),
        Arguments.of(
            "acks1-lz4-nonidempotent",
            Map.of(
                ProducerConfig.ACKS_CONFIG, "1",
                ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, false,
                ProducerConfig.MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION, 1,
                ProducerConfig.COMPRESSION_TYPE_CONFIG, "lz4")));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("configs")
  void produceKeyedRecordsAndReadBack(String name, Map<String, Object> overrides) throws Exception {
    String topic = "produce-" + name;
    Clients.createTopic(admin, topic, PARTITIONS);
    boolean acks0 = "0".equals(overrides.get(ProducerConfig.ACKS_CONFIG));

    long base = (System.currentTimeMillis() / 1000) * 1000 - 3_600_000L;
    List<Dataset.Rec> recs = Dataset.generate(COUNT, base, 1000);

    List<Future<RecordMetadata>> futures = new ArrayList<>();
    try (KafkaProducer<byte[], byte[]> producer = Clients.producer(broker, overrides)) {
      for (Dataset.Rec r : recs) {
        futures.add(producer.send(r.toProducerRecord(topic)));
      }
      producer.flush();
      // send results
      Map<Integer, Long> nextOffset = new HashMap<>();
      for (int i = 0; i < recs.size(); i++) {
        Dataset.Rec r = recs.get(i);
        RecordMetadata md = futures.get(i).get(30, TimeUnit.SECONDS);
        assertEquals(
            r.expectedPartition(PARTITIONS),
            md.partition(),
            r + ": partition must be toPositive(murmur2(key)) % " + PARTITIONS);
        if (acks0) {
          assertEquals(-1L, md.offset(), "acks=0 has no offset");
        } else {
          long want = nextOffset.getOrDefault(md.partition(), 0L);
          assertEquals(want, md.offset(), r + ": offset within partition " + md.partition());
          nextOffset.put(md.partition(), want + 1);
          assertEquals(r.timestamp(), md.timestamp(), r + ": timestamp in RecordMetadata");
        }
      }
    }

    // expected per-partition order = send order
    Map<Integer, List<Dataset.Rec>> byPartition = new HashMap<>();
    for (Dataset.Rec r : recs) {
      byPartition.computeIfAbsent(r.expectedPartition(PARTITIONS), k -> new ArrayList<>()).add(r);
    }

    List<TopicPartition> tps = Clients.partitions(topic, PARTITIONS);
    try (KafkaConsumer<byte[], byte[]> consumer = Clients.consumer(broker)) {
      consumer.assign(tps);
      consumer.seekToBeginning(tps);
      List<ConsumerRecord<byte[], byte[]>> got =
          Clients.pollUntil(consumer, COUNT, Duration.ofSeconds(30));
      assertEquals(COUNT, got.size(), "records read back");
      Map<Integer, Integer> seen = new HashMap<>();
      for (ConsumerRecord<byte[], byte[]> c : got) {
        int n = seen.getOrDefault(c.partition(), 0);
        List<Dataset.Rec> exp = byPartition.get(c.partition());
        assertTrue(exp != null && n < exp.size(), "unexpected record in partition " + c.partition());
        assertEquals(n, c.offset(), "offset of record #" + n + " in partition " + c.partition());
        Dataset.assertRecord(exp.get(n), c);
        seen.put(c.partition(), n + 1);
      }
      Map<TopicPartition, Long> end = consumer.endOffsets(tps, Duration.ofSeconds(20));
      for (TopicPartition tp : tps) {
        int want = byPartition.getOrDefault(tp.partition(), List.of()).size();
        assertEquals((long) want, end.get(tp), "end offset of " + tp);
      }
      // offsetsForTimes must find records inside (compressed) batches
      long target = base + 150_500; // between record 150 and 151
      Map<TopicPartition, Long> query = new HashMap<>();
      tps.forEach(tp -> query.put(tp, target));
      Map<TopicPartition, OffsetAndTimestamp> found =
          consumer.offsetsForTimes(query, Duration.ofSeconds(20));
      for (TopicPartition tp : tps) {
        List<Dataset.Rec> l = byPartition.get(tp.partition());
        int idx = 0;
        while (idx < l.size() && l.get(idx).timestamp() < target) {
          idx++;
        }
        OffsetAndTimestamp hit = found.get(tp);
        assertNotNull(hit, "offsetsForTimes(" + tp + ", base+150500)");
        assertEquals(idx, hit.offset(), "offsetsForTimes(" + tp + ", base+150500) offset");
        assertEquals(l.get(idx).timestamp(), hit.timestamp(), "offsetsForTimes timestamp");
      }
    }
  }

  @Test
  void logAppendTimeTopicOverridesTimestamps() throws Exception {
    String topic = "produce-log-append-time";
    Clients.createTopic(admin, topic, 1, Map.of("message.timestamp.type", "LogAppendTime"));
    long before = System.currentTimeMillis();
    long old = before - 3_600_000L;
    RecordMetadata md;
    try (KafkaProducer<byte[], byte[]> p = Clients.producer(broker, Map.of())) {
      md = p.send(new ProducerRecord<>(topic, 0, old, "k".getBytes(), "v".getBytes()))
          .get(30, TimeUnit.SECONDS);
    }
    long after = System.currentTimeMillis();
    assertTrue(
        md.timestamp() >= before - 1000 && md.timestamp() <= after + 1000,
        "RecordMetadata.timestamp should be the broker's append time, got " + md.timestamp());
    TopicPartition tp = new TopicPartition(topic, 0);
    try (KafkaConsumer<byte[], byte[]> c = Clients.consumer(broker)) {
      c.assign(List.of(tp));
      ConsumerRecord<byte[], byte[]> r = Clients.pollUntil(c, 1, Duration.ofSeconds(30)).get(0);
      assertEquals(TimestampType.LOG_APPEND_TIME, r.timestampType(), "timestampType");
      assertEquals(md.timestamp(), r.timestamp(), "consumed timestamp = append time");
    }
  }

  @Test
  void recordLargerThanTopicMaxMessageBytesIsRejected() throws Exception {
    String topic = "produce-too-large";
    Clients.createTopic(admin, topic, 1, Map.of("max.message.bytes", "10000"));
    try (KafkaProducer<byte[], byte[]> p = Clients.producer(broker, Map.of())) {
      ExecutionException ex =
          assertThrows(
              ExecutionException.class,
              () -> p.send(new ProducerRecord<>(topic, 0, null, new byte[20_000])).get(30, TimeUnit.SECONDS));
      assertInstanceOf(RecordTooLargeException.class, ex.getCause(), "cause: " + ex.getCause());
      // a small record still goes through afterwards
      RecordMetadata ok =
          p.send(new ProducerRecord<>(topic, 0, null, new byte[100])).get(30, TimeUnit.SECONDS);
      assertEquals(0, ok.offset(), "offset of the first accepted record");
    }
  }

  @Test
  void idempotentProducerSurvivesBrokerRestart() throws Exception {
    String topic = "produce-across-restart";
    Clients.createTopic(admin, topic, 1);
    TopicPartition tp = new TopicPartition(topic, 0);
    try (KafkaProducer<byte[], byte[]> p =
        Clients.producer(
            broker,
            Map.of(
                ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 60_000,
                ProducerConfig.RECONNECT_BACKOFF_MAX_MS_CONFIG, 500))) {
      for (int i = 0; i < 100; i++) {
        p.send(new ProducerRecord<>(topic, 0, null, ("r" + i).getBytes()));
      }
      p.flush();
      broker.restart();
      List<Future<RecordMetadata>> fs = new ArrayList<>();
      for (int i = 100; i < 200; i++) {
        fs.add(p.send(new ProducerRecord<>(topic, 0, null, ("r" + i).getBytes())));
      }
      p.flush();
      for (int i = 0; i < fs.size(); i++) {
        assertEquals(100 + i, fs.get(i).get(60, TimeUnit.SECONDS).offset(), "offset of r" + (100 + i));
      }
    }
    try (KafkaConsumer<byte[], byte[]> c = Clients.consumer(broker)) {
      c.assign(List.of(tp));
      List<ConsumerRecord<byte[], byte[]>> got = Clients.pollUntil(c, 200, Duration.ofSeconds(30));
      for (int i = 0; i < 200; i++) {
        assertEquals(i, got.get(i).offset());
        assertEquals("r" + i, new String(got.get(i).value()), "no duplicates or gaps at " + i);
      }
      assertEquals(200L, c.endOffsets(List.of(tp), Duration.ofSeconds(20)).get(tp), "end offset");
    }
  }

  @Test
  void nearMegabyteRecordRoundTrips() throws Exception {
    String topic = "produce-big";
    Clients.createTopic(admin, topic, 1);
    byte[] big = new byte[900_000];
    new java.util.Random(7).nextBytes(big);
    try (KafkaProducer<byte[], byte[]> p = Clients.producer(broker, Map.of())) {
      assertEquals(
          0, p.send(new ProducerRecord<>(topic, 0, null, big)).get(30, TimeUnit.SECONDS).offset());
      assertEquals(
          1,
          p.send(new ProducerRecord<>(topic, 0, null, "small".getBytes()))
              .get(30, TimeUnit.SECONDS)
              .offset());
    }
    try (KafkaConsumer<byte[], byte[]> c = Clients.consumer(broker)) {
      c.assign(List.of(new TopicPartition(topic, 0)));
      List<ConsumerRecord<byte[], byte[]>> got = Clients.pollUntil(c, 2, Duration.ofSeconds(30));
      org.junit.jupiter.api.Assertions.assertArrayEquals(big, got.get(0).value(), "900 KB value");
      assertEquals("small", new String(got.get(1).value()));
    }
  }
}
