"""The collection run's activities pass ids and counts, never the items: whatever the size of a run,
what goes into Temporal's history stays far below its 2 MB payload limit. The gather activity runs
in ``ActivityEnvironment`` (its heartbeats go there) against a run of 2,000 items over 400
accounts, 150 of them with a revoked mandate: its result names the run, counts the items and the
accounts left out, and lists only the first 100 of those (the run's row keeps them all)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from sqlalchemy import select, update
from temporalio.converter import DataConverter
from temporalio.testing import ActivityEnvironment

from store import collections as C
from store.billing import driver_insert
from store.db import make_engine, migrate
from store.types import utcnow
from tests.workflows.seed import seed_open_items, seed_tenant
from workflows.collections.activities import SKIPPED_SHOWN, CollectionActivities
from workflows.collections.types import GatherInput, GatherOutput


def _iban(n: int) -> str:
    bban = f"37040044{n:010d}"
    return f"DE{98 - int(bban + '131400') % 97:02d}{bban}"


async def test_gather_result_is_small_whatever_the_run(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'evbill.db'}")
    migrate(engine)
    tenant, cred = "payloads", "cra_payloads"
    s = seed_tenant(engine, tenant, 400)
    seed_open_items(engine, s, 2000, due=date(2026, 12, 12))
    now = utcnow()
    with engine.begin() as conn:
        driver_insert(conn, C.creditor_account, (
            "id", "tenant_id", "name", "iban", "bic", "creditor_id", "currency", "lead_time_days", "pain_version",
            "pass_return_charges", "created_at"),
            [(cred, tenant, "Ladestrom GmbH", "DE89370400440532013000", "", "DE98ZZZ09999999999", "EUR", 5,
              "pain.008.001.08", True, now)])
        driver_insert(conn, C.mandate, (
            "id", "tenant_id", "creditor_account_id", "account_id", "reference", "signed_on", "debtor_name", "iban",
            "bic", "scheme", "status", "sequence", "original_reference", "original_iban", "last_collection_on",
            "attention_reason", "source", "created_at", "updated_at"),
            [(f"mdt_p_{k:04d}", tenant, cred, acc, f"M-{k:04d}", date(2026, 1, 5), f"Kundin {k}", _iban(k), "", "CORE",
              "active", "RCUR", "", "", None, "", "api", now, now) for k, acc in enumerate(s.account_ids)])
        conn.execute(update(C.mandate).where(C.mandate.c.reference < "M-0150").values(status="revoked"))
    try:
        out = ActivityEnvironment().run(CollectionActivities(engine).gather, GatherInput(
            tenant, cred, "wf-payloads", "2026-12-10", "usr_op"))
        assert isinstance(out, GatherOutput)
        assert (out.status, out.items) == ("awaiting_approval", 2000 - 150 * 5)
        assert out.skipped_count == 150 and len(out.skipped) == SKIPPED_SHOWN == 100
        assert all(sk["reason"] == "mandate revoked" for sk in out.skipped)
        [payload] = await DataConverter.default.encode([out])
        assert len(payload.data) < 20_000  # of Temporal's 2 MB; the items and the file stay in the database
        with engine.connect() as conn:
            run = conn.execute(select(C.collection_run).where(C.collection_run.c.id == out.run_id)).one()
        assert len(run.skipped) == 150 and run.items == out.items
    finally:
        engine.dispose()
