"""``evbill serve --workers 2``: two API processes answer on one port with the same database and
admin key, a token issued by one is accepted by the other, and SIGTERM stops them all."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children(pid: int) -> set[int]:
    out: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        out |= {int(c) for c in (task / "children").read_text().split()}
    return out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT balancing and /proc are Linux")
def test_two_api_processes_share_the_port(tmp_path: Path) -> None:
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), EVBILL_DATABASE_URL=f"sqlite:///{tmp_path / 'evbill.db'}")
    env.pop("EVBILL_JWT_SECRET", None)
    proc = subprocess.Popen([sys.executable, "-m", "api.cli", "serve", "--no-temporal", "--ocpp-port", "0",
                             "--port", str(port), "--workers", "2"], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "serve did not come up"
            time.sleep(0.2)
        key = (tmp_path / "var" / "admin-key.txt").read_text().strip()
        # fresh connections land on either process; every one of them knows the key and the tokens
        token = httpx.post(f"{base}/auth/token", json={}, headers={"Authorization": f"Bearer {key}"}).json()
        for _ in range(20):
            for cred in (key, token["access_token"]):
                r = httpx.get(f"{base}/me", headers={"Authorization": f"Bearer {cred}"})
                assert r.status_code == 200 and r.json()["role"] == "admin", r.text
        workers = {p for p in _children(proc.pid)
                   if "spawn_main" in Path(f"/proc/{p}/cmdline").read_text() and "resource_tracker"
                   not in Path(f"/proc/{p}/cmdline").read_text()}
        assert len(workers) == 2
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    assert code == 0, proc.stderr.read().decode()[-2000:] if proc.stderr else code
    assert all(not Path(f"/proc/{p}").exists() or "zombie" in Path(f"/proc/{p}/status").read_text().lower()
               for p in workers)
