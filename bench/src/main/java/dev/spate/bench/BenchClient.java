package dev.spate.bench;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * Small helper used by bench/run.sh against both brokers (Apache Kafka and Spate).
 *
 * <pre>
 *   create-topic --bootstrap HOST:PORT --topic T[,T2...] --partitions P [--timeout-ms MS]
 *       Creates each T with P partitions and replication factor 1 via Admin.createTopics; if the
 *       broker does not implement CreateTopics, falls back to broker-side auto-creation
 *       (a metadata request for T). Then waits until metadata shows P partitions, each
 *       with a leader. Exits non-zero if that does not happen before the deadline.
 *
 *   consume --bootstrap HOST:PORT --topic T --records N [--timeout-ms MS] [--prop k=v ...]
 *       Group-less consumer: KafkaConsumer.assign(all partitions of T) + seekToBeginning,
 *       polls until N records have been received. Prints one line
 *         RESULT records=.. bytes=.. elapsed_ms=.. records_per_sec=.. mb_per_sec=.. first_record_ms=..
 *       where bytes = sum of serialized key + value sizes (like ConsumerPerformance),
 *       MB = 1024*1024 bytes (like ProducerPerformance/ConsumerPerformance), and elapsed
 *       runs from just before the first poll() to the poll() that returned the N-th record.
 * </pre>
 */
public final class BenchClient {

    private BenchClient() {}

    public static void main(String[] args) throws Exception {
        if (args.length == 0) {
            usage("missing command");
        }
        Map<String, String> opts = new HashMap<>();
        List<String> props = new ArrayList<>();
        for (int i = 1; i < args.length; i++) {
            String a = args[i];
            if (!a.startsWith("--") || i + 1 >= args.length) {
                usage("bad argument: " + a);
            }
            String v = args[++i];
            if (a.equals("--prop")) {
                props.add(v);
            } else {
                opts.put(a.substring(2), v);
            }
        }
        switch (args[0]) {
            case "create-topic":
                System.exit(createTopic(opts));
                break;
            case "consume":
                System.exit(consume(opts, props));
                break;
            default:
                usage("unknown command " + args[0]);
        }
    }

    private static void usage(String why) {
        System.err.println("BenchClient: " + why);
        System.err.println("usage: create-topic --bootstrap B --topic T[,T2..] --partitions P [--timeout-ms MS]");
        System.err.println("       consume --bootstrap B --topic T --records N [--timeout-ms MS] [--prop k=v]...");
        System.exit(2);
    }

    private static String req(Map<String, String> opts, String key) {
        String v = opts.get(key);
        if (v == null) {
            usage("missing --" + key);
        }
        return v;
    }

    private static int createTopic(Map<String, String> opts) throws Exception {
        String bootstrap = req(opts, "bootstrap");
        List<String> topics = new ArrayList<>();
        for (String t : req(opts, "topic").split(",")) {
            if (!t.isEmpty()) {
                topics.add(t);
            }
        }
        int partitions = Integer.parseInt(req(opts, "partitions"));
        long timeoutMs = Long.parseLong(opts.getOrDefault("timeout-ms", "60000"));
        long deadline = System.currentTimeMillis() + timeoutMs;

        Properties ap = new Properties();
        ap.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        ap.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
        ap.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "20000");
        try (Admin admin = Admin.create(ap)) {
            for (String topic : topics) {
                NewTopic nt = new NewTopic(topic, partitions, (short) 1);
                while (System.currentTimeMillis() < deadline) {
                    try {
                        admin.createTopics(Collections.singleton(nt)).all().get(20, TimeUnit.SECONDS);
                        System.err.println("create-topic: created " + topic + " via CreateTopics");
                        break;
                    } catch (ExecutionException e) {
                        Throwable c = e.getCause();
                        if (c instanceof TopicExistsException) {
                            System.err.println("create-topic: " + topic + " already exists");
                            break;
                        }
                        if (c instanceof org.apache.kafka.common.errors.RetriableException
                                && !(c instanceof org.apache.kafka.common.errors.UnsupportedVersionException)) {
                            System.err.println("create-topic: retrying after " + c);
                            Thread.sleep(500);
                            continue;
                        }
                        System.err.println("create-topic: CreateTopics failed for " + topic + " (" + c
                                + "), falling back to broker auto-creation");
                        break;
                    } catch (java.util.concurrent.TimeoutException e) {
                        System.err.println("create-topic: CreateTopics timed out, retrying");
                    }
                }
            }
        }

