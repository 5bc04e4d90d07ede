package dev.spate.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TransactionListing;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.InvalidProducerEpochException;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.Timeout;

/**
 * Transactions with the Java client's transactional producer and read_committed consumer, on a
 * three-broker Spate cluster (separate processes), so transactions span partitions led by
 * different brokers and the coordinator sends WriteTxnMarkers to the other leaders: commit
 * visible to read_committed, abort visible only to read_uncommitted, a zombie fenced, a
 * consume-transform-produce loop exactly once, and kafka-transactions' Admin calls.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@Timeout(value = 180, unit = TimeUnit.SECONDS)
class TransactionsCompatTest {
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
            "txn",
            3,
            "transaction.state.log.num.partitions=3",
            "group.initial.rebalance.delay.ms=0");
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

  /** A topic with one partition per broker (RF 1, spread by the controller). */
  private String topic(String prefix, int partitions) throws Exception {
    String t = prefix + "-" + UUID.randomUUID().toString().substring(0, 8);
    admin.createTopics(List.of(new NewTopic(t, partitions, (short) 1))).all().get(30, TimeUnit.SECONDS);
    Clients.awaitTopic(admin, t, partitions);
    return t;
  }

  private KafkaProducer<byte[], byte[]> txnProducer(String txnId) {
    Properties p = new Properties();
    p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, cluster.bootstrap());
    p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
    p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
    p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, txnId);
    p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, 15_000);
    p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 60_000);
    p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, 60_000);
    KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p);
    producer.initTransactions();
    return producer;
  }

  private KafkaConsumer<byte[], byte[]> consumer(String isolation, String group) {
    Properties p = new Properties();
    p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, cluster.bootstrap());
    p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
    p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
    p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
    p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
    p.put(ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG, 100);
    p.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 30_000);
    if (group != null) {
      p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
    }
    return new KafkaConsumer<>(p);
  }

  /** Every value of the topic a consumer with {@code isolation} reads, up to its end offsets. */
  private List<String> readAll(String topic, int partitions, String isolation) {
    try (KafkaConsumer<byte[], byte[]> c = consumer(isolation, null)) {
      List<TopicPartition> tps = Clients.partitions(topic, partitions);
      c.assign(tps);
      c.seekToBeginning(tps);
      Map<TopicPartition, Long> end = c.endOffsets(tps, Duration.ofSeconds(30));
      List<String> out = new ArrayList<>();
      Instant deadline = Instant.now().plus(WAIT);
      while (tps.stream().anyMatch(tp -> c.position(tp) < end.get(tp))) {
        assertTrue(Instant.now().isBefore(deadline), "reading " + topic + " to " + end);
        for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(200))) {
          out.add(new String(r.value(), StandardCharsets.UTF_8));
        }
      }
      out.sort(String::compareTo);
      return out;
    }
  }

  private static ProducerRecord<byte[], byte[]> rec(String topic, int partition, String v) {
    return new ProducerRecord<>(topic, partition, null, v.getBytes(StandardCharsets.UTF_8));
  }

  @Test
  void commitIsVisibleAndAbortIsNotAcrossLeaders() throws Exception {
    SpateBroker.binaryOrSkip();
    String t = topic("txn", 3);
    try (KafkaProducer<byte[], byte[]> p = txnProducer("commit-" + t)) {
      p.beginTransaction();
      for (int i = 0; i < 9; i++) {
        p.send(rec(t, i % 3, "a" + i));
      }
      p.flush();
      p.abortTransaction();
      p.beginTransaction();
      for (int i = 0; i < 9; i++) {
        p.send(rec(t, i % 3, "c" + i));
      }
      p.commitTransaction();
    }
    List<String> committed = readAll(t, 3, "read_committed");
    assertEquals(List.of("c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8"), committed);
    List<String> all = readAll(t, 3, "read_uncommitted");
    assertEquals(18, all.size(), all.toString());
  }

  @Test
  void zombieProducerIsFenced() throws Exception {
    SpateBroker.binaryOrSkip();
    String t = topic("zombie", 3);
    String id = "zombie-" + t;
    KafkaProducer<byte[], byte[]> zombie = txnProducer(id);
    zombie.beginTransaction();
    zombie.send(rec(t, 0, "z0")).get(30, TimeUnit.SECONDS);
    try (KafkaProducer<byte[], byte[]> fresh = txnProducer(id)) {
      KafkaException e =
          assertThrows(
              KafkaException.class,
              () -> {
                zombie.send(rec(t, 1, "z1"));
                zombie.commitTransaction();
              });
      assertTrue(
          e instanceof ProducerFencedException
              || e instanceof InvalidProducerEpochException
              || e.getCause() instanceof ProducerFencedException
              || e.getCause() instanceof InvalidProducerEpochException,
          e.toString());
      fresh.beginTransaction();
      fresh.send(rec(t, 2, "f0"));
      fresh.commitTransaction();
    } finally {
      zombie.close(Duration.ZERO);
    }
    assertEquals(List.of("f0"), readAll(t, 3, "read_committed"));
  }

  @Test
  void consumeTransformProduceIsExactlyOnce() throws Exception {
    SpateBroker.binaryOrSkip();
    String in = topic("in", 3);
    String out = topic("out", 3);
    Properties pp = new Properties();
    pp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, cluster.bootstrap());
    pp.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
    pp.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
    try (KafkaProducer<byte[], byte[]> plain = new KafkaProducer<>(pp)) {
      for (int i = 0; i < 60; i++) {
        plain.send(rec(in, i % 3, String.format("%02d", i)));
      }
    }
    String group = "etl-" + in;
    String txnId = "etl-" + in;
    int processed = 0;
    boolean abortedOnce = false;
    try (KafkaProducer<byte[], byte[]> p = txnProducer(txnId);
        KafkaConsumer<byte[], byte[]> c = consumer("read_committed", group)) {
      c.subscribe(List.of(in));
      Instant deadline = Instant.now().plus(WAIT);
      while (processed < 60) {
        assertTrue(Instant.now().isBefore(deadline), "processed " + processed + " of 60");
        ConsumerRecords<byte[], byte[]> recs = c.poll(Duration.ofMillis(200));
        if (recs.isEmpty()) {
          continue;
        }
        p.beginTransaction();
        Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
        for (ConsumerRecord<byte[], byte[]> r : recs) {
          p.send(rec(out, r.partition(), "x" + new String(r.value(), StandardCharsets.UTF_8)));
          offsets.put(
              new TopicPartition(r.topic(), r.partition()), new OffsetAndMetadata(r.offset() + 1));
        }
        p.sendOffsetsToTransaction(offsets, c.groupMetadata());
        if (!abortedOnce) {
          // The first batch is aborted: its output must vanish and its input be read again.
          abortedOnce = true;
          p.flush();
          p.abortTransaction();
          for (TopicPartition tp : c.assignment()) {
            OffsetAndMetadata committed = c.committed(java.util.Set.of(tp)).get(tp);
            c.seek(tp, committed == null ? 0 : committed.offset());
          }
          continue;
        }
        p.commitTransaction();
        processed += recs.count();
      }
    }
    List<String> expected = new ArrayList<>();
    for (int i = 0; i < 60; i++) {
      expected.add(String.format("x%02d", i));
    }
    assertEquals(expected, readAll(out, 3, "read_committed"));
    Map<TopicPartition, OffsetAndMetadata> committed =
        admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get(30, TimeUnit.SECONDS);
    long total = committed.values().stream().mapToLong(OffsetAndMetadata::offset).sum();
    assertEquals(60, total, committed.toString());
  }

  @Test
  void adminListsAndDescribesTransactions() throws Exception {
    SpateBroker.binaryOrSkip();
    String t = topic("admin", 3);
    String id = "admin-" + t;
    try (KafkaProducer<byte[], byte[]> p = txnProducer(id)) {
      p.beginTransaction();
      p.send(rec(t, 0, "v")).get(30, TimeUnit.SECONDS);
      var d = admin.describeTransactions(List.of(id)).description(id).get(30, TimeUnit.SECONDS);
      assertEquals("ONGOING", d.state().name());
      assertEquals(1, d.topicPartitions().size());
      boolean listed =
          admin.listTransactions().all().get(30, TimeUnit.SECONDS).stream()
              .map(TransactionListing::transactionalId)
              .anyMatch(id::equals);
      assertTrue(listed, "listTransactions shows " + id);
      var producers =
          admin
              .describeProducers(List.of(new TopicPartition(t, 0)))
              .partitionResult(new TopicPartition(t, 0))
              .get(30, TimeUnit.SECONDS)
              .activeProducers();
      assertEquals(1, producers.size());
      assertTrue(producers.get(0).currentTransactionStartOffset().isPresent());
      p.commitTransaction();
      var after = admin.describeTransactions(List.of(id)).description(id).get(30, TimeUnit.SECONDS);
      assertEquals("COMPLETE_COMMIT", after.state().name());
    }
  }
}
