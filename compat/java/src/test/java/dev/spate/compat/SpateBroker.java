package dev.spate.compat;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.IntFunction;
import java.util.stream.Stream;

/**
 * Starts the spate-broker binary on a free loopback port with a temporary data directory, waits for
 * the port with a deadline, can restart it (SIGTERM, then start again on the same dir and port), and
 * stops it on {@link #close()}.
 *
 * <p>Binary: env {@code SPATE_BROKER_BIN}, else system property {@code spate.broker.bin} (set by the
 * pom to {@code <repo>/target/debug/spate-broker}), else {@code ../../target/debug/spate-broker}
 * relative to the working directory. If it does not exist, the calling test is skipped.
 *
 * <p>The broker's stderr/stdout go to {@code target/broker-logs/<name>-<n>.log}; {@code RUST_LOG} is
 * inherited from the environment.
 */
public final class SpateBroker implements AutoCloseable {
  static final Duration START_DEADLINE = Duration.ofSeconds(30);
  static final Duration STOP_DEADLINE = Duration.ofSeconds(20);

  private final Path binary;
  private final String name;
  private final List<String> extraArgs;
  private final boolean listenFlag;
  private final Path dataDir;
  private final Path logDir;
  private final int port;
  private volatile Process process;
  private int starts;
  private Path currentLog;

  private SpateBroker(
      Path binary, String name, IntFunction<List<String>> settings, List<String> args)
      throws IOException {
    this.binary = binary;
    this.name = name;
    this.dataDir = Files.createTempDirectory("spate-" + name + "-");
    this.logDir = Paths.get(System.getProperty("spate.log.dir", "target/broker-logs"));
    Files.createDirectories(logDir);
    this.port = freePort();
    this.extraArgs = new ArrayList<>();
    List<String> resolved = settings.apply(port);
    // A `listeners` setting names the bootstrap listener itself; --listen would replace it.
    this.listenFlag = resolved.stream().noneMatch(s -> s.startsWith("listeners="));
    for (String s : resolved) {
      extraArgs.add("--set");
      extraArgs.add(s);
    }
    extraArgs.addAll(args);
    // if the test JVM dies (e.g. Surefire's fork timeout), do not leave a broker behind
    Runtime.getRuntime()
        .addShutdownHook(
            new Thread(
                () -> {
                  Process p = process;
                  if (p != null && p.isAlive()) {
                    p.destroyForcibly();
                  }
                },
                "spate-broker-reaper-" + name));
  }

  /** The configured binary path (absolute), whether or not it exists. */
  public static Path binaryPath() {
    String env = System.getenv("SPATE_BROKER_BIN");
    String prop = System.getProperty("spate.broker.bin");
    Path p;
    if (env != null && !env.isBlank()) {
      p = Paths.get(env);
    } else if (prop != null && !prop.isBlank()) {
      p = Paths.get(prop);
    } else {
      p = Paths.get("../../target/debug/spate-broker");
    }
    return p.toAbsolutePath().normalize();
  }

  public static boolean binaryPresent() {
    Path p = binaryPath();
    return Files.isRegularFile(p) && Files.isExecutable(p);
  }

  /** Resolves the binary; skips the current test (JUnit assumption) when it is missing. */
  public static Path binaryOrSkip() {
    Path p = binaryPath();
    assumeTrue(
        binaryPresent(),
        "spate-broker binary not found at "
            + p
            + " (build it with `cargo build -p spate-broker` or set SPATE_BROKER_BIN); skipping");
    return p;
  }

  /** Starts a broker (skipping the test if the binary is missing). Settings are "key=value". */
  public static SpateBroker start(String name, String... settings) throws Exception {
    return start(name, port -> List.of(settings), List.of());
  }

  /**
   * As {@link #start(String, String...)}, with the settings computed from the broker's port (a
   * {@code listeners=} setting then replaces {@code --listen} and must name that port on
   * 127.0.0.1, the address waited for and returned by {@link #bootstrap()}) and extra
   * command-line arguments such as {@code --add-scram}.
   */
  public static SpateBroker start(
      String name, IntFunction<List<String>> settings, List<String> args) throws Exception {
    SpateBroker b = new SpateBroker(binaryOrSkip(), name, settings, args);
    try {
      b.launch();
    } catch (Exception | Error e) {
      b.close();
      throw e;
    }
    return b;
  }

  public String bootstrap() {
    return "127.0.0.1:" + port;
  }

  public int port() {
    return port;
  }

  public Path dataDir() {
    return dataDir;
  }

  public Path currentLog() {
    return currentLog;
  }

