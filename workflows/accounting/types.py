"""The batch delivery's input and result (plain dataclasses: Temporal's JSON converter)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["BatchSweepInput", "DeliverBatchInput", "DeliveryFailedInput", "DeliveryResult", "DueBatch",
           "delivery_workflow_id"]


def delivery_workflow_id(tenant_id: str, batch_id: str) -> str:
    """One delivery per batch: starting it again finds the first."""
    return f"batch-delivery:{tenant_id}:{batch_id}"


@dataclass
class DeliverBatchInput:
    tenant_id: str
    batch_id: str
    max_attempts: int = 8  # then the failure is recorded for finance


@dataclass
class DeliveryFailedInput:
    tenant_id: str
    batch_id: str
    error: str


@dataclass
class DeliveryResult:
    status: str  # delivered | failed
    target: str = ""
    files: list[str] = field(default_factory=list)
    error: str = ""


@dataclass
class BatchSweepInput:
    """One round of the batch schedule: ``at`` (ISO, UTC) is the workflow's time, set by the
    workflow when empty; ``task_queue`` where the deliveries run; ``max_attempts`` per delivery."""

    at: str = ""
    task_queue: str = ""
    max_attempts: int = 8


@dataclass
class DueBatch:
    tenant_id: str
    batch_id: str
