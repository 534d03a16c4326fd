"""The monthly payout schedule in the store (SQLite and PostgreSQL): a round finds, per tenant
whose payout day has come this month in the tenant's time zone (a day past a short month's end is
its last day), one creditor account per currency with requested payables; a tenant with the
schedule off, without payables, or before its day finds nothing."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal as D
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, insert

from store import collections as C
from store import payables as P
from store.models import Tenant
from store.types import new_id

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def add_tenant(conn: Connection, tid: str, timezone: str = "Europe/Berlin") -> None:
    conn.execute(insert(Tenant.__table__).values(  # type: ignore[attr-defined]
        id=tid, name=tid, legal_name="", street="", postal_code="", city="", country="DE", vat_id="", tax_number="",
        creditor_id="", iban="", bic="", email="", currency="EUR", timezone=timezone, branding={}, audit_seq=0,
        audit_head="", created_at=NOW))


def add_creditor_account(conn: Connection, tid: str, currency: str = "EUR", at: datetime = NOW,
                         iban: str = "DE02120300000000202051") -> str:
    cra = new_id("cra")
    conn.execute(insert(C.creditor_account).values(
        id=cra, tenant_id=tid, name="Ladestrom GmbH", iban=iban, bic="",
        creditor_id="DE98ZZZ09999999999", currency=currency, lead_time_days=5, pain_version="pain.008.001.08",
        pass_return_charges=True, created_at=at))
    return cra


def add_payable(conn: Connection, tid: str, amount: str = "12.50", currency: str = "EUR",
                status: str = "requested", **kw: Any) -> str:
    pid = new_id("pay")
    conn.execute(insert(P.payable).values(**{
        "id": pid, "tenant_id": tid, "key": f"test:{pid}", "kind": "host_credit", "payee_kind": "partner",
        "payee_id": "par_1", "account_id": None, "payee_name": "Hotel Sonne", "iban": "DE89370400440532013000",
        "bic": "", "amount": D(amount), "currency": currency, "remittance": "Gutschrift", "source_kind": "host_credit",
        "source_id": "hcn_1", "receivable_key": "", "status": status, "end_to_end_id": "", "paid_on": None,
        "return_reason": "", "requested_by": "fin", "created_at": NOW, "updated_at": NOW, **kw}))
    return pid


def _due(engine: Engine, at: str) -> list[tuple[str, str, date, str]]:
    with engine.connect() as conn:
        return [(d.tenant_id, d.creditor_account_id, d.as_of, d.month)
                for d in P.due_scheduled_runs(conn, datetime.fromisoformat(at))]


def test_due_runs_by_day_time_zone_and_currency(engine: Engine) -> None:
    with engine.begin() as conn:
        for tid in ("ten_a", "ten_b", "ten_c", "ten_d"):
            add_tenant(conn, tid)
        eur = add_creditor_account(conn, "ten_a")
        add_creditor_account(conn, "ten_a", at=datetime(2026, 11, 2, tzinfo=UTC),
                             iban="DE89370400440532013000")  # a second EUR account: the first pays
        chf = add_creditor_account(conn, "ten_a", "CHF", iban="DE75512108001245126199")
        add_payable(conn, "ten_a")
        add_payable(conn, "ten_a", "3.00", "CHF")
        P.set_payout_day(conn, "ten_a", 15, "admin")
        # ten_b: day 31, November has 30
        b = add_creditor_account(conn, "ten_b")
        add_payable(conn, "ten_b")
        P.set_payout_day(conn, "ten_b", 31, "admin")
        # ten_c: its payables are all in a run already; ten_d: the schedule is off
        add_creditor_account(conn, "ten_c")
        add_payable(conn, "ten_c", status="in_run")
        P.set_payout_day(conn, "ten_c", 1, "admin")
        add_creditor_account(conn, "ten_d")
        add_payable(conn, "ten_d")
        P.set_payout_day(conn, "ten_d", 5, "admin")
        P.set_payout_day(conn, "ten_d", None, "admin")
    with engine.connect() as conn:
        assert (P.payout_day(conn, "ten_a"), P.payout_day(conn, "ten_d"), P.payout_day(conn, "nobody")) == \
            (15, None, None)
    # 23:30 UTC on the 14th is the 15th in Berlin (UTC+1); 22:30 is still the 14th
    assert _due(engine, "2026-11-14T22:30:00+00:00") == []
    day15 = date(2026, 11, 15)
    assert sorted(_due(engine, "2026-11-14T23:30:00+00:00")) == sorted([("ten_a", chf, day15, "2026-11"),
                                                                         ("ten_a", eur, day15, "2026-11")])
    # a late round catches up; the month's last day stands in for the 31st
    assert sorted(_due(engine, "2026-11-30T08:00:00+00:00")) == sorted(
        [("ten_a", chf, date(2026, 11, 30), "2026-11"), ("ten_a", eur, date(2026, 11, 30), "2026-11"),
         ("ten_b", b, date(2026, 11, 30), "2026-11")])


def test_a_payout_day_is_one_to_thirty_one(engine: Engine) -> None:
    with engine.begin() as conn:
        add_tenant(conn, "ten_x")
        for bad in (0, 32):
            with pytest.raises(ValueError):
                P.set_payout_day(conn, "ten_x", bad, "admin")
