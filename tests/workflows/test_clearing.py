"""eMSP clearing on Temporal (time-skipping): a month of a partner's roaming sessions (one late
session of the month before joins as a correction) is priced through the DSL with the agreement's
tariff, archived as XLSX and OCPI 2.2.1 CDR JSON and sent; a dispute on day 6 of the window is
taken, one on day 8 refused; finance accepts the partner's amount after the window; the clearing
invoice (PDF + XRechnung UBL, reverse charge: the partner is Dutch) bills the resolved amounts.
SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from store import clearing as S
from store.documents import documents_by_number
from tests.clearing_seed import RULESET, add_sessions, add_tokens, roam_net, seed_clearing
from tests.store.conftest import BACKENDS, fresh_engine
from workflows.billing.worker import build_worker
from workflows.clearing.types import ClearingInput, DisputeRequest, ResolveRequest, clearing_workflow_id
from workflows.clearing.workflows import ClearingWorkflow

pytestmark = pytest.mark.asyncio(loop_scope="session")
HISTORY = Path(__file__).resolve().parent / "histories" / "clearing_dispute_accepted.json"

NOV = datetime(2026, 11, 10, 9, tzinfo=UTC)
SESSIONS = [("s1", NOV, D("10.000"), "T1"), ("s2", NOV + timedelta(days=3), D("22.500"), "T2"),
            ("s3", NOV + timedelta(days=12), D("7.250"), "T1"),
            ("late1", datetime(2026, 10, 30, 12, tzinfo=UTC), D("5.000"), "T2"),  # last month's, late
            ("dec1", datetime(2026, 12, 1, 12, tzinfo=UTC), D("3.000"), "T1")]  # next month's


@pytest.fixture(params=BACKENDS)
def store_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    eng, cleanup = fresh_engine(str(request.param), tmp_path)
    yield eng
    cleanup()  # type: ignore[operator]


async def _state(env: WorkflowEnvironment, wid: str, want: str) -> object:
    handle = env.client.get_workflow_handle(wid)
    for _ in range(600):
        st = await handle.query(ClearingWorkflow.status)
        if st.state == want:
            return st
        await asyncio.sleep(0.05)
    raise AssertionError(f"the clearing never reached {want} (last: {st.state})")


async def test_dispute_window_day_6_taken_day_8_refused(env: WorkflowEnvironment, store_engine: Engine,
                                                        task_queue: str, tmp_path: Path) -> None:
    tid = f"t{uuid.uuid4().hex[:8]}"
    seed = seed_clearing(store_engine, tid)
    add_tokens(store_engine, seed, ["T1", "T2"])
    add_sessions(store_engine, seed, SESSIONS)
    wid = clearing_workflow_id(tid, seed.partner_id, "2026-11")
    async with build_worker(env.client, store_engine, task_queue, threads=2):
        handle = await env.client.start_workflow(ClearingWorkflow.run, ClearingInput(tid, seed.partner_id, "2026-11",
                                                                                     "ops"),
                                                 id=wid, task_queue=task_queue)
        st = await _state(env, wid, "in_review")
        sid = st.statement_id  # type: ignore[attr-defined]
        with store_engine.connect() as conn:
            row = S.get_statement(conn, tid, sid, content=True)
            cdrs = {c.cdr_id: c for c in S.statement_cdrs(conn, sid)}
        # the month's three and the late one of October; December's waits for its own month
        assert set(cdrs) == {"s1", "s2", "s3", "late1"}
        assert cdrs["late1"].late and not cdrs["s1"].late
        for sid_, _, kwh, _ in SESSIONS[:4]:
            assert cdrs[sid_].net == roam_net(kwh), sid_
        assert row.status == "in_review" and row.cdrs == 4 and row.late == 1
        assert row.net_total == sum((roam_net(k) for _, _, k, _ in SESSIONS[:4]), D(0))
        assert row.window_ends_at - row.sent_at == timedelta(days=7)

        await env.sleep(timedelta(days=6))
        dispute_id = await handle.execute_update(ClearingWorkflow.dispute, DisputeRequest(
            "u_partner", "partner", seed.partner_id, "s2", "our driver says 20 kWh", "11.30"))
        assert dispute_id.startswith("dsp")
        # another partner's key may not dispute it
        with pytest.raises(WorkflowUpdateFailedError) as other:
            await handle.execute_update(ClearingWorkflow.dispute, DisputeRequest(
                "u_x", "partner", "par_other", "s1", "no", "0"))
        assert isinstance(other.value.cause, ApplicationError) and other.value.cause.type == "forbidden"

        await env.sleep(timedelta(days=2))  # day 8
        with pytest.raises(WorkflowUpdateFailedError) as late:
            await handle.execute_update(ClearingWorkflow.dispute, DisputeRequest(
                "u_fin", "approver", "", "s3", "too late", "1.00"))
        assert isinstance(late.value.cause, ApplicationError) and late.value.cause.type == "window_closed"
        await _state(env, wid, "resolving")
        with pytest.raises(WorkflowUpdateFailedError) as who:
            await handle.execute_update(ClearingWorkflow.resolve, ResolveRequest("u_p", "partner", dispute_id, "accept"))
        assert isinstance(who.value.cause, ApplicationError) and who.value.cause.type == "forbidden"
        await handle.execute_update(ClearingWorkflow.resolve, ResolveRequest("u_fin", "approver", dispute_id, "accept",
                                                                             note="meter values agree"))
        result = await handle.result()
        if os.environ.get("EVBILL_RECORD_CLEARING_HISTORY") and store_engine.dialect.name == "sqlite":
            HISTORY.write_text((await handle.fetch_history()).to_json())

    assert result.status == "invoiced" and result.invoice_number == "CLR-000001" and result.disputes == 1
    expected = roam_net(D("10.000")) + D("11.30") + roam_net(D("7.250")) + roam_net(D("5.000"))
    assert D(result.net) == expected
    assert D(result.gross) == expected  # reverse charge: a Dutch business partner, no German VAT
    with store_engine.connect() as conn:
        row = S.get_statement(conn, tid, sid, content=True)
        disputes = S.disputes_of(conn, tid, sid)
        docs = {d.format: b for d, b in documents_by_number(conn, tid, result.invoice_number)}
    assert row.status == "invoiced" and row.invoice_number == "CLR-000001" and row.invoice_net == expected
    assert [(d.cdr_id, d.resolution, d.resolved_net, d.ours) for d in disputes] == \
        [("s2", "accept", D("11.30"), roam_net(D("22.500")))]
    assert set(docs) == {"pdf", "xrechnung-ubl"}
    ubl = docs["xrechnung-ubl"].decode()
    from tests.workflows.test_payouts import kit_validate

    rep = kit_validate(tmp_path, "clearing.xml", docs["xrechnung-ubl"])
    assert rep.valid, rep.summary()
    assert "<cbc:ID>AE</cbc:ID>" in ubl and "<cbc:TaxAmount currencyID=\"EUR\">0.00</cbc:TaxAmount>" in ubl
    pdf = tmp_path / "clr.pdf"
    pdf.write_bytes(docs["pdf"])
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "CLR-000001" in text and "CDR s2" in text and "Reverse" in text
    _paid_by_transfer(store_engine, tid, "CLR-000001", expected, vat=D(0))  # reverse charge: no VAT

    # the archived files: one XLSX row per CDR with the OCPI fields and a totals sheet; the CDR JSON
    # reads as OCPI 2.2.1 CDRs in another implementation's types
    import openpyxl
    from ocpi_types.v2_2_1 import Cdr

    wb = openpyxl.load_workbook(io.BytesIO(row.xlsx), read_only=True)
    rows = list(wb["CDRs"].iter_rows(values_only=True))
    assert rows[0][0] == "cdr_id" and "total_energy" in rows[0] and len(rows) == 5
    by_id = {r[0]: dict(zip(rows[0], r, strict=True)) for r in rows[1:]}
    assert D(str(by_id["s2"]["net"])) == roam_net(D("22.500")) and by_id["late1"]["correction"] == "late"
    totals = dict(wb["Totals"].iter_rows(values_only=True))
    assert totals["cdrs"] == 4 and D(str(totals["net"])) == row.net_total
    objs = json.loads(row.cdr_json)
    parsed = [Cdr.from_dict(o) for o in objs]
    assert {p.id for p in parsed} == {"s1", "s2", "s3", "late1"}
    assert all(p.cdr_token.party_id == "ABC" and p.cdr_token.country_code == "NL" for p in parsed)
    s1 = next(o for o in objs if o["id"] == "s1")
    assert D(str(s1["total_cost"]["excl_vat"])) == roam_net(D("10.000"))


COMMISSION_RULESET = RULESET + """
commission roaming_fee {
  0.25 per session
  1% of net revenue
  30.00 per month
  charge emsp DE-ABC
}
"""


async def test_charge_emsp_commission_on_the_clearing_invoice(env: WorkflowEnvironment, store_engine: Engine,
                                                              task_queue: str, tmp_path: Path) -> None:
    """The roaming agreement names a ``charge emsp`` block (``terms.commissions``): its rules over
    the month's CDRs are in the statement's totals (and its XLSX totals sheet, each with its rule)
    and lines of the clearing invoice, taxed as the CDRs (a German partner: 19 %); the XRechnung
    is valid."""
    tid = f"t{uuid.uuid4().hex[:8]}"
    seed = seed_clearing(store_engine, tid, partner_country="DE", partner_vat="DE811907980",
                         ruleset=COMMISSION_RULESET, terms={"commissions": "roaming_fee"})
    add_tokens(store_engine, seed, ["T1", "T2"])
    add_sessions(store_engine, seed, SESSIONS[:3])
    wid = clearing_workflow_id(tid, seed.partner_id, "2026-11")
    cdr_net = sum((roam_net(k) for _, _, k, _ in SESSIONS[:3]), D(0))
    fee = [D("0.75"), (cdr_net / 100).quantize(D("0.01")), D("30.00")]
    async with build_worker(env.client, store_engine, task_queue, threads=2):
        handle = await env.client.start_workflow(ClearingWorkflow.run, ClearingInput(tid, seed.partner_id, "2026-11",
                                                                                     "ops"),
                                                 id=wid, task_queue=task_queue)
        st = await _state(env, wid, "in_review")
        sid = st.statement_id  # type: ignore[attr-defined]
        with store_engine.connect() as conn:
            row = S.get_statement(conn, tid, sid, content=True)
        assert [(c["kind"], D(c["net"])) for c in row.commissions] == list(zip(
            ("per_session", "percent", "monthly"), fee, strict=True))
        assert row.net_total == cdr_net + sum(fee, D(0))
        from api.areas.clearing import ClearingCommissionRead  # what GET /clearing/statements/{id} answers

        read = [ClearingCommissionRead.model_validate(c) for c in row.commissions]
        assert next((c.kind, c.net, c.cdrs) for c in read) == ("per_session", "0.75", ["s1", "s2", "s3"])
        await env.sleep(timedelta(days=8))
        result = await handle.result()
    assert result.status == "invoiced" and D(result.net) == row.net_total
    assert D(result.gross) == row.net_total + (row.net_total * D("0.19")).quantize(D("0.01"))

    import openpyxl

    wb = openpyxl.load_workbook(io.BytesIO(row.xlsx), read_only=True)
    totals = dict(wb["Totals"].iter_rows(values_only=True))
    assert D(str(totals["net"])) == row.net_total
    assert D(str(totals["commission roaming_fee 2026-11 [commission roaming_fee, line 19: 30.00 per month]"])) == 30

    with store_engine.connect() as conn:
        docs = {d.format: b for d, b in documents_by_number(conn, tid, result.invoice_number)}
    from tests.workflows.test_payouts import kit_validate

    rep = kit_validate(tmp_path, "clearing.xml", docs["xrechnung-ubl"])
    assert rep.valid, rep.summary()
    ubl = docs["xrechnung-ubl"].decode()
    assert ubl.count("<cac:InvoiceLine>") == 4 and "Provision roaming_fee" in ubl
    assert "[commission roaming_fee, line 17: 0.25 per session]" in ubl
    pdf = tmp_path / "clr.pdf"
    pdf.write_bytes(docs["pdf"])
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "Provision roaming_fee" in text and "30,00" in text


async def test_partner_key_disputes_through_the_api(env: WorkflowEnvironment, engine: Engine, task_queue: str) -> None:
    """The partner's own API key sees and disputes its statement through the API; finance's
    dispute after the window is 409 window_closed; finance keeps our amount; another eMSP's key sees
    nothing of it."""
    from sqlalchemy.orm import Session

    from store.tenants import create_user, issue_key
    from tests.workflows.test_billing_api import api_client, h

    tid = f"t{uuid.uuid4().hex[:8]}"
    seed = seed_clearing(engine, tid, partner_country="DE", partner_vat="DE811907980")
    add_tokens(engine, seed, ["T1", "T2"])
    add_sessions(engine, seed, SESSIONS[:3])
    keys = {}
    with Session(engine) as db:
        for role, partner in (("operator", None), ("approver", None), ("partner", seed.partner_id),
                              ("partner", "par_nobody")):
            if partner == "par_nobody":
                from store.models import Partner

                db.add(Partner(id="par_nobody", tenant_id=tid, kind="emsp", name="Other", country_code="DE",
                               party_id="OTH"))
                db.flush()
            u = create_user(db, tid, f"{role}-{partner}@t.test", role, partner_id=partner)
            db.flush()
            if role == "approver":
                from store.console import set_password

                set_password(db, tid, u.id, "correct horse battery staple")
            keys[f"{role}-{partner}"] = issue_key(db, tid, u.id, role)[1]
        db.commit()
    ops, fin = h(keys["operator-None"]), h(keys["approver-None"])
    mine, other = h(keys[f"partner-{seed.partner_id}"]), h(keys["partner-par_nobody"])
    async with build_worker(env.client, engine, task_queue, threads=2), api_client(env, engine, task_queue) as c:
        r = await c.post("/clearing/statements", json={"partner_id": seed.partner_id, "month": "2026-11"}, headers=ops)
        assert r.status_code == 202, r.text
        wid = r.json()["workflow_id"]
        assert (await c.post("/clearing/statements", json={"partner_id": "par_nobody_else", "month": "2026-11"},
                             headers=ops)).status_code == 404
        st = await _state(env, wid, "in_review")
        sid = st.statement_id  # type: ignore[attr-defined]
        listed = (await c.get("/clearing/statements", headers=mine)).json()["items"]
        assert [s["id"] for s in listed] == [sid] and not (await c.get("/clearing/statements",
                                                                       headers=other)).json()["items"]
        assert (await c.get(f"/clearing/statements/{sid}", headers=other)).status_code == 404
        x = await c.get(f"/clearing/statements/{sid}/xlsx", headers=mine)
        assert x.status_code == 200 and x.content[:2] == b"PK"
        assert len((await c.get(f"/clearing/statements/{sid}/cdrs", headers=mine)).json()) == 3
        r = await c.post(f"/clearing/statements/{sid}/disputes", headers=mine,
                         json={"cdr_id": "s1", "reason": "blocked charger", "proposed_amount": "0.00"})
        assert r.status_code == 201, r.text
        dispute = r.json()
        assert dispute["ours"] == str(roam_net(D("10.000"))) and dispute["raised_role"] == "partner"
        r = await c.post(f"/clearing/statements/{sid}/disputes", headers=mine,
                         json={"cdr_id": "nope", "reason": "x", "proposed_amount": "1"})
        assert r.status_code == 404 and r.json()["code"] == "cdr_not_found"
        # resolving before the window closed
        r = await c.post(f"/clearing/disputes/{dispute['id']}/resolve", headers=fin, json={"resolution": "keep"})
        assert r.status_code == 409 and r.json()["code"] == "not_resolving"
        await env.sleep(timedelta(days=8))
        await _state(env, wid, "resolving")
        r = await c.post(f"/clearing/statements/{sid}/disputes", headers=fin,
                         json={"cdr_id": "s2", "reason": "late", "proposed_amount": "1.00"})
        assert r.status_code == 409 and r.json()["code"] == "window_closed"
        # finance keeps our amount from the console's inbox (the API's own resolve function)
        async with api_client(env, engine, task_queue) as web:
            await _console_keep(web, "approver-None@t.test", dispute["id"])
        result = await env.client.get_workflow_handle(wid).result()
        detail = (await c.get(f"/clearing/statements/{sid}", headers=fin)).json()
    # a German partner: no reverse charge, 19 % VAT on the kept amounts
    net = sum((roam_net(k) for _, _, k, _ in SESSIONS[:3]), D(0))
    assert detail["status"] == "invoiced" and D(detail["invoice_net"]) == net and not detail["reverse_charge"]
    assert D(detail["invoice_gross"]) == net + (net * D("0.19")).quantize(D("0.01"))
    assert result["invoice_number"] == detail["invoice_number"]
    assert [d["resolution"] for d in detail["disputes"]] == ["keep"]
    # paid by transfer: 19 % VAT in the journal
    _paid_by_transfer(engine, tid, detail["invoice_number"], D(detail["invoice_gross"]), vat=D(detail["invoice_gross"]) - net)


async def _console_keep(web: Any, email: str, dispute_id: str) -> None:
    """Sign in to the console, find the dispute in the finance inbox and keep our amount."""
    import re

    page = await web.get("/console/sign-in")
    token = re.search(r'name="form_token" value="([^"]+)"', page.text)
    assert token, page.text[:300]
    r = await web.post("/console/sign-in", data={"email": email, "password": "correct horse battery staple",
                                                 "form_token": token.group(1), "next": "/console"})
    assert r.status_code in (302, 303), r.text[:300]
    inbox = await web.get("/console/inbox")
    assert f'action="/console/inbox/clearing-disputes/{dispute_id}/resolve"' in inbox.text
    csrf = re.search(r'name="_csrf" value="([^"]+)"', inbox.text)
    assert csrf
    r = await web.post(f"/console/inbox/clearing-disputes/{dispute_id}/resolve",
                       data={"_csrf": csrf.group(1), "resolution": "keep", "note": "meter values confirm"})
    assert r.status_code == 303 and r.headers["location"] == "/console/inbox?msg=dispute_resolved", r.text[-500:]
    after = await web.get("/console/inbox")
    assert f"dispute-{dispute_id}" not in after.text


def _paid_by_transfer(engine: Engine, tid: str, number: str, gross: D, *, vat: D) -> None:
    """The clearing invoice is the partner's open item (its own customer, due in 30 days); the bank
    statement's credit naming its number settles it; the journal books the invoice's revenue and
    VAT against the debtor and the payment against the bank, and every entry balances."""
    from sqlalchemy import select

    from runtime.bank.camt import parse_camt
    from runtime.bank.simulate import SimEntry, SimTransaction, statement_xml
    from store import bank as B
    from store import receivables as R
    from store.accounting import journal_entry, journal_line
    from store.models import Customer

    with engine.connect() as conn:
        [item] = [s for s in R.item_states(conn, tid) if s.kind == "clearing_invoice"]
        cus = conn.execute(select(Customer.__table__).where(Customer.__table__.c.id == item.customer_id)).one()
    assert (item.number, item.open, item.currency) == (number, gross, "EUR")
    assert (item.due_date - item.issue_date).days == 30
    assert cus.kind == "business" and cus.external_ref.startswith("evbill:partner:")
    credit = statement_xml(message_id="CLR-PAY", statement_id="CLR-S-1", sequence=1,
                           created=datetime(2027, 1, 20, 8, tzinfo=UTC), account_iban="DE02120300000000202051",
                           currency="EUR", opening=D(0), entries=[
                               SimEntry(gross, True, datetime(2027, 1, 20).date(), "CLR-IN", transactions=[
                                   SimTransaction(gross, debtor_name="Roaming partner B.V.",
                                                  debtor_iban="NL91ABNA0417164300",
                                                  remittance=f"Clearing {number}")])])
    with engine.begin() as conn:
        res = B.import_statement(conn, tid, parse_camt(credit)[0], "camt-clr")
    assert res.matched == 1 and res.unmatched == 0
    with engine.connect() as conn:
        [item] = [s for s in R.item_states(conn, tid) if s.kind == "clearing_invoice"]
        assert item.open == 0
        je, jl = journal_entry.c, journal_line.c
        rows = conn.execute(select(je.id, je.source_kind, jl.role, jl.side, jl.amount)
                            .join(journal_line, jl.entry_id == je.id).where(je.tenant_id == tid)).all()
    lines: dict[str, list[tuple[str, str, D]]] = {}
    per_entry: dict[str, D] = {}
    for eid, kind, role, side, amount in rows:
        lines.setdefault(kind, []).append((role, side, amount))
        per_entry[eid] = per_entry.get(eid, D(0)) + (amount if side == "debit" else -amount)
    assert per_entry and all(v == 0 for v in per_entry.values())
    want = [("debtor", "debit", gross), ("revenue", "credit", gross - vat)] + ([("vat", "credit", vat)] if vat else [])
    assert sorted(lines["clearing_invoice"]) == sorted(want)
    assert sorted(lines["payment"]) == [("bank", "debit", gross), ("debtor", "credit", gross)]
