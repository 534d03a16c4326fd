"""The cyclic garbage collector's settings for a worker process (``settle_gc``).

A worker's start-up leaves a few hundred thousand objects that live as long as the process
(modules, SQLAlchemy's tables and compiled statements, the Temporal SDK). With Python's defaults
every full collection walks all of them again, and the youngest generation is collected every
700 allocations of container objects: a billing run's group of 25 accounts allocates ~50,000
(sessions, rated lines, invoice lines, their rows), nearly all freed by reference counting when
the group is written. ``benchmarks/month_end_batch.py --accounts 300`` (one thread, SQLite), the
collector's own CPU (``gc.callbacks``): 2.3 ms per account with the defaults (8 full collections
of 70 ms), 1.1 with the start-up frozen, 0.3 with it frozen and the youngest generation collected
every 50,000 allocations (5 collections, no full one).
"""

from __future__ import annotations

import gc

__all__ = ["settle_gc"]


def settle_gc(young: int) -> None:
    """The process's objects so far leave the collector's generations (``gc.freeze``: a full
    collection no longer walks them), and the youngest generation is collected every ``young``
    allocations instead of 700. Call once the worker is built, before it polls."""
    gc.collect()
    gc.freeze()
    _, mid, old = gc.get_threshold()
    gc.set_threshold(young, mid, old)
