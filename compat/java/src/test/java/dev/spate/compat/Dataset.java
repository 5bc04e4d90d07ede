package dev.spate.compat;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.record.TimestampType;
import org.apache.kafka.common.utils.Utils;

/** Deterministic keyed records with headers and explicit timestamps. */
final class Dataset {
  private Dataset() {}

  record Rec(int idx, byte[] key, byte[] value, long timestamp, List<Header> headers) {
    /** Kafka's default partitioner for keyed records (BuiltInPartitioner.partitionForKey). */
    int expectedPartition(int numPartitions) {
      return Utils.toPositive(Utils.murmur2(key)) % numPartitions;
    }

    ProducerRecord<byte[], byte[]> toProducerRecord(String topic) {
      return new ProducerRecord<>(topic, null, timestamp, key, value, headers);
    }

    @Override
    public String toString() {
      return "Rec#" + idx + "(key=" + new String(key, StandardCharsets.UTF_8) + ", ts=" + timestamp + ")";
    }
  }

  /**
   * n records; record i has key "key-(i % 61)" (so keys repeat and per-key order matters), a value
   * of varying size (some empty, some null, some several KB), 1-3 headers (every 10th has a null-valued header
   * and a duplicate header key) and timestamp baseTs + i * stepMs.
   */
  static List<Rec> generate(int n, long baseTs, long stepMs) {
    Random rnd = new Random(42);
    List<Rec> out = new ArrayList<>(n);
    for (int i = 0; i < n; i++) {
      byte[] key = ("key-" + (i % 61)).getBytes(StandardCharsets.UTF_8);
      byte[] value;
      if (i % 50 == 7) {
        value = new byte[0];
      } else if (i % 50 == 23) {
        value = null; // tombstone: null must stay null (not empty)
      } else {
        int size = (i % 37 == 0) ? 4000 + rnd.nextInt(4000) : 10 + rnd.nextInt(200);
        value = new byte[size];
        byte[] prefix = ("value-" + i + ":").getBytes(StandardCharsets.UTF_8);
        // compressible text-ish body with some randomness
        for (int j = 0; j < size; j++) {
          value[j] = (byte) ('a' + ((j * 7 + rnd.nextInt(3)) % 26));
        }
        System.arraycopy(prefix, 0, value, 0, Math.min(prefix.length, size));
      }
      List<Header> headers = new ArrayList<>();
      headers.add(new RecordHeader("idx", Integer.toString(i).getBytes(StandardCharsets.UTF_8)));
      if (i % 3 == 0) {
        headers.add(new RecordHeader("source", "spate-compat-java".getBytes(StandardCharsets.UTF_8)));
      }
      if (i % 10 == 0) {
        headers.add(new RecordHeader("nullable", null));
        headers.add(new RecordHeader("idx", new byte[] {(byte) i, 0, (byte) 0xff}));
      }
      out.add(new Rec(i, key, value, baseTs + i * stepMs, List.copyOf(headers)));
    }
    return out;
  }

  /** Asserts that the consumed record carries exactly the generated key, value, headers and ts. */
  static void assertRecord(Rec exp, ConsumerRecord<byte[], byte[]> act) {
    String where = exp + " at " + act.topic() + "-" + act.partition() + "@" + act.offset();
    assertArrayEquals(exp.key(), act.key(), "key of " + where);
    assertArrayEquals(exp.value(), act.value(), "value of " + where);
    assertEquals(exp.timestamp(), act.timestamp(), "timestamp of " + where);
    assertEquals(TimestampType.CREATE_TIME, act.timestampType(), "timestampType of " + where);
    Header[] got = act.headers().toArray();
    assertEquals(exp.headers().size(), got.length, "header count of " + where + ": " + Arrays.toString(got));
    for (int h = 0; h < got.length; h++) {
      assertEquals(exp.headers().get(h).key(), got[h].key(), "header " + h + " key of " + where);
      assertArrayEquals(exp.headers().get(h).value(), got[h].value(), "header " + h + " value of " + where);
    }
  }

  /** Index of the record, from its first (decimal) "idx" header. */
  static int idxOf(ConsumerRecord<byte[], byte[]> r) {
    for (Header x : r.headers().headers("idx")) {
      return Integer.parseInt(new String(x.value(), StandardCharsets.UTF_8));
    }
    throw new AssertionError("record without idx header: " + r);
  }
}
