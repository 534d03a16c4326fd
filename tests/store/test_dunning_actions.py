"""Dunning actions that change things (SQLite and PostgreSQL): ``suspend_contract`` suspends the
customer's active contracts with the case as the reason and closing the case makes them active
again (unless someone changed them meanwhile); ``hand_over`` archives the collection agency's CSV
and JSON once per stage, with the debtor's master data, the claims, fees, interest and letters."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from runtime.dunning import CaseState, DunningPolicy, DunningStage, plan_stage
from store import dunning as DN
from store import receivables as R
from store.models import BillingAccount, Contract, Customer
from tests.store.test_dunning_store import DUE, _inv
from tests.store.test_receivables_store import _tenant
from workflows.dunning.letters import archive_handover

D = Decimal
POLICY = DunningPolicy("hard", (DunningStage(1, 7, fee=D("5.00"), actions=("suspend_contract",)),
                                DunningStage(2, 14, fee=D("10.00"), actions=("hand_over",))))
CT = Contract.__table__  # type: ignore[attr-defined]


def _customer(engine: Engine, t: str) -> None:
    with Session(engine) as db:
        db.add(Customer(id="cus_1", tenant_id=t, number="K-1", kind="private", name="Erika Muster",
                        email="erika@example.org", street="Hauptstr. 1", postal_code="10115", city="Berlin",
                        country="DE"))
        db.flush()
        db.add(BillingAccount(id="acc_cus_1", tenant_id=t, customer_id="cus_1"))
        db.flush()
        for n, status in ((1, "active"), (2, "active"), (3, "terminated")):
            db.add(Contract(id=f"ctr_{t}_{n}", tenant_id=t, account_id="acc_cus_1", customer_id="cus_1",
                            product="flex", start_date=date(2025, 1, 1), status=status))
        db.commit()


def _statuses(conn: object, t: str) -> list[tuple[str, str]]:
    return [(r.status, r.status_reason) for r in conn.execute(  # type: ignore[attr-defined]
        select(CT.c.status, CT.c.status_reason).where(CT.c.tenant_id == t).order_by(CT.c.id))]


def _stage_1(engine: Engine) -> tuple[str, DN.CaseRow, Any]:
    """A tenant with the customer, an invoice overdue, a case and its stage 1 planned."""
    t = _tenant(engine)
    _customer(engine, t)
    with engine.begin() as conn:
        R.open_invoice_item(conn, t, _inv(1, "100.00", DUE))
        case = DN.open_case(conn, t, customer_id="cus_1", account_id="acc_cus_1", currency="EUR", workflow_id="w",
                            ruleset_version_id=None, policy="hard", debtor="consumers", today=DUE)
        p1 = plan_stage(POLICY, 1, DN.case_items(conn, t, "cus_1", "EUR"), DUE + timedelta(days=7), CaseState(),
                        "consumers")
    return t, case, p1


def test_suspend_contract_and_its_reversal(engine: Engine) -> None:
    t, case, p1 = _stage_1(engine)
    with engine.begin() as conn:
        DN.reach_stage(conn, t, case.id, p1)
        DN.reach_stage(conn, t, case.id, p1)  # a retry changes nothing more
        why = f"dunning case {case.id}"
        assert _statuses(conn, t) == [("suspended", why), ("suspended", why), ("terminated", "")]
        [block] = DN.blocks_of(conn, t, case.id)
        assert block["action"] == "suspend_contract" and block["detail"] == {
            "contracts": [f"ctr_{t}_1", f"ctr_{t}_2"]}
        assert DN.customer_blocks(conn, t, "cus_1") == {"suspend_contract": case.id}
        # an operator ends contract 2 meanwhile: the reversal leaves it as it is
        conn.execute(update(CT).where(CT.c.id == f"ctr_{t}_2").values(status="terminated", status_reason=""))
        assert DN.close_case(conn, t, case.id, DUE + timedelta(days=9), "nothing_overdue") == ["suspend_contract"]
        assert _statuses(conn, t) == [("active", ""), ("terminated", ""), ("terminated", "")]
        assert DN.customer_blocks(conn, t, "cus_1") == {}


def test_hand_over_export_once_per_stage(engine: Engine) -> None:
    t, case, p1 = _stage_1(engine)
    with engine.begin() as conn:
        DN.reach_stage(conn, t, case.id, p1)
        DN.save_letter(conn, t, case.id, 1, "de", "dunning-1.pdf", b"%PDF-1")
        p2 = plan_stage(POLICY, 2, DN.case_items(conn, t, "cus_1", "EUR"), DUE + timedelta(days=21),
                        DN.case_state(conn, t, case.id), "consumers")
        DN.reach_stage(conn, t, case.id, p2)
    first = archive_handover(engine, t, case.id, 2)
    assert archive_handover(engine, t, case.id, 2) == first and len(first) == 2  # archived once
    with engine.connect() as conn:
        assert [(h["stage"], h["format"]) for h in DN.handovers_of(conn, t, case.id)] == [(2, "csv"), (2, "json")]
        doc = json.loads(DN.handover(conn, t, case.id, None, "json")["content"])
        raw = bytes(DN.handover(conn, t, case.id, 2, "csv")["content"])
    assert doc["debtor"]["name"] == "Erika Muster" and doc["debtor"]["city"] == "Berlin"
    assert doc["total_open"] == "115.00" and doc["stage"] == 2
    assert sorted((c["kind"], c["open"]) for c in doc["claims"]) == [
        ("dunning_fee", "10.00"), ("dunning_fee", "5.00"), ("invoice", "100.00")]
    assert [f["gross"] for f in doc["fees"]] == ["5.00", "10.00"]
    assert [lt["name"] for lt in doc["letters"]] == ["dunning-1.pdf"]
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig")), delimiter=";"))
    assert len(rows) == 3 and {r["debtor_number"] for r in rows} == {"K-1"}
    assert {r["claim_kind"] for r in rows} == {"invoice", "dunning_fee"} and rows[0]["currency"] == "EUR"
