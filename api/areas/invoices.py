"""Invoices and credit notes as an operator finds them after a billing run: one filtered list.

A billing period is half-open: ``local_start`` is its first day, ``local_end`` the first day
after it (a November invoice runs 2026-11-01..2026-12-01)."""

from __future__ import annotations

from datetime import date
from typing import Any

from litestar import Request, Router
from pydantic import Field

from api.areas.billing import InvoiceRead, temporal_client, temporal_configured
from api.auth import actor_of
from api.crud import CursorParam, LimitParam, ReadModel, open_scope, route
from store.errors import NotFound
from store.invoices import InvoiceFilter, cycle_invoices
from store.invoices import list_invoices as _list
from store.repo import decode_cursor, encode_cursor

__all__ = ["router"]


class InvoicePage(ReadModel):
    items: list[InvoiceRead]
    next_cursor: str | None = None


@route("GET", "/billing/invoices", operation_id="list_invoices", roles="billing_read",
       summary="Invoices and credit notes, filtered by account, customer, status, kind, number, service "
               "period (overlapping [period_from, period_to)) or issue date; without their lines")
def list_invoices(request: Request[Any, Any, Any], limit: LimitParam = 50, cursor: CursorParam = None,
                  account_id: str | None = None, customer_id: str | None = None, status: str | None = None,
                  kind: str | None = None, number: str | None = None, period_from: date | None = None,
                  period_to: date | None = None, issued_from: date | None = None,
                  issued_to: date | None = None) -> InvoicePage:
    f = InvoiceFilter(account_id, customer_id, status, kind, number, period_from, period_to, issued_from, issued_to)
    after = decode_cursor(cursor) if cursor else None
    with open_scope(request) as scope:
        rows = _list(scope.db, actor_of(request).tenant_id, f, after_id=after, limit=limit)
    nxt = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return InvoicePage(items=[InvoiceRead.model_validate(dict(r._mapping)) for r in rows[:limit]], next_cursor=nxt)


class CycleRead(ReadModel):
    """A billing cycle as its workflow and the database know it. ``state`` is the workflow's own
    (assembling, held, finalizing, finalized, rejected, empty) while it runs and its result once
    done; ``empty`` means there was nothing to bill."""

    id: str
    cycle_key: str
    workflow_status: str | None = None  # running, completed, failed, ... (null: Temporal not configured)
    state: str | None = None
    task_id: str = ""
    hold_reasons: list[dict[str, str]] = Field(default_factory=list)
    invoice: InvoiceRead | None = None


@route("GET", "/billing/cycles/{cycle_id:str}", operation_id="get_billing_cycle", roles="billing_read",
       summary="A billing cycle by its id (the workflow id start_ad_hoc_cycle answers): its state, hold "
               "reasons and invoice; a cycle with nothing to bill says state 'empty'")
async def get_billing_cycle(request: Request[Any, Any, Any], cycle_id: str) -> CycleRead:
    tenant_id = actor_of(request).tenant_id
    parts = cycle_id.split(":", 3)
    if len(parts) != 4 or parts[0] != "billing" or parts[1] != tenant_id:
        raise NotFound("cycle_not_found", f"billing cycle {cycle_id!r} not found")
    out = CycleRead(id=cycle_id, cycle_key=parts[3])
    # the workflow first, the database after: a state the workflow reports ('finalized' once the
    # number is drawn) is then always matched by the invoice read (its number), never older
    if temporal_configured(request.app):
        await _from_workflow(request, out)
    with open_scope(request) as scope:
        rows = cycle_invoices(scope.db, tenant_id, cycle_id)
    if rows:
        last = dict(rows[-1]._mapping)
        out.invoice = InvoiceRead.model_validate(last)
        if out.state is None:
            out.state = last["status"]
        if out.workflow_status != "running":  # a running workflow's query said the reasons already
            out.hold_reasons = list(last["hold_reasons"] or [])
    if out.state is None:
        raise NotFound("cycle_not_found", f"billing cycle {cycle_id!r} not found")
    return out


async def _from_workflow(request: Request[Any, Any, Any], out: CycleRead) -> None:
    from temporalio.client import WorkflowExecutionStatus
    from temporalio.service import RPCError, RPCStatusCode

    from workflows.billing.workflows import BillingCycleWorkflow

    handle = (await temporal_client(request)).get_workflow_handle_for(BillingCycleWorkflow.run, out.id)
    try:
        desc = await handle.describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return
        raise
    out.workflow_status = desc.status.name.lower() if desc.status else None
    if desc.status == WorkflowExecutionStatus.RUNNING:
        st = await handle.query(BillingCycleWorkflow.status)
        out.state, out.task_id, out.hold_reasons = st.state, st.task_id, list(st.reasons)
    elif desc.status == WorkflowExecutionStatus.COMPLETED:
        out.state = (await handle.result()).status


router = Router(path="/", route_handlers=[list_invoices, get_billing_cycle])
