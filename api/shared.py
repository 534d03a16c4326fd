"""State the API processes of one ``evbill serve`` share: a small memory-mapped file.

``evbill serve --workers N`` (N > 1) creates the file (``SharedState.create``) before it starts
the API processes and names it to them (``EVBILL_API_SHARED``); each maps it
(``SharedState.attach``). A single API process (``--workers 1``, tests) maps an anonymous region
of the same layout, so there is one code path. The state holds:

- the **auth generation** (``api.auth``): a counter any process bumps after a change to API keys or
  users has committed; every request reads it (one 8-byte load, ~0.2 us) and a process whose
  cached keys were loaded under an older generation looks them up again;
- the **rate-limit buckets** (``api.auth.RateLimiter``): a token bucket per API key in a table of
  fixed-size slots, read and written under an exclusive ``flock`` (released by the kernel if a
  process dies holding it, so a crashed API process cannot wedge the others).

Layout (little-endian): magic ``EVBSHM01``, the generation (u64), the slot count (u32), padding to
64 bytes, then the slots ``(key hash u64, tokens f64, last refill f64)``, 24 bytes each. Times are
``time.monotonic()``: CLOCK_MONOTONIC, one clock for every process of the machine.

``listen_for_auth_changes`` carries the generation across hosts on PostgreSQL: the transaction
that changes a key or user sends ``NOTIFY evbill_auth`` (``notify_auth_change``), and each server's
listener bumps its own generation when the notification arrives.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import mmap
import os
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["AUTH_CHANNEL", "ENV_VAR", "SharedState", "listen_for_auth_changes", "new_file_path", "notify_auth_change",
           "remove_stale_files"]

ENV_VAR = "EVBILL_API_SHARED"
AUTH_CHANNEL = "evbill_auth"
MAGIC = b"EVBSHM01"
HEADER = 64
_GEN = struct.Struct("<Q")
_COUNT = struct.Struct("<I")
SLOT = struct.Struct("<Qdd")
SLOTS = 8192  # 192 KiB: far more API keys than one server sees at once
PROBE = 16  # slots looked at per key; past that the stalest bucket of the window is reused

log = logging.getLogger("evbill.api")

_FILE_PREFIX = "evbill-api-"


def new_file_path(directory: str) -> str:
    """A fresh file name for this server's state: ``evbill-api-<pid of the server>-<random>``."""
    return os.path.join(directory, f"{_FILE_PREFIX}{os.getpid()}-{os.urandom(4).hex()}")


def remove_stale_files(directory: str) -> list[str]:
    """Remove the state files of servers that are gone (a server killed with SIGKILL cannot remove
    its own); a file whose server process still runs, or whose name is not ours, stays. Returns
    the paths removed."""
    removed = []
    for name in os.listdir(directory):
        pid, _, rand = name.removeprefix(_FILE_PREFIX).partition("-")
        if not name.startswith(_FILE_PREFIX) or not pid.isdigit() or len(rand) != 8:
            continue
        try:
            os.kill(int(pid), 0)
            continue  # the server still runs (or the pid is taken again: the file waits for the next start)
        except ProcessLookupError:
            pass
        except PermissionError:
            continue  # another user's process: alive
        path = os.path.join(directory, name)
        try:
            os.unlink(path)
            removed.append(path)
        except OSError:
            pass
    return removed


def _key_hash(key: str) -> int:
    # stable across processes (``hash()`` is salted per process); 0 marks an empty slot
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little") or 1


