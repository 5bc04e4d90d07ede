package dev.spate.bench;

import java.io.BufferedWriter;
import java.io.OutputStreamWriter;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.HashMap;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * Steady acks=all idempotent producer for the failover measurement of bench/cluster_bench.py.
 *
 * <pre>
 *   FailoverProbe --bootstrap B --topic T --partitions P --rate R --value-bytes N [--prop k=v]...
 * </pre>
 *
 * Sends R records per second to EACH of partitions 0..P-1 (explicit partition, so leader
 * changes do not re-route records), until stdin is closed or reads a line "stop"; then flushes
 * (up to 60 s) and exits. Prints one line per outcome on stdout, flushed per line:
 *
 * <pre>
 *   A partition seq send_us ack_us offset      (acknowledged)
 *   E partition seq send_us ack_us error        (failed definitively)
 *   READY                                        (producer created, first send follows)
 * </pre>
 *
 * Times are microseconds since the Unix epoch (CLOCK_REALTIME via Instant.now()), so the
 * driver can compare them with its own time.time() of the kill. send_us is taken right before
 * send(), ack_us at the start of the callback (the producer's I/O thread).
 *
 * Producer settings: acks=all, enable.idempotence=true, plus --prop overrides (the driver
 * passes its retry/reconnect backoffs; see bench/README-cluster.md).
 */
public final class FailoverProbe {

    private FailoverProbe() {}

    static long nowUs() {
        Instant i = Instant.now();
        return i.getEpochSecond() * 1_000_000L + i.getNano() / 1_000;
    }

    public static void main(String[] args) throws Exception {
        Map<String, String> opts = new HashMap<>();
        Properties props = new Properties();
        for (int i = 0; i + 1 < args.length; i += 2) {
            if (args[i].equals("--prop")) {
                String kv = args[i + 1];
                int eq = kv.indexOf('=');
                props.put(kv.substring(0, eq), kv.substring(eq + 1));
            } else {
                opts.put(args[i].replaceFirst("^--", ""), args[i + 1]);
            }
        }
        String bootstrap = opts.get("bootstrap");
        String topic = opts.get("topic");
        int partitions = Integer.parseInt(opts.getOrDefault("partitions", "1"));
        int rate = Integer.parseInt(opts.getOrDefault("rate", "1000"));
        int valueBytes = Integer.parseInt(opts.getOrDefault("value-bytes", "100"));

        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.CLIENT_ID_CONFIG, "spate-failover-probe");
        p.putAll(props);

        BufferedWriter out = new BufferedWriter(new OutputStreamWriter(System.out, StandardCharsets.US_ASCII), 1 << 16);
        Object outLock = new Object();
        AtomicBoolean stop = new AtomicBoolean(false);
        Thread stdin = new Thread(() -> {
            try {
                java.io.BufferedReader r = new java.io.BufferedReader(new java.io.InputStreamReader(System.in));
                String line;
                while ((line = r.readLine()) != null) {
                    if (line.trim().equals("stop")) {
                        break;
                    }
                }
            } catch (Exception e) {
                // treat as stop
            }
            stop.set(true);
        }, "stdin-watch");
        stdin.setDaemon(true);
        stdin.start();

        byte[] value = new byte[valueBytes];
        long[] seq = new long[partitions];
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p)) {
            synchronized (outLock) {
                out.write("READY\n");
                out.flush();
            }
            long intervalNs = 1_000_000_000L / rate;
            long next = System.nanoTime();
            while (!stop.get()) {
                for (int part = 0; part < partitions; part++) {
                    final int fp = part;
                    final long s = seq[part]++;
                    final long sendUs = nowUs();
                    producer.send(new ProducerRecord<>(topic, part, null, value), (md, ex) -> {
                        long ackUs = nowUs();
                        String line = ex == null
                            ? "A " + fp + " " + s + " " + sendUs + " " + ackUs + " " + md.offset() + "\n"
                            : "E " + fp + " " + s + " " + sendUs + " " + ackUs + " "
                                + ex.getClass().getSimpleName() + ":" + String.valueOf(ex.getMessage()).replace('\n', ' ') + "\n";
                        synchronized (outLock) {
                            try {
                                out.write(line);
                                out.flush();
                            } catch (java.io.IOException ioe) {
                                stop.set(true);
                            }
                        }
                    });
                }
                next += intervalNs;
                long sleep = next - System.nanoTime();
                if (sleep > 0) {
                    TimeUnit.NANOSECONDS.sleep(sleep);
                } else if (sleep < -1_000_000_000L) {
                    next = System.nanoTime(); // fell far behind (send() blocked): do not burst
                }
            }
            producer.flush();
        }
        synchronized (outLock) {
            out.write("DONE\n");
            out.flush();
        }
    }
}
