"""The accounting routes end to end (SQLite and PostgreSQL): a chart is set from a template and
refused while a line has no account for a VAT rate the rulesets use (and a ruleset with a rate the
chart does not map is refused at publication); events post to the journal; a closed period pushes
a late payment into the next open one; a batch is cut once, its DATEV file downloads and reads
back; the reconciliation balances."""

from __future__ import annotations

import hashlib
from datetime import date
from decimal import Decimal as D
from types import SimpleNamespace

from store import receivables as R
from tests.accounting_reader import read_extf
from tests.api.conftest import DEMO_RULESET, Env
from tests.stand_ins import open_stand_in


def test_chart_journal_periods_batches(env: Env) -> None:
    c, a, b = env.client, env.a, env.b
    got = c.get("/accounting/chart", headers=a.h("auditor"))
    assert got.status_code == 200 and got.json()["configured"] is False and got.json()["name"] == "plain"
    names = [t["name"] for t in c.get("/accounting/chart/templates", headers=a.h()).json()["items"]]
    assert names == ["plain", "skr03", "skr04"]
    # SKR03 without its revenue rules: every line the published ruleset's 19 % could post is named
    r = c.put("/accounting/chart", json={"template": "skr03", "rules": [
        {"role": "debtor", "account": "1400"}, {"role": "bank", "account": "1200"}]}, headers=a.h())
    assert r.status_code == 422 and r.json()["code"] == "chart_incomplete", r.text
    gaps = [e["message"] for e in r.json()["errors"]]
    assert "event 'invoice', role 'revenue', revenue kind 'charging', VAT '19'" in gaps
    assert c.put("/accounting/chart", json={"template": "skr03"}, headers=a.h("operator")).status_code == 403
    r = c.put("/accounting/chart", json={"template": "skr03", "consultant": 4711, "client": 42}, headers=a.h("approver"))
    assert r.status_code == 200 and r.json()["debtors"] == "personal" and r.json()["consultant"] == 4711, r.text
    # a ruleset at a rate SKR03 does not map cannot be published while this chart is set
    rs = c.post("/rulesets", json={"name": "exempt"}, headers=a.h()).json()
    src = DEMO_RULESET.replace("ruleset demo", "ruleset exempt").replace("vat 19%", "vat 0%")
    draft = c.post(f"/rulesets/{rs['id']}/drafts", json={"source": src}, headers=a.h("analyst")).json()
    r = c.post(f"/rulesets/{rs['id']}/versions", json={"draft_id": draft["id"],
                                                        "effective_from": "2026-01-01T00:00:00Z"},
               headers=a.h("approver"))
    assert r.status_code == 422 and r.json()["code"] == "chart_incomplete", r.text
    # events post: an invoice at 19 % on the customer's personal account, a payment by the API
    acc = a.ids["billing_account_id"]
    with env.engine.begin() as conn:
        R.open_invoice_item(conn, a.tenant_id, SimpleNamespace(
            id="inv_acct_1", kind="invoice", number="INV-ACCT-1", customer_id=a.ids["customer_id"], account_id=acc,
            currency="EUR", gross_total=D("11.90"), issue_date=date(2026, 12, 1), due_date=date(2026, 12, 15),
            corrects=[], tax_groups=[{"rate": "19", "net": "10.00", "tax": "1.90"}]))
    assert c.post("/accounting/periods", json={"period": "2026-11"}, headers=a.h("approver")).status_code == 201
    r = c.post("/accounting/periods", json={"period": "2026-11"}, headers=a.h())
    assert r.status_code == 409 and r.json()["code"] == "period_closed"
    assert c.post("/accounting/periods", json={"period": "2026-13"}, headers=a.h()).status_code == 422
    r = c.post("/receivables/payments", json={"account_id": acc, "amount": "11.90", "currency": "EUR",
                                              "booked_on": "2026-11-28", "reference": "early transfer",
                                              "idempotency_key": "acct-1"}, headers=a.h("operator"))
    assert r.status_code == 201, r.text
    journal = c.get("/accounting/journal", params={"period": "2026-12"}, headers=a.h("auditor")).json()["items"]
    inv, pay = journal
    debtor = next(ln["account"] for ln in inv["lines"] if ln["role"] == "debtor")
    assert len(debtor) == 5 and 10000 <= int(debtor) <= 69999
    assert {(ln["account"], ln["side"], ln["amount"]) for ln in inv["lines"]} == {
        (debtor, "debit", "11.90"), ("8400", "credit", "10.00"), ("1776", "credit", "1.90")}
    # the payment's month was closed: posted on the first of December, its document date kept
    assert (pay["document_date"], pay["posting_date"]) == ("2026-11-28", "2026-12-01")
    assert c.get("/accounting/journal", params={"period": "2026-12"}, headers=b.h()).json()["items"] == []
    # a batch: once; its DATEV file reads back
    r = c.post("/accounting/batches", json={"period": "2026-12"}, headers=a.h("approver"))
    assert r.status_code == 201, r.text
    batch = r.json()
    assert batch["number"] == 1 and batch["entries"] == 2
    r = c.post("/accounting/batches", json={"period": "2026-12"}, headers=a.h())
    assert r.status_code == 409 and r.json()["code"] == "nothing_to_export"
    f = c.get(f"/accounting/batches/{batch['id']}/files/datev", headers=a.h("auditor"))
    assert f.status_code == 200 and f.headers["content-type"].startswith("text/csv")
    assert hashlib.sha256(f.content).hexdigest() == next(x["sha256"] for x in batch["files"] if x["format"] == "datev")
    extf = read_extf(f.content)
    assert (extf.header["Berater"], extf.header["Mandant"], extf.header["SKR"]) == ("4711", "42", "03")
    assert [(r["Umsatz (ohne Soll/Haben-Kz)"], r["Soll/Haben-Kennzeichen"], r["Konto"],
             r["Gegenkonto (ohne BU-Schlüssel)"], r["Belegdatum"], r["Beleginfo - Inhalt 1"]) for r in extf.rows] == [
        ("11,90", "S", debtor, "8400", "0112", "1"), ("11,90", "H", debtor, "1200", "0112", "28.11.2026")]
    assert c.get(f"/accounting/batches/{batch['id']}/files/datev", headers=b.h()).status_code == 404
    assert c.get(f"/accounting/batches/{batch['id']}/files/xls", headers=a.h()).status_code == 404
    assert [x["id"] for x in c.get("/accounting/batches", headers=a.h()).json()["items"]] == [batch["id"]]
    # delivery over SFTP: the target first (admins only, secrets never shown), then a workflow
    r = c.post(f"/accounting/batches/{batch['id']}/deliver", headers=a.h("approver"))
    assert r.status_code == 422 and r.json()["code"] == "sftp_target_missing", r.text
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMURZahOtLfxfKSc+Eh8PdVEenkY0xs+FvMzk0uymhMY"
    target = {"host": "erp.example.test", "username": "evbill", "password": "pw", "directory": "/in", "host_key": key}
    assert c.put("/accounting/sftp-target", json=target, headers=a.h("approver")).status_code == 403
    r = c.put("/accounting/sftp-target", json={**target, "host_key": "ssh-ed25519 nonsense"}, headers=a.h())
    assert r.status_code == 422 and r.json()["errors"][0]["key"] == "host_key"
    r = c.put("/accounting/sftp-target", json=target, headers=a.h())
    assert r.status_code == 200 and r.json()["has_password"] is True and "pw" not in r.text
    got = c.get("/accounting/sftp-target", headers=a.h("auditor")).json()
    assert got["configured"] and got["host_key"] == key and "password" not in got
    assert c.get("/accounting/sftp-target", headers=b.h()).json()["configured"] is False
    # no Temporal in this suite: the start is refused with a problem, the batch shows no delivery yet
    r = c.post(f"/accounting/batches/{batch['id']}/deliver", headers=a.h("approver"))
    assert r.status_code == 400 and r.json()["code"] == "temporal_unavailable", r.text
    assert c.get(f"/accounting/batches/{batch['id']}", headers=a.h()).json()["delivery"] is None
    rec = c.get("/accounting/reconciliation", headers=a.h("auditor")).json()
    assert rec["balanced"] is True and rec["currencies"]["EUR"]["vat_payable"] == "1.90", rec


