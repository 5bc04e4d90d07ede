#!/usr/bin/env python3
"""Spate vs Apache Kafka, 3 brokers, RF 3, acks=all: throughput, latency and leader failover.

Driven by bench/cluster.sh (see bench/README-cluster.md). Needs root: every broker runs in a
network namespace of its own (spb-b1..3, 10.202.0.11-13 on a bridge spbbr0 - distinct from
the fault harness's spf-*/10.201.0.x so both can run on one machine), with the same ports for
both systems (Kafka listener 9092, controller/raft 9093). The clients run in the root
namespace and reach the brokers through the bridge.

Everything this script starts (brokers, tools, the probe, the namespaces) is stopped by pid /
name on exit, including Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import argparse
import atexit
import datetime as dt
import hashlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
BRIDGE = "spbbr0"
SUBNET = "10.202.0"
KAFKA_PORT = 9092
CTRL_PORT = 9093
HTTP_PORT = 9644
N = 3

# Failure-detection profiles. "tuned" is the same pair of values for both systems.
FD_PROFILES = {
    "default": {},  # both: broker.heartbeat.interval.ms=2000, broker.session.timeout.ms=9000
    "tuned": {"broker.heartbeat.interval.ms": "250", "broker.session.timeout.ms": "1000"},
    # tuned, plus faster metadata-quorum failure detection, for the case where the active
    # controller dies too. Kafka notices a dead quorum leader after controller.quorum.
    # fetch.timeout.ms (default 2000) and then waits a random election timeout; Spate's
    # followers wait a random 1-2x controller.quorum.election.timeout.ms (default 1000).
    "fast": {
        "spate": {"broker.heartbeat.interval.ms": "250", "broker.session.timeout.ms": "1000",
                  "controller.quorum.election.timeout.ms": "500"},
        "kafka": {"broker.heartbeat.interval.ms": "250", "broker.session.timeout.ms": "1000",
                  "controller.quorum.fetch.timeout.ms": "1000",
                  "controller.quorum.election.timeout.ms": "500"},
    },
}


def profile_settings(profile: str, system: str) -> dict[str, str]:
    """A profile's settings for one system (a profile may differ per system)."""
    fd = FD_PROFILES[profile]
    return fd.get(system, {}) if system in fd else fd

# Producer settings of the failover probe (Java client 4.4). Defaults would let the client
# back off up to 1 s between retries/reconnects (retry.backoff.max.ms, reconnect.backoff.max.ms),
# which would dominate a sub-2-s failover; 250 ms caps the client's share. Same for both systems.
PROBE_PROPS = ["retry.backoff.ms=50", "retry.backoff.max.ms=250",
               "reconnect.backoff.ms=50", "reconnect.backoff.max.ms=250",
               "request.timeout.ms=5000", "delivery.timeout.ms=120000", "linger.ms=0"]

def log(msg: str):
    print(f"[cluster-bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def sh(*args, check=True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), check=check, capture_output=True, text=True, **kw)


def uptime() -> str:
    return sh("uptime").stdout.strip()


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def wait_until(what, pred, timeout, interval=0.2):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            v = pred()
            if v:
                return v
        except Exception as e:  # noqa: BLE001
            last = e
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}" + (f" ({last})" if last else ""))


# ------------------------------------------------------------------ jars + classes
KAFKA_SH = REPO / "scripts" / "apache-kafka.sh"


def prepare_java(work: Path) -> str:
    """Compiles the bench's Java clients against the Kafka jars (fetched by scripts/apache-kafka.sh
    on first use) and returns the classpath of the tools."""
    global KAFKA_VERSION
    KAFKA_VERSION = sh(str(KAFKA_SH), "version").stdout.strip()
    r = subprocess.run([str(KAFKA_SH), "classpath"], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"scripts/apache-kafka.sh classpath failed:\n{r.stderr}")
    jars = r.stdout.strip()
    classes = work / "classes"
    classes.mkdir(exist_ok=True)
    src = BENCH / "src/main/java/dev/spate/bench"
    sh("javac", "-nowarn", "-cp", jars, "-d", str(classes),
       str(src / "BenchClient.java"), str(src / "FailoverProbe.java"))
    return f"{jars}:{classes}"


KAFKA_VERSION = "?"
CP = ""
LOG4J = f"-Dlog4j2.configurationFile={BENCH / 'conf' / 'log4j2.properties'}"


def tool_java() -> list[str]:
    return ["java", "-Xmx512M", "-XX:+UseG1GC", "-Djava.awt.headless=true", LOG4J, "-cp", CP]


# ------------------------------------------------------------------ network namespaces
def ns(i: int) -> str:
    return f"spb-b{i}"


def addr(i: int) -> str:
    return f"{SUBNET}.{10 + i}"


