"""A percentage commission on a clearing statement is taken again of the amounts the disputes'
resolutions set: the roaming agreement names a ``charge emsp`` block with 0.25 per CDR and 10 %
of the CDRs' net; the partner disputes all three CDRs in the D-7 window; after it finance keeps
ours on one, accepts theirs on one and adjusts the third. The invoice bills the percentage of the
resolved nets (its line keeps the rule and says what the statement stated), the per-CDR fee
unchanged. Time-skipping (this module's own test server), SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

import pytest
from sqlalchemy import Engine
from temporalio.testing import WorkflowEnvironment

from runtime.clearing import CommissionLine, revise_commissions
from store import clearing as S
from store.documents import documents_by_number
from tests.clearing_seed import RULESET, add_sessions, add_tokens, seed_clearing
from tests.workflows.test_clearing import _state, store_engine  # noqa: F401  (the fixture)
from workflows.billing.worker import build_worker
from workflows.clearing.types import ClearingInput, DisputeRequest, ResolveRequest, clearing_workflow_id
from workflows.clearing.workflows import ClearingWorkflow

NOV = datetime(2026, 11, 10, 9, tzinfo=UTC)
# roam tariff: 0.30 start fee + 0.55 per kWh, each line rounded: s1 5.80, s2 12.68, s3 4.29
SESSIONS = [("s1", NOV, D("10.000"), "T1"), ("s2", NOV + timedelta(days=3), D("22.500"), "T2"),
            ("s3", NOV + timedelta(days=12), D("7.250"), "T1")]
RULESET_FEE = RULESET + """
commission roaming_fee {
  0.25 per session
  10% of net revenue
  charge emsp DE-ABC
}
"""


def test_revise_commissions_exact() -> None:
    """Pure: the percentage is the unit price times the new sum of its CDRs' nets, exactly, then
    rounded half up; lines that do not depend on an amount are left alone; a second revision with
    the same nets changes nothing and keeps the first stated net."""
    pct = CommissionLine("fee", "commission fee, line 3: 10% of net revenue", "percent", D("22.77"), "EUR net",
                         D("0.10"), D("2.2770"), D("2.28"), D(19), ("s1", "s2", "s3"))
    per = CommissionLine("fee", "commission fee, line 2: 0.25 per session", "per_session", D(3), "CDR", D("0.25"),
                         D("0.75"), D("0.75"), D(19), ("s1", "s2", "s3"))
    nets = {"s1": D("5.80"), "s2": D("11.30"), "s3": D("3.05")}
    out = revise_commissions([per, pct], nets, "EUR")
    assert out[0] is per
    assert (out[1].quantity, out[1].exact, out[1].net, out[1].stated) == (D("20.15"), D("2.0150"), D("2.02"), D("2.28"))
    assert out[1].rule == pct.rule
    assert "(nach Klärung der Einwände neu berechnet; in der Aufstellung: 2,28 EUR)" in out[1].text("de")
    again = revise_commissions(out, nets, "EUR")
    assert again == out
    assert CommissionLine.from_dict(out[1].to_dict()) == out[1]
    # as stated: nothing changes, nothing marked
    assert revise_commissions([pct], {"s1": D("5.80"), "s2": D("12.68"), "s3": D("4.29")}, "EUR") == [pct]


@pytest.mark.asyncio(loop_scope="session")
async def test_percentage_commission_follows_the_resolved_amounts(env: WorkflowEnvironment, store_engine: Engine,  # noqa: F811
                                                                   task_queue: str, tmp_path: Path) -> None:
    tid = f"t{uuid.uuid4().hex[:8]}"
    seed = seed_clearing(store_engine, tid, partner_country="DE", partner_vat="DE811907980",
                         ruleset=RULESET_FEE, terms={"commissions": "roaming_fee"})
    add_tokens(store_engine, seed, ["T1", "T2"])
    add_sessions(store_engine, seed, SESSIONS)
    wid = clearing_workflow_id(tid, seed.partner_id, "2026-11")
    async with build_worker(env.client, store_engine, task_queue, threads=2):
        handle = await env.client.start_workflow(
            ClearingWorkflow.run, ClearingInput(tid, seed.partner_id, "2026-11", "ops"), id=wid, task_queue=task_queue)
        st = await _state(env, wid, "in_review")
        sid = st.statement_id  # type: ignore[attr-defined]
        with store_engine.connect() as conn:
            stated = S.get_statement(conn, tid, sid)
        # stated: CDRs 5.80 + 12.68 + 4.29 = 22.77; 3 x 0.25 = 0.75; 10 % of 22.77 = 2.277 -> 2.28
        assert [(c["kind"], D(c["quantity"]), D(c["exact"]), D(c["net"])) for c in stated.commissions] == [
            ("per_session", D(3), D("0.75"), D("0.75")), ("percent", D("22.77"), D("2.277"), D("2.28"))]
        assert stated.net_total == D("25.80")

        await env.sleep(timedelta(days=5))
        ids = {}
        for cdr, proposed in (("s1", "5.00"), ("s2", "11.30"), ("s3", "2.00")):
            ids[cdr] = await handle.execute_update(ClearingWorkflow.dispute, DisputeRequest(
                "u_partner", "partner", seed.partner_id, cdr, "meter values differ", proposed))
        await env.sleep(timedelta(days=3))
        await _state(env, wid, "resolving")
        await handle.execute_update(ClearingWorkflow.resolve, ResolveRequest("u_fin", "approver", ids["s1"], "keep"))
        await handle.execute_update(ClearingWorkflow.resolve, ResolveRequest("u_fin", "approver", ids["s2"], "accept"))
        await handle.execute_update(ClearingWorkflow.resolve, ResolveRequest("u_fin", "approver", ids["s3"], "adjust",
                                                                             amount="3.05"))
        result = await handle.result()

    # invoiced: CDRs 5.80 (kept) + 11.30 (accepted) + 3.05 (adjusted) = 20.15; 0.75 per CDR as
    # stated; 10 % of 20.15 = 2.015 -> 2.02 (not the stated 2.28); net 22.92, 19 % VAT 4.3548 -> 4.35
    assert result.status == "invoiced"
    assert (D(result.net), D(result.gross)) == (D("22.92"), D("27.27"))
    with store_engine.connect() as conn:
        row = S.get_statement(conn, tid, sid)
        docs = {d.format: b for d, b in documents_by_number(conn, tid, result.invoice_number)}
    assert row.net_total == D("25.80")  # the statement as stated (its XLSX is archived)
    assert row.invoice_net == D("22.92")
    assert [(c["kind"], D(c["quantity"]), D(c["exact"]), D(c["net"]), c.get("stated")) for c in row.commissions] == [
        ("per_session", D(3), D("0.75"), D("0.75"), None), ("percent", D("20.15"), D("2.015"), D("2.02"), "2.28")]
    from api.areas.clearing import ClearingCommissionRead

    read = ClearingCommissionRead.model_validate(row.commissions[1])
    assert (read.net, read.stated) == ("2.02", "2.28")

    from tests.workflows.test_payouts import kit_validate

    rep = kit_validate(tmp_path, "clearing.xml", docs["xrechnung-ubl"])
    assert rep.valid, rep.summary()
    ubl = docs["xrechnung-ubl"].decode()
    assert ubl.count("<cac:InvoiceLine>") == 5  # plain (s1), s2, s3, two commission lines
    assert '<cbc:LineExtensionAmount currencyID="EUR">2.02</cbc:LineExtensionAmount>' in ubl
    assert '<cbc:TaxExclusiveAmount currencyID="EUR">22.92</cbc:TaxExclusiveAmount>' in ubl
    pdf = tmp_path / "clr.pdf"
    pdf.write_bytes(docs["pdf"])
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    flat = " ".join(text.split())
    assert "Provision roaming_fee: von 20,15 EUR netto" in flat
    assert "[commission roaming_fee, line 18: 10% of net revenue]" in flat
    assert "neu berechnet; in der Aufstellung: 2,28 EUR" in flat
    subprocess.run(["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", str(pdf), str(tmp_path / "clr")], check=True)