def test_the_journal_shows_foreign_currency_entries_with_their_rate(env: Env) -> None:
    from runtime.accounting.fx import Rate
    from store.exchange_rates import import_rates

    c, b = env.client, env.b
    acc = b.ids["billing_account_id"]
    with env.engine.begin() as conn:
        import_rates(conn, "EUR", [Rate("CHF", date(2026, 12, 1), D("0.95")), Rate("CHF", date(2026, 12, 4), D("0.93"))],
                     "test")
        R.open_invoice_item(conn, b.tenant_id, SimpleNamespace(
            id="inv_chf_1", kind="invoice", number="INV-CHF-1", customer_id=b.ids["customer_id"], account_id=acc,
            currency="CHF", gross_total=D("119.00"), issue_date=date(2026, 12, 1), due_date=date(2026, 12, 15),
            corrects=[], tax_groups=[{"rate": "19", "net": "100.00", "tax": "19.00"}]))
        R.book_payment(conn, b.tenant_id, key="chf-1", customer_id=b.ids["customer_id"], account_id=acc,
                       amount=D("119.00"), currency="CHF", booked_on=date(2026, 12, 4), reference="bank")
    inv, pay = c.get("/accounting/journal", params={"period": "2026-12"}, headers=b.h("auditor")).json()["items"]
    assert (inv["functional_currency"], inv["rate"], inv["rate_date"]) == ("EUR", "0.95", "2026-12-01")
    assert {(ln["role"], ln["amount"], ln["currency"], ln["functional"]) for ln in pay["lines"]} == {
        ("debtor", "119.00", "CHF", "125.26"), ("bank", "119.00", "CHF", "127.96"), ("fx_gain", "0", "CHF", "2.70")}