def net_down():
    for i in range(1, N + 1):
        sh("ip", "netns", "del", ns(i), check=False)
        sh("ip", "link", "del", f"spbv{i}", check=False)
    sh("ip", "link", "del", BRIDGE, check=False)


def net_up():
    net_down()
    sh("ip", "link", "add", BRIDGE, "type", "bridge")
    sh("ip", "addr", "add", f"{SUBNET}.1/24", "dev", BRIDGE)
    sh("ip", "link", "set", BRIDGE, "up")
    for i in range(1, N + 1):
        v = f"spbv{i}"
        sh("ip", "netns", "add", ns(i))
        sh("ip", "link", "add", v, "type", "veth", "peer", "name", "eth0", "netns", ns(i))
        sh("ip", "link", "set", v, "master", BRIDGE, "up")
        sh("ip", "-n", ns(i), "addr", "add", f"{addr(i)}/24", "dev", "eth0")
        sh("ip", "-n", ns(i), "link", "set", "eth0", "up")
        sh("ip", "-n", ns(i), "link", "set", "lo", "up")


def isolate(victim: int):
    """Cuts broker ``victim`` off from the other brokers (blackhole routes both ways); the
    clients in the root namespace still reach it."""
    for other in range(1, N + 1):
        if other != victim:
            sh("ip", "-n", ns(victim), "route", "add", "blackhole", f"{addr(other)}/32")
            sh("ip", "-n", ns(other), "route", "add", "blackhole", f"{addr(victim)}/32")


def heal(victim: int):
    for other in range(1, N + 1):
        if other != victim:
            sh("ip", "-n", ns(victim), "route", "del", "blackhole", f"{addr(other)}/32", check=False)
            sh("ip", "-n", ns(other), "route", "del", "blackhole", f"{addr(victim)}/32", check=False)


# ------------------------------------------------------------------ clusters
class Cluster:
    system = "?"
    binary: Path  # takes spate-broker's command line

    def __init__(self, root: Path, fd: dict[str, str]):
        self.root = root
        self.fd = fd
        self.procs: dict[int, subprocess.Popen | None] = {i: None for i in range(1, N + 1)}
        root.mkdir(parents=True, exist_ok=True)

    @property
    def bootstrap(self) -> str:
        return ",".join(f"{addr(i)}:{KAFKA_PORT}" for i in range(1, N + 1))

    def settings(self, i: int) -> dict[str, str]:
        raise NotImplementedError

    def argv(self, i: int) -> list[str]:
        """Both systems' nodes take spate-broker's command line (Kafka's through
        scripts/apache-kafka.sh, which execs the JVM: the pid is the broker's either way)."""
        a = [str(self.binary), "--node-id", str(i), "--listen", f"{addr(i)}:{KAFKA_PORT}",
             "--data-dir", str(self.root / f"d{i}")]
        for k, v in self.settings(i).items():
            a += ["--set", f"{k}={v}"]
        return a

    def voters(self) -> str:
        return ",".join(f"{j}@{addr(j)}:{CTRL_PORT}" for j in range(1, N + 1))

    def start_node(self, i: int):
        p = self.procs[i]
        assert p is None or p.poll() is not None
        logf = open(self.root / f"b{i}.log", "ab")
        logf.write(f"\n===== start {time.strftime('%H:%M:%S')}\n".encode())
        logf.flush()
        env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "info"))
        # `ip netns exec` execs the program: the pid is the broker's.
        self.procs[i] = subprocess.Popen(["ip", "netns", "exec", ns(i), *self.argv(i)],
                                         stdout=logf, stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True)
        logf.close()

    def start(self):
        for i in self.procs:
            self.start_node(i)

    def alive(self, i: int) -> bool:
        p = self.procs[i]
        return p is not None and p.poll() is None

    def pid(self, i: int) -> int:
        return self.procs[i].pid

    def kill9(self, i: int) -> float:
        """SIGKILL broker i; returns time.time() just before the signal."""
        t = time.time()
        self.procs[i].send_signal(signal.SIGKILL)
        self.procs[i].wait(timeout=10)
        return t

    def stop(self):
        for i, p in self.procs.items():
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGKILL)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass

    def cpu_s(self) -> float:
        tck = os.sysconf("SC_CLK_TCK")
        total = 0
        for i in self.procs:
            if self.alive(i):
                try:
                    f = Path(f"/proc/{self.pid(i)}/stat").read_text().rsplit(")", 1)[1].split()
                    total += int(f[11]) + int(f[12])
                except OSError:
                    pass
        return total / tck

    def status_kb(self, i: int, key: str) -> int | None:
        try:
            for line in Path(f"/proc/{self.pid(i)}/status").read_text().splitlines():
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        except OSError:
            return None
        return None

    def log_tail(self, i: int, n: int = 4000) -> str:
        try:
            return (self.root / f"b{i}.log").read_bytes()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def check_alive(self):
        for i in self.procs:
            if not self.alive(i):
                raise RuntimeError(f"{self.system} broker {i} exited:\n{self.log_tail(i)}")


