"""Fixtures that start a real `fjord server` on an ephemeral loopback port.

The binary is taken from $FJORD_BIN (scripts/test.sh sets it to
target/release/fjord). Every broker gets its own temporary log directory,
listens on 127.0.0.1 only, and is stopped with SIGTERM (then SIGKILL) at the
end of the test. Everything that waits is bounded.
"""

import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid

import pytest

from helpers import fjord_bin

LISTENING_RE = re.compile(r"listening on PLAINTEXT://([0-9.]+):([0-9]+)")
ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0


class Broker:
    """One running `fjord server` process."""

    def __init__(self, log_dir, overrides=None, extra_args=()):
        self.log_dir = str(log_dir)
        self.overrides = dict(overrides or {})
        self.args = [
            fjord_bin(),
            "server",
            "--override",
            "listeners=PLAINTEXT://127.0.0.1:0",
            "--override",
            f"log.dirs={self.log_dir}",
        ]
        for key, value in self.overrides.items():
            self.args += ["--override", f"{key}={value}"]
        self.args += list(extra_args)
        self.host = None
        self.port = None
        self.proc = None
        self._lines = []
        self._lines_lock = threading.Lock()
        self._listening = threading.Event()
        self._drainer = None

    @property
    def bootstrap(self):
        return f"{self.host}:{self.port}"

    def stderr_text(self):
        with self._lines_lock:
            return "".join(self._lines)

    def stderr_tail(self, n=60):
        with self._lines_lock:
            return "".join(self._lines[-n:])

    def _drain(self):
        # Keeps reading stderr for the life of the process, so the broker never
        # blocks on a full pipe; remembers every line for failure reports.
        for raw in iter(self.proc.stderr.readline, b""):
            line = ANSI_RE.sub("", raw.decode("utf-8", errors="replace"))
            with self._lines_lock:
                self._lines.append(line)
            if self.port is None:
                m = LISTENING_RE.search(line)
                if m:
                    self.host, self.port = m.group(1), int(m.group(2))
                    self._listening.set()
        self.proc.stderr.close()

    def start(self):
        env = dict(os.environ)
        env.setdefault("NO_COLOR", "1")
        env.setdefault("RUST_BACKTRACE", "1")
        self.proc = subprocess.Popen(
            self.args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            cwd=self.log_dir,
        )
        self._drainer = threading.Thread(target=self._drain, name="fjord-stderr", daemon=True)
        self._drainer.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._listening.wait(0.1):
                return self
            if self.proc.poll() is not None:
                self._drainer.join(5)
                raise RuntimeError(
                    f"fjord exited with status {self.proc.returncode} before listening; "
                    f"command: {' '.join(self.args)}\nstderr:\n{self.stderr_tail()}"
                )
        self.stop()
        raise RuntimeError(
            f"fjord did not print 'listening on PLAINTEXT://...' within {START_TIMEOUT_S}s; "
            f"command: {' '.join(self.args)}\nstderr:\n{self.stderr_tail()}"
        )

    def stop(self):
        """SIGTERM, bounded wait, then SIGKILL. Returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT_S)
        if self._drainer is not None:
            self._drainer.join(5)
        return self.proc.returncode

    def kill(self):
        """SIGKILL (an unclean stop)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(STOP_TIMEOUT_S)
        if self._drainer is not None:
            self._drainer.join(5)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for i, broker in enumerate(getattr(item, "_fjord_brokers", [])):
            report.sections.append(
                (f"fjord broker {i} stderr (last lines)", broker.stderr_tail(80))
            )


@pytest.fixture
def start_broker(request):
    """Factory: start_broker(overrides={...}, log_dir=None) -> running Broker.

    Every broker it starts is stopped at teardown; a given log_dir is reused
    (to restart a broker on the same data), otherwise a fresh temp dir is made.
    """
    brokers = []
    tmpdirs = []
    request.node._fjord_brokers = brokers

    def start(overrides=None, log_dir=None, extra_args=()):
        if log_dir is None:
            log_dir = tempfile.mkdtemp(prefix="fjord-pytest-")
            tmpdirs.append(log_dir)
        broker = Broker(log_dir, overrides, extra_args)
        brokers.append(broker)
        return broker.start()

    yield start
    for broker in brokers:
        broker.stop()
    for d in tmpdirs:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def broker(start_broker):
    """A fresh single-node broker with default settings."""
    return start_broker()


@pytest.fixture
def topic_name(request):
    """A unique, readable topic name for the test."""
    base = re.sub(r"[^A-Za-z0-9._-]", "-", request.node.name)[:150]
    return f"{base}-{uuid.uuid4().hex[:8]}"

