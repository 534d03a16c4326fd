"""Which accounts month-end bills with reverse charge: only where the ruleset's tax policy says
``reverse_charge``, and only for a business customer in another EU member state with a VAT ID
python-stdnum accepts; a consumer, a domestic business, a bad checksum or a customer outside the
EU is billed with VAT."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Connection, Engine, select, update

from dsl import compile_ruleset
from store.models import BillingAccount, Customer, Tenant
from tests.workflows.seed import RULESET, seed_tenant
from workflows.billing.activities import BillingActivities


@pytest.mark.parametrize(("kind", "country", "vat_id", "policy", "expected"), [
    ("business", "AT", "ATU13585627", "reverse_charge", True),
    ("business", "AT", "ATU13585627", "", False),                # the ruleset does not say reverse_charge
    ("business", "AT", "ATU13585628", "reverse_charge", False),  # bad checksum
    ("private", "AT", "ATU13585627", "reverse_charge", False),
    ("business", "DE", "DE136695976", "reverse_charge", False),  # domestic
    ("business", "CH", "CHE116281710", "reverse_charge", False), # outside the EU: not reverse charge
    ("business", "AT", "ATU13585627", "reverse_charge for group fleet", True),    # the customer is in it
    ("business", "AT", "ATU13585627", "reverse_charge for group partners", False),
])
def test_reverse_charge_accounts(engine: Engine, kind: str, country: str, vat_id: str, policy: str,
                                 expected: bool) -> None:
    def decide(acts: BillingActivities, conn: Connection, acct: Any, ruleset: Any) -> bool:
        return acts._reverse_charge(conn, "rc", acct, ruleset)

    got = _decide(engine, "rc", kind, country, vat_id, ["fleet"], f'groups fleet, partners\ntax eu "B2B in the EU" '
                  f'{{\n  {policy}\n}}\n' if policy else "", decide)
    assert got is expected


def _decide(engine: Engine, tenant: str, kind: str, country: str, vat_id: str, groups: list[str], policies: str,
            decide: Any) -> Any:
    """``decide(activities, conn, account row, compiled ruleset)`` for the seeded tenant's one
    account, its customer of ``kind`` in ``country`` with ``vat_id`` and ``groups``, and the test
    ruleset with ``policies`` added."""
    s = seed_tenant(engine, tenant, 1)
    acc_id = s.account_ids[0]
    c, a, t = Customer.__table__, BillingAccount.__table__, Tenant.__table__  # type: ignore[attr-defined]
    with engine.begin() as conn:
        conn.execute(update(t).where(t.c.id == tenant).values(country="DE"))
        conn.execute(update(c).where(c.c.id == s.customer_of[acc_id]).values(kind=kind, country=country,
                                                                             vat_id=vat_id, groups=groups))
        conn.execute(update(a).where(a.c.id == acc_id).values(street=""))
    res = compile_ruleset(RULESET + ("\n" + policies if policies else ""))
    assert res.ok, res.render()
    with engine.connect() as conn:
        acct = conn.execute(select(a).where(a.c.id == acc_id)).one()
        return decide(BillingActivities(engine), conn, acct, res.ruleset)


@pytest.mark.parametrize(("country", "vat_id", "groups", "policy", "expected"), [
    ("CH", "CHE-116.281.710 MWST", [], "reverse_charge", ("O", "VATEX-EU-O", None)),
    ("GB", "GB980780684", [], "reverse_charge", ("O", "VATEX-EU-O", None)),
    ("CH", "", [], "reverse_charge", ("S", None, None)),          # no tax ID: taxed
    ("CH", "CHE-116.281.710 MWST", [], "", ("S", None, None)),   # the ruleset says nothing
    ("AT", "ATU13585627", [], "reverse_charge", ("AE", "VATEX-EU-AE", None)),
    ("DE", "", ["clinics"], 'exempt for group clinics VATEX-EU-132-1B "Steuerfrei nach § 4 Nr. 14 UStG"\n'
                            "  reverse_charge", ("E", "VATEX-EU-132-1B", "Steuerfrei nach § 4 Nr. 14 UStG")),
    ("AT", "ATU13585627", ["clinics"], "exempt for group clinics\n  reverse_charge",
     ("E", "VATEX-EU-132", None)),                                # the exemption comes first
    ("AT", "ATU13585627", [], "exempt for group clinics\n  reverse_charge", ("AE", "VATEX-EU-AE", None)),
])
def test_month_end_treatment(engine: Engine, country: str, vat_id: str, groups: list[str], policy: str,
                             expected: tuple[str, str | None, str | None]) -> None:
    """What month-end assembles an account's invoice with: O for a business outside the EU with a
    tax ID where the ruleset says ``reverse_charge``, E with the code and reason of ``exempt``."""
    def decide(acts: BillingActivities, conn: Connection, acct: Any, ruleset: Any) -> Any:
        return acts._treatment(conn, "tr", acct, ruleset)

    got = _decide(engine, "tr", "business", country, vat_id, groups,
                  f'groups clinics\ntax b2b "B2B" {{\n  {policy}\n}}\n' if policy else "", decide)
    assert (got.category, got.vatex, got.reason) == expected