class SpateCluster(Cluster):
    system = "spate"

    def __init__(self, root, fd, binary: Path):
        super().__init__(root, fd)
        self.binary = binary

    def settings(self, i):
        return {"controller.quorum.voters": self.voters(),
                "http.listeners": f"{addr(i)}:{HTTP_PORT}", **self.fd}

    def settings_desc(self) -> str:
        return " ".join(f"--set {k}={v}" for k, v in
                        {"controller.quorum.voters": "1@10.202.0.11:9093,...",
                         **self.fd}.items())


KAFKA_HEAP = os.environ.get("KAFKA_HEAP_OPTS", "-Xmx1G -Xms1G")


class KafkaCluster(Cluster):
    """Combined KRaft nodes with static voters. scripts/apache-kafka.sh formats each data dir on
    its first start (one cluster id for all), gives the internal topics 3 replicas (2 in sync
    for transactions) and runs Kafka with the JVM flags of bin/kafka-server-start.sh, the heap
    from KAFKA_HEAP_OPTS."""
    system = "kafka"
    binary = KAFKA_SH

    def settings(self, i):
        return {"controller.quorum.voters": self.voters(), "default.replication.factor": "3", **self.fd}


# ------------------------------------------------------------------ admin helpers (librdkafka)
def admin(c: Cluster):
    from confluent_kafka.admin import AdminClient
    return AdminClient({"bootstrap.servers": c.bootstrap, "broker.address.family": "v4",
                        "socket.timeout.ms": 5000, "log_level": 0})


def topic_view(c: Cluster, topic: str, a=None) -> dict:
    """{partition: (leader, replicas, isr)} as one broker reports it."""
    md = (a or admin(c)).list_topics(topic, timeout=5)
    t = md.topics[topic]
    if t.error is not None:
        raise RuntimeError(str(t.error))
    return {p: (pm.leader, list(pm.replicas), sorted(pm.isrs)) for p, pm in t.partitions.items()}


def brokers_up(c: Cluster, a=None) -> set[int]:
    return set((a or admin(c)).list_topics(timeout=5).brokers.keys())


def wait_cluster(c: Cluster, timeout=120):
    a = admin(c)

    def ok():
        c.check_alive()
        return brokers_up(c, a) == set(range(1, N + 1))
    wait_until(f"{c.system}: all {N} brokers registered and unfenced", ok, timeout, 0.5)


def create_topic(c: Cluster, name: str, partitions: int, min_isr: int = 2):
    from confluent_kafka.admin import NewTopic
    a = admin(c)
    fs = a.create_topics([NewTopic(name, partitions, 3, config={"min.insync.replicas": str(min_isr)})])
    fs[name].result(timeout=60)

    def ready():
        v = topic_view(c, name, a)
        return len(v) == partitions and all(l >= 0 and len(isr) == 3 for l, _, isr in v.values())
    wait_until(f"{name}: {partitions} partitions, ISR of 3", ready, 60)


def elect_preferred(c: Cluster, topic: str, partitions: int):
    from confluent_kafka import TopicPartition
    from confluent_kafka import ElectionType
    a = admin(c)
    try:
        f = a.elect_leaders(ElectionType.PREFERRED, [TopicPartition(topic, p) for p in range(partitions)])
        f.result(timeout=30)
    except Exception as e:  # noqa: BLE001 - ELECTION_NOT_NEEDED etc.
        log(f"  preferred election: {e}")
    try:
        wait_until("preferred leaders", lambda: all(
            l == reps[0] for l, reps, _ in topic_view(c, topic, a).values()), 20)
    except TimeoutError as e:
        log(f"  {e} (continuing)")


def controller_id(c: Cluster) -> int:
    r = subprocess.run([*tool_java(), "org.apache.kafka.tools.MetadataQuorumCommand",
                        "--bootstrap-server", c.bootstrap, "describe", "--status"],
                       capture_output=True, text=True, timeout=60)
    m = re.search(r"LeaderId:\s+(-?\d+)", r.stdout)
    if not m:
        raise RuntimeError(f"describe --status: {r.stdout}{r.stderr}")
    return int(m.group(1))


# ------------------------------------------------------------------ throughput / latency
PERF_RE = re.compile(r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency, "
                     r"([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th, (\d+) ms 99.9th")


