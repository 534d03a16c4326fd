"""Payloads of the document-delivery workflows and activities: one dataclass each, so fields can
be added with defaults without breaking running histories."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

__all__ = ["HANDED_OVER_GRACE", "SWEEP_SCHEDULE_ID", "DeliverDocumentInput", "DeliveryOutcome", "DeliverySweepInput", "SweepResult",
           "delivery_workflow_id"]

# the one Schedule that starts a sweep every interval (all tenants: deliveries carry their tenant)
SWEEP_SCHEDULE_ID = "evbill-document-delivery-sweep"


# how long a delivery handed to a DocumentDeliveryWorkflow of its own is kept from the sweep (the
# workflow starts within seconds; its first retry comes after a minute): at month-end the sweep
# would otherwise race thousands of them, and it still sends one whose workflow never ran
HANDED_OVER_GRACE = timedelta(minutes=5)


def delivery_workflow_id(tenant_id: str, delivery_id: str) -> str:
    return f"document-delivery:{tenant_id}:{delivery_id}"


@dataclass
class DeliverDocumentInput:
    """Send one queued delivery (``store.documents.document_delivery``) of document ``number``."""

    tenant_id: str
    delivery_id: str
    number: str = ""


@dataclass
class DeliveryOutcome:
    # sent | abandoned (retries exhausted or refused for good) | unknown (a worker died mid-send:
    # an operator decides) | sending (another worker holds the claim and records the outcome) |
    # off (this worker has no SMTP server) | failed (the workflow's attempts ran out first: the
    # sweep keeps trying while the delivery's own attempts last)
    status: str
    attempts: int = 0
    detail: str = ""


@dataclass
class DeliverySweepInput:
    limit: int = 100  # deliveries per round
    budget_s: float = 45.0  # start no attempt after this (a round fits in the sweep's interval)


@dataclass
class SweepResult:
    attempted: int = 0
    sent: int = 0
    failed: int = 0
    abandoned: int = 0
    marked_unknown: int = 0
    off: bool = False