  /** Graceful restart: SIGTERM, wait for exit (expect code 0), start again on the same dir/port. */
  public void restart() throws Exception {
    int code = stopGracefully();
    if (code != 0) {
      throw new AssertionError(
          "broker exited with code " + code + " after SIGTERM (expected 0); log: " + tail());
    }
    launch();
  }

  /** Crash restart: SIGKILL, then start again on the same dir/port. */
  public void crashRestart() throws Exception {
    if (process != null && process.isAlive()) {
      process.destroyForcibly();
      process.waitFor(STOP_DEADLINE.toMillis(), TimeUnit.MILLISECONDS);
    }
    launch();
  }

  private void launch() throws Exception {
    starts++;
    currentLog = logDir.resolve(name + "-" + starts + ".log");
    List<String> cmd = new ArrayList<>();
    cmd.add(binary.toString());
    if (listenFlag) {
      cmd.add("--listen");
      cmd.add("127.0.0.1:" + port);
    }
    cmd.add("--data-dir");
    cmd.add(dataDir.toString());
    cmd.addAll(extraArgs);
    ProcessBuilder pb = new ProcessBuilder(cmd);
    pb.redirectErrorStream(true);
    pb.redirectOutput(currentLog.toFile());
    process = pb.start();
    Instant deadline = Instant.now().plus(START_DEADLINE);
    while (true) {
      if (!process.isAlive()) {
        throw new IllegalStateException(
            "spate-broker exited with code "
                + process.exitValue()
                + " before accepting connections on "
                + bootstrap()
                + "; command: "
                + String.join(" ", cmd)
                + "; log tail:\n"
                + tail());
      }
      try (Socket s = new Socket()) {
        s.connect(new InetSocketAddress("127.0.0.1", port), 500);
        return;
      } catch (IOException notYet) {
        // not listening yet
      }
      if (Instant.now().isAfter(deadline)) {
        String t = tail();
        process.destroyForcibly();
        throw new IllegalStateException(
            "spate-broker did not accept connections on "
                + bootstrap()
                + " within "
                + START_DEADLINE
                + "; log tail:\n"
                + t);
      }
      Thread.sleep(50);
    }
  }

  /** SIGTERM (Process.destroy on Unix), wait with deadline, SIGKILL as fallback. Returns exit code. */
  public int stopGracefully() throws InterruptedException {
    if (process == null) {
      return 0;
    }
    if (!process.isAlive()) {
      return process.exitValue();
    }
    process.destroy();
    if (!process.waitFor(STOP_DEADLINE.toMillis(), TimeUnit.MILLISECONDS)) {
      process.destroyForcibly();
      process.waitFor(STOP_DEADLINE.toMillis(), TimeUnit.MILLISECONDS);
      throw new AssertionError(
          "broker did not exit within " + STOP_DEADLINE + " of SIGTERM; killed. log: " + tail());
    }
    return process.exitValue();
  }

  public boolean isAlive() {
    return process != null && process.isAlive();
  }

  /** Last lines of the current broker log, for failure messages. */
  public String tail() {
    if (currentLog == null) {
      return "";
    }
    try {
      List<String> lines = Files.readAllLines(currentLog, StandardCharsets.UTF_8);
      String t = String.join("\n", lines.subList(Math.max(0, lines.size() - 25), lines.size()));
      return t.length() > 6000 ? "..." + t.substring(t.length() - 6000) : t;
    } catch (IOException e) {
      return "(could not read " + currentLog + ": " + e + ")";
    }
  }

  @Override
  public void close() throws Exception {
    try {
      if (process != null && process.isAlive()) {
        process.destroy();
        if (!process.waitFor(STOP_DEADLINE.toMillis(), TimeUnit.MILLISECONDS)) {
          process.destroyForcibly();
          process.waitFor(STOP_DEADLINE.toMillis(), TimeUnit.MILLISECONDS);
        }
      }
    } finally {
      deleteRecursively(dataDir);
    }
  }

  static int freePort() throws IOException {
    try (ServerSocket s = new ServerSocket()) {
      s.setReuseAddress(true);
      s.bind(new InetSocketAddress("127.0.0.1", 0));
      return s.getLocalPort();
    }
  }

  private static void deleteRecursively(Path dir) {
    if (dir == null || !Files.exists(dir)) {
      return;
    }
    try (Stream<Path> walk = Files.walk(dir)) {
      walk.sorted(Comparator.reverseOrder())
          .forEach(
              p -> {
                try {
                  Files.deleteIfExists(p);
                } catch (IOException e) {
                  throw new UncheckedIOException(e);
                }
              });
    } catch (IOException | UncheckedIOException e) {
      // best effort
    }
  }
}
