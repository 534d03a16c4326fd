"""Customer numbers: the human number a customer is known by on every document (``K-10001``),
never the internal id.

Numbers come from the tenant's ``CUS`` series in ``billing_number_series``, the mechanism that
numbers invoices: the series row is locked by the drawing ``UPDATE ... RETURNING`` until the
creating transaction ends, so numbers are unique per tenant and without gaps from rolled-back
creations. A customer is numbered when it is inserted (an ORM ``before_insert`` hook, so every
creation path through a session gets one); bulk loaders that insert rows directly draw a block
with ``assign_customer_numbers``. The number is never changed afterwards (the API has it read-only).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, select
from sqlalchemy.engine import Connection

from store.billing import draw_numbers, ensure_series
from store.models import Customer

__all__ = ["CUSTOMER_PREFIX", "CUSTOMER_SERIES", "CUSTOMER_START", "assign_customer_numbers", "vat_check_refused"]

CUSTOMER_SERIES = "CUS"
CUSTOMER_PREFIX = "K-"  # the series row's prefix: a tenant may set its own before its first customer
CUSTOMER_START = 10001  # five digits from the start: numbers sort and read alike


def assign_customer_numbers(conn: Connection, tenant_id: str, count: int = 1) -> list[str]:
    """The next ``count`` customer numbers of the tenant, in order (inside the creating transaction)."""
    ensure_series(conn, tenant_id, CUSTOMER_SERIES, CUSTOMER_PREFIX, CUSTOMER_START)
    return draw_numbers(conn, tenant_id, CUSTOMER_SERIES, count, width=0)


@event.listens_for(Customer, "before_insert")
def _number_new_customer(_mapper: Any, connection: Connection, target: Customer) -> None:
    if target.number is None:
        target.number = assign_customer_numbers(connection, target.tenant_id)[0]


def ref_account(conn: Connection, tenant_id: str, ref: str, currency: str, *, customer: dict[str, Any],
                account_name: str, payment_terms: str) -> tuple[str, str]:
    """(customer id, billing account id) of a customer the system keeps for itself, found by its
    ``external_ref`` (``evbill:adhoc``, ``evbill:partner:<id>``) with one account per currency,
    both made on first use from ``customer``'s columns (name, kind, address, ...)."""
    from sqlalchemy import insert, select

    from store.models import BillingAccount
    from store.types import new_id, utcnow

    cus, acc = Customer.__table__, BillingAccount.__table__  # type: ignore[attr-defined]
    customer_id = conn.execute(select(cus.c.id).where(cus.c.tenant_id == tenant_id, cus.c.external_ref == ref)).scalar()
    now = utcnow()
    if customer_id is None:
        customer_id = new_id("cus")
        values = dict(kind="private", company_name="", email="", phone="", language="de", vat_id="", street="",
                      postal_code="", city="", country="")
        values.update(customer)
        conn.execute(insert(cus).values(id=customer_id, tenant_id=tenant_id, number=None, groups=[], external_ref=ref,
                                        created_at=now, updated_at=now, **values))
    account_id = conn.execute(select(acc.c.id).where(acc.c.tenant_id == tenant_id, acc.c.customer_id == customer_id,
                                                     acc.c.currency == currency)).scalar()
    if account_id is None:
        account_id = new_id("acc")
        conn.execute(insert(acc).values(id=account_id, tenant_id=tenant_id, customer_id=customer_id,
                                        name=f"{account_name} {currency}", currency=currency,
                                        timezone="Europe/Berlin", billing_cycle="ad_hoc", payment_terms=payment_terms,
                                        invoice_email="", street="", postal_code="", city="", country="",
                                        status="active", created_at=now))
    return str(customer_id), str(account_id)


def vat_check_refused(conn: Connection, customer_id: str, vat_id: str) -> bool:
    """Whether the stored online check of the customer's VAT ID (``customer.vat_check``, api.vies)
    found ``vat_id`` invalid: then it earns no reverse charge. Never checked, or unchecked (VIES
    off or unreachable): False, the format decides."""
    c = Customer.__table__  # type: ignore[attr-defined]
    check = conn.execute(select(c.c.vat_check).where(c.c.id == customer_id)).scalar()
    return bool(check) and check.get("vat_id") == vat_id and check.get("outcome") == "invalid"