        // Wait for (or, without CreateTopics, trigger auto-creation through) metadata.
        Properties cp = consumerProps(bootstrap, Collections.emptyList());
        cp.put(ConsumerConfig.ALLOW_AUTO_CREATE_TOPICS_CONFIG, "true");
        try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(cp)) {
            for (String topic : topics) {
                boolean ready = false;
                while (!ready && System.currentTimeMillis() < deadline) {
                    try {
                        List<PartitionInfo> infos = c.partitionsFor(topic, Duration.ofSeconds(5));
                        int withLeader = 0;
                        if (infos != null) {
                            for (PartitionInfo pi : infos) {
                                if (pi.leader() != null && !pi.leader().isEmpty()) {
                                    withLeader++;
                                }
                            }
                        }
                        if (infos != null && infos.size() == partitions && withLeader == partitions) {
                            System.err.println("create-topic: " + topic + " ready with " + partitions
                                    + " partition(s)");
                            ready = true;
                            continue;
                        }
                        if (infos != null && infos.size() > 0 && infos.size() != partitions) {
                            System.err.println("create-topic: " + topic + " has " + infos.size()
                                    + " partitions, expected " + partitions);
                            return 1;
                        }
                    } catch (org.apache.kafka.common.errors.TimeoutException e) {
                        // not there yet
                    }
                    Thread.sleep(200);
                }
                if (!ready) {
                    System.err.println("create-topic: " + topic + " not ready before deadline");
                    return 1;
                }
            }
        }
        return 0;
    }

    private static Properties consumerProps(String bootstrap, List<String> extra) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.CLIENT_ID_CONFIG, "spate-bench");
        for (String kv : extra) {
            int eq = kv.indexOf('=');
            if (eq <= 0) {
                usage("bad --prop " + kv);
            }
            p.put(kv.substring(0, eq), kv.substring(eq + 1));
        }
        return p;
    }

    private static int consume(Map<String, String> opts, List<String> extra) throws Exception {
        String bootstrap = req(opts, "bootstrap");
        String topic = req(opts, "topic");
        long want = Long.parseLong(req(opts, "records"));
        long timeoutMs = Long.parseLong(opts.getOrDefault("timeout-ms", "300000"));

        Properties p = consumerProps(bootstrap, extra);
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(p)) {
            List<PartitionInfo> infos = consumer.partitionsFor(topic, Duration.ofSeconds(30));
            if (infos == null || infos.isEmpty()) {
                System.err.println("consume: no partitions for " + topic);
                return 1;
            }
            List<TopicPartition> tps = new ArrayList<>();
            for (PartitionInfo pi : infos) {
                tps.add(new TopicPartition(topic, pi.partition()));
            }
            consumer.assign(tps);
            consumer.seekToBeginning(tps);

            long records = 0;
            long bytes = 0;
            long start = System.nanoTime();
            long deadline = start + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
            long firstRecord = -1;
            long end = start;
            while (records < want) {
                if (System.nanoTime() > deadline) {
                    System.err.println("consume: deadline reached after " + records + " of " + want
                            + " records");
                    return 1;
                }
                ConsumerRecords<byte[], byte[]> batch = consumer.poll(Duration.ofMillis(1000));
                if (batch.isEmpty()) {
                    continue;
                }
                if (firstRecord < 0) {
                    firstRecord = System.nanoTime();
                }
                for (ConsumerRecord<byte[], byte[]> r : batch) {
                    records++;
                    bytes += Math.max(0, r.serializedKeySize()) + Math.max(0, r.serializedValueSize());
                }
                end = System.nanoTime();
            }
            double secs = (end - start) / 1e9;
            double mb = bytes / (1024.0 * 1024.0);
            System.out.printf(java.util.Locale.ROOT,
                    "RESULT records=%d bytes=%d elapsed_ms=%.1f records_per_sec=%.1f mb_per_sec=%.2f first_record_ms=%.1f%n",
                    records, bytes, secs * 1000.0, records / secs, mb / secs,
                    (firstRecord - start) / 1e6);
            return 0;
        }
    }
}
