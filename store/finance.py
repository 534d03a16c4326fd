"""What the billing API reads and writes beside the cycle itself: finance tasks and their
invoices, manual holds, an account's service items and period discounts, and the ruleset
versions a service item is checked against. The cycle's own statements live in ``store.billing``;
the controllers in ``api/areas/billing/`` call these functions and never build SQL.

Every function takes the caller's connection (its transaction) and the tenant, and finds nothing
of another tenant's.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, Table, insert, select, update

from store.billing import billing_hold, finance_task, invoice, invoice_line
from store.models import BillingAccount, RulesetVersion

__all__ = [
    "account",
    "effective_index",
    "end_account_row",
    "finance_task_of",
    "finance_tasks",
    "hold",
    "insert_account_row",
    "invoice_totals",
    "invoice_with_lines",
    "open_tasks_of_account",
    "ruleset_versions",
    "update_account_row",
]

_account = BillingAccount.__table__  # type: ignore[attr-defined]
_version = RulesetVersion.__table__  # type: ignore[attr-defined]


def account(conn: Connection, tenant_id: str, account_id: str) -> Any:
    """The tenant's billing account row, or None."""
    return conn.execute(select(_account).where(_account.c.id == account_id,
                                               _account.c.tenant_id == tenant_id)).first()


def finance_tasks(conn: Connection, tenant_id: str, *, status: str | None, after_id: str | None,
                  limit: int, kind: str | None = None) -> list[Any]:
    """A page of finance tasks in id order, each with its invoice's currency, totals and period
    (empty for a task about something else: a posting batch whose delivery failed)."""
    t, i = finance_task, invoice
    stmt = (select(t, i.c.currency, i.c.net_total, i.c.gross_total, i.c.local_start.label("period_start"),
                   i.c.local_end.label("period_end"))
            .outerjoin(i, i.c.id == t.c.invoice_id).where(t.c.tenant_id == tenant_id))
    if status:
        stmt = stmt.where(t.c.status == status)
    if kind:
        stmt = stmt.where(t.c.kind == kind)
    if after_id:
        stmt = stmt.where(t.c.id > after_id)
    return list(conn.execute(stmt.order_by(t.c.id).limit(limit)).all())


def finance_task_of(conn: Connection, tenant_id: str, task_id: str) -> Any:
    return conn.execute(select(finance_task).where(finance_task.c.id == task_id,
                                                   finance_task.c.tenant_id == tenant_id)).first()


def open_tasks_of_account(conn: Connection, tenant_id: str, account_id: str) -> list[Any]:
    return list(conn.execute(select(finance_task).where(finance_task.c.tenant_id == tenant_id,
                                                        finance_task.c.account_id == account_id,
                                                        finance_task.c.status == "open")).all())


def invoice_with_lines(conn: Connection, tenant_id: str, invoice_id: str) -> tuple[Any, list[Any]] | None:
    """The invoice (any status) and its lines in order, or None."""
    row = conn.execute(select(invoice).where(invoice.c.id == invoice_id, invoice.c.tenant_id == tenant_id)).first()
    if row is None:
        return None
    lines = conn.execute(select(invoice_line).where(invoice_line.c.invoice_id == invoice_id)
                         .order_by(invoice_line.c.seq)).all()
    return row, list(lines)


def invoice_totals(conn: Connection, invoice_id: str) -> Any:
    """``net_total`` and ``gross_total`` of an invoice as it stands, or None."""
    return conn.execute(select(invoice.c.net_total, invoice.c.gross_total).where(invoice.c.id == invoice_id)).first()


def hold(conn: Connection, tenant_id: str, hold_id: str) -> Any:
    return conn.execute(select(billing_hold).where(billing_hold.c.id == hold_id,
                                                   billing_hold.c.tenant_id == tenant_id)).first()


def insert_account_row(conn: Connection, table: Table, tenant_id: str, account_id: str, row_id: str,
                       values: Mapping[str, Any]) -> None:
    """A new service item or discount of the account."""
    conn.execute(insert(table).values(id=row_id, tenant_id=tenant_id, account_id=account_id, **values))


def update_account_row(conn: Connection, table: Table, tenant_id: str, row_id: str, values: Mapping[str, Any]) -> None:
    conn.execute(update(table).where(table.c.id == row_id, table.c.tenant_id == tenant_id).values(**values))


def end_account_row(conn: Connection, table: Table, tenant_id: str, row_id: str, valid_to: date) -> None:
    update_account_row(conn, table, tenant_id, row_id, {"valid_to": valid_to})


def ruleset_versions(conn: Connection, tenant_id: str) -> list[Any]:
    """The tenant's published versions (id, source, dsl_name, effective_from) in the order they
    take effect."""
    return list(conn.execute(select(_version.c.id, _version.c.source, _version.c.dsl_name, _version.c.effective_from)
                             .where(_version.c.tenant_id == tenant_id)
                             .order_by(_version.c.effective_from, _version.c.published_at)).all())


def effective_index(rows: list[Any], at: datetime) -> int:
    """The index of the version in force at ``at`` in ``ruleset_versions``' rows (0 when none is yet)."""
    return max([i for i, r in enumerate(rows) if r.effective_from <= at], default=0)
