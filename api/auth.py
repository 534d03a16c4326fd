"""Authentication (API keys and the signed tokens of ``api.tokens``) and role guards.

A key reads ``<key id>.<secret>``; only ``sha256(secret)`` is stored and compared in constant time.
It travels as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``; a signed token travels as
``Authorization: Bearer <token>``. The resolved ``Actor`` (tenant, user, role, partner) rides on
``request.user``, a ``Credential`` (which kind, which key) on ``request.auth``, and every
repository query uses the actor's tenant.

Keys are looked up at most every few seconds per process (``_CACHE_TTL_S``); revoking a key or
changing a user drops the entry at once in the process that made the change.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
import jwt
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException, TooManyRequestsException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from api.tokens import decode_token, looks_like_token
from store.audit import Actor
from store.models import ApiKey, User

__all__ = [
    "ROLE_SETS",
    "ApiKeyMiddleware",
    "Credential",
    "RateLimiter",
    "actor_of",
    "allow",
    "hash_secret",
    "invalidate_key",
    "invalidate_user",
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


@dataclass(frozen=True, slots=True)
class Credential:
    kind: str  # "api_key" | "token"
    key_id: str


def invalidate_key(key_id: str) -> None:
    with _cache_lock:
        _cache.pop(key_id, None)


def invalidate_user(user_id: str) -> None:
    """Forget the cached keys of ``user_id`` (after a change of role, partner or ``active``)."""
    with _cache_lock:
        for key_id in [k for k, (_, _, a) in _cache.items() if a.user_id == user_id]:
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
    # the raw ASGI header list (lower-case names), first value of each as ``Headers.get`` would
    # give: building Litestar's Headers multidict just to read two of them cost more than the rest
    auth = key = None
    for name, raw in connection.scope["headers"]:
        if name == b"authorization":
            auth = raw if auth is None else auth
        elif name == b"x-api-key":
            key = raw if key is None else key
    if auth:
        scheme, _, value = auth.decode("latin-1").partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return key.decode("latin-1").strip() if key else None


async def _current(connection: ASGIConnection[Any, Any, Any, Any], key_id: str) -> tuple[str, Actor] | None:
    """(stored secret hash, actor) of an unrevoked key of an active user, from the cache or the database."""
    now = time.monotonic()
    with _cache_lock:
        hit = _cache.get(key_id)
    if hit is not None and hit[0] > now:
        return hit[1], hit[2]
    found = await anyio.to_thread.run_sync(_lookup, connection.app.state.sessions, key_id)
    if found is not None:
        with _cache_lock:
            _cache[key_id] = (now + _CACHE_TTL_S, found[0], found[1])
    return found


class RateLimiter:
    """A token bucket per API key (a key's signed tokens draw from the key's bucket): ``rate``
    requests a second on average, bursts of up to ``burst``. Per process, like the key cache;
    only the event loop thread calls it."""

    def __init__(self, rate: float, burst: int) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a rate limit needs rate > 0 and burst >= 1")
        self.rate, self.burst = rate, burst
        self._buckets: dict[str, tuple[float, float]] = {}

    def wait_s(self, key_id: str, now: float | None = None) -> float:
        """0 and one request taken if the key may go ahead, else how long until it may."""
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.get(key_id, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens >= 1:
            self._buckets[key_id] = (tokens - 1, now)
            return 0.0
        self._buckets[key_id] = (tokens, now)
        return (1 - tokens) / self.rate

    @classmethod
    def from_env(cls) -> RateLimiter | None:
        """``EVBILL_RATE_LIMIT`` requests/s per key (unset or 0: no limit), ``EVBILL_RATE_BURST``
        (default: twice the rate, at least 10)."""
        rate = float(os.environ.get("EVBILL_RATE_LIMIT", "0") or 0)
        if rate <= 0:
            return None
        return cls(rate, int(os.environ.get("EVBILL_RATE_BURST", "").strip() or max(10, round(2 * rate))))


def _admit(connection: ASGIConnection[Any, Any, Any, Any], actor: Actor, credential: Credential) -> AuthenticationResult:
    limiter: RateLimiter | None = connection.app.state.get("rate_limiter")
    if limiter is not None:
        wait = limiter.wait_s(credential.key_id)
        if wait > 0:
            raise TooManyRequestsException(f"more than {limiter.rate:g} requests/s for this API key; slow down",
                                           headers={"Retry-After": str(max(1, math.ceil(wait)))})
    return AuthenticationResult(user=actor, auth=credential)


class ApiKeyMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(self, connection: ASGIConnection[Any, Any, Any, Any]) -> AuthenticationResult:
        presented = _presented_key(connection)
        if not presented:
            raise NotAuthorizedException("an API key is required (Authorization: Bearer <key> or X-API-Key)")
        if looks_like_token(presented) and len(presented) <= 2000:
            return await _token(connection, presented)
        key_id, dot, secret = presented.partition(".")
        if not dot or not key_id or not secret or len(presented) > 200:
            raise NotAuthorizedException("the API key is not valid")
        found = await _current(connection, key_id)
        if found is None or not hmac.compare_digest(found[0], hash_secret(secret)):
            raise NotAuthorizedException("the API key is not valid")
        return _admit(connection, found[1], Credential("api_key", key_id))


async def _token(connection: ASGIConnection[Any, Any, Any, Any], presented: str) -> AuthenticationResult:
    try:
        claims = decode_token(connection.app.state.jwt_secret, presented)
    except jwt.ExpiredSignatureError:
        raise NotAuthorizedException("the token has expired; exchange the API key for a new one") from None
    except jwt.PyJWTError:
        raise NotAuthorizedException("the token is not valid") from None
    found = await _current(connection, claims.key_id)
    if found is None:
        raise NotAuthorizedException("the token's API key is revoked or its user disabled")
    if found[1] != claims.actor:
        raise NotAuthorizedException("the token no longer matches its user's role; get a new one")
    return _admit(connection, found[1], Credential("token", claims.key_id))


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
