"""Reading and verifying the tenant's hash-chained audit log (nobody can write it directly)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from litestar import Request, Router
from sqlalchemy import select

from api.crud import CursorParam, LimitParam, ReadModel, open_scope, page_of, route
from store.audit import verify_chain
from store.errors import InvalidInput
from store.models import AuditEntry, Tenant
from store.repo import decode_cursor, encode_cursor

__all__ = ["router"]


class AuditEntryRead(ReadModel):
    seq: int
    at: datetime
    actor_id: str
    actor_role: str
    action: str
    entity: str
    entity_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    prev_hash: str
    hash: str


AuditPage = page_of(AuditEntryRead)


class ChainBreakRead(ReadModel):
    seq: int
    reason: str


class AuditVerification(ReadModel):
    ok: bool
    entries: int
    head: str
    breaks: list[ChainBreakRead]


@route("GET", "/audit", operation_id="list_audit_entries", roles="audit", summary="The audit log, oldest first")
def list_audit_entries(request: Request[Any, Any, Any], limit: LimitParam = 50, cursor: CursorParam = None,
                       entity: str | None = None, entity_id: str | None = None,
                       action: str | None = None) -> AuditPage:  # type: ignore[valid-type]
    with open_scope(request) as scope:
        stmt = select(AuditEntry).where(AuditEntry.tenant_id == scope.tenant_id)
        if entity:
            stmt = stmt.where(AuditEntry.entity == entity)
        if entity_id:
            stmt = stmt.where(AuditEntry.entity_id == entity_id)
        if action:
            stmt = stmt.where(AuditEntry.action == action)
        if cursor:
            raw = decode_cursor(cursor)
            if not raw.isdigit():
                raise InvalidInput("invalid_cursor", "the cursor is not one this API returned")
            stmt = stmt.where(AuditEntry.seq > int(raw))
        rows = list(scope.db.execute(stmt.order_by(AuditEntry.seq).limit(limit + 1)).scalars())
        nxt = None
        if len(rows) > limit:
            rows = rows[:limit]
            nxt = encode_cursor(str(rows[-1].seq))
        return AuditPage(items=[AuditEntryRead.model_validate(r, from_attributes=True) for r in rows], next_cursor=nxt)


@route("GET", "/audit/verify", operation_id="verify_audit_chain", roles="audit",
       summary="Recompute the hash chain and report any entry that was changed, removed or reordered")
def verify_audit_chain(request: Request[Any, Any, Any]) -> AuditVerification:
    with open_scope(request) as scope:
        head = scope.db.execute(select(Tenant.audit_head).where(Tenant.id == scope.tenant_id)).scalar_one()
        entries = list(scope.db.execute(select(AuditEntry).where(AuditEntry.tenant_id == scope.tenant_id)
                                        .order_by(AuditEntry.seq)).scalars())
        breaks = verify_chain(entries, head)
        return AuditVerification(ok=not breaks, entries=len(entries), head=head,
                                 breaks=[ChainBreakRead(seq=b.seq, reason=b.reason) for b in breaks])


router = Router(path="/", route_handlers=[list_audit_entries, verify_audit_chain], tags=["audit"])
