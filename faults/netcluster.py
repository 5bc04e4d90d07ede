"""A Spate cluster of real broker processes, each in a network namespace of its own.

Layout: a bridge ``spfbr0`` (10.201.0.1/24) in the root namespace; broker ``i`` runs in the
namespace ``spf-b<i>`` with address 10.201.0.<10+i> on a veth whose host end is on the bridge.
The test process (and its Kafka clients) stays in the root namespace and reaches every broker
through the bridge, so cutting brokers off from each other does not cut them off from clients
- the interesting case, where a deposed leader can still be asked to write.

Faults:
- ``kill9(i)`` / ``restart(i)``: SIGKILL the process, start it again on the same data dir;
- ``pause(i)`` / ``resume(i)``: SIGSTOP / SIGCONT;
- ``cut(a, b)`` / ``heal()``: blackhole routes between two brokers' namespaces, both ways, so
  packets between them are dropped (established connections stall, new ones fail), while the
  bridge address (clients) stays reachable.

Needs root (namespaces, veths); ``available()`` says why not otherwise.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import time
import urllib.request
from pathlib import Path

# Overridable so two runs on one machine (CI and a developer) do not share namespaces.
NET = os.environ.get("SPATE_FAULT_NET", "spf")
BRIDGE = f"{NET}br0"
SUBNET_PREFIX = os.environ.get("SPATE_FAULT_SUBNET", "10.201.0")
KAFKA_PORT = 9092
RAFT_PORT = 9093
HTTP_PORT = 9644
REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT = float(os.environ.get("SPATE_BROKER_START_TIMEOUT", "60"))


def broker_bin() -> Path:
    return Path(os.environ.get("SPATE_BROKER_BIN", str(REPO / "target" / "debug" / "spate-broker")))


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


def available() -> str | None:
    """None when namespaces can be made here, else the reason they cannot."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if subprocess.run(["which", "ip"], capture_output=True).returncode != 0:
        return "iproute2 (`ip`) is not installed"
    if not broker_bin().exists():
        return f"no broker binary at {broker_bin()}"
    return None