def test_write_off_through_the_api(env: Env) -> None:
    c, a, b = env.client, env.a, env.b
    acc = a.ids["billing_account_id"]
    vat_before = D(c.get("/accounting/reconciliation", headers=a.h()).json()["currencies"].get(
        "EUR", {}).get("vat_payable", "0"))
    with env.engine.begin() as conn:
        open_stand_in(conn, a.tenant_id, invoice_id="inv_wo_1", number="INV-WO-1", customer_id=a.ids["customer_id"],
                      account_id=acc, gross="23.80", issued=date(2026, 10, 1), due=date(2026, 10, 15))
        [item] = [s for s in R.item_states(conn, a.tenant_id) if s.number == "INV-WO-1"]
    url = f"/receivables/items/{item.id}/write-off"
    body = {"reason": "insolvency", "amount": "11.90", "booked_on": "2026-12-02", "idempotency_key": "wo-1"}
    assert c.post(url, json=body, headers=a.h("operator")).status_code == 403
    assert c.post(url, json=body, headers=b.h("approver")).status_code == 404
    r = c.post(url, json=dict(body, amount="30.00", idempotency_key="wo-x"), headers=a.h("approver"))
    assert r.status_code == 422 and r.json()["code"] == "amount_too_high", r.text
    r = c.post(url, json={"reason": ""}, headers=a.h("approver"))
    assert r.status_code in (400, 422)
    r = c.post(url, json=body, headers=a.h("approver"))
    assert r.status_code == 201, r.text
    got = r.json()
    assert (got["amount"], got["open"], got["vat_corrected"]) == ("11.90", "11.90", [{"rate": "19", "vat": "1.90"}])
    again = c.post(url, json=body, headers=a.h("approver"))
    assert again.status_code == 200 and again.json()["duplicate"] is True and again.json()["event_id"] == got["event_id"]
    # the rest, in full
    r = c.post(url, json={"reason": "insolvency", "booked_on": "2026-12-03", "idempotency_key": "wo-2"},
               headers=a.h("admin"))
    assert r.status_code == 201 and r.json()["open"] == "0.00", r.text
    journal = c.get("/accounting/journal", params={"period": "2026-12"}, headers=a.h("auditor")).json()["items"]
    wo = [e for e in journal if e["source_kind"] == "write_off"]
    assert len(wo) == 2 and {(ln["role"], ln["side"], ln["amount"]) for ln in wo[0]["lines"]} == {
        ("debtor", "credit", "11.90"), ("vat", "debit", "1.90"), ("bad_debt", "debit", "10.00")}
    rec = c.get("/accounting/reconciliation", headers=a.h("auditor")).json()
    # all of the invoice's VAT corrected: VAT payable is what it was before it
    assert rec["balanced"] is True and D(rec["currencies"]["EUR"]["vat_payable"]) == vat_before, rec
    items = c.get("/receivables/items", params={"status": "all"}, headers=a.h()).json()["items"]
    assert next(i for i in items if i["id"] == item.id)["status"] == "settled"


