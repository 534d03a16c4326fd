"""Tenant-scoped repositories: every read and write goes through a ``Scope`` that adds the caller's
tenant to the query, so forgetting the filter is not possible from the API layer.

Writes record an audit entry (before/after snapshots) in the same transaction.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any, Generic, TypeVar

from sqlalchemy import String, cast, event, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import SQLModel

import store.customers  # noqa: F401  (numbers every customer a session inserts)
from store.audit import Actor, append_audit, jsonable
from store.errors import Conflict, InvalidInput, NotFound
from store.models import RatedLineRow, RulesetVersion, SessionRating
from store.types import new_id

__all__ = ["Repo", "Scope", "decode_cursor", "encode_cursor", "snapshot"]

M = TypeVar("M", bound=SQLModel)


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidInput("invalid_cursor", "the cursor is not one this API returned") from None
    if not raw or len(raw) > 100:
        raise InvalidInput("invalid_cursor", "the cursor is not one this API returned")
    return raw


def snapshot(obj: SQLModel, hide: Iterable[str] = ()) -> dict[str, Any]:
    data = obj.model_dump()
    for k in hide:
        data.pop(k, None)
    return jsonable(data)


class Scope:
    """The caller's view of the database: one tenant, one actor, one transaction."""

    def __init__(self, db: Session, actor: Actor) -> None:
        self.db = db
        self.actor = actor

    @property
    def tenant_id(self) -> str:
        return self.actor.tenant_id

    def repo(self, model: type[M], entity: str, prefix: str) -> Repo[M]:
        return Repo(self, model, entity, prefix)

    def audit(self, action: str, entity: str, entity_id: str = "", before: dict[str, Any] | None = None,
              after: dict[str, Any] | None = None) -> None:
        append_audit(self.db, self.actor, action, entity, entity_id, before, after)

    def commit(self) -> None:
        try:
            self.db.commit()
        except IntegrityError as exc:
            self.db.rollback()
            raise _conflict(exc) from None

    def flush(self) -> None:
        try:
            self.db.flush()
        except IntegrityError as exc:
            self.db.rollback()
            raise _conflict(exc) from None


def _conflict(exc: IntegrityError) -> Conflict:
    text = str(exc.orig).lower()
    if "unique" in text or "duplicate" in text:
        return Conflict("already_exists", "an object with the same unique key already exists")
    if "foreign key" in text:
        return Conflict("still_referenced", "other objects still refer to this one")
    return Conflict("constraint_violation", "the change violates a database constraint")


class Repo(Generic[M]):
    def __init__(self, scope: Scope, model: type[M], entity: str, prefix: str) -> None:
        self.scope = scope
        self.model = model
        self.entity = entity
        self.prefix = prefix

    @property
    def db(self) -> Session:
        return self.scope.db

    def _col(self, name: str) -> Any:
        return getattr(self.model, name)

    def base(self) -> Any:
        return select(self.model).where(self._col("tenant_id") == self.scope.tenant_id)

    def get(self, obj_id: str, *, extra: Sequence[ColumnElement[bool]] = ()) -> M:
        stmt = self.base().where(self._col("id") == obj_id)
        for cond in extra:
            stmt = stmt.where(cond)
        obj = self.db.execute(stmt).scalar_one_or_none()
        if obj is None:
            raise NotFound(f"{self.entity}_not_found", f"{self.entity.replace('_', ' ')} {obj_id!r} not found")
        return obj

    def exists(self, obj_id: str | None, code_entity: str | None = None) -> None:
        """Referenced ids must belong to the caller's tenant (else: not found, never a leak)."""
        if obj_id is None:
            return
        stmt = select(self._col("id")).where(self._col("tenant_id") == self.scope.tenant_id,
                                             self._col("id") == obj_id)
        if self.db.execute(stmt).first() is None:
            ent = code_entity or self.entity
            raise NotFound(f"{ent}_not_found", f"{ent.replace('_', ' ')} {obj_id!r} not found")

    def page(self, *, filters: dict[str, Any] | None = None, search: str | None = None,
             search_cols: Sequence[str] = (), cursor: str | None = None, limit: int = 50,
             extra: Sequence[ColumnElement[bool]] = (), json_contains: dict[str, str] | None = None,
             ) -> tuple[list[M], str | None]:
        stmt = self.base()
        for name, value in (filters or {}).items():
            if value is not None:
                stmt = stmt.where(self._col(name) == value)
        for name, value in (json_contains or {}).items():
            if value is not None:
                # JSON lists of names: match the quoted element in the serialised list, the one
                # spelling that works on both SQLite and PostgreSQL
                stmt = stmt.where(cast(self._col(name), String).contains(_json_str(value)))
        if search:
            pattern = f"%{search.lower()}%"
            stmt = stmt.where(or_(*(func.lower(self._col(c)).like(pattern) for c in search_cols)))
        for cond in extra:
            stmt = stmt.where(cond)
        if cursor:
            stmt = stmt.where(self._col("id") > decode_cursor(cursor))
        stmt = stmt.order_by(self._col("id")).limit(limit + 1)
        rows = list(self.db.execute(stmt).scalars())
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            next_cursor = encode_cursor(rows[-1].id)
        return rows, next_cursor

    def _coerce(self, values: dict[str, Any]) -> dict[str, Any]:
        # the API hands amounts over as decimal strings; table models do not validate on init
        out = dict(values)
        for k, v in values.items():
            f = self.model.model_fields.get(k)
            if isinstance(v, str) and f is not None and "Decimal" in str(f.annotation):
                out[k] = Decimal(v)
        return out

    def create(self, values: dict[str, Any], *, hide: Iterable[str] = ()) -> M:
        values = self._coerce(values)
        obj = self.model(id=new_id(self.prefix), tenant_id=self.scope.tenant_id, **values)
        self.db.add(obj)
        self.scope.flush()
        self.scope.audit(f"{self.entity}.create", self.entity, obj.id, None, snapshot(obj, hide))
        return obj

    def update(self, obj: M, changes: dict[str, Any], *, hide: Iterable[str] = ()) -> M:
        before = snapshot(obj, hide)
        changes = self._coerce(changes)
        for k, v in changes.items():
            setattr(obj, k, v)
        if hasattr(obj, "updated_at"):
            from store.types import utcnow

            obj.updated_at = utcnow()
        self.scope.flush()
        after = snapshot(obj, hide)
        if before != after:
            self.scope.audit(f"{self.entity}.update", self.entity, obj.id,
                             {k: before[k] for k in before if before[k] != after.get(k)},
                             {k: after[k] for k in after if before.get(k) != after[k]})
        return obj

    def delete(self, obj: M, *, hide: Iterable[str] = ()) -> None:
        before = snapshot(obj, hide)
        self.db.delete(obj)
        self.scope.flush()
        self.scope.audit(f"{self.entity}.delete", self.entity, obj.id, before, None)


def _json_str(value: str) -> str:
    import json

    return json.dumps(value)


# Published versions and ratings are history: the ORM refuses to change them.
def _immutable(model: type[SQLModel], what: str) -> None:
    @event.listens_for(model, "before_update")
    def _no_update(*_: Any) -> None:
        raise PermissionError(f"{what} are immutable")

    @event.listens_for(model, "before_delete")
    def _no_delete(*_: Any) -> None:
        raise PermissionError(f"{what} are immutable")


_immutable(RulesetVersion, "published ruleset versions")
_immutable(SessionRating, "session ratings")
_immutable(RatedLineRow, "rated lines")
