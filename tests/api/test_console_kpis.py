"""The dashboard's further figures: utilisation per site and day, days sales outstanding and the
open dunning cases by stage (tenant-scoped; finance figures only for finance roles)."""

from __future__ import annotations

import html
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from store import billing as B
from store.console import days_sales_outstanding, dunning_by_stage, utilisation
from store.types import new_id
from tests.api.conftest import Env
from tests.api.test_console import Person, _email, console  # noqa: F401  (the module's fixture)


def test_utilisation_counts_occupied_hours_over_the_sites_evses(console: Env) -> None:  # noqa: F811
    a = console.a
    with console.engine.connect() as conn:
        u = utilisation(conn, a.tenant_id, "Europe/Berlin", date(2026, 3, 1), date(2026, 4, 1))
    # S-1: one hour at berlin_1 (one EVSE), 31 days of 24 hours; S-2's site has no EVSE registered
    assert u.evses_by_site == {"berlin_1": 1}
    assert u.hours_by_site == {"berlin_1": Decimal(1), "elsewhere": Decimal("1.5")}
    assert u.by_site == {"berlin_1": Decimal("0.1"), "elsewhere": None}
    assert u.by_day[date(2026, 3, 1)] == Decimal("4.2") and u.by_day[date(2026, 3, 2)] == Decimal("0.0")
    assert u.total == Decimal("0.1")
    p = Person(console, _email(a, "analyst"))
    page = html.unescape(p.get("/console/dashboard", params={"month": "2026-03"}).text)
    assert re.search(r'id="kpi-utilisation">0,1\xa0%<', page), page[page.find("kpis"):][:800]
    assert page.count('<rect class="bar"') == 4 * 31
    # an analyst gets no finance figures
    assert "kpi-dso" not in page and "dunning-by-stage" not in page and "Mahnfälle" not in page


def test_days_sales_outstanding_and_dunning_cases_by_stage(console: Env) -> None:  # noqa: F811
    a, b = console.a, console.b
    today = date(2026, 12, 6)
    now = datetime(2026, 12, 6, tzinfo=UTC)
    with console.engine.begin() as conn:
        for kind, gross, day in (("invoice", "300.00", today - timedelta(days=5)),
                                 ("credit_note", "-100.00", today - timedelta(days=3)),
                                 ("invoice", "999.00", today - timedelta(days=95))):  # outside the window
            conn.execute(B.invoice.insert().values(
                id=new_id("inv"), tenant_id=a.tenant_id, account_id=a.ids["billing_account_id"],
                customer_id=a.ids["customer_id"], cycle_key=f"kpi-{kind}-{day}", kind=kind, status="finalized",
                currency="EUR", period_start=now, period_end=now, local_start=day, local_end=day,
                timezone="Europe/Berlin", issue_date=day, due_date=day, payment_terms="net 14",
                net_total=Decimal(gross), tax_total=Decimal(0), gross_total=Decimal(gross), tax_groups=[],
                sessions=0, energy_kwh=Decimal(0), hold_reasons=[], comparison={}, corrects=[], workflow_id="",
                rejected_reason="", decided_by="", created_at=now))
        # 50 open over 200 invoiced in 90 days
        assert days_sales_outstanding(conn, a.tenant_id, {"EUR": Decimal(50)}, today) == {"EUR": Decimal("22.5")}
        assert days_sales_outstanding(conn, b.tenant_id, {"EUR": Decimal(50)}, today) == {"EUR": None}
        # the seeded case of each tenant waits for approval of its first stage
        assert dunning_by_stage(conn, a.tenant_id) == [(0, 1, 1)]
    p = Person(console, _email(a, "approver"))
    page = html.unescape(p.get("/console/dashboard", params={"month": "2026-03"}).text)
    assert 'id="kpi-dso-EUR"' in page
    [table] = re.findall(r'<table id="dunning-by-stage">.*?</table>', page, re.DOTALL)
    cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", table)]
    assert cells[3:] == ["begonnen, noch keine Stufe", "1", "1"], cells
    # a case past its last stage is still open until paid (its customer blocked): it counts; a closed one does not
    from store.dunning import dunning_case

    with console.engine.begin() as conn:
        conn.execute(dunning_case.update().where(dunning_case.c.tenant_id == a.tenant_id).values(status="done", stage=3))
        assert dunning_by_stage(conn, a.tenant_id) == [(3, 1, 0)]
        conn.execute(dunning_case.update().where(dunning_case.c.tenant_id == a.tenant_id)
                     .values(status="closed", open_key=None))
        assert dunning_by_stage(conn, a.tenant_id) == []
