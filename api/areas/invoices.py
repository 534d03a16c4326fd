"""Invoices and credit notes as an operator finds them after a billing run: one filtered list.

A billing period is half-open: ``local_start`` is its first day, ``local_end`` the first day
after it (a November invoice runs 2026-11-01..2026-12-01)."""

from __future__ import annotations

from datetime import date
from typing import Any

from litestar import Request, Router

from api.areas.billing import InvoiceRead
from api.auth import actor_of
from api.crud import CursorParam, LimitParam, ReadModel, open_scope, route
from store.invoices import InvoiceFilter, list_invoices as _list
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


router = Router(path="/", route_handlers=[list_invoices])
