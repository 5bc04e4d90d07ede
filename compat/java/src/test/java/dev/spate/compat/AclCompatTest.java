package dev.spate.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.spate.compat.SaslCompatTest.ToolResult;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import org.apache.kafka.clients.CommonClientConfigs;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.config.SaslConfigs;
import org.apache.kafka.common.errors.ClusterAuthorizationException;
import org.apache.kafka.common.errors.GroupAuthorizationException;
import org.apache.kafka.common.errors.TopicAuthorizationException;
import org.apache.kafka.common.errors.TransactionalIdAuthorizationException;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourceType;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.Timeout;

/**
 * ACLs with the Java client and kafka-acls: one broker with Kafka's StandardAuthorizer
 * ({@code super.users=User:admin;User:ANONYMOUS}, {@code allow.everyone.if.no.acl.found} left
 * false), a PLAINTEXT listener for the harness and a SASL_PLAINTEXT (SCRAM-SHA-512) one for the
 * clients. admin is the super user; alice, ivan and tina start without ACLs, each test using its
 * own user or resources so that the tests do not depend on each other's grants.
 *
 * <p>kafka-acls is {@code org.apache.kafka.tools.AclCommand} (kafka-tools 4.1.1) run as a
 * subprocess with {@code --command-config} holding admin's login.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@Timeout(value = 150, unit = TimeUnit.SECONDS)
class AclCompatTest {
  static final String ADMIN = "admin";
  static final Duration ACL_PROPAGATION = Duration.ofSeconds(15);

  private SpateBroker broker;
  private String sasl;
  private Path adminConfig;
  private final List<AutoCloseable> clients = new ArrayList<>();

  @BeforeAll
  void startBroker() throws Exception {
    if (!SpateBroker.binaryPresent()) {
      return;
    }
    sasl = "127.0.0.1:" + SpateBroker.freePort();
    List<String> args = new ArrayList<>();
    for (String user : List.of(ADMIN, "alice", "ivan", "tina")) {
      args.add("--add-scram");
      args.add("SCRAM-SHA-512=[name=" + user + ",password=" + password(user) + "]");
    }
    broker =
        SpateBroker.start(
            "acl",
            port ->
                List.of(
                    "auto.create.topics.enable=false",
                    "listeners=PLAINTEXT://127.0.0.1:" + port + ",SASL_PLAINTEXT://" + sasl,
                    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
                    "inter.broker.listener.name=PLAINTEXT",
                    "sasl.enabled.mechanisms=SCRAM-SHA-512",
                    "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                    "super.users=User:admin;User:ANONYMOUS",
                    "group.initial.rebalance.delay.ms=0"),
            args);
    adminConfig = Files.createTempFile("acl-command-", ".properties");
    SaslCompatTest.writeProperties(adminConfig, login(ADMIN));
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
      if (adminConfig != null) {
        Files.deleteIfExists(adminConfig);
      }
    }
  }

  // ---- clients ------------------------------------------------------------------------------

  private static String password(String user) {
    return user + "-secret";
  }

  /** Client settings for user over the SASL_PLAINTEXT listener. */
  private Map<String, Object> login(String user) {
    Map<String, Object> c = new HashMap<>();
    c.put(CommonClientConfigs.BOOTSTRAP_SERVERS_CONFIG, sasl);
    c.put(CommonClientConfigs.SECURITY_PROTOCOL_CONFIG, "SASL_PLAINTEXT");
    c.put(SaslConfigs.SASL_MECHANISM, "SCRAM-SHA-512");
    c.put(
        SaslConfigs.SASL_JAAS_CONFIG,
        "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"" + user
            + "\" password=\"" + password(user) + "\";");
    return c;
  }

  private static Map<String, Object> with(Map<String, Object> base, Object... kv) {
    Map<String, Object> m = new HashMap<>(base);
    for (int i = 0; i < kv.length; i += 2) {
      m.put((String) kv[i], kv[i + 1]);
    }
    return m;
  }

  private Admin adminAs(String user) {
    Properties p = new Properties();
    p.put(AdminClientConfig.CLIENT_ID_CONFIG, "spate-compat-acl-" + user);
    p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, 10_000);
    p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 20_000);
    p.put(AdminClientConfig.RETRY_BACKOFF_MS_CONFIG, 100);
    p.putAll(login(user));
    Admin a = Admin.create(p);
    clients.add(a);
    return a;
  }

  private static AclBinding allow(String user, ResourceType type, String name, AclOperation op) {
    return new AclBinding(
        new ResourcePattern(type, name, PatternType.LITERAL),
        new AccessControlEntry("User:" + user, "*", op, AclPermissionType.ALLOW));
  }

  private void createAcls(AclBinding... acls) throws Exception {
    adminAs(ADMIN).createAcls(List.of(acls)).all().get(20, TimeUnit.SECONDS);
  }

  private static byte[] bytes(String s) {
    return s.getBytes(StandardCharsets.UTF_8);
  }

  /** Sends n records ("v0".."v{n-1}") with the producer and waits for every acknowledgement. */
  private static void sendAll(KafkaProducer<byte[], byte[]> p, String topic, int n, String prefix)
      throws Exception {
    List<java.util.concurrent.Future<?>> acks = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      acks.add(p.send(new ProducerRecord<>(topic, bytes(prefix + i))));
    }
    for (var f : acks) {
      f.get(30, TimeUnit.SECONDS);
    }
  }

  /** The exception a send fails with (the future's cause), or an AssertionError if it worked. */
  private static Throwable sendError(KafkaProducer<byte[], byte[]> p, String topic) {
    ExecutionException e =
        assertThrows(
            ExecutionException.class,
            () -> p.send(new ProducerRecord<>(topic, bytes("refused"))).get(30, TimeUnit.SECONDS),
            "send to " + topic + " should fail");
    return e.getCause();
  }

  /** Whether t or one of its causes is an instance of type. */
  private static boolean causedBy(Throwable t, Class<? extends Throwable> type) {
    for (Throwable c = t; c != null; c = c.getCause()) {
      if (type.isInstance(c)) {
        return true;
      }
    }
    return false;
  }

  /** Polls until poll() throws, and returns what it threw. */
  private static RuntimeException pollError(KafkaConsumer<byte[], byte[]> c, Duration within) {
    Instant end = Instant.now().plus(within);
    while (Instant.now().isBefore(end)) {
      try {
        c.poll(Duration.ofMillis(200));
      } catch (RuntimeException e) {
        return e;
      }
    }
    throw new AssertionError("poll() raised nothing within " + within);
  }

  /**
   * Runs check until it passes, with fresh clients each time: an ACL reaches the authorizer
   * through the metadata log, a moment after CreateAcls or DeleteAcls answers.
   */
  private static void eventually(String what, Callable<Void> check) throws Exception {
    Instant end = Instant.now().plus(ACL_PROPAGATION);
    while (true) {
      try {
        check.call();
        return;
      } catch (Exception | AssertionError e) {
        if (Instant.now().isAfter(end)) {
          throw new AssertionError("still failing after " + ACL_PROPAGATION + ": " + what, e);
        }
        Thread.sleep(200);
      }
    }
  }

  private KafkaConsumer<byte[], byte[]> consumer(String user, Object... overrides) {
    return Clients.consumer(broker, with(login(user), overrides));
  }

  private KafkaProducer<byte[], byte[]> producer(String user, Object... overrides) {
    return Clients.producer(broker, with(login(user), overrides));
  }

  /** kafka-acls with admin's login. */
  private ToolResult kafkaAcls(String... args) throws Exception {
    List<String> all = new ArrayList<>(List.of("--bootstrap-server", sasl, "--command-config",
        adminConfig.toString()));
    all.addAll(List.of(args));
    ToolResult r =
        SaslCompatTest.runTool("org.apache.kafka.tools.AclCommand", null, all.toArray(String[]::new));
    assertEquals(0, r.exitCode(), "kafka-acls " + String.join(" ", args) + "\n" + r);
    return r;
  }

  private static List<String> values(List<ConsumerRecord<byte[], byte[]>> records) {
    return records.stream()
        .map(r -> new String(r.value(), StandardCharsets.UTF_8))
        .collect(Collectors.toList());
  }

  private static List<String> expected(String prefix, int n) {
    return IntStream.range(0, n).mapToObj(i -> prefix + i).collect(Collectors.toList());
  }

  // ---- tests --------------------------------------------------------------------------------

  @Test
  void withoutAclsAliceIsRefusedAndSeesNothing() throws Exception {
    Admin admin = adminAs(ADMIN);
    Clients.createTopic(admin, "secret", 1);
    try (KafkaProducer<byte[], byte[]> p = producer(ADMIN)) {
      sendAll(p, "secret", 3, "s");
    }

    // A producer without idempotence (an idempotent one first needs a producer id: see
    // idempotentProducerNeedsIdempotentWriteOrWriteOnATopic).
    try (KafkaProducer<byte[], byte[]> p =
        producer("alice", ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, false)) {
      Throwable e = sendError(p, "secret");
      assertInstanceOf(TopicAuthorizationException.class, e, "alice's send: " + e);
      assertEquals(Set.of("secret"), ((TopicAuthorizationException) e).unauthorizedTopics());
    }

    Admin alice = adminAs("alice");
    assertEquals(
        Set.of(), alice.listTopics().names().get(20, TimeUnit.SECONDS), "alice's listTopics");
    assertTrue(
        admin.listTopics().names().get(20, TimeUnit.SECONDS).contains("secret"),
        "admin's listTopics");
    ExecutionException describe =
        assertThrows(
            ExecutionException.class,
            () -> alice.describeTopics(List.of("secret")).allTopicNames().get(20, TimeUnit.SECONDS));
    assertInstanceOf(TopicAuthorizationException.class, describe.getCause());

    // DESCRIBE on the topic (so that the consumer's metadata does not fail first): a group
    // member is refused on the group, then, with READ on the group, on the topic's fetch.
    createAcls(allow("alice", ResourceType.TOPIC, "secret", AclOperation.DESCRIBE));
    eventually(
        "alice sees secret with DESCRIBE",
        () -> {
          assertEquals(Set.of("secret"), alice.listTopics().names().get(20, TimeUnit.SECONDS));
          return null;
        });
    try (KafkaConsumer<byte[], byte[]> c =
        consumer("alice", ConsumerConfig.GROUP_ID_CONFIG, "secret-readers")) {
      c.subscribe(List.of("secret"));
      RuntimeException e = pollError(c, Duration.ofSeconds(20));
      assertInstanceOf(GroupAuthorizationException.class, e, "poll without a group ACL: " + e);
      assertEquals("secret-readers", ((GroupAuthorizationException) e).groupId());
    }
    createAcls(allow("alice", ResourceType.GROUP, "secret-readers", AclOperation.READ));
    eventually(
        "alice's consumer fails on the topic once she may read the group",
        () -> {
          try (KafkaConsumer<byte[], byte[]> c =
              consumer("alice", ConsumerConfig.GROUP_ID_CONFIG, "secret-readers")) {
            c.subscribe(List.of("secret"));
            RuntimeException e = pollError(c, Duration.ofSeconds(10));
            assertInstanceOf(TopicAuthorizationException.class, e, "poll with READ on the group: " + e);
            assertEquals(Set.of("secret"), ((TopicAuthorizationException) e).unauthorizedTopics());
          }
          return null;
        });
  }

  @Test
  void kafkaAclsAddsListsDeniesAndRemoves() throws Exception {
    Clients.createTopic(adminAs(ADMIN), "orders", 1);

    ToolResult add =
        kafkaAcls("--add", "--allow-principal", "User:alice", "--operation", "Write",
            "--topic", "orders");
    assertTrue(
        add.stdout().contains("ResourcePattern(resourceType=TOPIC, name=orders, patternType=LITERAL)"),
        "kafka-acls --add output\n" + add);
    // With WRITE on one topic an idempotent producer (the default) may get a producer id.
    eventually(
        "alice produces to orders",
        () -> {
          try (KafkaProducer<byte[], byte[]> p = producer("alice")) {
            sendAll(p, "orders", 5, "o");
          }
          return null;
        });

    kafkaAcls("--add", "--allow-principal", "User:alice", "--operation", "Read",
        "--topic", "ord", "--resource-pattern-type", "prefixed");
    kafkaAcls("--add", "--allow-principal", "User:alice", "--operation", "Read",
        "--group", "orders-app");

    ToolResult list = kafkaAcls("--list");
    for (String want :
        List.of(
            "ResourcePattern(resourceType=TOPIC, name=orders, patternType=LITERAL)",
            "ResourcePattern(resourceType=TOPIC, name=ord, patternType=PREFIXED)",
            "ResourcePattern(resourceType=GROUP, name=orders-app, patternType=LITERAL)",
            "(principal=User:alice, host=*, operation=WRITE, permissionType=ALLOW)",
            "(principal=User:alice, host=*, operation=READ, permissionType=ALLOW)")) {
      assertTrue(list.stdout().contains(want), "kafka-acls --list should show " + want + "\n" + list);
    }
    ToolResult listTopic = kafkaAcls("--list", "--topic", "orders");
    assertFalse(
        listTopic.stdout().contains("patternType=PREFIXED"),
        "--list --topic orders shows only that literal resource\n" + listTopic);

    // READ through the prefixed ACL and the group ACL.
    eventually(
        "alice reads orders in group orders-app",
        () -> {
          try (KafkaConsumer<byte[], byte[]> c =
              consumer("alice", ConsumerConfig.GROUP_ID_CONFIG, "orders-app")) {
            c.subscribe(List.of("orders"));
            assertEquals(expected("o", 5), values(Clients.pollUntil(c, 5, Duration.ofSeconds(10))));
            c.commitSync(Duration.ofSeconds(10));
          }
          return null;
        });

    // A DENY wins over the prefixed ALLOW.
    kafkaAcls("--add", "--deny-principal", "User:alice", "--operation", "Read", "--topic", "orders");
    eventually(
        "the DENY refuses alice's fetch",
        () -> {
          try (KafkaConsumer<byte[], byte[]> c = consumer("alice")) {
            c.assign(List.of(new TopicPartition("orders", 0)));
            c.seekToBeginning(c.assignment());
            RuntimeException e = pollError(c, Duration.ofSeconds(10));
            assertInstanceOf(TopicAuthorizationException.class, e, "fetch with the DENY: " + e);
          }
          return null;
        });

    kafkaAcls("--remove", "--deny-principal", "User:alice", "--operation", "Read",
        "--topic", "orders", "--force");
    eventually(
        "alice reads again once the DENY is gone",
        () -> {
          try (KafkaConsumer<byte[], byte[]> c = consumer("alice")) {
            c.assign(List.of(new TopicPartition("orders", 0)));
            c.seekToBeginning(c.assignment());
            assertEquals(expected("o", 5), values(Clients.pollUntil(c, 5, Duration.ofSeconds(10))));
          }
          return null;
        });

    kafkaAcls("--remove", "--allow-principal", "User:alice", "--operation", "Write",
        "--topic", "orders", "--force");
    eventually(
        "alice's send is refused once WRITE is removed",
        () -> {
          try (KafkaProducer<byte[], byte[]> p =
              producer("alice", ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, false)) {
            Throwable e = sendError(p, "orders");
            assertInstanceOf(TopicAuthorizationException.class, e, "send after --remove: " + e);
          }
          return null;
        });
    ToolResult after = kafkaAcls("--list", "--topic", "orders");
    assertFalse(
        after.stdout().contains("operation=WRITE") || after.stdout().contains("permissionType=DENY"),
        "kafka-acls --list --topic orders after the removals\n" + after);
  }

  @Test
  void idempotentProducerNeedsIdempotentWriteOrWriteOnATopic() throws Exception {
    Clients.createTopic(adminAs(ADMIN), "idem", 1);
    // DESCRIBE only: the topic's metadata is visible, but InitProducerId is refused.
    createAcls(allow("ivan", ResourceType.TOPIC, "idem", AclOperation.DESCRIBE));
    eventually(
        "ivan's idempotent producer fails with ClusterAuthorizationException",
        () -> {
          try (KafkaProducer<byte[], byte[]> p =
              producer("ivan", ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, true)) {
            Throwable e = sendError(p, "idem");
            assertTrue(causedBy(e, ClusterAuthorizationException.class), "send: " + e);
          }
          return null;
        });

    // IDEMPOTENT_WRITE on the cluster: the producer id is granted, the topic still refuses.
    kafkaAcls("--add", "--allow-principal", "User:ivan", "--operation", "IdempotentWrite",
        "--cluster");
    eventually(
        "with IDEMPOTENT_WRITE the refusal is the topic's",
        () -> {
          try (KafkaProducer<byte[], byte[]> p =
              producer("ivan", ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, true)) {
            Throwable e = sendError(p, "idem");
            assertTrue(causedBy(e, TopicAuthorizationException.class), "send: " + e);
          }
          return null;
        });

    // WRITE on a topic alone is enough for a producer id too (KIP-679).
    kafkaAcls("--remove", "--allow-principal", "User:ivan", "--operation", "IdempotentWrite",
        "--cluster", "--force");
    createAcls(allow("ivan", ResourceType.TOPIC, "idem", AclOperation.WRITE));
    eventually(
        "ivan produces idempotently with WRITE on the topic",
        () -> {
          try (KafkaProducer<byte[], byte[]> p =
              producer("ivan", ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, true)) {
            sendAll(p, "idem", 3, "i");
          }
          return null;
        });
  }

  @Test
  void transactionalProducerNeedsWriteOnItsTransactionalId() throws Exception {
    Clients.createTopic(adminAs(ADMIN), "txn-orders", 1);
    createAcls(allow("tina", ResourceType.TOPIC, "txn-orders", AclOperation.WRITE));
    eventually(
        "tina's initTransactions is refused",
        () -> {
          try (KafkaProducer<byte[], byte[]> p =
              producer("tina", ProducerConfig.TRANSACTIONAL_ID_CONFIG, "tina-tx")) {
            RuntimeException e = assertThrows(RuntimeException.class, p::initTransactions);
            assertInstanceOf(TransactionalIdAuthorizationException.class, e, "initTransactions: " + e);
          }
          return null;
        });

    kafkaAcls("--add", "--allow-principal", "User:tina", "--operation", "Write",
        "--transactional-id", "tina-tx");
    eventually(
        "tina commits a transaction",
        () -> {
          try (KafkaProducer<byte[], byte[]> p =
              producer("tina", ProducerConfig.TRANSACTIONAL_ID_CONFIG, "tina-tx")) {
            p.initTransactions();
            p.beginTransaction();
            sendAll(p, "txn-orders", 3, "t");
            p.commitTransaction();
          }
          return null;
        });
    try (KafkaConsumer<byte[], byte[]> c =
        consumer(ADMIN, ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed")) {
      c.assign(List.of(new TopicPartition("txn-orders", 0)));
      c.seekToBeginning(c.assignment());
      assertEquals(expected("t", 3), values(Clients.pollUntil(c, 3, Duration.ofSeconds(20))));
    }
  }
}