class SharedState:
    def __init__(self, mm: mmap.mmap, fd: int | None = None, path: str | None = None) -> None:
        if mm[:8] != MAGIC:
            raise ValueError(f"{path or 'the region'} is not an evbill shared state file")
        self._mm = mm
        self._fd = fd
        self.path = path
        self.slots = _COUNT.unpack_from(mm, 16)[0]
        self._thread_lock = threading.Lock()  # flock excludes processes, not threads of one process

    @staticmethod
    def _size(slots: int) -> int:
        return HEADER + slots * SLOT.size

    @classmethod
    def _init(cls, mm: mmap.mmap, slots: int) -> None:
        mm[:8] = MAGIC
        _GEN.pack_into(mm, 8, 0)
        _COUNT.pack_into(mm, 16, slots)

    @classmethod
    def anonymous(cls, slots: int = SLOTS) -> SharedState:
        """This process only (tests, a single API process)."""
        mm = mmap.mmap(-1, cls._size(slots))
        cls._init(mm, slots)
        return cls(mm)

    @classmethod
    def create(cls, path: str, slots: int = SLOTS) -> SharedState:
        """A fresh file at ``path`` (replacing any old one) for the processes of one server."""
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        os.ftruncate(fd, cls._size(slots))
        mm = mmap.mmap(fd, cls._size(slots))
        cls._init(mm, slots)
        return cls(mm, fd, path)

    @classmethod
    def attach(cls, path: str) -> SharedState:
        fd = os.open(path, os.O_RDWR)
        return cls(mmap.mmap(fd, os.fstat(fd).st_size), fd, path)

    @classmethod
    def from_env(cls) -> SharedState:
        path = os.environ.get(ENV_VAR, "").strip()
        return cls.attach(path) if path else cls.anonymous()

    def close(self) -> None:
        self._mm.close()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    @contextmanager
    def _locked(self) -> Iterator[mmap.mmap]:
        with self._thread_lock:
            if self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                yield self._mm
            finally:
                if self._fd is not None:
                    fcntl.flock(self._fd, fcntl.LOCK_UN)

    # --- auth generation ----------------------------------------------------------------------

    def auth_generation(self) -> int:
        # an aligned 8-byte load; a torn read could only differ from the cached value, and a
        # differing value merely costs one more database lookup
        return int(_GEN.unpack_from(self._mm, 8)[0])

    def bump_auth_generation(self) -> int:
        with self._locked() as mm:
            gen = _GEN.unpack_from(mm, 8)[0] + 1
            _GEN.pack_into(mm, 8, gen)
        return int(gen)

    # --- token buckets ------------------------------------------------------------------------

    def take(self, key: str, rate: float, burst: float, now: float) -> float:
        """One request from ``key``'s bucket (``rate`` tokens/s, at most ``burst``): 0 if it may go
        ahead, else the seconds until a token is back (nothing taken)."""
        h = _key_hash(key)
        start = h % self.slots
        with self._locked() as mm:
            found = free = stalest = -1
            stalest_last = float("inf")
            for i in range(PROBE):
                slot = (start + i) % self.slots
                off = HEADER + slot * SLOT.size
                sh, tokens, last = SLOT.unpack_from(mm, off)
                if sh == h:
                    found = off
                    break
                if free < 0 and (sh == 0 or tokens + (now - last) * rate >= burst):
                    free = off  # empty, or a bucket full again: the same as no bucket at all
                if last < stalest_last:
                    stalest, stalest_last = off, last
            if found >= 0:
                _, tokens, last = SLOT.unpack_from(mm, found)
                tokens = min(burst, tokens + max(0.0, now - last) * rate)
            else:
                found, tokens = (free if free >= 0 else stalest), burst
            if tokens >= 1:
                SLOT.pack_into(mm, found, h, tokens - 1, now)
                return 0.0
            SLOT.pack_into(mm, found, h, tokens, now)
            return float((1 - tokens) / rate)


def notify_auth_change(db: Any) -> None:
    """Inside the transaction that changes a key or user (``db``: a Session or Connection): on
    PostgreSQL, the other servers' listeners hear of it when it commits."""
    if db.get_bind().dialect.name == "postgresql":
        from sqlalchemy import text

        db.execute(text("SELECT pg_notify(:channel, '')"), {"channel": AUTH_CHANNEL})


def listen_for_auth_changes(engine: Any, shared: SharedState, *, poll_s: float = 1.0) -> Callable[[], None]:
    """On PostgreSQL, a daemon thread that LISTENs on ``evbill_auth`` and bumps ``shared``'s auth
    generation for every notification (from this server or another one). After a (re)connect it
    bumps once as well: notifications sent while it was away are lost. Returns a function that
    stops it. Elsewhere (SQLite: one host) a no-op."""
    if engine.dialect.name != "postgresql":
        return lambda: None
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            conn = None
            try:
                fairy = engine.raw_connection()
                conn = fairy.driver_connection
                fairy.detach()  # ours for good: a LISTENing connection must not go back to the pool
                conn.autocommit = True
                conn.execute(f"LISTEN {AUTH_CHANNEL}")
                shared.bump_auth_generation()
                while not stop.is_set():
                    for _ in conn.notifies(timeout=poll_s):
                        shared.bump_auth_generation()
            except Exception as exc:  # noqa: BLE001 - keep listening whatever the database did
                log.warning("auth change listener: %s; reconnecting", exc)
                stop.wait(1.0)
            finally:
                if conn is not None:
                    try:
                        conn.close()
                    except Exception:  # noqa: BLE001, S110
                        pass

    thread = threading.Thread(target=run, name="evbill-auth-listener", daemon=True)
    thread.start()

    def halt() -> None:
        stop.set()
        thread.join(timeout=poll_s + 2)

    return halt
