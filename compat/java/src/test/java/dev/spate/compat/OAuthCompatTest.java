package dev.spate.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.Signature;
import java.security.interfaces.RSAPublicKey;
import java.time.Duration;
import java.util.Arrays;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import javax.security.auth.callback.Callback;
import javax.security.auth.callback.UnsupportedCallbackException;
import javax.security.auth.login.AppConfigurationEntry;
import org.apache.kafka.clients.CommonClientConfigs;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.SaslConfigs;
import org.apache.kafka.common.errors.SaslAuthenticationException;
import org.apache.kafka.common.security.auth.AuthenticateCallbackHandler;
import org.apache.kafka.common.security.oauthbearer.OAuthBearerToken;
import org.apache.kafka.common.security.oauthbearer.OAuthBearerTokenCallback;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.Timeout;

/**
 * OAUTHBEARER with the Java client: a login callback handler hands the client an RS256 JWT
 * signed by a key the test makes; the broker validates it against that key's JWKS (a file).
 * A valid token produces and consumes; a token for another audience gets
 * SaslAuthenticationException.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class OAuthCompatTest {
  /** The token the next login presents (one client at a time in this class). */
  static volatile String nextToken = "";

  private SpateBroker broker;
  private Path dir;
  private KeyPair key;
  private String oauth;

  @BeforeAll
  void startBroker() throws Exception {
    if (!SpateBroker.binaryPresent()) {
      return;
    }
    KeyPairGenerator gen = KeyPairGenerator.getInstance("RSA");
    gen.initialize(2048);
    key = gen.generateKeyPair();
    dir = Files.createTempDirectory("spate-oauth-");
    Path jwks = dir.resolve("jwks.json");
    Files.writeString(jwks, jwks((RSAPublicKey) key.getPublic(), "k1"));
    oauth = "127.0.0.1:" + SpateBroker.freePort();
    broker =
        SpateBroker.start(
            "oauth",
            port ->
                List.of(
                    "auto.create.topics.enable=false",
                    "listeners=PLAINTEXT://127.0.0.1:" + port + ",OAUTH://" + oauth,
                    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,OAUTH:SASL_PLAINTEXT",
                    "inter.broker.listener.name=PLAINTEXT",
                    "listener.name.oauth.sasl.enabled.mechanisms=OAUTHBEARER",
                    "sasl.oauthbearer.jwks.endpoint.url=file://" + jwks,
                    "sasl.oauthbearer.expected.audience=spate",
                    "sasl.oauthbearer.expected.issuer=https://issuer.test"),
            List.of());
  }

  @BeforeEach
  void requireBroker() {
    SpateBroker.binaryOrSkip();
  }

  @AfterAll
  void stop() throws Exception {
    if (broker != null) {
      broker.close();
    }
    if (dir != null) {
      try (var walk = Files.walk(dir)) {
        walk.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
      }
    }
  }

  private static String b64(byte[] bytes) {
    return Base64.getUrlEncoder().withoutPadding().encodeToString(bytes);
  }

  /** Big-endian bytes of a positive integer, without the sign byte (RFC 7518 6.3.1). */
  private static byte[] unsigned(BigInteger n) {
    byte[] b = n.toByteArray();
    return b[0] == 0 ? Arrays.copyOfRange(b, 1, b.length) : b;
  }

  private static String jwks(RSAPublicKey pub, String kid) {
    return "{\"keys\":[{\"kty\":\"RSA\",\"use\":\"sig\",\"alg\":\"RS256\",\"kid\":\"" + kid
        + "\",\"n\":\"" + b64(unsigned(pub.getModulus())) + "\",\"e\":\""
        + b64(unsigned(pub.getPublicExponent())) + "\"}]}";
  }

  private String jwt(String sub, String aud, long ttlSeconds) throws Exception {
    long now = System.currentTimeMillis() / 1000;
    String header = "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"k1\"}";
    String claims = "{\"sub\":\"" + sub + "\",\"aud\":\"" + aud
        + "\",\"iss\":\"https://issuer.test\",\"iat\":" + now + ",\"exp\":" + (now + ttlSeconds)
        + "}";
    String signing = b64(header.getBytes(StandardCharsets.UTF_8)) + "."
        + b64(claims.getBytes(StandardCharsets.UTF_8));
    Signature rsa = Signature.getInstance("SHA256withRSA");
    rsa.initSign(key.getPrivate());
    rsa.update(signing.getBytes(StandardCharsets.US_ASCII));
    return signing + "." + b64(rsa.sign());
  }

  /** Hands the client {@link #nextToken}, as an identity provider's login handler would. */
  public static class TokenHandler implements AuthenticateCallbackHandler {
    @Override
    public void configure(
        Map<String, ?> configs, String mechanism, List<AppConfigurationEntry> entries) {}

    @Override
    public void close() {}

    @Override
    public void handle(Callback[] callbacks) throws UnsupportedCallbackException {
      for (Callback c : callbacks) {
        if (!(c instanceof OAuthBearerTokenCallback cb)) {
          throw new UnsupportedCallbackException(c);
        }
        String value = nextToken;
        long now = System.currentTimeMillis();
        cb.token(
            new OAuthBearerToken() {
              @Override
              public String value() {
                return value;
              }

              @Override
              public Set<String> scope() {
                return Set.of();
              }

              @Override
              public long lifetimeMs() {
                return now + 600_000;
              }

              @Override
              public String principalName() {
                return "alice";
              }

              @Override
              public Long startTimeMs() {
                return now;
              }
            });
      }
    }
  }

  private Map<String, Object> client() {
    Map<String, Object> c = new HashMap<>();
    c.put(CommonClientConfigs.BOOTSTRAP_SERVERS_CONFIG, oauth);
    c.put(CommonClientConfigs.SECURITY_PROTOCOL_CONFIG, "SASL_PLAINTEXT");
    c.put(SaslConfigs.SASL_MECHANISM, "OAUTHBEARER");
    c.put(
        SaslConfigs.SASL_JAAS_CONFIG,
        "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;");
    c.put(SaslConfigs.SASL_LOGIN_CALLBACK_HANDLER_CLASS, TokenHandler.class.getName());
    return c;
  }

  @Test
  void aValidTokenProducesAndConsumes() throws Exception {
    nextToken = jwt("alice", "spate", 600);
    String topic = "oauth-orders";
    try (Admin admin = Admin.create(client())) {
      admin.createTopics(List.of(new NewTopic(topic, 1, (short) 1))).all().get(30, TimeUnit.SECONDS);
    }
    Map<String, Object> p = client();
    p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
    p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
    try (KafkaProducer<String, String> producer = new KafkaProducer<>(p)) {
      for (int i = 0; i < 10; i++) {
        producer.send(new ProducerRecord<>(topic, "k" + i, "v" + i)).get(30, TimeUnit.SECONDS);
      }
    }
    Map<String, Object> c = client();
    c.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
    c.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
    int seen = 0;
    try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(c)) {
      TopicPartition tp = new TopicPartition(topic, 0);
      consumer.assign(List.of(tp));
      consumer.seekToBeginning(List.of(tp));
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
      while (seen < 10 && System.nanoTime() < deadline) {
        for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(500))) {
          assertEquals("v" + r.offset(), r.value());
          seen++;
        }
      }
    }
    assertEquals(10, seen, "every record read back over OAUTHBEARER");
  }

  @Test
  void aTokenForAnotherAudienceIsRefused() throws Exception {
    nextToken = jwt("alice", "elsewhere", 600);
    Map<String, Object> c = client();
    c.put(CommonClientConfigs.REQUEST_TIMEOUT_MS_CONFIG, 10_000);
    c.put(CommonClientConfigs.DEFAULT_API_TIMEOUT_MS_CONFIG, 15_000);
    try (Admin admin = Admin.create(c)) {
      ExecutionException e =
          assertThrows(
              ExecutionException.class,
              () -> admin.describeCluster().nodes().get(30, TimeUnit.SECONDS));
      assertInstanceOf(SaslAuthenticationException.class, e.getCause(), e.toString());
      assertTrue(
          e.getCause().getMessage().contains("invalid_token"),
          "Kafka's OAUTHBEARER failure names the RFC 7628 status: " + e.getCause().getMessage());
    }
  }
}
