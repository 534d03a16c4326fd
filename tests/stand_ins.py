"""Stand-in invoices for accounting tests: an open item (and its journal entry) opened the way a
finalized invoice opens one, without the billing tables, at one VAT rate."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Connection

from store import receivables as R


def open_stand_in(conn: Connection, tenant_id: str, *, invoice_id: str, number: str, customer_id: str,
                  account_id: str, gross: str, issued: date, due: date, rate: Decimal = Decimal(19)) -> Any:
    """The booking of an invoice of ``gross`` EUR at ``rate`` % (net and VAT split to the cent)."""
    total = Decimal(gross)
    net = (total * 100 / (100 + rate)).quantize(Decimal("0.01"))
    return R.open_invoice_item(conn, tenant_id, SimpleNamespace(
        id=invoice_id, kind="invoice", number=number, customer_id=customer_id, account_id=account_id,
        currency="EUR", gross_total=total, issue_date=issued, due_date=due, corrects=[],
        tax_groups=[{"rate": format(rate, "f"), "net": format(net, "f"), "tax": format(total - net, "f")}]))
