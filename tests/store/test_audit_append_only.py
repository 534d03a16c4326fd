"""The database itself keeps the audit log append-only: UPDATE, DELETE (and TRUNCATE on
PostgreSQL) are refused by triggers, whoever sends them; the chain still verifies afterwards."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import Engine, delete, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from store.audit import Actor, append_audit, verify_chain
from store.models import AuditEntry, Tenant
from store.tenants import bootstrap_tenant

AE = AuditEntry.__table__  # type: ignore[attr-defined]


def _chain(engine: Engine, tid: str) -> tuple[int, list[str]]:
    with Session(engine) as db:
        head = db.execute(select(Tenant.audit_head).where(Tenant.id == tid)).scalar_one()
        entries = list(db.execute(select(AuditEntry).where(AuditEntry.tenant_id == tid)
                                  .order_by(AuditEntry.seq)).scalars())
        return len(entries), [b.reason for b in verify_chain(entries, head)]


@pytest.fixture
def audited(engine: Engine) -> str:
    with Session(engine) as db:
        tenant, cred = bootstrap_tenant(db, "acme")
        actor = Actor(tenant.id, cred.user_id, "admin")
        for i in range(3):
            append_audit(db, actor, "customer.update", "customer", f"cus_{i}", {"name": "old"},
                         {"name": f"new {i}", "credit": Decimal("1.10")})
        db.commit()
        return tenant.id


@pytest.mark.parametrize("statement", [
    update(AE).where(AE.c.seq == 2).values(entity_id="cus_forged"),
    update(AE).values(hash="0" * 64),
    delete(AE).where(AE.c.seq == 3),
    delete(AE),
], ids=["update_one", "update_all", "delete_newest", "delete_all"])
def test_raw_update_and_delete_are_refused(engine: Engine, audited: str, statement: object) -> None:
    before = _chain(engine, audited)
    assert before[0] >= 4 and before[1] == []
    with pytest.raises(IntegrityError, match="append-only"), engine.begin() as conn:
        conn.execute(statement)  # type: ignore[call-overload]
    assert _chain(engine, audited) == before


def test_plain_sql_is_refused_too(engine: Engine, audited: str) -> None:
    with pytest.raises(IntegrityError, match="append-only"), engine.begin() as conn:
        conn.execute(text("UPDATE audit_entry SET action = 'customer.delete'"))
    with pytest.raises(IntegrityError, match="append-only"), engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_entry WHERE seq > 1"))
    if engine.dialect.name == "postgresql":
        with pytest.raises(IntegrityError, match="append-only"), engine.begin() as conn:
            conn.execute(text("TRUNCATE audit_entry"))
    n, breaks = _chain(engine, audited)
    assert n >= 4 and breaks == []


def test_appending_still_works_and_verifies(engine: Engine, audited: str) -> None:
    n, _ = _chain(engine, audited)
    with Session(engine) as db:
        append_audit(db, Actor(audited, "usr_x", "operator"), "customer.create", "customer", "cus_9", None, {"a": 1})
        db.commit()
    assert _chain(engine, audited) == (n + 1, [])


def test_the_orm_refuses_before_the_database_does(engine: Engine, audited: str) -> None:
    with Session(engine) as db:
        e = db.execute(select(AuditEntry).where(AuditEntry.tenant_id == audited, AuditEntry.seq == 2)).scalar_one()
        db.delete(e)
        with pytest.raises(PermissionError):
            db.flush()
