"""Which accounts month-end bills with reverse charge: only where the ruleset's tax policy says
``reverse_charge``, and only for a business customer in another EU member state with a VAT ID
python-stdnum accepts; a consumer, a domestic business, a bad checksum or a customer outside the
EU is billed with VAT."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select, update

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
    s = seed_tenant(engine, "rc", 1)
    acc_id = s.account_ids[0]
    c, a, t = Customer.__table__, BillingAccount.__table__, Tenant.__table__  # type: ignore[attr-defined]
    with engine.begin() as conn:
        conn.execute(update(t).where(t.c.id == "rc").values(country="DE"))
        conn.execute(update(c).where(c.c.id == s.customer_of[acc_id]).values(kind=kind, country=country,
                                                                             vat_id=vat_id, groups=["fleet"]))
        conn.execute(update(a).where(a.c.id == acc_id).values(street=""))
    source = RULESET + (f'\ngroups fleet, partners\ntax eu "B2B in the EU" {{\n  {policy}\n}}\n' if policy else "")
    res = compile_ruleset(source)
    assert res.ok, res.render()
    with engine.connect() as conn:
        acct = conn.execute(select(a).where(a.c.id == acc_id)).one()
        assert BillingActivities(engine)._reverse_charge(conn, "rc", acct, res.ruleset) is expected
