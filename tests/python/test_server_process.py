"""The `fjord server` process itself: start-up configuration checks and a
clean stop."""

import subprocess
import tempfile

from helpers import fjord_bin


def test_server_refuses_an_unknown_config_key_and_names_it():
    """A misspelt key stops the start (non-zero exit) with the key named."""
    with tempfile.TemporaryDirectory(prefix="fjord-pytest-") as log_dir:
        cmd = [
            fjord_bin(), "server",
            "--override", "listeners=PLAINTEXT://127.0.0.1:0",
            "--override", f"log.dirs={log_dir}",
            "--override", "log.retention.hourz=5",
        ]
        try:
            proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
        except subprocess.TimeoutExpired as e:
            raise AssertionError(
                f"fjord kept running with an unknown key; stderr:\n{(e.stderr or b'').decode(errors='replace')}"
            ) from None
    stderr = proc.stderr.decode(errors="replace")
    assert proc.returncode != 0, f"fjord exited 0 with an unknown key; stderr:\n{stderr}"
    assert "log.retention.hourz" in stderr, stderr


def test_server_exits_zero_on_sigterm(broker):
    """SIGTERM is a clean shutdown: exit status 0 within the stop timeout."""
    assert broker.stop() == 0, broker.stderr_tail()