def producer_perf(c: Cluster, work: Path, name: str, topic: str, records: int, rate: int,
                  deadline: int, extra_props=()) -> dict:
    out = work / f"{c.system}-{name}.log"
    up = uptime()
    cpu0, t0 = c.cpu_s(), time.monotonic()
    cmd = [*tool_java(), "org.apache.kafka.tools.ProducerPerformance", "--topic", topic,
           "--num-records", str(records), "--record-size", "1024", "--throughput", str(rate),
           "--bootstrap-server", c.bootstrap, "--command-property", "acks=all",
           f"client.id=spate-cluster-bench-{name}", *extra_props]
    rc = 0
    with open(out, "w") as f:
        try:
            rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, timeout=deadline).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
    wall = time.monotonic() - t0
    cpu = c.cpu_s() - cpu0
    text = out.read_text(errors="replace")
    m = None
    for m in PERF_RE.finditer(text):
        pass
    res = {"test": name, "uptime_before": up, "wall_s": round(wall, 1), "broker_cpu_s": round(cpu, 1),
           "records": records, "rate": rate}
    if rc != 0 or m is None:
        res["failed"] = f"rc={rc}: {text.strip().splitlines()[-1][:200] if text.strip() else 'no output'}"
        log(f"  {name}: FAILED {res['failed']}")
        return res
    res.update(rps=float(m.group(2)), mbs=float(m.group(3)), avg_ms=float(m.group(4)), max_ms=float(m.group(5)),
               p50=int(m.group(6)), p95=int(m.group(7)), p99=int(m.group(8)), p999=int(m.group(9)))
    log(f"  {name}: {res['mbs']} MB/s, {res['rps']:.0f} rec/s, p50 {res['p50']} p99 {res['p99']} ms "
        f"(broker CPU {cpu:.1f}s over {wall:.1f}s)")
    return res


# ------------------------------------------------------------------ failover probe
class Probe:
    """Runs FailoverProbe (Java) and collects its per-record outcomes as they arrive."""

    def __init__(self, c: Cluster, work: Path, topic: str, partitions: int, rate: int, tag: str):
        self.acks: dict[int, list[tuple[int, int, int]]] = {p: [] for p in range(partitions)}  # (send_us, ack_us, seq)
        self.errors: list[str] = []
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.raw = open(work / f"{c.system}-{tag}-probe.txt", "w")
        props = PROBE_PROPS + os.environ.get("PROBE_PROPS", "").split()
        cmd = [*tool_java(), "dev.spate.bench.FailoverProbe", "--bootstrap", c.bootstrap, "--topic", topic,
               "--partitions", str(partitions), "--rate", str(rate), "--value-bytes", "100"]
        for p in props:
            cmd += ["--prop", p]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=open(work / f"{c.system}-{tag}-probe.err", "w"), text=True,
                                     start_new_session=True)
        PROCS.append(self.proc)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stdout:
            self.raw.write(line)
            f = line.split()
            if not f:
                continue
            if f[0] == "READY":
                self.ready.set()
            elif f[0] == "A":
                with self.lock:
                    self.acks[int(f[1])].append((int(f[3]), int(f[4]), int(f[2])))
            elif f[0] == "E":
                with self.lock:
                    self.errors.append(line.strip())
        self.raw.flush()

    def acked(self, p: int) -> int:
        with self.lock:
            return len(self.acks[p])

    def mark(self) -> dict[int, int]:
        """Per partition, how many acks have arrived so far (acks are appended in arrival order,
        so every ack after this moment has a larger index)."""
        with self.lock:
            return {p: len(v) for p, v in self.acks.items()}

    def first_ack_sent_after(self, p: int, t_us: int, start: int):
        with self.lock:
            cands = [a for s, a, _ in self.acks[p][start:] if s > t_us]
        return min(cands) if cands else None

    def max_gap(self, p: int, start: int) -> int:
        """Longest time between consecutive acks from the last ack before ``start`` on."""
        with self.lock:
            ts = sorted(a for _, a, _ in self.acks[p][max(0, start - 1):])
        return max((b - a for a, b in zip(ts, ts[1:])), default=0)

    def stop(self):
        try:
            self.proc.stdin.write("stop\n")
            self.proc.stdin.flush()
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.thread.join(timeout=10)
        self.raw.close()


