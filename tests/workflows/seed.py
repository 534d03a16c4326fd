"""Test and benchmark data for billing cycles: tenants, accounts with contracts, and rated sessions
written straight into the tables (bulk inserts; rated lines computed here with the tariff's two
prices, which is what the ruleset below would produce for a plain AC session)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, insert

from store.models import (
    BillingAccount,
    ChargingSession,
    Contract,
    Customer,
    RatedLineRow,
    Ruleset,
    RulesetDraft,
    RulesetVersion,
    SessionRating,
    Tenant,
)

RULESET = """\
ruleset billing_test currency EUR timezone Europe/Berlin

tariff ac "AC" {
  vat 19%
  start_fee 0.50
  energy 0.40 per kWh
}

product flex "Flex" {
  tariff ac
  fee 4.99 per month
}

billing monthly {
  cycle monthly
  cut_off day 1
  payment_terms net 14
}

hold default "Finance review" {
  hold when total > 1000.00
  hold when jump > 80% against previous
  hold when flag manual_review
  approval required
  escalate after 48 hours
}
"""

START_FEE = Decimal("0.50")
ENERGY = Decimal("0.40")
VAT = Decimal(19)


@dataclass
class Seeded:
    tenant_id: str
    account_ids: list[str]
    customer_of: dict[str, str]
    contract_of: dict[str, str]
    ruleset_version_id: str


def _t(model: Any) -> Any:
    return model.__table__


def seed_accounts(engine: Engine, tenant_id: str, n_accounts: int, **kw: Any) -> Seeded:
    """Like ``seed_tenant`` for a tenant that already exists (made by ``bootstrap_tenant``)."""
    return seed_tenant(engine, tenant_id, n_accounts, create_tenant=False, **kw)


def seed_tenant(engine: Engine, tenant_id: str, n_accounts: int, *, timezone_name: str = "Europe/Berlin",
                ruleset: str = RULESET, product: str = "flex", payment_terms: str = "net 14",
                create_tenant: bool = True) -> Seeded:
    now = datetime(2020, 1, 1, tzinfo=UTC)
    sha = hashlib.sha256(ruleset.encode()).hexdigest()
    rs_id, dr_id, rv_id = f"rs_{tenant_id}", f"rd_{tenant_id}", f"rv_{tenant_id}"
    accounts, customers, contracts = [], [], []
    cust_of, contr_of, ids = {}, {}, []
    for i in range(n_accounts):
        cid, aid, kid = f"cus_{tenant_id}_{i:06d}", f"acc_{tenant_id}_{i:06d}", f"con_{tenant_id}_{i:06d}"
        customers.append(dict(id=cid, tenant_id=tenant_id, kind="private", name=f"Customer {i}", company_name="",
                              email="", phone="", language="de", vat_id="", street="", postal_code="", city="",
                              country="DE", groups=[], external_ref="", created_at=now, updated_at=now))
        accounts.append(dict(id=aid, tenant_id=tenant_id, customer_id=cid, name=f"Account {i}", currency="EUR",
                             timezone=timezone_name, billing_cycle="monthly", payment_terms=payment_terms,
                             invoice_email="", street="", postal_code="", city="", country="DE", status="active",
                             created_at=now))
        contracts.append(dict(id=kid, tenant_id=tenant_id, account_id=aid, customer_id=cid, product=product,
                              billing_period="monthly", payment_method="sepa_direct_debit", mandate_reference="",
                              mandate_sequence="", start_date=date(2020, 1, 1), termination_reason="",
                              status="active", created_at=now))
        cust_of[aid], contr_of[aid] = cid, kid
        ids.append(aid)
    with engine.begin() as conn:
        if create_tenant:
            conn.execute(insert(_t(Tenant)).values(
                id=tenant_id, name=tenant_id, legal_name="", street="", postal_code="", city="", country="DE",
                vat_id="", tax_number="", creditor_id="", iban="", bic="", email="", currency="EUR",
                timezone="Europe/Berlin", branding={}, audit_seq=0, audit_head="", created_at=now))
        conn.execute(insert(_t(Ruleset)).values(id=rs_id, tenant_id=tenant_id, name="billing_test", description="",
                                                created_by="seed", created_at=now))
        conn.execute(insert(_t(RulesetDraft)).values(id=dr_id, tenant_id=tenant_id, ruleset_id=rs_id,
                                                     source=ruleset, sha256=sha, ok=True, diagnostics=[],
                                                     author_id="seed", created_at=now))
        conn.execute(insert(_t(RulesetVersion)).values(
            id=rv_id, tenant_id=tenant_id, ruleset_id=rs_id, version=1, draft_id=dr_id, source=ruleset, sha256=sha,
            dsl_name="billing_test", currency="EUR", timezone="Europe/Berlin", tariff_names=["ac"],
            effective_from=now, author_id="seed", publisher_id="seed2", published_at=now, note=""))
        # rows inserted directly draw their customer numbers as one block of the tenant's series
        from store.customers import assign_customer_numbers

        for c, number in zip(customers, assign_customer_numbers(conn, tenant_id, len(customers)), strict=True):
            c["number"] = number
        for chunk in _chunks(customers, 2000):
            conn.execute(insert(_t(Customer)), chunk)
        for chunk in _chunks(accounts, 2000):
            conn.execute(insert(_t(BillingAccount)), chunk)
        for chunk in _chunks(contracts, 2000):
            conn.execute(insert(_t(Contract)), chunk)
    return Seeded(tenant_id, ids, cust_of, contr_of, rv_id)


def _chunks(seq: Sequence[Any], n: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


def session_rows(seeded: Seeded, account_id: str, sid: str, start: datetime, kwh: Decimal, seq: int = 1,
                 rating_id: str | None = None, energy_price: Decimal = ENERGY,
                 ) -> tuple[dict[str, Any] | None, dict[str, Any], list[dict[str, Any]]]:
    """(session row or None when only re-rating, rating row, rated line rows) for one plain AC session."""
    t = seeded.tenant_id
    rid = rating_id or f"rat_{sid}_{seq}"
    e_net = kwh * energy_price
    net = START_FEE + e_net
    lines = [
        dict(tenant_id=t, rating_id=rid, session_id=sid, seq=1, component="start_fee", description="start fee",
             quantity=Decimal(1), unit="each", unit_price=START_FEE, net=START_FEE,
             net_rounded=START_FEE.quantize(Decimal("0.01")), tax_rate=VAT, currency="EUR", rule="tariff ac",
             cost_group="fixed"),
        dict(tenant_id=t, rating_id=rid, session_id=sid, seq=2, component="energy", description="energy",
             quantity=kwh, unit="kWh", unit_price=energy_price, net=e_net,
             net_rounded=e_net.quantize(Decimal("0.01")), tax_rate=VAT, currency="EUR", rule="tariff ac",
             cost_group="energy"),
    ]
    net_r = sum((ln["net_rounded"] for ln in lines), Decimal(0))
    tax = (net_r * VAT / 100).quantize(Decimal("0.01"))
    rating = dict(id=rid, tenant_id=t, session_id=sid, seq=seq, reason="import" if seq == 1 else "rerate",
                  ruleset_version_id=seeded.ruleset_version_id, sha256="0" * 64, tariff="ac", currency="EUR",
                  net_total=net_r, tax_total=tax, gross_total=net_r + tax, trace=[], rated_by="seed",
                  rated_at=start)
    session = None
    if seq == 1:
        session = dict(id=sid, tenant_id=t, external_id=sid, source="json", payload_sha256="0" * 64, start=start,
                       end=start + timedelta(hours=1), energy_kwh=kwh, location_ref="", evse_ref="", token_uid="",
                       customer_id=seeded.customer_of[account_id], contract_id=seeded.contract_of[account_id],
                       tariff="ac", facts={}, status="rated", rating_error="", current_rating_id=rid, currency="EUR",
                       net_total=net_r, tax_total=tax, gross_total=net_r + tax, created_at=start)
    _ = net
    return session, rating, lines


def insert_sessions(engine: Engine, seeded: Seeded, items: Iterable[tuple[str, str, datetime, Decimal]],
                    batch: int = 20000) -> int:
    """Bulk-insert rated sessions ``(account_id, session_id, start, kWh)``; returns how many."""
    n = 0
    sess: list[dict[str, Any]] = []
    rats: list[dict[str, Any]] = []
    lns: list[dict[str, Any]] = []

    def flush() -> None:
        with engine.begin() as conn:
            # ratings reference sessions and sessions name their current rating (no FK that way)
            conn.execute(insert(_t(ChargingSession)), sess)
            conn.execute(insert(_t(SessionRating)), rats)
            conn.execute(insert(_t(RatedLineRow)), lns)
        sess.clear(), rats.clear(), lns.clear()

    for acc, sid, start, kwh in items:
        s, r, ls = session_rows(seeded, acc, sid, start, kwh)
        assert s is not None
        sess.append(s), rats.append(r), lns.extend(ls)
        n += 1
        if len(sess) >= batch:
            flush()
    if sess:
        flush()
    return n


def rerate_session(engine: Engine, seeded: Seeded, account_id: str, sid: str, start: datetime, kwh: Decimal,
                   energy_price: Decimal) -> str:
    """Append a second rating (a corrected ruleset version) and make it current."""
    from sqlalchemy import update

    _, r, ls = session_rows(seeded, account_id, sid, start, kwh, seq=2, energy_price=energy_price)
    with engine.begin() as conn:
        conn.execute(insert(_t(SessionRating)).values(**r))
        conn.execute(insert(_t(RatedLineRow)), ls)
        conn.execute(update(_t(ChargingSession)).where(_t(ChargingSession).c.id == sid)
                     .values(current_rating_id=r["id"]))
    return str(r["id"])


def expected_net(kwhs: Sequence[Decimal], fee: Decimal = Decimal("4.99")) -> Decimal:
    q = Decimal("0.01")
    return sum(((START_FEE.quantize(q) + (k * ENERGY).quantize(q)) for k in kwhs), Decimal(0)) + fee


@dataclass(frozen=True)
class OpenItem:
    id: str
    account_id: str
    customer_id: str
    number: str
    amount: Decimal


def seed_open_items(engine: Engine, seeded: Seeded, n_items: int, *, due: date, issued: date = date(2026, 11, 30),
                    first_amount: Decimal = Decimal("10.01"), step: Decimal = Decimal("0.02")) -> list[OpenItem]:
    """``n_items`` finalized-invoice open items spread over the accounts (item ``i`` on account
    ``i mod n``), numbered INV-000001..., each amount different (``first_amount + i * step``): the
    rows ``store.receivables.open_invoice_item`` writes per invoice (item, event, opening entry),
    inserted in bulk."""
    from store import receivables as R
    from store.billing import driver_insert

    t = seeded.tenant_id
    n_acc = len(seeded.account_ids)
    items = [OpenItem(f"itm_{t}_{i:07d}", seeded.account_ids[i % n_acc], seeded.customer_of[seeded.account_ids[i % n_acc]],
                      f"INV-{i + 1:06d}", first_amount + i * step) for i in range(n_items)]
    now = datetime.now(UTC)
    with engine.begin() as conn:
        driver_insert(conn, R.receivable_item, (
            "id", "tenant_id", "customer_id", "account_id", "kind", "invoice_id", "number", "currency", "amount",
            "issue_date", "due_date", "created_at"),
            [(it.id, t, it.customer_id, it.account_id, "invoice", f"inv_{it.id}", it.number, "EUR", it.amount, issued,
              due, now) for it in items])
        driver_insert(conn, R.receivable_event, (
            "id", "tenant_id", "key", "kind", "account_id", "currency", "amount", "booked_on", "reference", "detail",
            "created_by", "created_at"),
            [(f"rcv_{it.id}", t, f"invoice:inv_{it.id}", "invoice", it.account_id, "EUR", it.amount, issued, it.number,
              {"invoice_id": f"inv_{it.id}"}, "seed", now) for it in items])
        driver_insert(conn, R.receivable_entry, (
            "tenant_id", "item_id", "event_id", "kind", "amount", "currency", "booked_on", "created_at"),
            [(t, it.id, f"rcv_{it.id}", "invoice", it.amount, "EUR", issued, now) for it in items])
    return items
