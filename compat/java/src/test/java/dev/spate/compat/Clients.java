package dev.spate.compat;

import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import java.util.function.Supplier;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/** Client factories with short timeouts (so a broken broker fails fast) and deadline helpers. */
final class Clients {
  private Clients() {}

  static Admin admin(SpateBroker b) {
    Properties p = new Properties();
    p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, b.bootstrap());
    p.put(AdminClientConfig.CLIENT_ID_CONFIG, "spate-compat-admin");
    p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, 10_000);
    p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 20_000);
    p.put(AdminClientConfig.RETRY_BACKOFF_MS_CONFIG, 100);
    return Admin.create(p);
  }

  static Properties producerProps(SpateBroker b) {
    Properties p = new Properties();
    p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, b.bootstrap());
    p.put(ProducerConfig.CLIENT_ID_CONFIG, "spate-compat-producer");
    p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
    p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
    p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, 10_000);
    p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 30_000);
    p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, 20_000);
    p.put(ProducerConfig.LINGER_MS_CONFIG, 5);
    return p;
  }

  static KafkaProducer<byte[], byte[]> producer(SpateBroker b, Map<String, Object> overrides) {
    Properties p = producerProps(b);
    p.putAll(overrides);
    return new KafkaProducer<>(p);
  }

  static KafkaConsumer<byte[], byte[]> consumer(SpateBroker b) {
    return consumer(b, Map.of());
  }

  static KafkaConsumer<byte[], byte[]> consumer(SpateBroker b, Map<String, Object> overrides) {
    Properties p = new Properties();
    p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, b.bootstrap());
    p.put(ConsumerConfig.CLIENT_ID_CONFIG, "spate-compat-consumer");
    // no group.id: the broker has no group coordinator; assign() only
    p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
    p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
    p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
    p.put(ConsumerConfig.REQUEST_TIMEOUT_MS_CONFIG, 10_000);
    p.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 20_000);
    p.put(ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG, 100);
    p.putAll(overrides);
    return new KafkaConsumer<>(p);
  }

  static void createTopic(Admin admin, String topic, int partitions) throws Exception {
    createTopic(admin, topic, partitions, Map.of());
  }

  static void createTopic(Admin admin, String topic, int partitions, Map<String, String> configs)
      throws Exception {
    admin
        .createTopics(List.of(new NewTopic(topic, partitions, (short) 1).configs(configs)))
        .all()
        .get(30, TimeUnit.SECONDS);
    awaitTopic(admin, topic, partitions);
  }

  /**
   * Waits until describeTopics shows {@code partitions} partitions, each with a leader. Kafka's
   * metadata is eventually consistent after CreateTopics/CreatePartitions, so clients must wait.
   */
  static TopicDescription awaitTopic(Admin admin, String topic, int partitions) throws Exception {
    return waitForValue(
        "topic " + topic + " with " + partitions + " partitions, all with leaders",
        Duration.ofSeconds(15),
        () -> {
          try {
            return admin
                .describeTopics(List.of(topic))
                .allTopicNames()
                .get(10, TimeUnit.SECONDS)
                .get(topic);
          } catch (Exception e) {
            return null;
          }
        },
        d ->
            d != null
                && d.partitions().size() == partitions
                && d.partitions().stream().allMatch(p -> p.leader() != null && !p.leader().isEmpty()));
  }

  /** Polls the assigned consumer until {@code expected} records arrived, or fails at the deadline. */
  static List<ConsumerRecord<byte[], byte[]>> pollUntil(
      KafkaConsumer<byte[], byte[]> consumer, int expected, Duration timeout) {
    List<ConsumerRecord<byte[], byte[]>> out = new ArrayList<>();
    Instant deadline = Instant.now().plus(timeout);
    while (out.size() < expected) {
      if (Instant.now().isAfter(deadline)) {
        throw new AssertionError(
            "timed out after "
                + timeout
                + " with "
                + out.size()
                + " of "
                + expected
                + " records; positions: "
                + positions(consumer));
      }
      ConsumerRecords<byte[], byte[]> recs = consumer.poll(Duration.ofMillis(200));
      recs.forEach(out::add);
    }
    return out;
  }

  private static Map<TopicPartition, Long> positions(KafkaConsumer<byte[], byte[]> c) {
    Map<TopicPartition, Long> m = new HashMap<>();
    try {
      for (TopicPartition tp : c.assignment()) {
        m.put(tp, c.position(tp, Duration.ofSeconds(2)));
      }
    } catch (RuntimeException e) {
      m.clear();
    }
    return m;
  }

  static void waitFor(String what, Duration timeout, BooleanSupplier cond) throws Exception {
    Instant deadline = Instant.now().plus(timeout);
    while (!cond.getAsBoolean()) {
      if (Instant.now().isAfter(deadline)) {
        throw new AssertionError("timed out after " + timeout + " waiting for " + what);
      }
      Thread.sleep(100);
    }
  }

  static <T> T waitForValue(String what, Duration timeout, Supplier<T> get, java.util.function.Predicate<T> ok)
      throws Exception {
    Instant deadline = Instant.now().plus(timeout);
    T last = get.get();
    while (!ok.test(last)) {
      if (Instant.now().isAfter(deadline)) {
        throw new AssertionError(
            "timed out after " + timeout + " waiting for " + what + "; last value: " + last);
      }
      Thread.sleep(100);
      last = get.get();
    }
    return last;
  }

  static List<TopicPartition> partitions(String topic, int n) {
    List<TopicPartition> l = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      l.add(new TopicPartition(topic, i));
    }
    return l;
  }

  static <T> List<T> copy(Collection<T> c) {
    return new ArrayList<>(c);
  }
}
