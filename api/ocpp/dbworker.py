"""Database access for the gateway: group commit, on the event loop (SQLite) or a writer thread.

Thousands of chargers each send a message every few seconds; a commit per message would make the
database's fsync the ceiling (and on SQLite writers queue behind one lock anyway). The writer takes
whatever jobs are waiting, runs them in ONE transaction and commits once, then answers every
waiting handler. A charger gets its confirmation only after its data is committed, so an
acknowledged message is never lost. If one job of a batch fails, the batch is rolled back and each
job is re-run alone, so one bad message cannot take its neighbours down.

On SQLite the batches run on the event loop itself, between network events: SQLite statements take
microseconds, and a writer thread would spend its time waiting for the GIL behind the busy loop
(each of its statements releases and re-takes it). On PostgreSQL, where a statement is a network
round trip, a writer thread commits beside the loop.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from store.db import session_factory

__all__ = ["DbWorker"]

log = logging.getLogger("evbill.ocpp.db")
T = TypeVar("T")
Job = Callable[[Session], Any]


class DbWorker:
    def __init__(self, engine: Engine, *, batch_max: int = 500, side_threads: int = 4,
                 inline: bool | None = None) -> None:
        self._checkpointer: threading.Thread | None = None
        self._closing = threading.Event()
        if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
            engine = self._own_sqlite_engine(engine)
        self.engine = engine
        self.sessions = session_factory(engine)
        self.batch_max = batch_max
        self.inline = engine.dialect.name == "sqlite" if inline is None else inline
        self._q: queue.Queue[tuple[Job, asyncio.Future[Any]] | None] = queue.Queue()
        self._inline_jobs: list[tuple[Job, asyncio.Future[Any]]] = []
        self.linger_s = 0.002
        self.inline_chunk = 64
        self._inline_scheduled = False
        self._thread = threading.Thread(target=self._run, name="ocpp-db-writer", daemon=True)
        if not self.inline:
            self._thread.start()
        # reads, and work that commits on its own (rating a finished session through session_io)
        self.side = ThreadPoolExecutor(side_threads, thread_name_prefix="ocpp-db")
        self.batches = 0
        self.jobs = 0
        self.failed_batches = 0
        self.busy_s = 0.0  # time the writer spent in batches and solo jobs
        self.max_batch_s = 0.0
        self.slow: list[tuple[Any, ...]] = []  # the slowest batches over 100 ms (a heap), for diagnosis
        self.single_writer = engine.dialect.name == "sqlite"

    def _own_sqlite_engine(self, shared: Engine) -> Engine:
        """The gateway's own connections to the SQLite file, without automatic WAL checkpoints: a
        checkpoint copies the log into the database and fsyncs, which can take hundreds of ms on a
        busy disk, and it would run inside whichever commit crosses the threshold, stalling the
        event loop. A thread checkpoints instead (SQLite releases the GIL while it does)."""
        from sqlalchemy import event

        from store.db import make_engine

        own = make_engine(shared.url.render_as_string(hide_password=False))

        @event.listens_for(own, "connect")
        def _no_autocheckpoint(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA wal_autocheckpoint=0")
            cur.close()

        self._checkpointer = threading.Thread(target=self._checkpoint_loop, args=(own,),
                                              name="ocpp-wal-checkpoint", daemon=True)
        self._checkpointer.start()
        return own

    def _checkpoint_loop(self, engine: Engine) -> None:
        from sqlalchemy import text

        while not self._closing.wait(1.0):
            try:
                with engine.connect() as conn:
                    # PASSIVE: copies what it can without waiting for (or blocking) anyone
                    conn.execute(text("PRAGMA wal_checkpoint(PASSIVE)"))
            except Exception:
                log.warning("WAL checkpoint failed", exc_info=True)

    async def write(self, job: Callable[[Session], T]) -> T:
        """Run ``job(db)`` in the writer's next transaction; returns after the commit."""
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._submit((job, fut))
        return await fut

    def _submit(self, item: tuple[Job, asyncio.Future[Any]]) -> None:
        if not self.inline:
            self._q.put(item)
            return
        self._inline_jobs.append(item)
        if not self._inline_scheduled:
            self._inline_scheduled = True
            # a couple of milliseconds later: whatever the handlers submit meanwhile shares the commit
            asyncio.get_running_loop().call_later(self.linger_s, self._flush_inline)

    def _flush_inline(self) -> None:
        # at most one chunk per loop turn: a boot storm's hundreds of jobs must not hold the loop
        # (and every other charger's answer) for their whole duration
        items = self._inline_jobs[:self.inline_chunk]
        self._inline_jobs = self._inline_jobs[self.inline_chunk:]
        if self._inline_jobs:
            asyncio.get_running_loop().call_soon(self._flush_inline)
        else:
            self._inline_scheduled = False
        self._run_items(items)

    async def insert_rows(self, table: Any, keys: list[str], rows: list[dict[str, Any]]) -> None:
        """Insert-or-ignore ``rows`` in the next batch; the rows of all jobs of a batch go to the
        database as one statement per table (meter values are most of what chargers send)."""
        if not rows:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._submit((_Rows(table, keys, rows), fut))
        await fut

    async def solo(self, job: Callable[[Session], T]) -> T:
        """A job that commits on its own (storing sessions through ``import_sessions``). On SQLite
        it runs on the writer thread between batches: SQLite has one writer at a time, and a second
        writing thread would only wait on its lock (with busy-timeout sleeps of up to 100 ms). On
        PostgreSQL it runs on the side pool, beside the writer."""
        if not self.single_writer:
            return await self.read(job)
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._submit((_Solo(job), fut))
        return await fut

    async def read(self, job: Callable[[Session], T]) -> T:
        """Run ``job(db)`` on the side pool in a session of its own (the job commits if it writes);
        inline on SQLite, for the reason above."""
        if self.inline:
            with self.sessions() as db:
                return job(db)

        def run() -> T:
            with self.sessions() as db:
                return job(db)

        return await asyncio.get_running_loop().run_in_executor(self.side, run)

    def close(self) -> None:
        self._closing.set()
        if self._checkpointer is not None:
            self._checkpointer.join(timeout=5)
        if self.inline:
            while self._inline_jobs:
                items, self._inline_jobs = self._inline_jobs[:self.batch_max], self._inline_jobs[self.batch_max:]
                self._run_items(items)
        else:
            self._q.put(None)
            self._thread.join(timeout=10)
        self.side.shutdown(wait=True)
        if self._checkpointer is not None:
            self.engine.dispose()  # our own engine (see _own_sqlite_engine)

    # --- the writer thread ------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            first = self._q.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < self.batch_max:
                try:
                    nxt = self._q.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            self._run_items(batch)
            if stop:
                return

    def _run_items(self, batch: list[tuple[Job, asyncio.Future[Any]]]) -> None:
        # solo jobs run alone, after the batch they were queued with
        solos = [b for b in batch if isinstance(b[0], _Solo)]
        batch = [b for b in batch if not isinstance(b[0], _Solo)]
        t0 = time.perf_counter()
        if batch:
            self._run_batch(batch)
        for solo in solos:
            self._run_solo(solo)
        took = time.perf_counter() - t0
        self.busy_s += took
        self.max_batch_s = max(self.max_batch_s, took)
        if took > 0.1 and (len(self.slow) < 50 or took * 1000 > self.slow[0][0]):
            kinds = sorted({_kind(j) for j, _ in batch} | {_kind(j) for j, _ in solos})
            entry = (round(took * 1000), len(batch), len(solos), kinds[:6])
            if len(self.slow) >= 50:
                heapq.heapreplace(self.slow, entry)
            else:
                heapq.heappush(self.slow, entry)

    def _run_batch(self, batch: list[tuple[Job, asyncio.Future[Any]]]) -> None:
        self.batches += 1
        self.jobs += len(batch)
        if all(isinstance(job, _Rows) for job, _ in batch) and self._rows_only(batch):
            return
        results: list[Any] = []
        merged: dict[tuple[Any, tuple[str, ...]], list[dict[str, Any]]] = {}
        try:
            with self.sessions() as db:
                for job, _ in batch:
                    if isinstance(job, _Rows):
                        merged.setdefault((job.table, tuple(job.keys)), []).extend(job.rows)
                        results.append(None)
                    else:
                        results.append(job(db))
                        # one session serves the whole batch: without this its identity map grows
                        # with every job and each autoflush walks all of it (quadratic in batch size)
                        db.flush()
                        db.expunge_all()
                for (table, keys), rows in merged.items():
                    _rows_insert(db, table, list(keys), rows)
                db.commit()
        except Exception:
            self.failed_batches += 1
            log.warning("a batch of %d jobs failed; running them one by one", len(batch), exc_info=True)
            if len(batch) == 1:
                _resolve(batch[0][1], exc=_current_exc())
                return
            for item in batch:
                self._run_one(item)
            return
        for (_, fut), res in zip(batch, results):
            _resolve(fut, res)

    def _rows_only(self, batch: list[tuple[Job, asyncio.Future[Any]]]) -> bool:
        """Meter values only (the common case under load): one core transaction, no ORM session."""
        merged: dict[tuple[Any, tuple[str, ...]], list[dict[str, Any]]] = {}
        for job, _ in batch:
            assert isinstance(job, _Rows)
            merged.setdefault((job.table, tuple(job.keys)), []).extend(job.rows)
        try:
            with self.engine.begin() as conn:
                for (table, keys), rows in merged.items():
                    _rows_insert(conn, table, list(keys), rows)  # type: ignore[arg-type]
        except Exception:  # noqa: BLE001  (the general path isolates the failing job)
            return False
        for _, fut in batch:
            _resolve(fut, None)
        return True

    def _run_solo(self, item: tuple[Job, asyncio.Future[Any]]) -> None:
        job, fut = item
        try:
            with self.sessions() as db:
                res = job(db)
        except Exception as exc:  # noqa: BLE001
            _resolve(fut, exc=exc)
            return
        _resolve(fut, res)

    def _run_one(self, item: tuple[Job, asyncio.Future[Any]]) -> None:
        job, fut = item
        for attempt in range(3):
            try:
                with self.sessions() as db:
                    res = job(db)
                    db.commit()
            except Exception as exc:
                if attempt < 2 and "locked" in str(exc):
                    time.sleep(0.05)
                    continue
                log.exception("ocpp database job failed")
                _resolve(fut, exc=exc)
                return
            _resolve(fut, res)
            return