def failover_rounds(c: Cluster, work: Path, profile: str, leader_kills: int, ctrl_kills: int,
                    isolations: int = 0) -> list[dict]:
    topic = f"failover-{profile}"
    parts = 3
    create_topic(c, topic, parts)
    probe = Probe(c, work, topic, parts, 1000, profile)
    rounds = []
    try:
        wait_until("probe ready", probe.ready.is_set, 60)
        wait_until("probe acks on every partition", lambda: all(probe.acked(p) > 500 for p in range(parts)), 60)
        cases = (["leader"] * leader_kills + ["leader+controller"] * ctrl_kills
                 + ["isolated leader"] * isolations)
        for n, case in enumerate(cases, 1):
            c.check_alive()
            elect_preferred(c, topic, parts)
            ctrl = controller_id(c)
            view = topic_view(c, topic)
            if case in ("leader", "isolated leader"):
                cand = [p for p, (l, _, _) in sorted(view.items()) if l != ctrl and l > 0]
                # rotate over the non-controller brokers
                p = cand[n % len(cand)] if cand else None
            else:
                cand = [p for p, (l, _, _) in sorted(view.items()) if l == ctrl]
                p = cand[0] if cand else None
            if p is None:
                log(f"  round {n} ({case}): no suitable partition in {view} (controller {ctrl}); skipped")
                rounds.append({"round": n, "case": case, "skipped": f"no partition led by {'the' if case != 'leader' else 'a non-'}controller"})
                continue
            victim = view[p][0]
            before = probe.acked(p)
            wait_until("steady acks before the kill", lambda: probe.acked(p) >= before + 1000, 30, 0.05)
            up = uptime()
            a = admin(c)
            marks = probe.mark()
            if case == "isolated leader":
                # Cut off from its peers, still reachable by the client: the deposed leader
                # keeps answering, so this measures how fast clients leave it.
                isolate(victim)
                # From when the cut is in place: records sent while the routes were being
                # added may still be acknowledged by the old leader.
                t_kill = time.time()
                log(f"  round {n} ({case}): cut broker {victim} off (leader of p{p}; controller {ctrl})")
            else:
                t_kill = c.kill9(victim)
                log(f"  round {n} ({case}): killed broker {victim} (leader of p{p}; controller {ctrl})")
            kill_us = int(t_kill * 1e6)
            # Watch for the new leader in metadata (from a live broker) and the first acks.
            leader_seen = None
            first = {q: None for q in range(parts)}
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                for q in range(parts):
                    if first[q] is None:
                        first[q] = probe.first_ack_sent_after(q, kill_us, marks[q])
                if leader_seen is None:
                    try:
                        l = topic_view(c, topic, a)[p][0]
                        if l not in (victim, -1):
                            leader_seen = time.time()
                    except Exception:  # noqa: BLE001
                        pass
                if None not in first.values() and leader_seen is not None:
                    break
                time.sleep(0.05)
            # Let acks run 2 s more so the max gap covers the recovery.
            time.sleep(2)
            ms = lambda us: round((us - kill_us) / 1000, 1) if us else None  # noqa: E731
            r = {"round": n, "case": case, "partition": p, "victim": victim, "controller": ctrl,
                 "victim_was_controller": victim == ctrl, "uptime_before": up,
                 "first_ack_after_kill_ms": ms(first[p]),
                 "all_partitions_ack_ms": ms(max(first.values())) if None not in first.values() else None,
                 "leader_in_metadata_ms": round((leader_seen - t_kill) * 1000) if leader_seen else None,
                 "max_ack_gap_ms": round(probe.max_gap(p, marks[p]) / 1000, 1),
                 "max_ack_gap_any_ms": round(max(probe.max_gap(q, marks[q]) for q in range(parts)) / 1000, 1),
                 "probe_errors_so_far": len(probe.errors)}
            rounds.append(r)
            log(f"  round {n}: first acks=all ack of a record sent after the kill: "
                f"{r['first_ack_after_kill_ms']} ms (every partition: {r['all_partitions_ack_ms']} ms); "
                f"max ack gap {r['max_ack_gap_ms']} ms (any partition {r['max_ack_gap_any_ms']} ms); "
                f"new leader in metadata after {r['leader_in_metadata_ms']} ms")
            # Restart (or reconnect) the victim and wait until it is back in every ISR.
            if case == "isolated leader":
                heal(victim)
            else:
                c.start_node(victim)
            wait_until(f"broker {victim} back in every ISR", lambda: all(
                victim in isr for _, _, isr in topic_view(c, topic).values()), 180, 0.5)
            wait_cluster(c, 60)
    finally:
        probe.stop()
    errs = probe.errors
    if errs:
        log(f"  probe: {len(errs)} definitive send failures, first: {errs[0]}")
    for r in rounds:
        r["probe_errors_total"] = len(errs)
    return rounds


