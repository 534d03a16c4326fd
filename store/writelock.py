"""One writer at a time on a SQLite database file, across threads and processes.

SQLite allows a single writer. When several wait for it, each sleeps in SQLite's busy handler
(1, 2, 5 ... 100 ms steps) and retries; under month-end load with a dozen writers in two worker
processes that turned a 5 ms write into hundreds of milliseconds of waiting and, now and then,
``database is locked`` after the full timeout. A kernel file lock (``flock``) queues the waiters
instead and wakes the next one the moment the lock is free. Other databases need nothing here:
PostgreSQL writers lock rows, not the database.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: the busy handler alone serializes writers
    fcntl = None  # type: ignore[assignment]

__all__ = ["release_write_lock", "sqlite_write_lock"]

_guard = threading.Lock()
_locks: dict[str, tuple[threading.RLock, int]] = {}
_depth = threading.local()


def _lock_for(path: str) -> tuple[threading.RLock, int]:
    with _guard:
        got = _locks.get(path)
        if got is None:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            got = _locks[path] = (threading.RLock(), fd)
        return got


@contextmanager
def sqlite_write_lock(engine: Engine) -> Iterator[None]:
    """Hold the database's write turn for the block (re-entrant within a thread)."""
    db = engine.url.database if engine.dialect.name == "sqlite" else None
    if not db or db == ":memory:" or db.startswith("file:") or fcntl is None:
        yield
        return
    path = os.path.abspath(db) + ".writelock"
    tlock, fd = _lock_for(path)
    with tlock:  # threads of this process queue here; one of them holds the file lock
        depth = getattr(_depth, path, 0)
        if depth == 0:
            fcntl.flock(fd, fcntl.LOCK_EX)  # releases the GIL while it waits
        setattr(_depth, path, depth + 1)
        try:
            yield
        finally:
            setattr(_depth, path, depth)
            if depth == 0:
                fcntl.flock(fd, fcntl.LOCK_UN)


def release_write_lock(engine: Engine, *, remove: bool = True) -> None:
    """Close this process's handle on the database's lock file and, with ``remove``, delete the
    file: for a process that owns the database and is done with it (the demo), so only the
    database itself remains. Another process still using the file would go on locking the
    deleted one; SQLite's own locking keeps its writes correct, only the queueing is lost."""
    db = engine.url.database if engine.dialect.name == "sqlite" else None
    if not db or db == ":memory:" or db.startswith("file:"):
        return
    path = os.path.abspath(db) + ".writelock"
    with _guard:
        got = _locks.pop(path, None)
    if got is not None:
        with got[0]:  # a thread of ours still writing finishes first
            os.close(got[1])
    if remove:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
