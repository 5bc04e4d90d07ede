package dev.spate.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import org.apache.kafka.clients.CommonClientConfigs;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ScramCredentialInfo;
import org.apache.kafka.clients.admin.ScramMechanism;
import org.apache.kafka.clients.admin.UserScramCredentialUpsertion;
import org.apache.kafka.clients.admin.UserScramCredentialsDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.Metric;
import org.apache.kafka.common.MetricName;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.SaslConfigs;
import org.apache.kafka.common.config.SslConfigs;
import org.apache.kafka.common.errors.SaslAuthenticationException;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * SASL listeners with the Java client and tools: SCRAM-SHA-512 over SASL_SSL and PLAIN over
 * SASL_PLAINTEXT; users made with Admin#alterUserScramCredentials and with kafka-configs; failed
 * logins; the console producer and consumer over SASL_SSL; KIP-368 re-authentication.
 *
 * <p>One broker with five listeners: PLAINTEXT (the inter-broker one, what the harness waits
 * for), SASL_PLAINTEXT (PLAIN and both SCRAMs), SASL_SSL (the SCRAMs), and REAUTH / REAUTH_SSL
 * (SASL_PLAINTEXT / SASL_SSL with {@code connections.max.reauth.ms=2000}). Certificates come from
 * {@code compat/certs.sh}. The first user, admin, is made with {@code --add-scram}.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class SaslCompatTest {
  static final String ADMIN = "admin";
  static final String ADMIN_PASSWORD = "admin-secret";
  static final String SCRAM_FAILURE =
      "Authentication failed during authentication due to invalid credentials with SASL mechanism"
          + " SCRAM-SHA-512";
  static final String PLAIN_FAILURE = "Authentication failed: Invalid username or password";
  static final long COMMAND_TIMEOUT_S = 60;

  private SpateBroker broker;
  private Path pki;
  /** Bootstrap address of each listener, by listener name. */
  private final Map<String, String> listeners = new TreeMap<>();
  private final List<AutoCloseable> clients = new ArrayList<>();

  @BeforeAll
  void startBroker() throws Exception {
    if (!SpateBroker.binaryPresent()) {
      return;
    }
    pki = Files.createTempDirectory("spate-sasl-pki-");
    makePki(pki);
    for (String name : List.of("SASL_PLAINTEXT", "SASL_SSL", "REAUTH", "REAUTH_SSL")) {
      listeners.put(name, "127.0.0.1:" + SpateBroker.freePort());
    }
    broker =
        SpateBroker.start(
            "sasl",
            port ->
                List.of(
                    "auto.create.topics.enable=false",
                    "listeners=PLAINTEXT://127.0.0.1:" + port + ","
                        + listeners.entrySet().stream()
                            .map(e -> e.getKey() + "://" + e.getValue())
                            .collect(Collectors.joining(",")),
                    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,"
                        + "SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL,"
                        + "REAUTH:SASL_PLAINTEXT,REAUTH_SSL:SASL_SSL",
                    "inter.broker.listener.name=PLAINTEXT",
                    "ssl.keystore.location=" + pki.resolve("broker.pem"),
                    "ssl.truststore.location=" + pki.resolve("ca.pem"),
                    "listener.name.sasl_plaintext.sasl.enabled.mechanisms="
                        + "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
                    "listener.name.reauth.connections.max.reauth.ms=2000",
                    "listener.name.reauth_ssl.connections.max.reauth.ms=2000"),
            List.of(
                "--add-scram",
                "SCRAM-SHA-512=[name=" + ADMIN + ",password=" + ADMIN_PASSWORD + "]"));
  }

  @BeforeEach
  void requireBroker() {
    SpateBroker.binaryOrSkip();
  }

  @AfterAll
  void stopBroker() throws Exception {
    try {
      for (AutoCloseable c : clients) {
        try {
          c.close();
        } catch (Exception ignored) {
          // best effort
        }
      }
    } finally {
      if (broker != null) {
        broker.close();
      }
      if (pki != null) {
        try (var walk = Files.walk(pki)) {
          walk.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        }
      }
    }
  }

  /** Runs compat/certs.sh (openssl) into dir; skips the class when openssl is missing. */
  private static void makePki(Path dir) throws Exception {
    boolean openssl =
        Arrays.stream(System.getenv().getOrDefault("PATH", "").split(":"))
            .anyMatch(d -> Files.isExecutable(Paths.get(d, "openssl")));
    assumeTrue(openssl, "openssl CLI not installed; skipping the SASL tests");
    Path script = Paths.get(System.getProperty("spate.certs.sh", "../certs.sh"));
    Process p =
        new ProcessBuilder("bash", script.toString(), dir.toString())
            .redirectErrorStream(true)
            .start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertTrue(p.waitFor(60, TimeUnit.SECONDS), "certs.sh did not finish in 60 s");
    assertEquals(0, p.exitValue(), "certs.sh failed:\n" + out);
  }

  // ---- client settings ----------------------------------------------------------------------

  /** Client settings for a listener: security.protocol, SASL login and, for TLS, the test CA. */
  private Map<String, Object> sasl(String listener, String mechanism, String user, String password) {
    boolean tls = listener.endsWith("SSL");
    Map<String, Object> c = new HashMap<>();
    c.put(CommonClientConfigs.BOOTSTRAP_SERVERS_CONFIG, listeners.get(listener));
    c.put(CommonClientConfigs.SECURITY_PROTOCOL_CONFIG, tls ? "SASL_SSL" : "SASL_PLAINTEXT");
    c.put(SaslConfigs.SASL_MECHANISM, mechanism);
    String module =
        mechanism.equals("PLAIN")
            ? "org.apache.kafka.common.security.plain.PlainLoginModule"
            : "org.apache.kafka.common.security.scram.ScramLoginModule";
    c.put(
        SaslConfigs.SASL_JAAS_CONFIG,
        module + " required username=\"" + user + "\" password=\"" + password + "\";");
    if (tls) {
      c.put(SslConfigs.SSL_TRUSTSTORE_TYPE_CONFIG, "PEM");
      c.put(SslConfigs.SSL_TRUSTSTORE_LOCATION_CONFIG, pki.resolve("ca.pem").toString());
    }
    return c;
  }

  private Admin admin(Map<String, Object> login) {
    Properties p = new Properties();
    p.put(AdminClientConfig.CLIENT_ID_CONFIG, "spate-compat-sasl-admin");
    p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, 10_000);
    p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 20_000);
    p.put(AdminClientConfig.RETRY_BACKOFF_MS_CONFIG, 100);
    p.putAll(login);
    Admin a = Admin.create(p);
    clients.add(a);
    return a;
  }

  private Admin superAdmin() {
    return admin(sasl("SASL_SSL", "SCRAM-SHA-512", ADMIN, ADMIN_PASSWORD));
  }

  private static List<String> values(List<ConsumerRecord<byte[], byte[]>> records) {
    return records.stream()
        .map(r -> new String(r.value(), StandardCharsets.UTF_8))
        .collect(Collectors.toList());
  }

  /**
   * Creates a one-partition topic (as admin over SASL_SSL), produces n records with login (an
   * idempotent acks=all producer) and reads them back through a consumer group with the same
   * login; asserts they arrive in order.
   */
  private void produceAndConsume(String topic, Map<String, Object> login, int n) throws Exception {
    Clients.createTopic(superAdmin(), topic, 1);
    try (KafkaProducer<byte[], byte[]> producer = Clients.producer(broker, login)) {
      for (int i = 0; i < n; i++) {
        producer.send(
            new ProducerRecord<>(
                topic, ("k" + i).getBytes(StandardCharsets.UTF_8),
                ("v" + i).getBytes(StandardCharsets.UTF_8)));
      }
      producer.flush();
      // a failed send would fail here (the futures are already complete after flush)
      producer
          .send(new ProducerRecord<>(topic, "last".getBytes(StandardCharsets.UTF_8)))
          .get(20, TimeUnit.SECONDS);
    }
    Map<String, Object> consumer = new HashMap<>(login);
    consumer.put(ConsumerConfig.GROUP_ID_CONFIG, "g-" + topic);
    try (KafkaConsumer<byte[], byte[]> c = Clients.consumer(broker, consumer)) {
      c.subscribe(List.of(topic));
      List<String> got = values(Clients.pollUntil(c, n + 1, Duration.ofSeconds(30)));
      List<String> want = IntStream.range(0, n).mapToObj(i -> "v" + i).collect(Collectors.toList());
      want.add("last");
      assertEquals(want, got, "records read back over " + login.get("security.protocol"));
      c.commitSync(Duration.ofSeconds(20));
      assertEquals(
          n + 1,
          c.committed(Set.of(new TopicPartition(topic, 0)), Duration.ofSeconds(20))
              .get(new TopicPartition(topic, 0))
              .offset(),
          "committed offset through the group coordinator");
    }
  }

  // ---- tests --------------------------------------------------------------------------------

  @ParameterizedTest(name = "{0} {1}")
  @CsvSource({"SASL_SSL, SCRAM-SHA-512", "SASL_PLAINTEXT, PLAIN", "SASL_PLAINTEXT, SCRAM-SHA-512"})
  void producesAndConsumesAsTheBootstrapUser(String listener, String mechanism) throws Exception {
    String topic = ("sasl-" + listener + "-" + mechanism).toLowerCase();
    produceAndConsume(topic, sasl(listener, mechanism, ADMIN, ADMIN_PASSWORD), 200);
  }

  @Test
  void usersMadeWithAdminAndKafkaConfigsCanLogIn() throws Exception {
    Admin admin = superAdmin();
    // One request per mechanism: Kafka answers DUPLICATE_RESOURCE for a user named twice.
    for (ScramCredentialInfo info :
        List.of(
            new ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 8192),
            new ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096))) {
      admin
          .alterUserScramCredentials(
              List.of(new UserScramCredentialUpsertion("alice", info, "alice-secret")))
          .all()
          .get(20, TimeUnit.SECONDS);
    }
    UserScramCredentialsDescription alice =
        admin.describeUserScramCredentials(List.of("alice")).description("alice")
            .get(20, TimeUnit.SECONDS);
    Map<ScramMechanism, Integer> iterations =
        alice.credentialInfos().stream()
            .collect(
                Collectors.toMap(ScramCredentialInfo::mechanism, ScramCredentialInfo::iterations));
    assertEquals(
        Map.of(ScramMechanism.SCRAM_SHA_256, 8192, ScramMechanism.SCRAM_SHA_512, 4096),
        iterations,
        "describeUserScramCredentials(alice): " + alice);

    produceAndConsume(
        "sasl-alice-256", sasl("SASL_PLAINTEXT", "SCRAM-SHA-256", "alice", "alice-secret"), 20);
    produceAndConsume(
        "sasl-alice-512", sasl("SASL_SSL", "SCRAM-SHA-512", "alice", "alice-secret"), 20);
    // PLAIN checks the password against the user's SCRAM credential
    produceAndConsume(
        "sasl-alice-plain", sasl("SASL_PLAINTEXT", "PLAIN", "alice", "alice-secret"), 20);

    // kafka-configs --alter --entity-type users --entity-name bob --add-config ...
    Path config = Files.createTempFile("sasl-command-", ".properties");
    try {
      writeProperties(config, sasl("SASL_PLAINTEXT", "SCRAM-SHA-512", ADMIN, ADMIN_PASSWORD));
      ToolResult r =
          runTool(
              "kafka.admin.ConfigCommand", null,
              "--bootstrap-server", listeners.get("SASL_PLAINTEXT"),
              "--command-config", config.toString(),
              "--alter", "--entity-type", "users", "--entity-name", "bob",
              "--add-config", "SCRAM-SHA-512=[password=bob-secret]");
      assertEquals(0, r.exitCode(), "kafka-configs --alter (users)\n" + r);
      assertTrue(
          r.stdout().contains("Completed updating config for user bob."),
          "kafka-configs should report the update\n" + r);
    } finally {
      Files.deleteIfExists(config);
    }
    UserScramCredentialsDescription bob =
        admin.describeUserScramCredentials(List.of("bob")).description("bob")
            .get(20, TimeUnit.SECONDS);
    assertEquals(1, bob.credentialInfos().size(), "bob's credentials: " + bob);
    assertEquals(ScramMechanism.SCRAM_SHA_512, bob.credentialInfos().get(0).mechanism());
    assertEquals(4096, bob.credentialInfos().get(0).iterations(), "kafka-configs' default");
    assertEquals(
        Set.of(ADMIN, "alice", "bob"),
        admin.describeUserScramCredentials().users().get(20, TimeUnit.SECONDS).stream()
            .collect(Collectors.toSet()),
        "describeUserScramCredentials() lists every user");
    produceAndConsume("sasl-bob", sasl("SASL_SSL", "SCRAM-SHA-512", "bob", "bob-secret"), 20);
  }

  @ParameterizedTest(name = "{0} {1}")
  @CsvSource({"SASL_SSL, SCRAM-SHA-512", "SASL_PLAINTEXT, PLAIN"})
  void wrongPasswordAndUnknownUserFailAlike(String listener, String mechanism) throws Exception {
    String expected = mechanism.equals("PLAIN") ? PLAIN_FAILURE : SCRAM_FAILURE;
    String wrongPassword = loginFailure(sasl(listener, mechanism, ADMIN, "not-the-password"));
    String unknownUser = loginFailure(sasl(listener, mechanism, "nobody", ADMIN_PASSWORD));
    assertEquals(expected, wrongPassword, "wrong password");
    assertEquals(wrongPassword, unknownUser, "an unknown user must look like a wrong password");
    // and the right password still works afterwards
    admin(sasl(listener, mechanism, ADMIN, ADMIN_PASSWORD))
        .describeCluster()
        .nodes()
        .get(20, TimeUnit.SECONDS);
  }

  /** The message of the SaslAuthenticationException an Admin call fails with. */
  private String loginFailure(Map<String, Object> login) throws Exception {
    try (Admin a = admin(login)) {
      a.describeCluster().nodes().get(20, TimeUnit.SECONDS);
      throw new AssertionError("login with " + login.get(SaslConfigs.SASL_JAAS_CONFIG) + " worked");
    } catch (ExecutionException e) {
      assertInstanceOf(SaslAuthenticationException.class, e.getCause(), "cause: " + e.getCause());
      return e.getCause().getMessage();
    }
  }

  @Test
  void consoleProducerAndConsumerOverSaslSsl() throws Exception {
    String topic = "sasl-console";
    Clients.createTopic(superAdmin(), topic, 1);
    Path config = Files.createTempFile("sasl-client-", ".properties");
    try {
      writeProperties(config, sasl("SASL_SSL", "SCRAM-SHA-512", ADMIN, ADMIN_PASSWORD));
      String bootstrap = listeners.get("SASL_SSL");
      // 4.1's console tools take --producer.config / --consumer.config (--command-config is
      // the later name of the same option).
      ToolResult produce =
          runTool(
              "org.apache.kafka.tools.ConsoleProducer", "alpha\nbeta\ngamma\n",
              "--bootstrap-server", bootstrap, "--topic", topic,
              "--producer.config", config.toString());
      assertEquals(0, produce.exitCode(), "kafka-console-producer\n" + produce);
      ToolResult consume =
          runTool(
              "org.apache.kafka.tools.consumer.ConsoleConsumer", null,
              "--bootstrap-server", bootstrap, "--topic", topic, "--from-beginning",
              "--max-messages", "3", "--timeout-ms", "30000",
              "--consumer.config", config.toString());
      assertEquals(0, consume.exitCode(), "kafka-console-consumer\n" + consume);
      assertEquals(List.of("alpha", "beta", "gamma"), consume.stdout().lines().toList(),
          "kafka-console-consumer output\n" + consume);
    } finally {
      Files.deleteIfExists(config);
    }
  }

  @ParameterizedTest(name = "{0}")
  @CsvSource({"REAUTH", "REAUTH_SSL"})
  void producerReauthenticatesAndKeepsSending(String listener) throws Exception {
    String topic = "sasl-reauth-" + listener.toLowerCase();
    Clients.createTopic(superAdmin(), topic, 1);
    Map<String, Object> login = sasl(listener, "SCRAM-SHA-512", ADMIN, ADMIN_PASSWORD);
    Map<String, Object> producerConfig = new HashMap<>(login);
    producerConfig.put(ProducerConfig.LINGER_MS_CONFIG, 0);
    AtomicInteger acked = new AtomicInteger();
    AtomicReference<Exception> firstError = new AtomicReference<>();
    int sent = 0;
    double reauths;
    try (KafkaProducer<byte[], byte[]> producer = Clients.producer(broker, producerConfig)) {
      // Sessions last 2 s: over 7 s the producer's connections re-authenticate about three
      // times each, between and during sends.
      Instant end = Instant.now().plusSeconds(7);
      while (Instant.now().isBefore(end)) {
        for (int i = 0; i < 10; i++, sent++) {
          producer.send(
              new ProducerRecord<>(topic, ("v" + sent).getBytes(StandardCharsets.UTF_8)),
              (md, e) -> {
                if (e != null) {
                  firstError.compareAndSet(null, e);
                } else {
                  acked.incrementAndGet();
                }
              });
        }
        producer.flush();
      }
      reauths = metric(producer.metrics(), "successful-reauthentication-total");
      assertEquals(0.0, metric(producer.metrics(), "failed-reauthentication-total"),
          "failed re-authentications");
    }
    assertEquals(null, firstError.get(), "a send failed");
    assertEquals(sent, acked.get(), "every record acknowledged");
    assertTrue(reauths >= 2, "the producer re-authenticated " + reauths + " times in 7 s");

    try (KafkaConsumer<byte[], byte[]> c = Clients.consumer(broker, login)) {
      c.assign(List.of(new TopicPartition(topic, 0)));
      List<String> got = values(Clients.pollUntil(c, sent, Duration.ofSeconds(60)));
      assertEquals(
          IntStream.range(0, sent).mapToObj(i -> "v" + i).collect(Collectors.toList()),
          got,
          "records read back");
    }
  }

  /** Sum of a client metric over its groups (e.g. producer-metrics and per-node). */
  private static double metric(Map<MetricName, ? extends Metric> metrics, String name) {
    return metrics.entrySet().stream()
        .filter(e -> e.getKey().name().equals(name) && e.getKey().group().endsWith("-metrics"))
        .filter(e -> e.getKey().tags().keySet().equals(Set.of("client-id")))
        .mapToDouble(e -> ((Number) e.getValue().metricValue()).doubleValue())
        .sum();
  }

  // ---- tools --------------------------------------------------------------------------------

  record ToolResult(int exitCode, String stdout, String stderr) {
    @Override
    public String toString() {
      String[] lines = stderr.split("\n");
      return "exit=" + exitCode + "\n--- stdout ---\n" + stdout + "\n--- stderr (tail) ---\n"
          + String.join("\n", Arrays.asList(lines).subList(Math.max(0, lines.length - 30), lines.length));
    }
  }

  static void writeProperties(Path file, Map<String, Object> settings) throws Exception {
    Properties p = new Properties();
    settings.forEach((k, v) -> p.setProperty(k, String.valueOf(v)));
    try (var w = Files.newBufferedWriter(file, StandardCharsets.UTF_8)) {
      p.store(w, null);
    }
  }

  /**
   * Runs a Kafka tool's main class as a `java -cp <test classpath>` subprocess (also used by
   * AclCompatTest and QuotaCompatTest).
   */
  static ToolResult runTool(String mainClass, String stdin, String... args) throws Exception {
    List<String> cmd = new ArrayList<>();
    cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
    cmd.add("-Xshare:auto");
    cmd.add("-XX:TieredStopAtLevel=1");
    cmd.add("-cp");
    cmd.add(TopicCommandCompatTest.testClasspath());
    cmd.add(mainClass);
    cmd.addAll(List.of(args));
    Path out = Files.createTempFile("kafka-tool-", ".out");
    Path err = Files.createTempFile("kafka-tool-", ".err");
    Path in = Files.createTempFile("kafka-tool-", ".in");
    try {
      Files.writeString(in, stdin == null ? "" : stdin, StandardCharsets.UTF_8);
      Process p =
          new ProcessBuilder(cmd)
              .redirectOutput(out.toFile())
              .redirectError(err.toFile())
              .redirectInput(in.toFile())
              .start();
      if (!p.waitFor(COMMAND_TIMEOUT_S, TimeUnit.SECONDS)) {
        p.destroyForcibly();
        p.waitFor(10, TimeUnit.SECONDS);
        throw new AssertionError(
            mainClass + " " + String.join(" ", args) + " did not finish within "
                + COMMAND_TIMEOUT_S + " s\n"
                + new ToolResult(-1, Files.readString(out), Files.readString(err)));
      }
      return new ToolResult(p.exitValue(), Files.readString(out), Files.readString(err));
    } finally {
      Files.deleteIfExists(out);
      Files.deleteIfExists(err);
      Files.deleteIfExists(in);
    }
  }
}
