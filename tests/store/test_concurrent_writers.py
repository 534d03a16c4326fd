"""Two writers at once: appenders of one tenant's audit log each get their own sequence number
(the chain verifies), and a savepoint on SQLite stays inside its caller's transaction (a rollback
afterwards undoes what the block wrote; nobody else sees it before the commit).

Both failed in CI before: the audit head was read outside any transaction on SQLite, so an API
request and the OCPP gateway appending at the same moment drew the same number (409 on
``POST /reservations``); and pysqlite let the savepoint's RELEASE commit the reservation row."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from store.audit import Actor, append_audit, verify_chain
from store.models import AuditEntry, Tenant
from store.tenants import bootstrap_tenant


def _tenant(engine: Engine) -> Actor:
    with Session(engine) as db:
        tenant, cred = bootstrap_tenant(db, "acme")
        db.commit()
        return Actor(tenant.id, cred.user_id, "admin")


def test_two_appenders_at_once_get_consecutive_numbers(engine: Engine) -> None:
    actor = _tenant(engine)
    first_appended = threading.Event()
    errors: list[BaseException] = []

    def slow() -> None:
        # appends, then keeps its transaction open while the other appender starts
        try:
            with Session(engine) as db:
                append_audit(db, actor, "customer.update", "customer", "cus_slow", None, {"n": 1})
                first_appended.set()
                threading.Event().wait(0.5)
                db.commit()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)
            first_appended.set()

    t = threading.Thread(target=slow)
    t.start()
    assert first_appended.wait(10)
    with Session(engine) as db:
        append_audit(db, actor, "customer.update", "customer", "cus_fast", None, {"n": 2})
        db.commit()
    t.join(20)
    assert errors == []
    with Session(engine) as db:
        head = db.execute(select(Tenant.audit_head).where(Tenant.id == actor.tenant_id)).scalar_one()
        entries = list(db.execute(select(AuditEntry).where(AuditEntry.tenant_id == actor.tenant_id)
                                  .order_by(AuditEntry.seq)).scalars())
    mine = [(e.seq, e.entity_id) for e in entries if e.entity_id.startswith("cus_")]
    assert [e for _, e in mine] == ["cus_slow", "cus_fast"]
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    assert verify_chain(entries, head) == []


def _count(engine: Engine, tid: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.tenant_id == tid)).scalar_one())


def test_a_savepoint_first_in_a_transaction_does_not_commit_it(engine: Engine) -> None:
    actor = _tenant(engine)
    before = _count(engine, actor.tenant_id)
    seen: dict[str, Any] = {}
    with Session(engine) as db:
        with db.begin_nested():
            append_audit(db, actor, "customer.update", "customer", "cus_sp", None, {"n": 1})
        db.flush()
        seen["outside"] = _count(engine, actor.tenant_id)  # another connection, before the commit
        db.rollback()
    assert seen["outside"] == before
    assert _count(engine, actor.tenant_id) == before
    # the same through a Core connection, as the document archive uses one
    def seq() -> int:
        with engine.connect() as other:
            return int(other.execute(select(Tenant.audit_seq).where(Tenant.id == actor.tenant_id)).scalar_one())

    start = seq()
    with engine.connect() as conn:
        with conn.begin_nested():
            conn.execute(text("UPDATE tenant SET audit_seq = audit_seq + 100 WHERE id = :t"), {"t": actor.tenant_id})
        seen["core"] = seq()
        conn.rollback()
    assert (seen["core"], seq()) == (start, start)
