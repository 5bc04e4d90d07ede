"""pytest fixtures that run a real spate-broker process for the compatibility suites.

Fixtures
--------
- ``broker``: a broker started with default settings on a free 127.0.0.1 port and a
  fresh temporary data dir.  Function scoped: every test gets its own broker.
- ``broker_factory``: ``broker_factory(**settings)`` starts another broker with
  ``--set key=value`` for each setting (underscores are NOT translated; pass a dict
  for dotted keys: ``broker_factory({"auto.create.topics.enable": "false"})``).

A ``Broker`` exposes ``bootstrap`` ("127.0.0.1:PORT"), ``port``, ``data_dir``,
``extra_args`` (command-line arguments after the ``--set`` ones, e.g. ``["--add-scram",
"SCRAM-SHA-512=[name=admin,password=admin-secret]"]``; set it on a broker made with
``start=False``), ``start()``, ``stop()`` (SIGTERM + wait, asserts a clean exit), ``restart()``
(stop + start on the same dir and port), ``kill9()`` (SIGKILL + wait) and
``log_text()``.  Every broker is killed at teardown, whatever happened.  The broker's
stdout/stderr go to ``<tmp>/broker.log``; when a test fails, the log's tail is attached
to the pytest report as a "spate-broker log" section.

Environment
-----------
- ``SPATE_BROKER_BIN``: the broker binary (default ``<repo>/target/debug/spate-broker``).
  When it does not exist every test that needs a broker is skipped with a clear message.
- ``SPATE_BROKER_START_TIMEOUT``: seconds to wait for the port to accept (default 30).
- ``RUST_LOG`` is passed through (default ``info``).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEFAULT_BIN = REPO / "target" / "debug" / "spate-broker"
START_TIMEOUT = float(os.environ.get("SPATE_BROKER_START_TIMEOUT", "30"))
STOP_TIMEOUT = 30.0
LOG_TAIL_BYTES = 64 * 1024


def broker_bin() -> Path:
    return Path(os.environ.get("SPATE_BROKER_BIN", str(DEFAULT_BIN)))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class BrokerError(RuntimeError):
    pass


class Broker:
    """One spate-broker process bound to a fixed port and data dir across restarts."""

    def __init__(self, binary: Path, data_dir: Path, log_path: Path, port: int | None = None,
                 settings: dict[str, str] | None = None):
        self.binary = binary
        self.data_dir = data_dir
        self.log_path = log_path
        self.port = port or free_port()
        self.settings = dict(settings or {})
        self.extra_args: list[str] = []
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.exit_codes: list[int] = []

    # -- properties -------------------------------------------------------------------------
    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def argv(self) -> list[str]:
        args = [str(self.binary), "--data-dir", str(self.data_dir)]
        # Settings that name listeners themselves must include the bootstrap address.
        if "listeners" not in self.settings:
            args += ["--listen", self.bootstrap]
        for k, v in self.settings.items():
            args += ["--set", f"{k}={v}"]
        return args + list(self.extra_args)

    # -- lifecycle --------------------------------------------------------------------------
    def start(self, timeout: float = START_TIMEOUT) -> "Broker":
        if self.running:
            raise BrokerError("broker already running")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "info")
        env.setdefault("NO_COLOR", "1")
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== start #{self.starts}: {' '.join(self.argv())}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        last_err: Exception | None = None
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                self.exit_codes.append(rc)
                raise BrokerError(
                    f"spate-broker exited with code {rc} before accepting connections on "
                    f"{self.bootstrap}\n--- broker log tail ---\n{self.log_tail()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=1.0):
                    return self
            except OSError as e:
                last_err = e
                time.sleep(0.02)  # poll interval, not a correctness sleep
        self._kill()
        raise BrokerError(f"spate-broker did not accept connections on {self.bootstrap} within "
                          f"{timeout}s (last error: {last_err})\n--- broker log tail ---\n"
                          f"{self.log_tail()}")

    def stop(self, timeout: float = STOP_TIMEOUT, expect_clean: bool = True) -> int:
        """SIGTERM and wait for exit.  Returns the exit code; raises if not 0 and expect_clean."""
        if self.proc is None:
            raise BrokerError("broker not started")
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._kill()
                raise BrokerError(f"spate-broker did not exit within {timeout}s of SIGTERM; killed."
                                  f"\n--- broker log tail ---\n{self.log_tail()}")
        rc = self.proc.returncode
        self.exit_codes.append(rc)
        self.proc = None
        if expect_clean and rc != 0:
            raise BrokerError(f"spate-broker exited with code {rc} after SIGTERM (expected 0)"
                              f"\n--- broker log tail ---\n{self.log_tail()}")
        return rc

    def restart(self, timeout: float = START_TIMEOUT) -> "Broker":
        """Graceful restart: SIGTERM, wait for exit (must be 0), start again (same dir+port)."""
        self.stop()
        return self.start(timeout)

    def kill9(self) -> int:
        """SIGKILL and wait for the process to be gone. Call start() to bring it back."""
        if self.proc is None:
            raise BrokerError("broker not started")
        rc = self._kill()
        self.exit_codes.append(rc)
        self.proc = None
        return rc

    def crash_restart(self, timeout: float = START_TIMEOUT) -> "Broker":
        self.kill9()
        return self.start(timeout)

    def _kill(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            except PermissionError:
                self.proc.kill()
        return self.proc.wait(STOP_TIMEOUT)

    def teardown(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self._kill()
        self.proc = None

    # -- logs -------------------------------------------------------------------------------
    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, nbytes: int = LOG_TAIL_BYTES) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - nbytes))
                data = f.read()
        except FileNotFoundError:
            return "(no log)"
        prefix = f"[... {size - nbytes} bytes elided ...]\n" if size > nbytes else ""
        return prefix + data.decode(errors="replace")

    def __repr__(self) -> str:
        return f"Broker({self.bootstrap}, dir={self.data_dir}, running={self.running})"


# --------------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------------

_ALL_BROKERS: list[Broker] = []


@pytest.fixture
def broker_factory(request, tmp_path_factory):
    binary = broker_bin()
    if not binary.exists():
        pytest.skip(f"spate-broker binary not found at {binary} "
                    f"(build it with `cargo build -p spate-broker` or set SPATE_BROKER_BIN)")
    brokers: list[Broker] = []
    request.node._spate_brokers = brokers

    def make(settings: dict[str, str] | None = None, start: bool = True, **kw: str) -> Broker:
        s = dict(settings or {})
        s.update(kw)
        base = tmp_path_factory.mktemp("broker")
        b = Broker(binary, base / "data", base / "broker.log", settings=s)
        brokers.append(b)
        _ALL_BROKERS.append(b)
        if start:
            b.start()
        return b

    try:
        yield make
    finally:
        for b in brokers:
            b.teardown()


@pytest.fixture
def broker(broker_factory) -> Broker:
    return broker_factory()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for i, b in enumerate(getattr(item, "_spate_brokers", [])):
            rep.sections.append((f"spate-broker log #{i} ({b.log_path})", b.log_tail()))


def pytest_sessionfinish(session, exitstatus):
    for b in _ALL_BROKERS:
        try:
            b.teardown()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass
