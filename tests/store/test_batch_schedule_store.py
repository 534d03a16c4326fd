"""The batch schedule's store side (SQLite and PostgreSQL): a round cuts one batch per past day
(daily) or past month (monthly) in the tenant's time zone, never today's or this month's entries,
nothing twice; it names the batches to deliver only for tenants with an SFTP target and only while
no delivery is recorded; a delivery that finally failed is a finance task (kind batch_delivery,
listed with the held invoices but not counted as one) that closes itself once the batch is
delivered; the migration lets a task be about something else than an invoice."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import Engine

from store import accounting as A
from store import finance as F
from tests.stand_ins import open_stand_in
from tests.workflows.seed import seed_tenant


def _invoice(engine: Engine, tenant: str, acc: str, cus: str, n: int, on: date) -> None:
    with engine.begin() as conn:
        open_stand_in(conn, tenant, invoice_id=f"inv_{tenant}_{n}", number=f"INV-{n}", customer_id=cus,
                      account_id=acc, gross="11.90", issued=on, due=on)


def test_rounds_cut_due_periods_once_and_name_deliveries(engine: Engine) -> None:
    s = seed_tenant(engine, "bs1", 1)
    acc = s.account_ids[0]
    cus = s.customer_of[acc]
    for n, day in enumerate([date(2026, 11, 30), date(2026, 12, 1), date(2026, 12, 1), date(2026, 12, 3),
                             date(2026, 12, 5)], 1):
        _invoice(engine, "bs1", acc, cus, n, day)
    # 23:30 UTC on the 4th is already the 5th in Berlin: the 4th is past, the 5th is today
    at = datetime(2026, 12, 4, 23, 30, tzinfo=UTC)
    with engine.begin() as conn:
        assert A.batch_cadence(conn, "bs1") == "off"
        assert A.cut_due_batches(conn, at) == []  # no cadence: nothing cut
        A.set_batch_cadence(conn, "bs1", "daily", "fin")
        with pytest.raises(A.AccountingError):
            A.set_batch_cadence(conn, "bs1", "hourly", "fin")
        assert A.cut_due_batches(conn, at) == []  # cut, but no SFTP target: nothing to deliver
        cut = A.batches(conn, "bs1")
    assert [(b["period"], b["entries"]) for b in cut] == [("2026-11-30", 1), ("2026-12-01", 2), ("2026-12-03", 1)]
    with engine.begin() as conn:
        assert A.cut_due_batches(conn, at) == []
        assert len(A.batches(conn, "bs1")) == 3  # nothing twice
        A.set_sftp_target(conn, "bs1", A.SftpTarget("127.0.0.1", 22, "erp", "pw", "", "/in", "ssh-ed25519 AAAA"),
                          "admin")
        due = A.cut_due_batches(conn, at)
        assert due == [("bs1", b["id"]) for b in cut]
        A.record_delivery(conn, "bs1", cut[0]["id"], "delivered", "erp@127.0.0.1:22/in", [])
        A.record_delivery(conn, "bs1", cut[1]["id"], "failed", "erp@127.0.0.1:22/in", [], "refused")
        assert A.cut_due_batches(conn, at) == [("bs1", cut[2]["id"])]
    # monthly: the 5th's entry waits for December to end
    with engine.begin() as conn:
        A.set_batch_cadence(conn, "bs1", "monthly", "fin")
        A.cut_due_batches(conn, at)
        assert len(A.batches(conn, "bs1")) == 3
        A.cut_due_batches(conn, datetime(2027, 1, 1, 9, tzinfo=UTC))
        last = A.batches(conn, "bs1")[-1]
    assert (last["period"], last["entries"]) == ("2026-12", 1)


def test_a_failed_delivery_is_a_finance_task_until_delivered(engine: Engine) -> None:
    s = seed_tenant(engine, "bs2", 1)
    acc = s.account_ids[0]
    _invoice(engine, "bs2", acc, s.customer_of[acc], 1, date(2026, 12, 1))
    with engine.begin() as conn:
        batch = A.create_batch(conn, "bs2", "2026-12", "fin")
        tid = A.open_delivery_task(conn, "bs2", batch["id"], "wf-1", "login refused")
        # a second failure: the same task, its reason updated
        assert A.open_delivery_task(conn, "bs2", batch["id"], "wf-2", "host unreachable") == tid
    with engine.connect() as conn:
        tasks = F.finance_tasks(conn, "bs2", status="open", after_id=None, limit=10)
        held = F.finance_tasks(conn, "bs2", status="open", after_id=None, limit=10, kind="invoice_hold")
        assert F.finance_tasks(conn, "other", status="open", after_id=None, limit=10) == []
    assert held == [] and [(t.id, t.kind, t.subject_id, t.invoice_id, t.currency) for t in tasks] == [
        (tid, "batch_delivery", batch["id"], None, None)]
    assert "host unreachable" in tasks[0].reasons[0]["message"] and tasks[0].workflow_id == "wf-2"
    with engine.begin() as conn:
        A.record_delivery(conn, "bs2", batch["id"], "delivered", "erp@h:22/in", [])
    with engine.connect() as conn:
        assert F.finance_tasks(conn, "bs2", status="open", after_id=None, limit=10) == []
        [done] = F.finance_tasks(conn, "bs2", status="resolved", after_id=None, limit=10)
    assert done.decision_reason == "delivered"
