"""The ``payments`` policy of the ruleset version in force drives direct debits (SQLite and
PostgreSQL): the return charge per EPC reason code (a flat amount, the bank's fee or nothing)
overrides the creditor account's switch, the policy's lead time and minimum amount decide what a
run takes, and without a ``return charge`` for the reason the creditor account decides."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime
from decimal import Decimal as D

from sqlalchemy import Engine, insert

from runtime.bank.camt import parse_camt
from runtime.bank.simulate import SimEntry, SimTransaction, statement_xml
from store import bank as B
from store import collections as C
from store import receivables as R
from store.models import Ruleset, RulesetDraft, RulesetVersion
from store.types import new_id
from tests.store.test_collections_store import AS_OF, CREDITOR_IBAN, NOW, _setup

POLICY = """\
ruleset pay currency EUR timezone Europe/Berlin
tariff t { vat 19%; energy 0.40 per kWh }
payments sepa {
  lead_time 2 days
  minimum amount {minimum}
  return charge 4.00 for MS02
  return charge none for MD06
}
"""


def _publish(engine: Engine, tid: str, source: str, effective: datetime) -> None:
    t = {m: m.__table__ for m in (Ruleset, RulesetDraft, RulesetVersion)}  # type: ignore[attr-defined]
    rs, dr, rv = new_id("rs"), new_id("rd"), new_id("rv")
    sha = hashlib.sha256(source.encode()).hexdigest()
    with engine.begin() as conn:
        conn.execute(insert(t[Ruleset]).values(id=rs, tenant_id=tid, name=f"pay_{rs[-6:]}", description="",
                                               created_by="t", created_at=effective))
        conn.execute(insert(t[RulesetDraft]).values(id=dr, tenant_id=tid, ruleset_id=rs, source=source, sha256=sha,
                                                    ok=True, diagnostics=[], author_id="t", created_at=effective))
        conn.execute(insert(t[RulesetVersion]).values(
            id=rv, tenant_id=tid, ruleset_id=rs, version=1, draft_id=dr, source=source, sha256=sha, dsl_name="pay",
            currency="EUR", timezone="Europe/Berlin", tariff_names=["t"], effective_from=effective, author_id="t",
            publisher_id="u", published_at=effective, note=""))


def test_the_policy_charges_per_reason_and_the_creditor_account_decides_the_rest(engine: Engine) -> None:
    # the creditor account absorbs fees; the policy says otherwise for MS02 and confirms it for MD06
    tid, cred, items = _setup(engine, pass_charges=False)
    _publish(engine, tid, POLICY.replace("{minimum}", "1.00"), datetime(2026, 1, 1, tzinfo=UTC))
    with engine.begin() as conn:
        g = C.gather(conn, tid, cred, "wf-1", AS_OF, "usr_a")
        # the policy's 2-day lead time, not the creditor account's 5: only INV-2 (due the 14th)
        assert (g.items, g.total) == (1, D("40.00"))
        g2 = C.gather(conn, tid, cred, "wf-2", date(2026, 12, 13), "usr_a")
        assert (g2.items, g2.total) == (1, D("12.83"))
        for run in (g, g2):
            C.submit_run(conn, tid, run.run_id, "usr_b", NOW)
    st = statement_xml(message_id="B-1", statement_id="S-1", sequence=1, created=NOW, account_iban=CREDITOR_IBAN,
                       currency="EUR", opening=D(0), entries=[
                           SimEntry(D("52.83"), True, date(2026, 12, 15), "C-1", transactions=[
                               SimTransaction(D("12.83"), "INV-000001-C1"), SimTransaction(D("40.00"), "INV-000002-C1")]),
                           SimEntry(D("15.83"), False, date(2026, 12, 16), "R-1", transactions=[
                               SimTransaction(D("15.83"), "INV-000001-C1", return_reason="MS02", charges=D("3.00"))]),
                           SimEntry(D("42.50"), False, date(2026, 12, 16), "R-2", transactions=[
                               SimTransaction(D("42.50"), "INV-000002-C1", return_reason="MD06", charges=D("2.50"))])])
    with engine.begin() as conn:
        res = B.import_statement(conn, tid, parse_camt(st)[0], "s")
        assert res.returns == 2
        opened = {s.number: s.open for s in R.item_states(conn, tid, item_ids=list(items.values()))}
        # MS02: the policy's flat 4.00, although the bank took 3.00 and the account absorbs fees
        assert opened["INV-000001"] == D("12.83") + D("4.00")
        assert opened["INV-000002"] == D("40.00")  # MD06: none
        details = {e.detail["end_to_end_id"]: e.detail for e in conn.execute(R.receivable_event.select().where(
            R.receivable_event.c.tenant_id == tid, R.receivable_event.c.kind == "return")).all()}
        assert details["INV-000001-C1"]["charge_by"].startswith("payments sepa, line 6")
        assert (details["INV-000002-C1"]["charge"], details["INV-000002-C1"]["fee"]) == ("0", "2.50")


def test_without_a_rule_for_the_reason_the_creditor_account_decides(engine: Engine) -> None:
    tid, cred, items = _setup(engine, pass_charges=True)
    _publish(engine, tid, POLICY.replace("{minimum}", "1.00"), datetime(2026, 1, 1, tzinfo=UTC))
    with engine.begin() as conn:
        g = C.gather(conn, tid, cred, "wf-1", date(2026, 12, 13), "usr_a")
        C.submit_run(conn, tid, g.run_id, "usr_b", NOW)
    st = statement_xml(message_id="B-1", statement_id="S-1", sequence=1, created=NOW, account_iban=CREDITOR_IBAN,
                       currency="EUR", opening=D(0), entries=[
                           SimEntry(D("15.33"), False, date(2026, 12, 16), "R-1", transactions=[
                               SimTransaction(D("15.33"), "INV-000001-C1", return_reason="AC01")])])
    with engine.begin() as conn:
        B.import_statement(conn, tid, parse_camt(st)[0], "s")
        [state] = R.item_states(conn, tid, item_ids=[items["INV-000001"]])
        # the credit never arrived: nothing owed again, the 2.50 fee passed on by the creditor account
        assert state.open == D("12.83") + D("2.50")


def test_the_minimum_amount_leaves_small_items_out(engine: Engine) -> None:
    tid, cred, _items = _setup(engine)
    _publish(engine, tid, POLICY.replace("{minimum}", "20.00").replace("lead_time 2 days", "lead_time 60 days"),
             datetime(2026, 1, 1, tzinfo=UTC))
    with engine.begin() as conn:
        g = C.gather(conn, tid, cred, "wf-1", AS_OF, "usr_a")
        assert (g.items, g.total) == (1, D("40.00"))
        assert sorted(s["reason"] for s in g.skipped) == [
            "INV-000001: 12.83 open, below the payments policy's minimum 20.00",
            "INV-000003: 9.99 open, below the payments policy's minimum 20.00"]
