"""Dunning in the database (SQLite and PostgreSQL): one open case per customer and currency, a
stage reached once (its fee, interest and flat fee are items of their own, charged once, then
paid like invoices), approvals refused, disputes flag items, blocks released on close, letters
archived once and never changed."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest
from sqlalchemy import Engine, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from runtime.dunning import (
    BaseRate,
    CaseState,
    DunningPolicy,
    DunningStage,
    InterestRule,
    next_step,
    plan_stage,
)
from store import dunning as DN
from store import receivables as R
from tests.store.test_receivables_store import _tenant

D = Decimal
DUE = date(2026, 3, 1)
POLICY = DunningPolicy(
    "standard", (DunningStage(1, 7, reminder=True), DunningStage(2, 14, fee=D("5.00")),
                 DunningStage(3, 14, fee=D("10.00"), fee_vat=D(19), approval=True, actions=("block_tokens",))),
    minimum=D("5.00"), interest=(InterestRule(D(9)),), base_rates=(BaseRate(D("2.00"), date(2026, 1, 1)),),
    pause_on_dispute=True)


def _inv(n: int, gross: str, due: date, customer: str = "cus_1") -> SimpleNamespace:
    return SimpleNamespace(id=f"inv_{customer}_{n}", kind="invoice", number=f"INV-{n:06d}", customer_id=customer,
                           account_id=f"acc_{customer}", currency="EUR", gross_total=D(gross),
                           issue_date=DUE - timedelta(days=14), due_date=due, corrects=[])


def _open(conn: object, t: str) -> DN.CaseRow:
    return DN.open_case(conn, t, customer_id="cus_1", account_id="acc_cus_1", currency="EUR",  # type: ignore[arg-type]
                        workflow_id="dunning:x", ruleset_version_id=None, policy="standard", debtor="businesses",
                        today=DUE + timedelta(days=1))


def test_a_stage_is_reached_once_and_its_charges_are_items(engine: Engine) -> None:
    t = _tenant(engine)
    with engine.begin() as conn:
        R.open_invoice_item(conn, t, _inv(1, "100.00", DUE))
        R.open_invoice_item(conn, t, _inv(2, "50.00", DUE + timedelta(days=60)))  # not due yet
        R.open_invoice_item(conn, t, _inv(3, "70.00", DUE, customer="cus_2"))
        assert DN.overdue_pairs(conn, t, DUE + timedelta(days=1)) == [(t, "cus_1", "EUR"), (t, "cus_2", "EUR")]
        assert DN.overdue_pairs(conn, t, DUE) == []
        assert DN.overdue_pairs(conn, t, DUE + timedelta(days=1), limit=1) == [(t, "cus_1", "EUR")]
        assert DN.overdue_pairs(conn, t, DUE + timedelta(days=1), after=(t, "cus_1", "EUR")) == [(t, "cus_2", "EUR")]
        case = _open(conn, t)
        assert _open(conn, t).id == case.id  # one open case per customer and currency
        assert DN.overdue_pairs(conn, t, DUE + timedelta(days=1)) == [(t, "cus_2", "EUR")]
        items = DN.case_items(conn, t, "cus_1", "EUR")
        today = DUE + timedelta(days=7)
        assert next_step(POLICY, items, today, DN.case_state(conn, t, case.id)).stage == 1
        p1 = plan_stage(POLICY, 1, items, today, DN.case_state(conn, t, case.id), "businesses")
        first = DN.reach_stage(conn, t, case.id, p1)
        assert DN.reach_stage(conn, t, case.id, p1)["duplicate"] and first["charge_items"] == DN.reach_stage(
            conn, t, case.id, p1)["charge_items"]
        # stage 1 charged interest for 7 days at 11 % on 100.00 = 0.21
        [interest] = R.item_states(conn, t, item_ids=first["charge_items"])
        assert (interest.kind, interest.open, interest.due_date) == ("interest", D("0.21"), today + timedelta(days=14))
        state = DN.case_state(conn, t, case.id)
        assert (state.stage, state.stage_on) == (1, today)
        day2 = today + timedelta(days=14)
        items = DN.case_items(conn, t, "cus_1", "EUR")
        p2 = plan_stage(POLICY, 2, items, day2, state, "businesses")
        # the interest item falls due today, not overdue yet, but owed: the letter lists it
        assert [i.kind for i in p2.items] == ["invoice", "interest"] and p2.overdue == D("100.21")
        second = DN.reach_stage(conn, t, case.id, p2)
        DN.reach_stage(conn, t, case.id, p2)
        kinds = sorted(s.kind for s in R.item_states(conn, t, item_ids=second["charge_items"]))
        assert kinds == ["dunning_fee", "interest"]
        fees = [s for s in R.item_states(conn, t, customer_id="cus_1") if s.kind == "dunning_fee"]
        assert [f.open for f in fees] == [D("5.00")]  # one fee, however often the stage is retried
        # a payment of everything open settles the fee and interest like invoices
        owed = sum((s.open for s in R.item_states(conn, t, customer_id="cus_1") if s.due_date <= day2 + timedelta(
            days=14)), D(0))
        R.book_payment(conn, t, key="pay1", customer_id="cus_1", account_id="acc_cus_1", amount=owed,
                       currency="EUR", booked_on=day2, reference="INV-000001")
        left = [s for s in DN.case_items(conn, t, "cus_1", "EUR") if s.open > 0]
        assert [(i.number, i.open) for i in left] == [("INV-000002", D("50.00"))]
        assert next_step(POLICY, left, day2, DN.case_state(conn, t, case.id)).kind == "wait"  # INV-2 not overdue
        stages = DN.stages_of(conn, t, case.id)
        assert [(s["stage"], s["status"], s["charged"]) for s in stages] == [
            (1, "reached", D("0.21")), (2, "reached", D("5.00") + p2.interest[0].amount)]


def test_approval_refused_disputes_blocks_and_close(engine: Engine) -> None:
    t = _tenant(engine)
    with engine.begin() as conn:
        R.open_invoice_item(conn, t, _inv(1, "100.00", DUE))
        case = _open(conn, t)
        items = DN.case_items(conn, t, "cus_1", "EUR")
        state = CaseState(2, DUE + timedelta(days=20))
        p3 = plan_stage(POLICY, 3, items, DUE + timedelta(days=40), state, "businesses")
        assert DN.request_approval(conn, t, case.id, p3) == "awaiting_approval"
        assert DN.request_approval(conn, t, case.id, p3) == "awaiting_approval"
        assert DN.case(conn, t, case.id).status == "awaiting_approval"
        DN.refuse_stage(conn, t, case.id, 3, "usr_a", "customer called, pays next week")
        with pytest.raises(ValueError):
            DN.reach_stage(conn, t, case.id, p3)
        assert DN.case_state(conn, t, case.id).refused
        assert [(s["stage"], s["status"], s["decided_by"]) for s in DN.stages_of(conn, t, case.id)] == [
            (3, "refused", "usr_a")]
        assert DN.customer_block(conn, t, "cus_1") is None
    with engine.begin() as conn:
        R.open_invoice_item(conn, t, _inv(2, "80.00", DUE, customer="cus_3"))
        c3 = DN.open_case(conn, t, customer_id="cus_3", account_id="acc_cus_3", currency="EUR", workflow_id="w",
                          ruleset_version_id=None, policy="standard", debtor="consumers", today=DUE)
        items = DN.case_items(conn, t, "cus_3", "EUR")
        p3 = plan_stage(POLICY, 3, items, DUE + timedelta(days=40), CaseState(2, DUE), "consumers")
        DN.request_approval(conn, t, c3.id, p3)
        DN.reach_stage(conn, t, c3.id, p3, "usr_b", "ok")
        assert DN.customer_block(conn, t, "cus_3") == c3.id
        [st3] = DN.stages_of(conn, t, c3.id)
        assert (st3["status"], st3["decided_by"]) == ("reached", "usr_b")
        item = items[0].id
        assert not DN.dispute_item(conn, t, item, "meter reading wrong", "usr_c")["duplicate"]
        assert DN.dispute_item(conn, t, item, "again", "usr_c")["duplicate"]
        assert [(i.kind, i.disputed) for i in DN.case_items(conn, t, "cus_3", "EUR")] == [
            ("invoice", True), ("dunning_fee", False), ("interest", False)]
        assert next_step(POLICY, DN.case_items(conn, t, "cus_3", "EUR"), DUE + timedelta(days=90),
                         DN.case_state(conn, t, c3.id)).kind == "paused"
        assert [c.id for c in DN.cases_with_item(conn, t, item)] == [c3.id]
        assert DN.resolve_dispute(conn, t, item, "reading confirmed", "usr_c")
        assert not DN.resolve_dispute(conn, t, item, "again", "usr_c")
        assert DN.dispute_item(conn, t, item, "a second dispute later", "usr_c")["duplicate"] is False
        with pytest.raises(LookupError):
            DN.dispute_item(conn, t, "itm_nothing", "x", "usr_c")
        assert DN.close_case(conn, t, c3.id, DUE + timedelta(days=50), "paid") == ["block_tokens"]
        assert DN.customer_block(conn, t, "cus_3") is None
        assert DN.close_case(conn, t, c3.id, DUE + timedelta(days=51), "paid") == []
        closed = DN.case(conn, t, c3.id)
        assert (closed.status, closed.closed_on) == ("closed", DUE + timedelta(days=50))
        # a new case may open once the old one is closed
        again = DN.open_case(conn, t, customer_id="cus_3", account_id="acc_cus_3", currency="EUR", workflow_id="w2",
                             ruleset_version_id=None, policy="standard", debtor="consumers", today=DUE)
        assert again.id != c3.id
        assert [c.id for c in DN.cases(conn, t, customer_id="cus_3")] == sorted([c3.id, again.id])
        assert [c.id for c in DN.cases(conn, t, status="open", customer_id="cus_3")] == [again.id]


def test_letters_are_archived_once_and_append_only(engine: Engine) -> None:
    t = _tenant(engine)
    with engine.begin() as conn:
        R.open_invoice_item(conn, t, _inv(1, "100.00", DUE))
        case = _open(conn, t)
        first = DN.save_letter(conn, t, case.id, 1, "de", "Mahnung-1.pdf", b"%PDF-1 one")
        second = DN.save_letter(conn, t, case.id, 1, "de", "Mahnung-1.pdf", b"%PDF-1 other bytes")
        assert second["duplicate"] and second["sha256"] == first["sha256"]
        got = DN.letter(conn, t, case.id, 1)
        assert got is not None and got["content"] == b"%PDF-1 one"
        assert [lt["stage"] for lt in DN.letters_of(conn, t, case.id)] == [1]
    for stmt in (update(DN.dunning_letter).values(content=b"x"), text("DELETE FROM dunning_letter")):
        with pytest.raises((IntegrityError, DBAPIError)), engine.begin() as conn:
            conn.execute(stmt)
