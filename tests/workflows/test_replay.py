"""Histories recorded by earlier workflow code (``record_histories.py``) must replay on today's
code: a change that would break running cycles fails here instead of in production. Each history
replays twice: in the SDK's sandbox (which refuses non-deterministic imports and calls) and
without it, as the billing worker runs workflows (``build_worker``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from workflows.billing.workflows import BillingCycleWorkflow

# the billing cycle's histories (the dunning workflow's, dunning_*.json, replay in test_dunning_replay.py,
# the clearing workflow's, clearing_*.json, in test_clearing_replay.py, the collection and payout
# runs', collection_run_*.json and payout_run_*.json, in test_run_replay.py)
HISTORIES = sorted(p for p in (Path(__file__).resolve().parent / "histories").glob("*.json")
                   if not p.name.startswith(("dunning_", "clearing_", "collection_run_", "payout_run_")))


@pytest.mark.parametrize("runner", ["sandboxed", "unsandboxed"])
@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_recorded_history_replays(path: Path, runner: str) -> None:
    history = WorkflowHistory.from_json(f"replay-{path.stem}", path.read_text())
    wr = SandboxedWorkflowRunner() if runner == "sandboxed" else UnsandboxedWorkflowRunner()
    await Replayer(workflows=[BillingCycleWorkflow], workflow_runner=wr).replay_workflow(history)


def test_all_paths_are_recorded() -> None:
    names = {"plain", "held_adjust_approve", "held_reject", "held_escalate_approve"}
    stems = {p.stem for p in HISTORIES}
    # generations: sequential hand-over; "parallel-hand-over"; "finalize-clean-drafts"; "month-end-v4"
    assert names <= stems and {f"{n}_{v}" for n in names for v in ("v2", "v3", "v4")} <= stems
    # v5: the reprice Update (a handler without a patch: this history guards it)
    assert "held_reprice_approve_v5" in stems
    # v6: "deliver-documents", a worker with SMTP starts the invoice's DocumentDeliveryWorkflow
    assert "plain_delivered_v6" in stems
    # v7: "credit-note-tells-dunning", a credit note signals the customer's open DunningWorkflow
    assert "credit_note_tells_dunning_v7" in stems


def test_a_credit_note_signals_the_open_dunning_case() -> None:
    history = WorkflowHistory.from_json("v7", (Path(__file__).resolve().parent / "histories"
                                               / "credit_note_tells_dunning_v7.json").read_text())
    kinds = [e.WhichOneof("attributes") for e in history.events]
    assert kinds.count("signal_external_workflow_execution_initiated_event_attributes") == 1
    assert kinds.count("external_workflow_execution_signaled_event_attributes") == 1


def test_a_delivering_cycle_starts_its_e_mail_and_ends() -> None:
    """With SMTP, the cycle hands the queued e-mail to a child workflow it does not wait for."""
    history = WorkflowHistory.from_json("v6", (Path(__file__).resolve().parent / "histories"
                                               / "plain_delivered_v6.json").read_text())
    kinds = [e.WhichOneof("attributes") for e in history.events]
    assert kinds.count("start_child_workflow_execution_initiated_event_attributes") == 1
    assert kinds[-1] == "workflow_execution_completed_event_attributes"


def test_newest_generation_runs_short_steps_locally() -> None:
    """The v4 plain cycle is one workflow task: assembly and both hand-overs are local-activity
    markers, and no activity task goes through the server."""
    history = WorkflowHistory.from_json("v4", (Path(__file__).resolve().parent / "histories" / "plain_v4.json")
                                        .read_text())
    kinds = [e.WhichOneof("attributes") for e in history.events]
    assert "activity_task_scheduled_event_attributes" not in kinds
    assert kinds.count("marker_recorded_event_attributes") == 4  # 1 patch + assemble + 2 hand-overs
    assert kinds.count("workflow_task_completed_event_attributes") == 1
