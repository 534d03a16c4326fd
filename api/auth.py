"""API-key authentication and role guards.

A key reads ``<key id>.<secret>``; only ``sha256(secret)`` is stored and compared in constant time.
It travels as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``. The resolved ``Actor``
(tenant, user, role, partner) rides on ``request.user`` and every repository query uses its tenant.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from store.audit import Actor
from store.models import ApiKey, User

__all__ = [
    "ROLE_SETS",
    "ApiKeyMiddleware",
    "actor_of",
    "allow",
    "hash_secret",
    "invalidate_key",
    "new_secret",
]

# who may do what; the role-matrix test reads the same sets through each route's ``opt``
BACKOFFICE = ("admin", "operator", "analyst", "approver", "auditor")
ROLE_SETS: dict[str, tuple[str, ...]] = {
    "read": BACKOFFICE,
    "write": ("admin", "operator"),
    "ruleset_write": ("admin", "analyst"),
    "publish": ("admin", "approver"),
    "pricing_write": ("admin", "analyst", "operator"),
    "sessions_read": BACKOFFICE + ("partner",),
    "sessions_write": ("admin", "operator"),
    "audit": ("admin", "auditor"),
    "admin": ("admin",),
    "self": BACKOFFICE + ("partner",),
}

_CACHE_TTL_S = 5.0
_cache: dict[str, tuple[float, str, Actor]] = {}
_cache_lock = threading.Lock()


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def invalidate_key(key_id: str) -> None:
    with _cache_lock:
        _cache.pop(key_id, None)


def _lookup(sessions: sessionmaker[Session], key_id: str) -> tuple[str, Actor] | None:
    with sessions() as db:
        row = db.execute(
            select(ApiKey.secret_sha256, User.id, User.tenant_id, User.role, User.partner_id)
            .join(User, User.id == ApiKey.user_id)
            .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None), User.active.is_(True))  # type: ignore[union-attr,attr-defined]
        ).first()
    if row is None:
        return None
    return row[0], Actor(tenant_id=row[2], user_id=row[1], role=row[3], partner_id=row[4])


def _presented_key(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    auth = connection.headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    key = connection.headers.get("x-api-key")
    return key.strip() if key else None


class ApiKeyMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(self, connection: ASGIConnection[Any, Any, Any, Any]) -> AuthenticationResult:
        presented = _presented_key(connection)
        if not presented:
            raise NotAuthorizedException("an API key is required (Authorization: Bearer <key> or X-API-Key)")
        key_id, dot, secret = presented.partition(".")
        if not dot or not key_id or not secret or len(presented) > 200:
            raise NotAuthorizedException("the API key is not valid")
        now = time.monotonic()
        with _cache_lock:
            hit = _cache.get(key_id)
        if hit is not None and hit[0] > now:
            stored, actor = hit[1], hit[2]
        else:
            sessions = connection.app.state.sessions
            found = await anyio.to_thread.run_sync(_lookup, sessions, key_id)
            if found is None:
                raise NotAuthorizedException("the API key is not valid")
            stored, actor = found
            with _cache_lock:
                _cache[key_id] = (now + _CACHE_TTL_S, stored, actor)
        if not hmac.compare_digest(stored, hash_secret(secret)):
            raise NotAuthorizedException("the API key is not valid")
        return AuthenticationResult(user=actor, auth=key_id)


def allow(role_set: str) -> Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], Awaitable[None]]:
    roles = ROLE_SETS[role_set]

    # async on purpose: Litestar runs a sync guard in a worker thread, a thread hop per request
    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        actor = connection.user
        if not isinstance(actor, Actor) or actor.role not in roles:
            raise PermissionDeniedException(f"this action needs one of the roles: {', '.join(roles)}")

    guard.__name__ = f"allow_{role_set}"
    return guard


def actor_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Actor:
    actor = connection.user
    if not isinstance(actor, Actor):
        raise NotAuthorizedException("not authenticated")
    return actor
