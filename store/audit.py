"""The audit log: append-only and chained by hashes, one chain per tenant.

Each entry stores the previous entry's hash and ``sha256(prev_hash + canonical JSON of its own
content)``. Editing, deleting or reordering any entry breaks every later link, which
``verify_chain`` reports. Appending locks the tenant row, so two writers cannot fork the chain.

The database itself refuses UPDATE and DELETE on the table (and TRUNCATE on PostgreSQL): triggers
from migration 0008 (``append_only_ddl``), so a bug or a stray SQL session cannot rewrite history
either; only someone who can drop triggers can, and the chain shows what they changed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, event, select, update
from sqlalchemy.exc import NoResultFound
from sqlalchemy.orm import Session

from store.models import AuditEntry, Tenant
from store.types import utcnow

__all__ = [
    "GENESIS",
    "Actor",
    "ChainBreak",
    "append_audit",
    "append_only_ddl",
    "drop_append_only_ddl",
    "entry_hash",
    "jsonable",
    "lock_tenant",
    "verify_chain",
]

GENESIS = "0" * 64


@dataclass(frozen=True, slots=True)
class Actor:
    tenant_id: str
    user_id: str
    role: str
    partner_id: str | None = None


@dataclass(frozen=True, slots=True)
class ChainBreak:
    seq: int
    reason: str


def jsonable(value: Any) -> Any:
    """Plain JSON for audit snapshots: decimals and times as strings, never floats."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return value


def _content(e: AuditEntry) -> dict[str, Any]:
    return {
        "tenant_id": e.tenant_id, "seq": e.seq, "at": e.at.isoformat(), "actor_id": e.actor_id,
        "actor_role": e.actor_role, "action": e.action, "entity": e.entity, "entity_id": e.entity_id,
        "before": e.before, "after": e.after,
    }


def entry_hash(e: AuditEntry) -> str:
    body = json.dumps(_content(e), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((e.prev_hash + body).encode()).hexdigest()


def lock_tenant(db: Session | Connection, tenant_id: str) -> Any:
    """Take the tenant row for the caller's transaction, before anything else is read, and return its
    (audit_seq, audit_head); None for an unknown tenant. Holders queue: the audit log's appenders,
    issuers of numbered documents (``store.statements.lock_issuer``). PostgreSQL: FOR NO KEY
    UPDATE, which does not conflict with the KEY SHARE locks that inserting rows referencing the
    tenant take (FOR UPDATE would deadlock two concurrent imports). SQLite has no row locks, and
    pysqlite begins a transaction only at the first write, so a SELECT here would read outside any
    transaction (two appenders drew the same number): a no-op UPDATE takes the database's write lock
    and returns the row. Taking it again in the same transaction is harmless."""
    dialect = db.get_bind().dialect if isinstance(db, Session) else db.dialect
    if dialect.name == "sqlite":
        return db.execute(update(Tenant).where(Tenant.id == tenant_id).values(audit_seq=Tenant.audit_seq)
                          .returning(Tenant.audit_seq, Tenant.audit_head)).first()
    return db.execute(select(Tenant.audit_seq, Tenant.audit_head).where(Tenant.id == tenant_id)
                      .with_for_update(key_share=True)).first()  # renders FOR NO KEY UPDATE


def append_audit(db: Session, actor: Actor, action: str, entity: str, entity_id: str = "",
                 before: dict[str, Any] | None = None, after: dict[str, Any] | None = None) -> AuditEntry:
    """Append one entry inside the caller's transaction (it commits with the change it records)."""
    head = lock_tenant(db, actor.tenant_id)
    if head is None:
        raise NoResultFound(f"no tenant {actor.tenant_id!r}")
    seq = head.audit_seq + 1
    entry = AuditEntry(
        tenant_id=actor.tenant_id, seq=seq, at=utcnow().replace(microsecond=0),
        actor_id=actor.user_id, actor_role=actor.role, action=action, entity=entity,
        entity_id=entity_id, before=jsonable(before) if before is not None else None,
        after=jsonable(after) if after is not None else None,
        prev_hash=head.audit_head or GENESIS, hash="",
    )
    entry.hash = entry_hash(entry)
    db.add(entry)
    db.execute(update(Tenant).where(Tenant.id == actor.tenant_id).values(audit_seq=seq, audit_head=entry.hash))
    return entry


def verify_chain(entries: Iterable[AuditEntry], head: str | None = None) -> list[ChainBreak]:
    """Check the links of one tenant's entries in ``seq`` order; ``head`` is the hash the tenant
    row says is last (catches truncation of the newest entries). An empty list means intact."""
    breaks: list[ChainBreak] = []
    prev = GENESIS
    expected_seq = 1
    last = GENESIS
    for e in entries:
        if e.seq != expected_seq:
            breaks.append(ChainBreak(e.seq, f"expected entry {expected_seq}, found {e.seq}"))
        if e.prev_hash != prev:
            breaks.append(ChainBreak(e.seq, "prev_hash does not match the previous entry"))
        if entry_hash(e) != e.hash:
            breaks.append(ChainBreak(e.seq, "content does not match its hash"))
        prev = e.hash
        last = e.hash
        expected_seq = e.seq + 1
    if head is not None and (head or GENESIS) != last:
        breaks.append(ChainBreak(expected_seq - 1, "chain head does not match the last entry"))
    return breaks


@event.listens_for(AuditEntry, "before_update")
def _refuse_update(*_: Any) -> None:
    raise PermissionError("audit entries are append-only")


@event.listens_for(AuditEntry, "before_delete")
def _refuse_delete(*_: Any) -> None:
    raise PermissionError("audit entries are append-only")


_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION evbill_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END
$$"""


def append_only_ddl(dialect: str, table: str) -> list[str]:
    """Statements that make ``table`` refuse UPDATE and DELETE (and TRUNCATE on PostgreSQL).

    Both databases answer a refused change with an integrity error (SQLite's RAISE(ABORT) is a
    constraint failure; PostgreSQL gets SQLSTATE 23000), which the API maps to 409, never 500."""
    if dialect == "sqlite":
        return [f"CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {op} refused'); END"
                for op in ("UPDATE", "DELETE")]
    if dialect == "postgresql":
        return [_PG_FUNCTION.strip(),
                (f"CREATE TRIGGER {table}_no_change BEFORE UPDATE OR DELETE ON {table} "
                 "FOR EACH ROW EXECUTE FUNCTION evbill_refuse_change()"),
                (f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                 "FOR EACH STATEMENT EXECUTE FUNCTION evbill_refuse_change()")]
    raise ValueError(f"append-only triggers are not written for {dialect!r}")


def drop_append_only_ddl(dialect: str, table: str) -> list[str]:
    if dialect == "sqlite":
        return [f"DROP TRIGGER IF EXISTS {table}_no_{op}" for op in ("update", "delete")]
    return [f"DROP TRIGGER IF EXISTS {table}_no_change ON {table}",
            f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}"]