# ------------------------------------------------------------------ one system
def bench_system(system: str, args, work: Path, results: dict):
    res = results.setdefault(system, {"throughput": [], "failover": {}, "notes": []})
    for profile in args.profiles:
        fd = profile_settings(profile, system)
        root = work / f"{system}-{profile}"
        if system == "spate":
            c = SpateCluster(root, fd, args.spate_bin)
        else:
            c = KafkaCluster(root, fd)
        CLUSTERS.append(c)
        log(f"=== {system}, failure detection {profile} {fd or '(defaults)'}")
        net_up()
        try:
            c.start()
            t0 = time.monotonic()
            wait_cluster(c)
            log(f"  cluster up after {time.monotonic() - t0:.1f}s")
            time.sleep(3)
            if profile == args.profiles[0] and not args.skip_throughput:
                res["rss_idle_mb"] = [round((c.status_kb(i, "VmRSS") or 0) / 1024) for i in range(1, N + 1)]
                create_topic(c, "bench-warmup", 1)
                producer_perf(c, work, "warmup", "bench-warmup", args.warmup, -1, args.deadline)
                for name, topic, parts, n, rate in [
                    ("produce acks=all, 1 partition", "tput-p1", 1, args.records, -1),
                    ("produce acks=all, 3 partitions", "tput-p3", 3, args.records, -1),
                    (f"produce acks=all @{args.lat_rate} rec/s, 1 partition", "lat-p1", 1, args.lat_records, args.lat_rate),
                ]:
                    c.check_alive()
                    create_topic(c, topic, parts)
                    time.sleep(2)
                    r = producer_perf(c, work, topic, topic, n, rate, args.deadline)
                    r["test"] = name
                    res["throughput"].append(r)
                res["vmhwm_mb"] = [round((c.status_kb(i, "VmHWM") or 0) / 1024) for i in range(1, N + 1)]
                # throughput data is not needed any more: free the disk
            if not args.skip_failover:
                res["failover"][profile] = failover_rounds(c, work, profile, args.kills,
                                                           args.controller_kills, args.isolations)
        except Exception as e:  # noqa: BLE001
            log(f"  {system}/{profile} FAILED: {e}")
            res["notes"].append(f"{profile}: run failed: {str(e)[:400]}")
            for i in range(1, N + 1):
                log(f"  ---- broker {i} log tail\n{c.log_tail(i, 1500)}")
        finally:
            c.stop()
            if args.keep:
                for i in range(1, N + 1):
                    shutil.rmtree(root / f"d{i}", ignore_errors=True)
            else:
                shutil.rmtree(root, ignore_errors=True)
            net_down()


# ------------------------------------------------------------------ report
def med(xs):
    return statistics.median(xs) if xs else None


def fmt(x, nd=0):
    if x is None:
        return "-"
    return f"{x:.{nd}f}"


