"""Python's cyclic garbage collector paused while a bulk operation builds many objects at once.

A statement import of 50,000 entries or a collection run of 100,000 items creates millions of
short-lived objects (XML elements, entries, rows, decimals). Each allocation burst triggers the
collector, and its full collections walk every live object again: about a fifth of such an
import's CPU time (``benchmarks/payments.py``). Reference counting still frees these objects as
soon as they are unused; only reference cycles wait until the last paused operation ends, when
the collector is switched back on (it runs again on its own then). Process-wide and nestable:
concurrent operations keep it paused until the last one is done.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["paused_gc"]

_lock = threading.Lock()
_depth = 0
_was_enabled = False


@contextmanager
def paused_gc() -> Iterator[None]:
    global _depth, _was_enabled
    with _lock:
        if _depth == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _was_enabled:
                gc.enable()
