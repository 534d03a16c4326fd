"""GET /billing/invoices: what a billing run produced, filtered, paged, tenant-scoped (both databases)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from store import billing as B
from store.types import new_id
from tests.api.conftest import Env, Tenantry


def _invoice(env: Env, t: Tenantry, *, status: str, start: date, end: date, number: str | None = None,
             kind: str = "invoice", net: str = "10.00") -> str:
    inv = new_id("inv")
    now = datetime(2026, 12, 2, tzinfo=UTC)
    with env.engine.begin() as conn:
        conn.execute(B.invoice.insert().values(
            id=inv, tenant_id=t.tenant_id, account_id=t.ids["billing_account_id"], customer_id=t.ids["customer_id"],
            cycle_key=f"{start}-{inv}", kind=kind, status=status, currency="EUR",
            period_start=datetime(start.year, start.month, start.day, tzinfo=UTC),
            period_end=datetime(end.year, end.month, end.day, tzinfo=UTC), local_start=start, local_end=end,
            timezone="Europe/Berlin", issue_date=end, due_date=end, payment_terms="net 14",
            net_total=Decimal(net), tax_total=Decimal("1.90"), gross_total=Decimal(net) + Decimal("1.90"),
            tax_groups=[], sessions=1, energy_kwh=Decimal(10), hold_reasons=[], comparison={}, corrects=[],
            number=number, workflow_id=f"wf-{inv}", rejected_reason="", decided_by="", created_at=now))
    return inv


def test_list_invoices_filters_pages_and_keeps_tenants_apart(env: Env) -> None:
    a, b, c = env.a, env.b, env.client
    oct_ = _invoice(env, a, status="finalized", start=date(2026, 10, 1), end=date(2026, 11, 1), number="INV-9001")
    nov = _invoice(env, a, status="held", start=date(2026, 11, 1), end=date(2026, 12, 1))
    cn = _invoice(env, a, status="finalized", start=date(2026, 11, 1), end=date(2026, 12, 1), kind="credit_note",
                  number="CN-9001", net="-2.50")
    other = _invoice(env, b, status="finalized", start=date(2026, 11, 1), end=date(2026, 12, 1), number="INV-9001")

    def ids(**params: str) -> set[str]:
        r = c.get("/billing/invoices", params=params, headers=a.h("auditor"))
        assert r.status_code == 200, r.text
        return {i["id"] for i in r.json()["items"]}

    mine = {oct_, nov, cn}
    assert ids() >= mine and other not in ids()
    assert ids(status="held") & mine == {nov}
    assert ids(kind="credit_note") & mine == {cn}
    assert ids(number="INV-9001") == {oct_}  # tenant B's INV-9001 stays B's
    # the period is half-open: November's invoices end on 12-01 and do not overlap [12-01, ...)
    assert ids(period_from="2026-11-01", period_to="2026-12-01") & mine == {nov, cn}
    assert ids(period_from="2026-12-01") & mine == set()
    assert ids(period_to="2026-11-01") & mine == {oct_}
    assert ids(account_id=a.ids["billing_account_id"]) >= mine
    r = c.get("/billing/invoices", params={"number": "CN-9001"}, headers=a.h("auditor"))
    [item] = r.json()["items"]
    assert item["net_total"] == "-2.50" and item["kind"] == "credit_note" and item["lines"] == []

    # paging walks every item once
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "1", **({"cursor": cursor} if cursor else {})}
        page = c.get("/billing/invoices", params=params, headers=a.h("auditor")).json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) and set(seen) >= mine

    # bad filters are 4xx problems naming what was wrong, never a 500
    for params in ({"status": "paid"}, {"kind": "receipt"}, {"period_from": "2026-12-01", "period_to": "2026-11-01"},
                   {"period_from": "yesterday"}, {"cursor": "!!"}):
        r = c.get("/billing/invoices", params=params, headers=a.h("auditor"))
        assert 400 <= r.status_code < 500, (params, r.status_code, r.text)
        assert r.headers["content-type"].startswith("application/problem+json"), r.text
    # a partner key may not read invoices
    assert c.get("/billing/invoices", headers=a.h("partner")).status_code == 403
