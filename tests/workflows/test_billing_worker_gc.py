"""The billing worker's process settles the garbage collector once the worker is built and before
it polls (``workflows.heap.settle_gc``): what was loaded so far leaves the generations and the
youngest is collected every ``GC_YOUNG`` allocations (a month-end group allocates ~50,000)."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

from workflows.billing import worker as W


def test_the_billing_worker_settles_the_collector_before_it_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    class Polling:
        async def run(self) -> None:
            seen["threshold"] = gc.get_threshold()
            seen["frozen"] = gc.get_freeze_count()

    async def connect(*_a: Any, **_k: Any) -> object:
        return object()

    monkeypatch.setattr(W.Client, "connect", connect)
    monkeypatch.setattr(W, "build_worker", lambda *_a, **_k: Polling())
    monkeypatch.setattr(W, "smtp_settings_from_env", lambda: None)
    before = gc.get_threshold()
    try:
        asyncio.run(W.run_worker("127.0.0.1:1", "q", "sqlite://", 1))
        assert seen["threshold"] == (W.GC_YOUNG, before[1], before[2])
        assert seen["frozen"] > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
