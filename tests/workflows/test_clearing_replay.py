"""The clearing workflow's recorded history (a month with one dispute on day 6 accepted after the
window, recorded by ``test_clearing.py`` with ``EVBILL_RECORD_CLEARING_HISTORY=1``) replays on
today's code, in the SDK's sandbox and without it."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from workflows.clearing.workflows import ClearingWorkflow

HISTORIES = sorted((Path(__file__).resolve().parent / "histories").glob("clearing_*.json"))


def test_a_history_is_recorded() -> None:
    assert [p.stem for p in HISTORIES] == ["clearing_dispute_accepted"]


@pytest.mark.parametrize("runner", ["sandboxed", "unsandboxed"])
@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_clearing_history_replays(path: Path, runner: str) -> None:
    history = WorkflowHistory.from_json(f"replay-{path.stem}", path.read_text())
    wr = SandboxedWorkflowRunner() if runner == "sandboxed" else UnsandboxedWorkflowRunner()
    await Replayer(workflows=[ClearingWorkflow], workflow_runner=wr).replay_workflow(history)
    kinds = [e.WhichOneof("attributes") for e in history.events]
    assert kinds.count("workflow_execution_update_accepted_event_attributes") == 2  # the dispute, the resolution
    assert kinds.count("timer_started_event_attributes") == 1  # the 7-day window
