"""Authentication (API keys and the signed tokens of ``api.tokens``) and role guards.

A key reads ``<key id>.<secret>``; only ``sha256(secret)`` is stored and compared in constant time.
It travels as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``; a signed token travels as
``Authorization: Bearer <token>``. The resolved ``Actor`` (tenant, user, role, partner) rides on
``request.user``, a ``Credential`` (which kind, which key) on ``request.auth``, and every
repository query uses the actor's tenant.

**Key cache and how fast a change reaches it.** Each API process caches what it looked up for a
key (stored hash, user, role, partner) for up to ``_CACHE_TTL_S`` seconds (``KeyCache``), tagged
with the *auth generation* it was loaded under: a counter in the file the API processes of one
``evbill serve`` share (``api.shared``). Revoking a key or changing a user through the API
(``auth_changed``) bumps that counter right after the change commits and before the response
goes out; every request reads the counter first and trusts only entries of the current
generation. So:

- on one server (``evbill serve``, any ``--workers``): every request that *starts after* the
  revoking request has been answered, on any API process, sees the revocation (401), or the new
  role (a token minted for the old role: 401); requests already running when it committed may
  still finish under the old credential;
- on other servers sharing the PostgreSQL database: the change's transaction also sends
  ``NOTIFY evbill_auth``; each server's listener bumps its own counter when the notification
  arrives (milliseconds after the commit). While a listener is disconnected it cannot hear them:
  the cache's TTL (5 s) bounds the delay then, and it flushes once on reconnecting;
- a change made in the database by hand, outside the API: within the TTL.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import secrets
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
from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from api.shared import SharedState, notify_auth_change
from api.tokens import decode_token, looks_like_token
from store.audit import Actor
from store.models import ApiKey, User

__all__ = [
    "ROLE_SETS",
    "ApiKeyMiddleware",
    "Credential",
    "KeyCache",
    "RateLimiter",
    "actor_of",
    "allow",
    "auth_changed",
    "hash_secret",
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


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class Credential:
    kind: str  # "api_key" | "token"
    key_id: str


class KeyCache:
    """Per process: key id -> (auth generation, expiry, stored secret hash, actor)."""

    def __init__(self, shared: SharedState, ttl_s: float = _CACHE_TTL_S) -> None:
        self.shared = shared
        self.ttl_s = ttl_s
        self._entries: dict[str, tuple[int, float, str, Actor]] = {}
        self._generation = shared.auth_generation()

    def get(self, key_id: str) -> tuple[int, tuple[str, Actor] | None]:
        """(the current generation, the cached (hash, actor) if still good)."""
        gen = self.shared.auth_generation()
        if gen != self._generation:
            # entries of older generations are never used (the tag check below); dropping them
            # keeps the dict from holding on to them
            self._entries = {}
            self._generation = gen
        hit = self._entries.get(key_id)
        if hit is not None and hit[0] == gen and hit[1] > time.monotonic():
            return gen, (hit[2], hit[3])
        return gen, None

    def put(self, key_id: str, generation: int, found: tuple[str, Actor]) -> None:
        """Cache a lookup made under ``generation`` (read *before* the lookup: a change that
        commits during it leaves the entry already stale)."""
        self._entries[key_id] = (generation, time.monotonic() + self.ttl_s, found[0], found[1])


def auth_changed(connection: ASGIConnection[Any, Any, Any, Any], db: Session) -> None:
    """Call inside the transaction (``db``) that revokes a key or changes a user's role, partner or
    ``active``: other servers are notified when it commits (PostgreSQL), and right after it
    commits every API process of this server stops trusting its cached keys."""
    shared: SharedState = connection.app.state.key_cache.shared
    notify_auth_change(db)
    event.listen(db, "after_commit", lambda _s: shared.bump_auth_generation(), once=True)


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
    cache: KeyCache = connection.app.state.key_cache
    generation, hit = cache.get(key_id)
    if hit is not None:
        return hit
    found = await anyio.to_thread.run_sync(_lookup, connection.app.state.sessions, key_id)
    if found is not None:
        cache.put(key_id, generation, found)
    return found


class RateLimiter:
    """A token bucket per API key (a key's signed tokens draw from the key's bucket): ``rate``
    requests a second on average, bursts of up to ``burst``. The buckets live in the state the API
    processes of one server share (``api.shared``), so the limit holds for the server as a whole,
    whichever process answers; each server of a multi-host deployment limits on its own."""

    def __init__(self, rate: float, burst: int, shared: SharedState | None = None) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a rate limit needs rate > 0 and burst >= 1")
        self.rate, self.burst = rate, burst
        self.shared = shared or SharedState.anonymous()

    def sharing(self, shared: SharedState) -> RateLimiter:
        """The same limit, counted in ``shared``."""
        return RateLimiter(self.rate, self.burst, shared)

    def wait_s(self, key_id: str, now: float | None = None) -> float:
        """0 and one request taken if the key may go ahead, else how long until it may."""
        return self.shared.take(key_id, self.rate, self.burst, time.monotonic() if now is None else now)

    @classmethod
    def from_env(cls) -> RateLimiter | None:
        """``EVBILL_RATE_LIMIT`` requests/s per key and server (unset or 0: no limit),
        ``EVBILL_RATE_BURST`` (default: twice the rate, at least 10)."""
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
