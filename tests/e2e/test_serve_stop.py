"""``evbill serve`` stopped by SIGTERM (a service manager) or SIGINT (Ctrl-C) stops its gateway,
billing worker and embedded Temporal server, and leaves ``var/`` with one file per database: no
``-wal``/``-shm`` beside ``evbill.db`` or ``temporal.db``, and nothing of it still running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.mailbox import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stopped_server_leaves_one_file_per_database(tmp_path: Path, sig: signal.Signals) -> None:
    port, temporal_port = free_port(), free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), EVBILL_TEMPORAL_PORT=str(temporal_port))
    for name in ("TEMPORAL_ADDRESS", "EVBILL_DATABASE_URL", "EVBILL_SMTP_HOST", "EVBILL_API_WORKERS"):
        env.pop(name, None)
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "api.cli", "serve", "--port", str(port),
                                 "--ocpp-port", str(free_port())], cwd=tmp_path, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        var = tmp_path / "var"
        assert (var / "evbill.db-wal").exists() and (var / "temporal.db-wal").exists()  # both in use
        proc.send_signal(sig)
        assert proc.wait(60) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    left = sorted(p.name for p in var.iterdir())
    assert "evbill.db" in left and "temporal.db" in left
    assert not [n for n in left if n.endswith(("-wal", "-shm"))], left
    # the embedded Temporal server went with it: its port is free again
    with httpx.Client() as c, pytest.raises(httpx.ConnectError):
        c.get(f"http://127.0.0.1:{temporal_port}/", timeout=2)
    assert "Traceback" not in log.read_text()