def _kind(job: Any) -> str:
    inner = job.job if isinstance(job, _Solo) else job
    if isinstance(inner, _Rows):
        return "rows"
    return str(getattr(inner, "__qualname__", type(inner).__name__)).replace(".<locals>.<lambda>", "")


class _Rows:
    def __init__(self, table: Any, keys: list[str], rows: list[dict[str, Any]]) -> None:
        self.table, self.keys, self.rows = table, keys, rows

    def __call__(self, db: Session) -> None:
        _rows_insert(db, self.table, self.keys, self.rows)


def _rows_insert(db: Session, table: Any, keys: list[str], rows: list[dict[str, Any]]) -> None:
    from api.ocpp.service import insert_ignore

    insert_ignore(db, table, rows, keys)


class _Solo:
    def __init__(self, job: Job) -> None:
        self.job = job

    def __call__(self, db: Session) -> Any:
        return self.job(db)


def _current_exc() -> BaseException:
    import sys

    exc = sys.exc_info()[1]
    return exc if exc is not None else RuntimeError("database job failed")


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _resolve(fut: asyncio.Future[Any], res: Any = None, exc: BaseException | None = None) -> None:
    loop = fut.get_loop()

    def done() -> None:
        if fut.done():
            return
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(res)

    try:
        # on the loop's own thread (SQLite: batches run inline) no wake-up of the loop is needed
        if _running_loop() is loop:
            loop.call_soon(done)
        else:
            loop.call_soon_threadsafe(done)
    except RuntimeError:  # the loop is gone (shutdown): nobody is waiting any more
        pass
