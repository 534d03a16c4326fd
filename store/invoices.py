"""Reading invoices and credit notes back: the list an operator filters after a billing run.

Filters are plain column comparisons; no SQL aggregate touches money (SQLite would add the
decimal text columns as floats).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from store.billing import invoice
from store.errors import InvalidInput

__all__ = ["INVOICE_KINDS", "INVOICE_STATUSES", "InvoiceFilter", "cycle_invoices", "list_invoices"]

INVOICE_STATUSES = ("draft", "held", "finalized", "rejected", "empty")
INVOICE_KINDS = ("invoice", "credit_note")


@dataclass(frozen=True, slots=True)
class InvoiceFilter:
    """What to list. A billing period is half-open, ``[local_start, local_end)`` in the account's
    zone; ``period_from``/``period_to`` select the invoices whose service period overlaps
    ``[period_from, period_to)``."""

    account_id: str | None = None
    customer_id: str | None = None
    status: str | None = None
    kind: str | None = None
    number: str | None = None
    period_from: date | None = None
    period_to: date | None = None
    issued_from: date | None = None
    issued_to: date | None = None

    def __post_init__(self) -> None:
        if self.status is not None and self.status not in INVOICE_STATUSES:
            raise InvalidInput("invalid_status", f"status {self.status!r} is not one of {', '.join(INVOICE_STATUSES)}")
        if self.kind is not None and self.kind not in INVOICE_KINDS:
            raise InvalidInput("invalid_kind", f"kind {self.kind!r} is not one of {', '.join(INVOICE_KINDS)}")
        for lo, hi, what in ((self.period_from, self.period_to, "period"),
                             (self.issued_from, self.issued_to, "issued")):
            if lo is not None and hi is not None and hi < lo:
                raise InvalidInput(f"invalid_{what}", f"{what}_to {hi} is before {what}_from {lo}")


def list_invoices(db: Session | Connection, tenant_id: str, f: InvoiceFilter, *, after_id: str | None = None,
                  limit: int = 50) -> list[Any]:
    """One page of the tenant's invoices matching ``f``, in id order, ``limit + 1`` rows at most
    (the caller knows from the extra row that there is a next page)."""
    i = invoice
    stmt = select(i).where(i.c.tenant_id == tenant_id)
    for col, value in ((i.c.account_id, f.account_id), (i.c.customer_id, f.customer_id),
                       (i.c.status, f.status), (i.c.kind, f.kind), (i.c.number, f.number)):
        if value is not None:
            stmt = stmt.where(col == value)
    if f.period_from is not None:
        stmt = stmt.where(i.c.local_end > f.period_from)
    if f.period_to is not None:
        stmt = stmt.where(i.c.local_start < f.period_to)
    if f.issued_from is not None:
        stmt = stmt.where(i.c.issue_date >= f.issued_from)
    if f.issued_to is not None:
        stmt = stmt.where(i.c.issue_date < f.issued_to)
    if after_id is not None:
        stmt = stmt.where(i.c.id > after_id)
    return list(db.execute(stmt.order_by(i.c.id).limit(limit + 1)).all())


def cycle_invoices(db: Session | Connection, tenant_id: str, workflow_id: str) -> list[Any]:
    """The invoices one billing cycle (its workflow) wrote, oldest first."""
    i = invoice
    return list(db.execute(select(i).where(i.c.tenant_id == tenant_id, i.c.workflow_id == workflow_id)
                           .order_by(i.c.created_at, i.c.id)).all())
