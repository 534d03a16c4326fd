"""Record the histories the replay test replays: ``python -m tests.workflows.record_histories``.

Re-record only on purpose: the point of the fixtures is that histories written by earlier code
still replay on today's workflow code (changes must go behind ``workflow.patched``)."""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path

from sqlalchemy import update
from temporalio.testing import WorkflowEnvironment

from store.db import make_engine, migrate
from store.documents import SmtpSettings
from store.models import Customer
from tests.mailbox import smtp_server
from tests.workflows.conftest import TEST_SERVER
from tests.workflows.seed import insert_sessions, seed_tenant
from workflows.billing.types import AdjustInput, ApproveInput, BillingCycleInput, RejectInput, RepriceInput
from workflows.billing.worker import build_worker
from workflows.billing.workflows import BillingCycleWorkflow

OUT = Path(__file__).resolve().parent / "histories"


async def main(suffix: str = "", only: set[str] | None = None) -> None:
    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=TEST_SERVER)
    tmp = Path(tempfile.mkdtemp())
    engine = make_engine(f"sqlite:///{tmp / 'rec.db'}")
    migrate(engine)
    tq = "record"
    # a real mail server, so the delivered path starts its DocumentDeliveryWorkflow (the other
    # paths' customers have no e-mail address: nothing is queued, their histories are unchanged)
    smtp_cm = smtp_server()
    _box, smtp_port = smtp_cm.__enter__()
    try:
        async with build_worker(env.client, engine, tq, smtp=SmtpSettings(host="127.0.0.1", port=smtp_port)):
            for name, kwh, steps in [
                ("plain", D(12), []),
                ("plain_delivered", D(12), []),
                ("held_adjust_approve", D(5000), ["adjust", "approve"]),
                ("held_reject", D(5000), ["reject"]),
                ("held_escalate_approve", D(5000), ["sleep", "approve"]),
                ("held_reprice_approve", D(5000), ["reprice", "approve"]),
            ]:
                if only and name not in only:
                    continue
                s = seed_tenant(engine, f"rec_{name}", 1)
                acc = s.account_ids[0]
                insert_sessions(engine, s, [(acc, f"{name}_s", datetime(2026, 11, 10, tzinfo=UTC), kwh)])
                if name == "plain_delivered":
                    with engine.begin() as conn:
                        conn.execute(update(Customer.__table__).where(  # type: ignore[attr-defined]
                            Customer.__table__.c.id == s.customer_of[acc]).values(  # type: ignore[attr-defined]
                            email="kunde@example.org"))
                wid = f"replay-{name}-{uuid.uuid4().hex[:6]}"
                h = await env.client.start_workflow(
                    BillingCycleWorkflow.run,
                    BillingCycleInput(f"rec_{name}", acc, as_of="2026-12-01T00:05:00+01:00", escalate_after_s=3600),
                    id=wid, task_queue=tq)
                for step in steps:
                    while (await h.query(BillingCycleWorkflow.status)).state != "held":
                        await asyncio.sleep(0.05)
                    if step == "adjust":
                        await h.execute_update(BillingCycleWorkflow.adjust,
                                               AdjustInput("op1", "operator", "goodwill", "-10.00", "19"))
                    elif step == "reprice":
                        await h.execute_update(BillingCycleWorkflow.reprice, RepriceInput("op1", "operator"))
                    elif step == "approve":
                        await h.execute_update(BillingCycleWorkflow.approve, ApproveInput("ap1", "approver"))
                    elif step == "reject":
                        await h.execute_update(BillingCycleWorkflow.reject, RejectInput("ap1", "approver", "wrong"))
                    elif step == "sleep":
                        await env.sleep(7300)
                await h.result()
                hist = await h.fetch_history()
                (OUT / f"{name}{suffix}.json").write_text(hist.to_json())
                print("recorded", name)
    finally:
        engine.dispose()
        await env.shutdown()
        smtp_cm.__exit__(None, None, None)


if __name__ == "__main__":
    import sys

    # a suffix keeps the older recordings: each generation of the code adds its own; names after
    # it record only those paths (a path new in a generation: held_reprice_approve _v5,
    # plain_delivered _v6)
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "", set(sys.argv[2:]) or None))
