"""The approval runs' recorded histories (``EVBILL_RECORD_HISTORIES=1 pytest tests/workflows/test_collections.py
tests/workflows/test_payouts.py``) replay on today's code: the runs' histories were recorded by the
collection and payout workflows as they were before they shared ``workflows.approval_run``, so a
change that would break a run waiting for its approval fails here."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from tests.workflows.recording import HISTORIES
from workflows.collections.workflows import CollectionRunWorkflow
from workflows.payouts.workflows import PayoutRunWorkflow

RUNS = sorted(HISTORIES.glob("collection_run_*.json")) + sorted(HISTORIES.glob("payout_run_*.json"))


def test_both_runs_are_recorded() -> None:
    assert {p.stem for p in RUNS} >= {"collection_run_approved", "payout_run_approved"}


@pytest.mark.parametrize("runner", ["sandboxed", "unsandboxed"])
@pytest.mark.parametrize("path", RUNS, ids=[p.stem for p in RUNS])
async def test_recorded_run_replays(path: Path, runner: str) -> None:
    history = WorkflowHistory.from_json(f"replay-{path.stem}", path.read_text())
    kinds = [e.WhichOneof("attributes") for e in history.events]
    # the history holds the whole run: gathered, an approval accepted, submitted, completed
    assert kinds.count("activity_task_completed_event_attributes") == 2
    assert kinds.count("workflow_execution_update_accepted_event_attributes") == 1
    assert kinds[-1] == "workflow_execution_completed_event_attributes"
    wr = SandboxedWorkflowRunner() if runner == "sandboxed" else UnsandboxedWorkflowRunner()
    await Replayer(workflows=[CollectionRunWorkflow, PayoutRunWorkflow], workflow_runner=wr).replay_workflow(history)
