package dev.spate.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.spate.compat.SaslCompatTest.ToolResult;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.Metric;
import org.apache.kafka.common.MetricName;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.quota.ClientQuotaEntity;
import org.apache.kafka.common.quota.ClientQuotaFilter;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.Timeout;

/**
 * Client quotas with kafka-configs and the Java client: {@code producer_byte_rate} and
 * {@code consumer_byte_rate} on a client id slow down a producer and a consumer with
 * throttle_time_ms (the client's throttle-time metrics see it) without losing or refusing a
 * record, and {@code kafka-configs --describe --entity-type users} lists SCRAM credentials and
 * user quotas (it asks for both).
 *
 * <p>One broker without an authorizer: PLAINTEXT (the tools and clients) and SASL_PLAINTEXT (so
 * that SCRAM users exist; admin comes from {@code --add-scram}). Quotas are measured as Kafka
 * does, over 11 one-second windows and never over less than 10 s, so the first 10 s worth of
 * quota go through at once: the tests send 20 times the quota, which takes about 10 s, and check
 * the observed rate only loosely.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@Timeout(value = 150, unit = TimeUnit.SECONDS)
class QuotaCompatTest {
  static final int QUOTA = 20480; // bytes per second
  static final int RECORD_BYTES = 1024;
  static final int RECORDS = 20 * QUOTA / RECORD_BYTES; // 20 s worth of quota

  private SpateBroker broker;

  @BeforeAll
  void startBroker() throws Exception {
    if (!SpateBroker.binaryPresent()) {
      return;
    }
    String sasl = "127.0.0.1:" + SpateBroker.freePort();
    broker =
        SpateBroker.start(
            "quota",
            port ->
                List.of(
                    "auto.create.topics.enable=false",
                    "listeners=PLAINTEXT://127.0.0.1:" + port + ",SASL_PLAINTEXT://" + sasl,
                    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
                    "inter.broker.listener.name=PLAINTEXT",
                    "sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512"),
            List.of("--add-scram", "SCRAM-SHA-512=[name=admin,password=admin-secret]"));
  }

  @BeforeEach
  void requireBroker() {
    SpateBroker.binaryOrSkip();
  }

  @AfterAll
  void stopBroker() throws Exception {
    if (broker != null) {
      broker.close();
    }
  }

  private ToolResult kafkaConfigs(String... args) throws Exception {
    List<String> all = new ArrayList<>(List.of("--bootstrap-server", broker.bootstrap()));
    all.addAll(Arrays.asList(args));
    ToolResult r = SaslCompatTest.runTool("kafka.admin.ConfigCommand", null, all.toArray(String[]::new));
    assertEquals(0, r.exitCode(), "kafka-configs " + String.join(" ", args) + "\n" + r);
    return r;
  }

  /** The client's own metric (group *-metrics, tagged only with its client id). */
  private static double metric(Map<MetricName, ? extends Metric> metrics, String name) {
    return metrics.entrySet().stream()
        .filter(e -> e.getKey().name().equals(name) && e.getKey().group().endsWith("-metrics"))
        .filter(e -> e.getKey().tags().keySet().equals(Set.of("client-id")))
        .mapToDouble(e -> ((Number) e.getValue().metricValue()).doubleValue())
        .max()
        .orElse(Double.NaN);
  }

  /** Waits until Admin#describeClientQuotas shows key=value for the client id. */
  private void awaitClientQuota(Admin admin, String clientId, String key, double value)
      throws Exception {
    Clients.waitForValue(
        "quota " + key + "=" + value + " on client " + clientId,
        Duration.ofSeconds(15),
        () -> {
          try {
            return admin
                .describeClientQuotas(ClientQuotaFilter.all())
                .entities()
                .get(10, TimeUnit.SECONDS)
                .get(new ClientQuotaEntity(Map.of(ClientQuotaEntity.CLIENT_ID, clientId)));
          } catch (Exception e) {
            return null;
          }
        },
        q -> q != null && Double.valueOf(value).equals(q.get(key)));
  }

  @Test
  void producerByteRateThrottlesWithoutLosingRecords() throws Exception {
    String topic = "quota-slow";
    Admin admin = Clients.admin(broker);
    try {
      Clients.createTopic(admin, topic, 1);

      ToolResult alter =
          kafkaConfigs("--alter", "--entity-type", "clients", "--entity-name", "slow",
              "--add-config", "producer_byte_rate=" + QUOTA);
      assertTrue(
          alter.stdout().contains("Completed updating config for client slow."),
          "kafka-configs --alter output\n" + alter);
      ToolResult describe =
          kafkaConfigs("--describe", "--entity-type", "clients", "--entity-name", "slow");
      assertTrue(
          describe.stdout().contains("Quota configs for client-id 'slow' are producer_byte_rate="
              + QUOTA + ".0"),
          "kafka-configs --describe output\n" + describe);
      awaitClientQuota(admin, "slow", "producer_byte_rate", QUOTA);

      // The producer offers 20 s worth of quota at once, far above the quota's rate.
      AtomicInteger acked = new AtomicInteger();
      AtomicReference<Exception> firstError = new AtomicReference<>();
      byte[] value = new byte[RECORD_BYTES];
      long start = System.nanoTime();
      double throttleMax;
      try (KafkaProducer<byte[], byte[]> p =
          Clients.producer(
              broker,
              Map.of(ProducerConfig.CLIENT_ID_CONFIG, "slow",
                  ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 120_000,
                  ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, 30_000))) {
        for (int i = 0; i < RECORDS; i++) {
          p.send(
              new ProducerRecord<>(topic, value),
              (md, e) -> {
                if (e != null) {
                  firstError.compareAndSet(null, e);
                } else {
                  acked.incrementAndGet();
                }
              });
        }
        p.flush();
        throttleMax = metric(p.metrics(), "produce-throttle-time-max");
      }
      double seconds = (System.nanoTime() - start) / 1e9;
      double rate = RECORDS * (double) RECORD_BYTES / seconds;
      assertNull(firstError.get(), "a send failed");
      assertEquals(RECORDS, acked.get(), "every record acknowledged");
      assertTrue(throttleMax > 0, "produce-throttle-time-max " + throttleMax + " (want > 0)");
      assertTrue(
          rate < 3.0 * QUOTA,
          String.format("%d bytes in %.1f s: %.0f B/s, quota %d B/s", RECORDS * RECORD_BYTES,
              seconds, rate, QUOTA));
      System.out.printf(
          "QuotaCompatTest: produced %d B in %.1f s (%.0f B/s, quota %d), throttle max %.0f ms%n",
          RECORDS * RECORD_BYTES, seconds, rate, QUOTA, throttleMax);

      // --delete-config takes the quota back.
      kafkaConfigs("--alter", "--entity-type", "clients", "--entity-name", "slow",
          "--delete-config", "producer_byte_rate");
      ToolResult after = kafkaConfigs("--describe", "--entity-type", "clients");
      assertTrue(
          !after.stdout().contains("producer_byte_rate"),
          "kafka-configs --describe --entity-type clients after --delete-config\n" + after);
    } finally {
      admin.close();
    }
  }

  /**
   * A consumer under consumer_byte_rate reads 20 s worth of quota. Kafka caps a throttled
   * client's fetch at what the quota allows over its window (quota x 10 s, here 200 KB) and
   * answers a fetch that goes over the quota without records (they do not count): without the
   * cap, a fetch larger than that would be answered empty again and again.
   */
  @Test
  void consumerByteRateThrottlesWithoutLosingRecords() throws Exception {
    String topic = "quota-read";
    try (Admin admin = Clients.admin(broker)) {
      Clients.createTopic(admin, topic, 1);
      try (KafkaProducer<byte[], byte[]> p = Clients.producer(broker, Map.of())) {
        byte[] value = new byte[RECORD_BYTES];
        for (int i = 0; i < RECORDS; i++) {
          p.send(new ProducerRecord<>(topic, value));
        }
        p.flush();
      }
      kafkaConfigs("--alter", "--entity-type", "clients", "--entity-name", "slow-reader",
          "--add-config", "consumer_byte_rate=" + QUOTA);
      awaitClientQuota(admin, "slow-reader", "consumer_byte_rate", QUOTA);
      long start = System.nanoTime();
      double throttleMax;
      try (KafkaConsumer<byte[], byte[]> c =
          Clients.consumer(
              broker,
              Map.of(ConsumerConfig.CLIENT_ID_CONFIG, "slow-reader",
                  ConsumerConfig.REQUEST_TIMEOUT_MS_CONFIG, 30_000))) {
        c.assign(List.of(new TopicPartition(topic, 0)));
        c.seekToBeginning(c.assignment());
        assertEquals(RECORDS, Clients.pollUntil(c, RECORDS, Duration.ofSeconds(45)).size());
        throttleMax = metric(c.metrics(), "fetch-throttle-time-max");
      }
      double seconds = (System.nanoTime() - start) / 1e9;
      double rate = RECORDS * (double) RECORD_BYTES / seconds;
      assertTrue(throttleMax > 0, "fetch-throttle-time-max " + throttleMax + " (want > 0)");
      assertTrue(
          rate < 3.0 * QUOTA,
          String.format("read %d bytes in %.1f s: %.0f B/s, quota %d B/s",
              RECORDS * RECORD_BYTES, seconds, rate, QUOTA));
      System.out.printf(
          "QuotaCompatTest: consumed %d B in %.1f s (%.0f B/s, quota %d), throttle max %.0f ms%n",
          RECORDS * RECORD_BYTES, seconds, rate, QUOTA, throttleMax);
    }
  }

  @Test
  void describeUsersListsScramCredentialsAndQuotas() throws Exception {
    kafkaConfigs("--alter", "--entity-type", "users", "--entity-name", "carol",
        "--add-config", "SCRAM-SHA-256=[iterations=8192,password=carol-secret]");
    kafkaConfigs("--alter", "--entity-type", "users", "--entity-name", "carol",
        "--add-config", "producer_byte_rate=1048576,request_percentage=200");

    ToolResult all = kafkaConfigs("--describe", "--entity-type", "users");
    for (String want :
        List.of(
            "SCRAM credential configs for user-principal 'admin' are SCRAM-SHA-512=iterations=4096",
            "SCRAM credential configs for user-principal 'carol' are SCRAM-SHA-256=iterations=8192",
            "Quota configs for user-principal 'carol' are ")) {
      assertTrue(all.stdout().contains(want), "kafka-configs --describe --entity-type users should show "
          + want + "\n" + all);
    }
    String quotaLine =
        all.stdout().lines().filter(l -> l.startsWith("Quota configs for user-principal 'carol'"))
            .findFirst().orElseThrow();
    assertTrue(
        quotaLine.contains("producer_byte_rate=1048576.0") && quotaLine.contains("request_percentage=200.0"),
        quotaLine);

    ToolResult one = kafkaConfigs("--describe", "--entity-type", "users", "--entity-name", "carol");
    assertTrue(one.stdout().contains("SCRAM-SHA-256=iterations=8192") && one.stdout().contains(
        "producer_byte_rate=1048576.0"), "kafka-configs --describe --entity-name carol\n" + one);
    assertTrue(!one.stdout().contains("'admin'"), "only carol\n" + one);
  }
}
