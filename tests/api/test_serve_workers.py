"""``evbill serve --workers 2``: two API processes answer on one port with the same database and
admin key, a token issued by one is accepted by the other, a key revoked or a user changed through
one is refused by both from the next request on, the rate limit counts for both together, and
SIGTERM stops them all."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.pgschema import PG_URL, pg_schema

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


@contextmanager
def _serve(tmp_path: Path, database_url: str = "", **env_extra: str) -> Iterator[tuple[str, str, subprocess.Popen[bytes]]]:
    """``evbill serve --workers 2`` on a fresh SQLite file (or ``database_url``): (base URL, the
    admin key it created on an empty database or "", the process)."""
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT),
               EVBILL_DATABASE_URL=database_url or f"sqlite:///{tmp_path / 'evbill.db'}", **env_extra)
    env.pop("EVBILL_JWT_SECRET", None)
    if "EVBILL_RATE_LIMIT" not in env_extra:
        env.pop("EVBILL_RATE_LIMIT", None)
    proc = subprocess.Popen([sys.executable, "-m", "api.cli", "serve", "--no-temporal", "--ocpp-port", "0",
                             "--port", str(port), "--workers", "2"], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180  # two processes importing everything on a loaded 2-core machine
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "serve did not come up"
            time.sleep(0.2)
        key_file = tmp_path / "var" / "admin-key.txt"
        yield base, key_file.read_text().strip() if key_file.exists() else "", proc
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    assert code == 0, proc.stderr.read().decode()[-2000:] if proc.stderr else code


def _api_processes(proc: subprocess.Popen[bytes]) -> set[int]:
    return {p for p in _children(proc.pid)
            if "spawn_main" in Path(f"/proc/{p}/cmdline").read_text() and "resource_tracker"
            not in Path(f"/proc/{p}/cmdline").read_text()}


class Conn:
    """One keep-alive HTTP/1.1 connection, and which API process holds its other end (from
    /proc: the server-side socket whose peer is this connection's local port)."""

    def __init__(self, base: str, workers: set[int]) -> None:
        host, port = base.rsplit("/", 1)[1].split(":")
        self.sock = socket.create_connection((host, int(port)))
        self.file = self.sock.makefile("rb")
        assert self.request("GET", "/health")[0] == 200  # accepted: its server side has an inode now
        me = self.sock.getsockname()[1]
        inode = ""
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            f = line.split()
            if int(f[1].split(":")[1], 16) == int(port) and int(f[2].split(":")[1], 16) == me:
                inode = f[9]
        self.pid = next((p for p in workers for fd in Path(f"/proc/{p}/fd").iterdir()
                         if inode and os.readlink(fd) == f"socket:[{inode}]"), None)

    def request(self, method: str, path: str, key: str = "") -> tuple[int, dict[str, str]]:
        auth = f"Authorization: Bearer {key}\r\n" if key else ""
        self.sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 0\r\n\r\n".encode())
        status = int(self.file.readline().split()[1])
        headers = {}
        while (line := self.file.readline().decode("latin-1").strip()):
            name, _, value = line.partition(":")
            headers[name.lower()] = value.strip()
        self.file.read(int(headers.get("content-length", 0)))
        return status, headers

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def _conns_on_both(base: str, proc: subprocess.Popen[bytes], per_process: int) -> list[Conn]:
    """Connections until each of the two API processes holds ``per_process`` of them, interleaved."""
    workers = _api_processes(proc)
    assert len(workers) == 2
    by_pid: dict[int, list[Conn]] = {p: [] for p in workers}
    spare: list[Conn] = []
    deadline = time.monotonic() + 60  # /health answered by one process: the other may still be starting
    while not all(len(v) >= per_process for v in by_pid.values()) and time.monotonic() < deadline:
        c = Conn(base, workers)
        assert c.pid in by_pid
        (by_pid[c.pid] if len(by_pid[c.pid]) < per_process else spare).append(c)
        if len(spare) > 20:
            time.sleep(0.05)
    for c in spare:
        c.close()
    a, b = by_pid.values()
    assert len(a) == len(b) == per_process
    return [c for pair in zip(a, b, strict=True) for c in pair]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT balancing and /proc are Linux")
def test_two_api_processes_share_the_port(tmp_path: Path) -> None:
    with _serve(tmp_path) as (base, key, proc):
        # fresh connections land on either process; every one of them knows the key and the tokens
        token = httpx.post(f"{base}/auth/token", json={}, headers={"Authorization": f"Bearer {key}"}).json()
        for _ in range(20):
            for cred in (key, token["access_token"]):
                r = httpx.get(f"{base}/me", headers={"Authorization": f"Bearer {cred}"})
                assert r.status_code == 200 and r.json()["role"] == "admin", r.text
        workers = _api_processes(proc)
        assert len(workers) == 2
    assert all(not Path(f"/proc/{p}").exists() or "zombie" in Path(f"/proc/{p}/status").read_text().lower()
               for p in workers)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT balancing and /proc are Linux")
def test_a_revocation_reaches_every_process_at_once(tmp_path: Path) -> None:
    with _serve(tmp_path) as (base, admin, proc):
        h = {"Authorization": f"Bearer {admin}"}
        user = httpx.post(f"{base}/users", json={"email": "op@x.test", "role": "operator"}, headers=h).json()
        made = httpx.post(f"{base}/api-keys", json={"user_id": user["id"]}, headers=h).json()
        key = made["key"]
        token = httpx.post(f"{base}/auth/token", json={}, headers={"Authorization": f"Bearer {key}"}).json()
        conns = _conns_on_both(base, proc, per_process=2)
        # both processes now hold the key (and its token's key) in their caches
        for c in conns:
            assert c.request("GET", "/me", key)[0] == 200
            assert c.request("GET", "/me", token["access_token"])[0] == 200
        # revoke through one process; the very next request on every process is refused
        assert conns[0].request("DELETE", f"/api-keys/{made['id']}", admin)[0] == 204
        for c in conns:
            assert c.request("GET", "/me", key)[0] == 401, c.pid
            assert c.request("GET", "/me", token["access_token"])[0] == 401, c.pid

        # the same for a user's role change and for disabling a user, made through the other process
        user2 = httpx.post(f"{base}/users", json={"email": "ad@x.test", "role": "admin"}, headers=h).json()
        key2 = httpx.post(f"{base}/api-keys", json={"user_id": user2["id"]}, headers=h).json()["key"]
        for c in conns:
            assert c.request("GET", "/users", key2)[0] == 200
        r = httpx.patch(f"{base}/users/{user2['id']}", json={"role": "auditor"}, headers=h)
        assert r.status_code == 200, r.text
        for c in conns:
            assert c.request("GET", "/users", key2)[0] == 403, c.pid  # auditors may not list users
        assert conns[1].request("GET", "/me", key2)[0] == 200
        r = httpx.patch(f"{base}/users/{user2['id']}", json={"active": False}, headers=h)
        assert r.status_code == 200, r.text
        for c in conns:
            assert c.request("GET", "/me", key2)[0] == 401, c.pid
        for c in conns:
            c.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT balancing and /proc are Linux")
def test_the_rate_limit_holds_across_processes(tmp_path: Path) -> None:
    # 5 requests, then one per 10 s: per process, the two processes together would let 10 through
    with _serve(tmp_path, EVBILL_RATE_LIMIT="0.1", EVBILL_RATE_BURST="5") as (base, admin, proc):
        conns = _conns_on_both(base, proc, per_process=4)
        answers = [(c.pid, *c.request("GET", "/me", admin)) for c in conns]
        assert [status for _, status, _ in answers] == [200] * 5 + [429] * 3, answers
        refused_by = {pid for pid, status, _ in answers if status == 429}
        assert len(refused_by) == 2  # whichever process answers
        assert all(int(headers["retry-after"]) >= 1 for _, status, headers in answers if status == 429)
        for c in conns:
            c.close()


@pytest.mark.skipif(not PG_URL or not sys.platform.startswith("linux"), reason="NOTIFY is PostgreSQL's")
def test_a_revocation_reaches_another_server_on_the_same_postgresql(tmp_path: Path) -> None:
    with pg_schema() as (_admin, schema):
        url = f"{PG_URL}?options=-csearch_path%3D{schema}"
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        with _serve(tmp_path / "a", url) as (base_a, admin, _), _serve(tmp_path / "b", url) as (base_b, _, proc_b):
            h = {"Authorization": f"Bearer {admin}"}
            user = httpx.post(f"{base_a}/users", json={"email": "op@x.test", "role": "operator"}, headers=h).json()
            made = httpx.post(f"{base_a}/api-keys", json={"user_id": user["id"]}, headers=h).json()
            conns = _conns_on_both(base_b, proc_b, per_process=1)
            for c in conns:
                assert c.request("GET", "/me", made["key"])[0] == 200  # cached on both of B's processes
            assert httpx.delete(f"{base_a}/api-keys/{made['id']}", headers=h).status_code == 204
            # B hears of it by NOTIFY, not by its cache's 5 s running out
            refused_after = []
            for c in conns:
                start = time.monotonic()
                while c.request("GET", "/me", made["key"])[0] != 401:
                    assert time.monotonic() - start < 2, "server B still accepts the revoked key"
                    time.sleep(0.005)
                refused_after.append(time.monotonic() - start)
            for c in conns:
                c.close()