def test_open_items_list_per_debtor_reconciles(env: Env) -> None:
    import csv
    import io

    c, a, b = env.client, env.a, env.b
    acc = a.ids["billing_account_id"]
    assert c.put("/accounting/chart", json={"template": "skr03"}, headers=a.h()).status_code == 200
    with env.engine.begin() as conn:
        for n, (issued, due, gross) in enumerate([(date(2025, 10, 1), date(2025, 10, 15), "11.90"),
                                                  (date(2025, 11, 1), date(2025, 11, 15), "23.80")], 1):
            open_stand_in(conn, a.tenant_id, invoice_id=f"inv_op_{n}", number=f"INV-OP-{n}",
                          customer_id=a.ids["customer_id"], account_id=acc, gross=gross, issued=issued, due=due)
    r = c.post("/receivables/payments", json={"account_id": acc, "amount": "20.00", "currency": "EUR",
                                              "booked_on": "2025-11-20", "reference": "part",
                                              "idempotency_key": "op-1"}, headers=a.h())
    assert r.status_code == 201, r.text
    before = c.get("/accounting/opos", params={"as_of": "2025-11-10"}, headers=a.h("auditor")).json()
    [deb] = before["debtors"]
    assert len(deb["account"]) == 5 and [(i["number"], i["open"], i["days_overdue"]) for i in deb["items"]] == [
        ("INV-OP-1", "11.90", 26), ("INV-OP-2", "23.80", 0)]
    assert (deb["open"], deb["overdue"]) == ("35.70", "11.90")
    assert before["reconciled"] is True and before["currencies"]["EUR"] == {"open_items": "35.70",
                                                                            "receivable_balance": "35.70"}
    after = c.get("/accounting/opos", params={"as_of": "2025-11-30"}, headers=a.h()).json()
    assert [(i["number"], i["open"]) for i in after["debtors"][0]["items"]] == [("INV-OP-2", "15.70")]
    assert after["reconciled"] is True and after["currencies"]["EUR"]["receivable_balance"] == "15.70"
    got = c.get("/accounting/opos", params={"as_of": "2025-11-30", "format": "csv"}, headers=a.h())
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(got.text)))
    assert [(r_["number"], r_["open"], r_["debtor_account"]) for r_ in rows] == [
        ("INV-OP-2", "15.70", after["debtors"][0]["account"])]
    assert c.get("/accounting/opos", params={"as_of": "2025-11-30"}, headers=b.h()).json()["debtors"] == []
    assert c.get("/accounting/opos", params={"as_of": "yesterday"}, headers=a.h()).status_code == 400
    assert c.get("/accounting/opos", params={"format": "xml"}, headers=a.h()).status_code == 400


