"""A worker for dunning alone: ``DunningWorkflow``, ``DunningSweepWorkflow`` and the letters'
``DocumentDeliveryWorkflow``, with settings for many short wake-ups of long-sleeping workflows.

``python -m workflows.dunning.worker --address HOST:PORT [--task-queue Q] [--database-url URL]``
runs one until it is stopped (``benchmarks/dunning.py`` runs two). The billing worker
(``workflows.billing.worker``) runs the same workflows and activities with billing's settings; a
deployment with many overdue customers runs this one on a task queue of its own and points the
sweep there (``SweepInput.task_queue``).

What the settings are for (``benchmarks/dunning.py``, 20,000 customers through stage 1):
- a case's first wake-up is one workflow task (``dunning.advance`` as a local activity, then the
  timer): the worker keeps few polls open and more workflow-task slots than polls, so the sweep's
  starts can ask for the first task with the start (eager workflow start: no task queue round trip
  on the server) and find a free slot on this worker;
- a case sleeps for days after that: keeping it cached buys nothing, so the cache is small (the
  SDK's safe eviction stays on: without it the garbage collector ends the coroutines, the SDK says
  in whatever thread);
- ``build_id`` is given: otherwise the SDK reads and hashes every loaded module's code at start.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import Engine
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from store.documents import SmtpSettings, smtp_settings_from_env
from workflows.documents.activities import DeliveryActivities
from workflows.documents.workflows import DocumentDeliveryWorkflow
from workflows.dunning.activities import DunningActivities
from workflows.dunning.workflows import DunningSweepWorkflow, DunningWorkflow
from workflows.heap import settle_gc as _settle_gc

__all__ = ["DUNNING_TASK_QUEUE", "build_dunning_worker", "main"]

log = logging.getLogger("evbill.dunning.worker")

DUNNING_TASK_QUEUE = "evbill-dunning"
_GC_YOUNG = 20_000  # allocations between collections of the youngest generation (Python's default: 700)


def build_dunning_worker(client: Client, engine: Engine, task_queue: str = DUNNING_TASK_QUEUE, *, threads: int = 4,
                         smtp: SmtpSettings | None = None, **kw: Any) -> Worker:
    """The dunning worker (``threads`` activity threads, which also run the local activities)."""
    # a slot holds a workflow task while its local activity waits for an activity thread: 128 per
    # thread is some seconds of work, within the workflow task's timeout (10 s)
    slots = 128 * threads
    kw.setdefault("max_concurrent_workflow_tasks", slots)
    # fewer polls than slots: a slot without a poll is what an eager start takes
    kw.setdefault("max_concurrent_workflow_task_polls", 2)
    kw.setdefault("max_cached_workflows", 200)
    kw.setdefault("build_id", "evbill-dunning")
    return Worker(client, task_queue=task_queue,
                  workflows=[DunningWorkflow, DunningSweepWorkflow, DocumentDeliveryWorkflow],
                  activities=DunningActivities(engine, client=client, delivers_email=smtp is not None).all()
                  + DeliveryActivities(engine, smtp).all(),
                  activity_executor=ThreadPoolExecutor(max_workers=threads),
                  max_concurrent_activities=threads, max_concurrent_local_activities=threads,
                  workflow_runner=UnsandboxedWorkflowRunner(), **kw)


def settle_gc(young: int = _GC_YOUNG) -> None:
    """The process's objects so far (modules, SQLAlchemy's tables and compiled statements, the
    SDK) leave the collector's generations (``gc.freeze``): a full collection no longer walks them.
    The youngest generation is collected every ``young`` allocations instead of 700: a case's
    wake-up allocates thousands of objects, nearly all freed by reference counting (the collector
    was ~4% of the worker's CPU under ``perf``, 3,000 customers of ``benchmarks/dunning.py``)."""
    _settle_gc(young)


async def run_worker(address: str, task_queue: str, database_url: str | None, threads: int,
                     namespace: str = "default", schema: str | None = None) -> None:
    """Run a dunning worker until it is stopped."""
    from store.db import make_engine

    engine = make_engine(database_url, schema=schema)
    client = await Client.connect(address, namespace=namespace)
    worker = build_dunning_worker(client, engine, task_queue, threads=threads, smtp=smtp_settings_from_env())
    settle_gc()
    log.info("dunning worker on %s, task queue %s", address, task_queue)
    await worker.run()


def main(argv: Iterable[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="evbill-dunning-worker")
    for flag, default in (("--address", os.environ.get("TEMPORAL_ADDRESS", "127.0.0.1:7233")),
                          ("--namespace", "default"), ("--task-queue", DUNNING_TASK_QUEUE),
                          ("--database-url", None), ("--schema", None)):  # --schema: PostgreSQL (benchmarks)
        ap.add_argument(flag, default=default)
    ap.add_argument("--threads", type=int, default=4)
    a = vars(ap.parse_args(list(argv) if argv is not None else None))
    # our lines at INFO, the libraries' from WARNING up (as the billing worker)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("evbill").setLevel(os.environ.get("EVBILL_LOG_LEVEL", "INFO").upper())
    asyncio.run(run_worker(**a))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
