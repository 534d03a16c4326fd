"""Clearing statements in the store (the build activity, without Temporal): a session that arrives
after its month's statement joins the next statement as a correction, issued statements never
change, a session is stated once, and a month without CDRs is empty. SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

from sqlalchemy import Engine

from store import clearing as S
from tests.clearing_seed import add_sessions, add_tokens, roam_net, seed_clearing
from workflows.clearing.activities import ClearingActivities
from workflows.clearing.types import BuildInput


def test_late_session_joins_the_next_statement(engine: Engine) -> None:
    seed = seed_clearing(engine, "tclr")
    add_tokens(engine, seed, ["T1"])
    add_sessions(engine, seed, [("n1", datetime(2026, 11, 5, 10, tzinfo=UTC), D(8), "T1")])
    acts = ClearingActivities(engine)
    nov = acts.build(BuildInput("tclr", seed.partner_id, "2026-11", "wf-nov", "ops"))
    assert (nov.status, nov.cdrs, D(nov.net)) == ("draft", 1, roam_net(D(8)))
    # the same workflow again answers the same statement
    assert acts.build(BuildInput("tclr", seed.partner_id, "2026-11", "wf-nov", "ops")).statement_id == nov.statement_id
    # a November session that arrives after November's statement, and one of December
    add_sessions(engine, seed, [("n2", datetime(2026, 11, 29, 22, tzinfo=UTC), D(4), "T1"),
                                ("d1", datetime(2026, 12, 2, 10, tzinfo=UTC), D(2), "T1")])
    dec = acts.build(BuildInput("tclr", seed.partner_id, "2026-12", "wf-dec", "ops"))
    with engine.connect() as conn:
        nov_cdrs = [(c.cdr_id, c.late) for c in S.statement_cdrs(conn, nov.statement_id)]
        dec_cdrs = [(c.cdr_id, c.late) for c in S.statement_cdrs(conn, dec.statement_id)]
        dec_row = S.get_statement(conn, "tclr", dec.statement_id)
    assert nov_cdrs == [("n1", False)]
    assert dec_cdrs == [("n2", True), ("d1", False)] and dec_row.late == 1
    assert dec_row.net_total == roam_net(D(4)) + roam_net(D(2))
    jan = acts.build(BuildInput("tclr", seed.partner_id, "2027-01", "wf-jan", "ops"))
    assert (jan.status, jan.cdrs) == ("empty", 0)