def test_batch_schedule_and_delivery_tasks(env: Env) -> None:
    c, a, b = env.client, env.a, env.b
    assert c.get("/accounting/batch-schedule", headers=a.h("auditor")).json() == {"cadence": "off"}
    assert c.put("/accounting/batch-schedule", json={"cadence": "daily"}, headers=a.h("operator")).status_code == 403
    assert c.put("/accounting/batch-schedule", json={"cadence": "hourly"}, headers=a.h()).status_code == 400
    r = c.put("/accounting/batch-schedule", json={"cadence": "monthly"}, headers=a.h("approver"))
    assert r.status_code == 200 and r.json() == {"cadence": "monthly"}
    assert c.get("/accounting/batch-schedule", headers=a.h()).json() == {"cadence": "monthly"}
    assert c.get("/accounting/batch-schedule", headers=b.h()).json() == {"cadence": "off"}
    # a batch whose delivery finally failed: a finance task beside the held invoices
    acc = a.ids["billing_account_id"]
    with env.engine.begin() as conn:
        open_stand_in(conn, a.tenant_id, invoice_id="inv_bt_1", number="INV-BT-1", customer_id=a.ids["customer_id"],
                      account_id=acc, gross="11.90", issued=date(2024, 5, 2), due=date(2024, 5, 16))
        from store import accounting as A

        batch = A.create_batch(conn, a.tenant_id, "2024-05", "fin")
        A.record_delivery(conn, a.tenant_id, batch["id"], "failed", "erp@h:22/in", [], "login refused")
        tid = A.open_delivery_task(conn, a.tenant_id, batch["id"], "batch-delivery:x", "login refused")
    tasks = c.get("/billing/tasks", headers=a.h("approver")).json()["items"]
    task = next(t for t in tasks if t["id"] == tid)
    assert (task["kind"], task["subject_id"], task["invoice_id"], task["currency"]) == (
        "batch_delivery", batch["id"], None, None)
    assert "login refused" in task["reasons"][0]["message"]
    assert all(t["id"] != tid for t in c.get("/billing/tasks", headers=b.h()).json()["items"])
    r = c.post(f"/billing/tasks/{tid}/approve", json={"note": "ok"}, headers=a.h("approver"))
    assert r.status_code == 409 and r.json()["code"] == "not_an_invoice_task", r.text


def test_the_chart_check_names_the_untaxed_treatments_a_ruleset_can_give(env: Env) -> None:
    """A published ruleset whose tax policy says ``reverse_charge`` (AE for EU businesses, O for
    businesses outside the EU) and ``exempt`` (E): a chart without revenue accounts for those
    treatments is refused with each gap listed (no VAT line asked for them); SKR03 maps them."""
    c, a = env.client, env.a
    rs = c.post("/rulesets", json={"name": "untaxed"}, headers=a.h()).json()
    src = (DEMO_RULESET.replace("ruleset demo", "ruleset untaxed")
           + 'groups clinics\ntariff other "Other" {\n  vat 19%\n  when group clinics { energy 0.30 per kWh }\n}\n'
           + 'tax b2b "B2B" {\n  exempt for group clinics VATEX-EU-132-1B "Steuerfrei nach § 4 Nr. 14 UStG"\n'
           + '  reverse_charge\n}\n')
    draft = c.post(f"/rulesets/{rs['id']}/drafts", json={"source": src}, headers=a.h("analyst"))
    assert draft.status_code == 201, draft.text
    r = c.post(f"/rulesets/{rs['id']}/versions", json={"draft_id": draft.json()["id"],
                                                        "effective_from": "2026-01-01T00:00:00Z"},
               headers=a.h("approver"))
    assert r.status_code == 201, r.text
    skr03 = c.get("/accounting/chart/templates", headers=a.h()).json()["items"][1]
    assert skr03["name"] == "skr03"
    bare = [dict(rule) for rule in skr03["rules"] if rule["vat"] not in ("AE", "O", "E")]
    r = c.put("/accounting/chart", json={"template": "skr03", "rules": bare}, headers=a.h())
    assert r.status_code == 422 and r.json()["code"] == "chart_incomplete", r.text
    gaps = [e["message"] for e in r.json()["errors"]]
    for vat in ("AE", "O", "E"):
        assert f"event 'invoice', role 'revenue', revenue kind 'charging', VAT '{vat}'" in gaps
        assert f"event 'credit_note', role 'revenue', revenue kind 'discount', VAT '{vat}'" in gaps
    assert not any("role 'vat'" in g and ("'AE'" in g or "'O'" in g or "'E'" in g) for g in gaps)
    r = c.put("/accounting/chart", json={"template": "skr03"}, headers=a.h())
    assert r.status_code == 200, r.text
    untaxed = {(rule["vat"], rule["account"]) for rule in r.json()["rules"] if rule["vat"] in ("AE", "O", "E")}
    assert untaxed == {("AE", "8336"), ("O", "8338"), ("E", "8100")}
