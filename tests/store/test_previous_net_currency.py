"""Issue 11, defect 3: the hold policy's ``jump`` rule compares a period with the account's previous
invoice only when both are in the same currency (100 EUR after 10 CHF is no 900 % jump)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal as D

from sqlalchemy import Engine, insert

from store import billing as B
from tests.workflows.seed import seed_tenant


def test_previous_net_is_none_across_currencies(engine: Engine) -> None:
    s = seed_tenant(engine, "pn1", 1)
    acc = s.account_ids[0]
    with engine.begin() as conn:
        conn.execute(insert(B.invoice).values(
            id="inv_pn1", tenant_id="pn1", account_id=acc, customer_id=s.customer_of[acc], cycle_key="k1",
            kind="invoice", status="finalized", currency="CHF", period_start=datetime(2026, 9, 30, 22, tzinfo=UTC),
            period_end=datetime(2026, 10, 31, 23, tzinfo=UTC), local_start=date(2026, 10, 1),
            local_end=date(2026, 11, 1), timezone="Europe/Berlin", issue_date=date(2026, 11, 1),
            due_date=date(2026, 11, 15), payment_terms="net 14", net_total=D("10.00"), tax_total=D("1.90"),
            gross_total=D("11.90"), tax_groups=[], sessions=1, energy_kwh=D(1), hold_reasons=[], comparison={},
            corrects=[], workflow_id="wf", rejected_reason="", decided_by="", created_at=datetime(2026, 11, 1,
                                                                                                   tzinfo=UTC)))
        before = datetime(2026, 11, 30, 23, tzinfo=UTC)
        assert B.previous_net(conn, "pn1", acc, before) == D("10.00")
        assert B.previous_net(conn, "pn1", acc, before, "CHF") == D("10.00")
        assert B.previous_net(conn, "pn1", acc, before, "EUR") is None
