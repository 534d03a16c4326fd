"""The invoices that bill a session (the session record's "billed on"), found without an index of
the lines by session (migration 0047): finalized ones by their billed sessions, the others by their
lines; another session's and another tenant's invoices are not among them."""

from __future__ import annotations

from sqlalchemy import Engine

from runtime.invoicing import InvoiceLine
from store import billing as B
from tests.store.test_journal_store import _invoice, _line
from tests.workflows.seed import seed_tenant


def _billing(seq: int, session: str, rating: str) -> InvoiceLine:
    return _line(seq, "session", "10.00", "19")._replace(session_id=session, rating_id=rating)


def test_finalized_and_open_invoices_of_a_session(engine: Engine) -> None:
    s = seed_tenant(engine, "ios1", 1)
    acc = s.account_ids[0]
    cus = s.customer_of[acc]
    first = _invoice(engine, "ios1", acc, cus, 1, [_billing(1, "S-1", "r1"), _billing(2, "S-2", "r2")])
    correction = _invoice(engine, "ios1", acc, cus, 2, [_billing(1, "S-1", "r1b")])
    draft = _invoice(engine, "ios1", acc, cus, 3, [_billing(1, "S-1", "r1c")], finalize=False)
    other = _invoice(engine, "ios1", acc, cus, 4, [_billing(1, "S-2", "r2b")], finalize=False)
    t2 = seed_tenant(engine, "ios2", 1)
    acc2 = t2.account_ids[0]
    _invoice(engine, "ios2", acc2, t2.customer_of[acc2], 5, [_billing(1, "S-1", "r9")])
    with engine.connect() as conn:
        found = B.invoices_of_session(conn, "ios1", "S-1")
        assert [(r.id, r.status) for r in found] == sorted(
            [(first, "finalized"), (correction, "finalized"), (draft, "draft")])
        assert [r.number for r in found if r.status == "finalized"] == ["INV-000001", "INV-000002"]
        assert [r.id for r in B.invoices_of_session(conn, "ios1", "S-2")] == sorted([first, other])
        assert B.invoices_of_session(conn, "ios1", "S-3") == []