def wait_until(what: str, predicate, timeout: float, interval: float = 0.2):
    """Polls ``predicate`` until it returns a truthy value; fails with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - a broker may be down while we poll
            last_error = e
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}"
                       + (f" (last error: {last_error})" if last_error else ""))


class Net:
    """The bridge and one namespace per broker."""

    def __init__(self, count: int):
        self.count = count
        self.cuts: set[tuple[int, int]] = set()

    @staticmethod
    def ns(i: int) -> str:
        return f"{NET}-b{i}"

    @staticmethod
    def addr(i: int) -> str:
        return f"{SUBNET_PREFIX}.{10 + i}"

    def up(self):
        self.down()  # a previous run killed mid-way leaves its namespaces behind
        ip("link", "add", BRIDGE, "type", "bridge")
        ip("addr", "add", f"{SUBNET_PREFIX}.1/24", "dev", BRIDGE)
        ip("link", "set", BRIDGE, "up")
        for i in range(1, self.count + 1):
            ns, veth = self.ns(i), f"{NET}v{i}"
            ip("netns", "add", ns)
            ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
            ip("link", "set", veth, "master", BRIDGE, "up")
            ip("-n", ns, "addr", "add", f"{self.addr(i)}/24", "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")
            ip("-n", ns, "link", "set", "lo", "up")

    def down(self):
        for i in range(1, self.count + 1):
            ip("netns", "del", self.ns(i), check=False)
            ip("link", "del", f"{NET}v{i}", check=False)
        ip("link", "del", BRIDGE, check=False)

    def cut(self, a: int, b: int):
        """Drops all traffic between brokers a and b (both directions)."""
        for x, y in ((a, b), (b, a)):
            ip("-n", self.ns(x), "route", "add", "blackhole", f"{self.addr(y)}/32")
        self.cuts.add((min(a, b), max(a, b)))
        # A harness whose cut cuts nothing would pass every test: prove it drops traffic.
        if self.reachable(a, b) or self.reachable(b, a):
            raise RuntimeError(f"cut between {a} and {b} did not take effect")

    def reachable(self, a: int, b: int) -> bool:
        """Whether a TCP connection from broker a's namespace to broker b's gets anywhere."""
        probe = ("import socket,sys\n"
                 "try: socket.create_connection((sys.argv[1], 9), timeout=1)\n"
                 "except ConnectionRefusedError: sys.exit(0)\n"  # got there: nobody on port 9
                 "except OSError: sys.exit(1)\n")
        r = subprocess.run(["ip", "netns", "exec", self.ns(a), "python3", "-c", probe,
                            self.addr(b)], capture_output=True)
        return r.returncode == 0

    def isolate(self, a: int):
        """Cuts broker a off from every other broker; clients still reach it."""
        for b in range(1, self.count + 1):
            if b != a:
                self.cut(a, b)

    def heal(self):
        for a, b in list(self.cuts):
            for x, y in ((a, b), (b, a)):
                ip("-n", self.ns(x), "route", "del", "blackhole", f"{self.addr(y)}/32",
                   check=False)
            if not self.reachable(a, b):
                raise RuntimeError(f"healing the link between {a} and {b} did not take effect")
        self.cuts.clear()


class Node:
    """One broker process (also a voter of the metadata quorum) in its namespace."""

    def __init__(self, cluster: "Cluster", node_id: int):
        self.cluster = cluster
        self.id = node_id
        self.addr = Net.addr(node_id)
        self.data_dir = cluster.root / f"b{node_id}"
        self.log_path = cluster.root / f"b{node_id}.log"
        self.proc: subprocess.Popen | None = None
        self.paused = False

    @property
    def bootstrap(self) -> str:
        return f"{self.addr}:{KAFKA_PORT}"

    def args(self) -> list[str]:
        settings = {
            "controller.quorum.voters": self.cluster.voters,
            "http.listeners": f"{self.addr}:{HTTP_PORT}",
            **self.cluster.settings,
        }
        argv = ["ip", "netns", "exec", Net.ns(self.id), str(broker_bin()),
                "--node-id", str(self.id), "--listen", self.bootstrap,
                "--data-dir", str(self.data_dir)]
        for k, v in settings.items():
            argv += ["--set", f"{k}={v}"]
        return argv

    def start(self):
        assert self.proc is None or self.proc.poll() is not None, f"broker {self.id} is running"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        log.write(f"\n===== start {time.strftime('%H:%M:%S')}\n".encode())
        log.flush()
        env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "info"))
        # `ip netns exec` execs the broker itself, so the pid is the broker's.
        self.proc = subprocess.Popen(self.args(), stdout=log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
        log.close()
        self.paused = False

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ready(self) -> bool:
        """The broker's own /readyz: registered, caught up with metadata, serving."""
        if not self.alive():
            return False
        try:
            with urllib.request.urlopen(f"http://{self.addr}:{HTTP_PORT}/readyz", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def kill9(self):
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.paused = False

    def pause(self):
        self.proc.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def terminate(self, timeout: float = 30):
        if not self.alive():
            return
        if self.paused:
            self.resume()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def log_tail(self, size: int = 16 * 1024) -> str:
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return ""
        return data[-size:].decode(errors="replace")


class Cluster:
    """``count`` combined broker+controller nodes with fast failure detection."""

    def __init__(self, root: Path, count: int = 3, settings: dict[str, str] | None = None):
        self.root = root
        self.net = Net(count)
        self.voters = ",".join(f"{i}@{Net.addr(i)}:{RAFT_PORT}" for i in range(1, count + 1))
        # Failure detection in seconds rather than Kafka's defaults, so scenarios stay short.
        self.settings = {
            "broker.heartbeat.interval.ms": "300",
            "broker.session.timeout.ms": "2500",
            "replica.lag.time.max.ms": "2500",
            "leader.imbalance.check.interval.seconds": "2",
            "log.flush.interval.ms": "1000",
            # Tests create their topics. A client of an earlier test that lingers in this
            # process (a producer refreshes metadata for its topics) must not auto-create
            # them with default settings on the next test's cluster at the same addresses.
            "auto.create.topics.enable": "false",
            **(settings or {}),
        }
        self.nodes = {i: Node(self, i) for i in range(1, count + 1)}

    @property
    def bootstrap(self) -> str:
        return ",".join(n.bootstrap for n in self.nodes.values())

    def start(self):
        self.net.up()
        for n in self.nodes.values():
            n.start()
        self.wait_ready()

    def wait_ready(self, ids=None, timeout: float = START_TIMEOUT):
        for i in ids or self.nodes:
            n = self.nodes[i]
            wait_until(f"broker {i} to be ready", lambda n=n: self._ready_or_dead(n), timeout)

    @staticmethod
    def _ready_or_dead(n: Node) -> bool:
        if not n.alive():
            raise RuntimeError(f"broker {n.id} exited:\n{n.log_tail()}")
        return n.ready()

    def stop(self):
        for n in self.nodes.values():
            if n.alive():
                if n.paused:
                    n.resume()
                n.kill9()
        self.net.down()

    def restart(self, i: int):
        self.nodes[i].kill9()
        self.nodes[i].start()

    def logs(self) -> str:
        return "\n".join(f"----- broker {i} log tail\n{n.log_tail()}"
                         for i, n in self.nodes.items())


def metadata_from(addr: str, topic: str, timeout: float = 3) -> dict:
    """One broker's own view (Metadata v1 over a raw socket, so no client picks another broker):
    {"controller": id, "brokers": [ids], "partitions": {p: {"leader", "replicas", "isr"}}}."""
    body = struct.pack(">i", 1) + _string(topic)
    header = struct.pack(">hhi", 3, 1, 1) + _string("spate-faults")
    frame = header + body
    with socket.create_connection((addr, KAFKA_PORT), timeout=timeout) as s:
        s.sendall(struct.pack(">i", len(frame)) + frame)
        size = struct.unpack(">i", _read(s, 4))[0]
        r = _Reader(_read(s, size))
    r.i32()  # correlation id
    brokers = []
    for _ in range(r.i32()):
        brokers.append(r.i32())
        r.string(), r.i32(), r.string()  # host, port, rack
    controller = r.i32()
    parts = {}
    for _ in range(r.i32()):
        error, _name, _internal = r.i16(), r.string(), r.i8()
        if error:
            raise RuntimeError(f"metadata for {topic} from {addr}: error {error}")
        for _ in range(r.i32()):
            _perr, pid, leader = r.i16(), r.i32(), r.i32()
            replicas = [r.i32() for _ in range(r.i32())]
            isr = [r.i32() for _ in range(r.i32())]
            parts[pid] = {"leader": leader, "replicas": replicas, "isr": sorted(isr)}
    return {"controller": controller, "brokers": sorted(brokers), "partitions": parts}


def _string(s: str) -> bytes:
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def _read(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed mid-response")
        buf += chunk
    return buf


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def _take(self, fmt: str):
        v = struct.unpack_from(fmt, self.data, self.pos)[0]
        self.pos += struct.calcsize(fmt)
        return v

    def i8(self):
        return self._take(">b")

    def i16(self):
        return self._take(">h")

    def i32(self):
        return self._take(">i")

    def string(self):
        n = self.i16()
        if n < 0:
            return None
        v = self.data[self.pos:self.pos + n].decode()
        self.pos += n
        return v
