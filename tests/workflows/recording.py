"""Keeping a finished workflow's history for a replay test (``EVBILL_RECORD_HISTORIES=1``).

Re-record only on purpose, as ``record_histories.py`` says: the point of a recorded history is that
it was written by earlier workflow code, which today's code must still replay."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowHandle

HISTORIES = Path(__file__).resolve().parent / "histories"


async def record_history(h: WorkflowHandle[Any, Any], name: str) -> None:
    """Write ``histories/<name>.json`` when recording is asked for; otherwise do nothing."""
    if os.environ.get("EVBILL_RECORD_HISTORIES") == "1":
        HISTORIES.joinpath(f"{name}.json").write_text((await h.fetch_history()).to_json())