def report(results: dict, args, started: str, load_start: str, spate_desc: str) -> str:
    git = sh("git", "-C", str(REPO), "rev-parse", "--short", "HEAD", check=False).stdout.strip() or "no commit"
    if sh("git", "-C", str(REPO), "status", "--porcelain", check=False).stdout.strip():
        git += " (dirty: other engineers' uncommitted work in the tree)"
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                if l.startswith("model name")), "?")
    mem = round(int(Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024)
    L = []
    L.append(f"# Spate vs Apache Kafka — 3-broker replicated benchmark ({args.mode} mode)")
    L.append("")
    L.append(f"- started: {started}; repo: {git}; command: `bench/cluster.sh {' '.join(args.argv)}`")
    L.append(f"- load average (1/5/15 min) at start: {load_start}, at end: {loadavg()} "
             "(the machine is shared: other engineers' cargo builds may run concurrently; "
             "`uptime` before each test/kill is in the raw tables)")
    L.append(f"- machine: {os.cpu_count()} CPUs ({cpu}), {mem} GiB RAM, {os.uname().sysname} {os.uname().release}; "
             "all 3 brokers and the client share the machine")
    L.append("- network: each broker in its own network namespace (10.202.0.11-13, veth + bridge); clients in the root namespace")
    L.append(f"- Kafka: org.apache.kafka:kafka_2.13:{KAFKA_VERSION}, 3 combined KRaft nodes (process.roles=broker,controller, "
             f"static controller.quorum.voters), heap `{KAFKA_HEAP}` each, G1 flags of kafka-run-class.sh, default flush policy (no fsync)")
    L.append(f"- Spate: {spate_desc}; 3 combined voter+broker nodes, default flush policy "
             "(`log.flush.interval.ms=1000`: fsync at most once a second — more than Kafka does)")
    L.append(f"- topics: replication factor 3, `min.insync.replicas=2`; client: kafka-tools/kafka-clients {KAFKA_VERSION}, "
             f"{sh('java', '-version', check=False).stderr.splitlines()[0]}")
    L.append("")
    if not args.skip_throughput:
        L.append("## Produce throughput and latency (acks=all, RF 3, 1 KiB records)")
        L.append("")
        L.append(f"`ProducerPerformance` with client defaults + `acks=all` (idempotent), bootstrap = all 3 brokers. "
                 f"Throughput tests: {args.records:,} records unthrottled; latency test: {args.lat_records:,} records at "
                 f"{args.lat_rate} rec/s. Warm-up {args.warmup:,} records per system (not reported). "
                 "Broker CPU = utime+stime summed over the 3 broker processes while the tool ran (200% = both cores).")
        L.append("")
        L.append("| system | test | MB/s | records/s | p50 ms | p99 ms | p99.9 ms | max ms | wall s | broker CPU s | load avg before |")
        L.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for system, res in results.items():
            for r in res["throughput"]:
                la = re.search(r"load average: (.*)", r["uptime_before"])
                la = la.group(1) if la else r["uptime_before"]
                if "failed" in r:
                    L.append(f"| {system} | {r['test']} | FAILED ({r['failed'][:80]}) | | | | | | {r['wall_s']} | {r['broker_cpu_s']} | {la} |")
                else:
                    L.append(f"| {system} | {r['test']} | {r['mbs']:.1f} | {r['rps']:.0f} | {r['p50']} | {r['p99']} | "
                             f"{r['p999']} | {r['max_ms']:.0f} | {r['wall_s']} | {r['broker_cpu_s']} | {la} |")
        L.append("")
        for system, res in results.items():
            if "rss_idle_mb" in res:
                L.append(f"- {system}: RSS idle per broker {res['rss_idle_mb']} MB; VmHWM per broker after the "
                         f"throughput tests {res.get('vmhwm_mb', '-')} MB")
        L.append("")
    if not args.skip_failover:
        L.append("## Leader failover (kill -9 under a steady acks=all producer)")
        L.append("")
        L.append("Probe: `dev.spate.bench.FailoverProbe` (Java client, idempotent, acks=all), 1000 records/s of 100 B to "
                 "EACH of the 3 partitions of an RF 3 topic (`min.insync.replicas=2`), producer settings "
                 f"`{' '.join(PROBE_PROPS)}`. Before each round the preferred leaders are restored (ElectLeaders), "
                 "so each broker leads one partition. A round SIGKILLs the leader of one partition — either a broker "
                 "that is not the active controller (`leader`) or the one that is (`leader+controller`, found with "
                 "`kafka-metadata-quorum describe --status`) — then restarts it and waits until it is back in every ISR.")
        L.append("")
        L.append("- **first ack**: time from the kill to the first acks=all acknowledgement of a record of the killed "
                 "leader's partition *sent after the kill* (the failover time as a client sees it).")
        L.append("- **all partitions**: the same, for the last of the 3 partitions to get such an ack. With acks=all "
                 "a partition waits for every ISR member, so the partitions the victim only *follows* stall too "
                 "until it leaves their ISR (when it is fenced, in both systems).")
        L.append("- **max gap**: the longest time between consecutive acks on the killed leader's partition (any "
                 "partition) from the last ack before the kill until 2 s after the recovery.")
        L.append("- **leader in metadata**: when the driver (polling Metadata every 50 ms) first saw another leader.")
        L.append("")
        L.append("Failure detection profiles: `default` = both systems' defaults, `broker.heartbeat.interval.ms=2000`, "
                 "`broker.session.timeout.ms=9000`; `tuned` = "
                 + ", ".join(f"`{k}={v}`" for k, v in FD_PROFILES["tuned"].items())
                 + " on every node of both systems, raft timeouts at their defaults; `fast` = `tuned` plus "
                   "Spate " + ", ".join(f"`{k}={v}`" for k, v in FD_PROFILES["fast"]["spate"].items()
                                        if k.startswith("controller.")) +
                   " and Kafka " + ", ".join(f"`{k}={v}`" for k, v in FD_PROFILES["fast"]["kafka"].items()
                                             if k.startswith("controller.")) + ".")
        L.append("")
        L.append("| system | profile | case | rounds | first ack median ms | first ack max ms | all partitions median ms | "
                 "all partitions max ms | max gap median ms | max gap (any partition) max ms | leader in metadata median ms |")
        L.append("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for system, res in results.items():
            for profile, rounds in res["failover"].items():
                for case in ("leader", "leader+controller", "isolated leader"):
                    rs = [r for r in rounds if r["case"] == case and "skipped" not in r]
                    if not rs:
                        continue
                    fa = [r["first_ack_after_kill_ms"] for r in rs if r["first_ack_after_kill_ms"] is not None]
                    al = [r["all_partitions_ack_ms"] for r in rs if r["all_partitions_ack_ms"] is not None]
                    gp = [r["max_ack_gap_ms"] for r in rs]
                    ga = [r["max_ack_gap_any_ms"] for r in rs]
                    lm = [r["leader_in_metadata_ms"] for r in rs if r["leader_in_metadata_ms"] is not None]
                    miss = len(rs) - len(fa)
                    L.append(f"| {system} | {profile} | {case} | {len(rs)}{f' ({miss} without ack in 90 s)' if miss else ''} | "
                             f"{fmt(med(fa))} | {fmt(max(fa) if fa else None)} | {fmt(med(al))} | {fmt(max(al) if al else None)} | "
                             f"{fmt(med(gp))} | {fmt(max(ga))} | {fmt(med(lm))} |")
        L.append("")
        L.append("Raw rounds:")
        L.append("")
        L.append("| system | profile | round | case | killed broker (partition) | controller | first ack ms | all partitions ms | "
                 "max gap ms | max gap any ms | leader in metadata ms | probe errors | load avg before the kill |")
        L.append("|---|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
        for system, res in results.items():
            for profile, rounds in res["failover"].items():
                for r in rounds:
                    if "skipped" in r:
                        L.append(f"| {system} | {profile} | {r['round']} | {r['case']} | skipped: {r['skipped']} | | | | | | | | |")
                        continue
                    L.append(f"| {system} | {profile} | {r['round']} | {r['case']} | {r['victim']} (p{r['partition']}) | "
                             f"{r['controller']} | {fmt(r['first_ack_after_kill_ms'], 1)} | {fmt(r['all_partitions_ack_ms'], 1)} | "
                             f"{fmt(r['max_ack_gap_ms'], 1)} | {fmt(r['max_ack_gap_any_ms'], 1)} | "
                             f"{fmt(r['leader_in_metadata_ms'])} | {r['probe_errors_total']} | {r['uptime_before'].split('load average: ')[-1]} |")
        L.append("")
    for system, res in results.items():
        for n in res["notes"]:
            L.append(f"- note ({system}): {n}")
    return "\n".join(L) + "\n"


# ------------------------------------------------------------------ main
PROCS: list[subprocess.Popen] = []
CLUSTERS: list[Cluster] = []


def cleanup():
    for p in PROCS:
        if p.poll() is None:
            try:
                p.kill()
            except OSError:
                pass
    for c in CLUSTERS:
        c.stop()
    net_down()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--systems", default="kafka,spate")
    ap.add_argument("--profiles", default="default,tuned", help="failure-detection profiles: default,tuned,fast")
    ap.add_argument("--kills", type=int, help="leader (non-controller) kills per profile")
    ap.add_argument("--controller-kills", type=int, help="kills of a leader that is the active controller")
    ap.add_argument("--isolations", type=int, default=0,
                    help="rounds that cut a (non-controller) leader off from its peers instead of killing it")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--skip-failover", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (logs, tool output)")
    args = ap.parse_args()
    args.argv = sys.argv[1:]
    args.mode = "quick" if args.quick else "full"
    args.profiles = args.profiles.split(",")
    if args.quick:
        args.records, args.warmup, args.lat_records, args.deadline = 50_000, 50_000, 10_000, 180
        args.kills = 2 if args.kills is None else args.kills
        args.controller_kills = 1 if args.controller_kills is None else args.controller_kills
    else:
        args.records, args.warmup, args.lat_records, args.deadline = 1_000_000, 200_000, 150_000, 1200
        args.kills = 5 if args.kills is None else args.kills
        args.controller_kills = 3 if args.controller_kills is None else args.controller_kills
    args.records = int(os.environ.get("BENCH_RECORDS", args.records))
    args.lat_rate = 5000
    args.spate_bin = Path(os.environ.get("SPATE_BROKER_BIN", REPO / "target" / "release" / "spate-broker"))
    if os.geteuid() != 0:
        sys.exit("cluster_bench.py needs root (network namespaces)")

    work = Path(tempfile.mkdtemp(prefix="spate-cluster-bench.", dir=os.environ.get("BENCH_TMPDIR", "/tmp")))
    atexit.register(lambda: None if args.keep else shutil.rmtree(work, ignore_errors=True))
    atexit.register(cleanup)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    global CP
    CP = prepare_java(work)

    started = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    load_start = loadavg()
    log(f"mode={args.mode} systems={args.systems} profiles={args.profiles} work={work}; uptime: {uptime()}")
    systems = args.systems.split(",")
    if "spate" in systems and not args.spate_bin.exists():
        sys.exit(f"no spate binary at {args.spate_bin} (cargo build --release -p spate-broker)")
    spate_desc = "not run"
    if "spate" in systems:
        h = hashlib.sha256(args.spate_bin.read_bytes()).hexdigest()[:12]
        built = dt.datetime.fromtimestamp(args.spate_bin.stat().st_mtime, dt.timezone.utc).strftime("%Y-%m-%dT%H:%MZ")
        spate_desc = f"{args.spate_bin} (sha256 {h}, built {built}{', ' + os.environ['SPATE_SOURCE_NOTE'] if os.environ.get('SPATE_SOURCE_NOTE') else ''})"
    results: dict = {}
    for s in systems:
        bench_system(s, args, work, results)

    text = report(results, args, started, load_start, spate_desc)
    dest_dir = BENCH / "results"
    dest_dir.mkdir(exist_ok=True)
    base = dest_dir / f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d}-cluster{'-quick' if args.quick else ''}"
    dest, i = Path(f"{base}.md"), 2
    while dest.exists():
        dest, i = Path(f"{base}-{i}.md"), i + 1
    dest.write_text(text)
    # Raw per-test / per-round numbers next to the report.
    dest.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    print(text)
    log(f"written to {dest.relative_to(REPO)}" + (f"; work dir kept: {work}" if args.keep else ""))


if __name__ == "__main__":
    main()
