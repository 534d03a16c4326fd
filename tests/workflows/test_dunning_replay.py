"""Recorded dunning histories (``EVBILL_RECORD_HISTORIES=1 pytest tests/workflows/test_dunning.py``)
must replay on today's ``DunningWorkflow``, in the SDK's sandbox and without it: a change that
would break running cases fails here (such changes go behind ``workflow.patched``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from workflows.dunning.workflows import DunningWorkflow

HISTORIES = sorted((Path(__file__).resolve().parent / "histories").glob("dunning_*.json"))


@pytest.mark.parametrize("runner", ["sandboxed", "unsandboxed"])
@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_recorded_dunning_history_replays(path: Path, runner: str) -> None:
    history = WorkflowHistory.from_json(f"replay-{path.stem}", path.read_text())
    wr = SandboxedWorkflowRunner() if runner == "sandboxed" else UnsandboxedWorkflowRunner()
    await Replayer(workflows=[DunningWorkflow], workflow_runner=wr).replay_workflow(history)


def test_the_paths_are_recorded() -> None:
    names = {"dunning_paid_after_stage_1", "dunning_dispute_refused", "dunning_approved_blocked_paid"}
    # v2: the "advance" patch (one activity per wake-up reaches the stages that need no approval);
    # v3: "advance-local" (that activity runs as a local activity, recorded as a marker)
    assert {p.stem for p in HISTORIES} >= names | {f"{n}_{v}" for n in names for v in ("v2", "v3", "v5")}
    # v3: "escalate-approval", a timer while an approval task is open and one dunning.escalate
    v3 = WorkflowHistory.from_json("v3", (Path(__file__).resolve().parent / "histories"
                                          / "dunning_escalated_v3.json").read_text())
    names3 = [e.activity_task_scheduled_event_attributes.activity_type.name for e in v3.events
              if e.HasField("activity_task_scheduled_event_attributes")]
    assert names3.count("dunning.escalate") == 1
    v2 = WorkflowHistory.from_json("v2", (Path(__file__).resolve().parent / "histories"
                                          / "dunning_paid_after_stage_1_v2.json").read_text())
    kinds = [e.WhichOneof("attributes") for e in v2.events]
    assert kinds.count("activity_task_scheduled_event_attributes") == 3  # advance, advance, close
    assert "marker_recorded_event_attributes" in kinds
    v3 = WorkflowHistory.from_json("v3", (Path(__file__).resolve().parent / "histories"
                                          / "dunning_paid_after_stage_1_v3.json").read_text())
    kinds = [e.WhichOneof("attributes") for e in v3.events]
    assert kinds.count("activity_task_scheduled_event_attributes") == 1  # close; the advances are markers
    assert kinds.count("marker_recorded_event_attributes") >= 4  # two patches, two local activities
    # v5: "wake", one patch marker where "advance" and "advance-local" recorded two (a case's
    # dunning.advance as a local activity, as in v3)
    for n in names:
        v5 = WorkflowHistory.from_json("v5", (Path(__file__).resolve().parent / "histories"
                                              / f"{n}_v5.json").read_text())
        markers = [e.marker_recorded_event_attributes for e in v5.events
                   if e.HasField("marker_recorded_event_attributes")]
        patches = [m.details["patch-data"].payloads[0].data for m in markers if m.marker_name == "core_patch"]
        assert len(patches) == 1 and b'"wake"' in patches[0]
        assert not any(e.HasField("activity_task_scheduled_event_attributes")
                       and e.activity_task_scheduled_event_attributes.activity_type.name == "dunning.advance"
                       for e in v5.events)
        assert sum(m.marker_name == "core_local_activity" for m in markers) >= 2
    # v4: "letter-delivery", a letter's e-mail leaves in a child DocumentDeliveryWorkflow
    v4 = WorkflowHistory.from_json("v4", (Path(__file__).resolve().parent / "histories"
                                          / "dunning_letter_delivery_v4.json").read_text())
    kinds = [e.WhichOneof("attributes") for e in v4.events]
    assert kinds.count("start_child_workflow_execution_initiated_event_attributes") == 1
    assert kinds.count("marker_recorded_event_attributes") >= 4  # advance, advance-local, the LA, letter-delivery
    # the refused path: an Update rejected by the validator never reaches history, the accepted one does
    h = WorkflowHistory.from_json("r", (Path(__file__).resolve().parent / "histories"
                                        / "dunning_dispute_refused.json").read_text())
    kinds = [e.WhichOneof("attributes") for e in h.events]
    assert kinds.count("workflow_execution_update_accepted_event_attributes") == 1
    assert kinds[-1] == "workflow_execution_completed_event_attributes"
