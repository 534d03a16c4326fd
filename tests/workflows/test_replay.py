"""Histories recorded by earlier workflow code (``record_histories.py``) must replay on today's
code: a change that would break running cycles fails here instead of in production."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from workflows.billing.workflows import BillingCycleWorkflow

HISTORIES = sorted((Path(__file__).resolve().parent / "histories").glob("*.json"))


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_recorded_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(f"replay-{path.stem}", path.read_text())
    await Replayer(workflows=[BillingCycleWorkflow]).replay_workflow(history)


def test_all_paths_are_recorded() -> None:
    names = {"plain", "held_adjust_approve", "held_reject", "held_escalate_approve"}
    stems = {p.stem for p in HISTORIES}
    # generations: sequential hand-over; "parallel-hand-over"; "finalize-clean-drafts"
    assert names <= stems and {f"{n}_{v}" for n in names for v in ("v2", "v3")} <= stems
