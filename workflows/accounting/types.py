"""The batch delivery's input and result (plain dataclasses: Temporal's JSON converter)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["DeliverBatchInput", "DeliveryFailedInput", "DeliveryResult", "delivery_workflow_id"]


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
