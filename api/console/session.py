"""Who is at the console: the session cookie, the CSRF checks and the role guard.

The cookie carries a random token (the database keeps only its sha256, ``store.console``); it is
``HttpOnly``, ``SameSite=Strict``, ``Path=/`` and, when the request came over HTTPS (directly, or
through a proxy uvicorn trusts) or ``EVBILL_CONSOLE_SECURE_COOKIE=1``, ``Secure`` with the
``__Host-`` prefix. Every POST of a signed-in page carries the session's CSRF token (a hidden field,
or the ``X-CSRF-Token`` header htmx sends) and must come from our own origin when the browser says
where it comes from; the sign-in form, which has no session yet, uses a double-submit token.

``ConsoleAuthMiddleware`` puts the signed-in person on ``request.user`` as the same ``Actor`` an API
key gives, so the console calls the very functions the API's routes call.
"""

from __future__ import annotations

import hmac
import os
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from api.auth import ROLE_SETS
from store.audit import Actor
from store.console import SESSION_HOURS, ConsoleSession, session_by_token

__all__ = ["COOKIE", "ConsoleAuthMiddleware", "CsrfRefused", "SignInRequired", "check_csrf", "console_allow",
           "session_cookie", "session_of", "signin_cookie_name"]

COOKIE = "evbill_console"
SIGNIN_COOKIE = "evbill_signin"


class SignInRequired(Exception):
    """No live console session: the page answers with the sign-in form (a redirect)."""


class CsrfRefused(Exception):
    pass


class RoleRefused(Exception):
    pass


def secure(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    return connection.url.scheme == "https" or os.environ.get("EVBILL_CONSOLE_SECURE_COOKIE", "") == "1"


def cookie_name(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    return f"__Host-{COOKIE}" if secure(connection) else COOKIE


def signin_cookie_name(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    return f"__Host-{SIGNIN_COOKIE}" if secure(connection) else SIGNIN_COOKIE


def session_cookie(connection: ASGIConnection[Any, Any, Any, Any], token: str, *, clear: bool = False) -> Cookie:
    return Cookie(key=cookie_name(connection), value="" if clear else token, path="/", httponly=True,
                  samesite="strict", secure=secure(connection), max_age=0 if clear else SESSION_HOURS * 3600)


def signin_cookie(connection: ASGIConnection[Any, Any, Any, Any], token: str) -> Cookie:
    return Cookie(key=signin_cookie_name(connection), value=token, path="/", httponly=True, samesite="strict",
                  secure=secure(connection), max_age=3600)


def new_token() -> str:
    return secrets.token_urlsafe(32)


def session_of(connection: ASGIConnection[Any, Any, Any, Any]) -> ConsoleSession:
    auth = connection.scope.get("auth")
    if not isinstance(auth, ConsoleSession):
        raise SignInRequired
    return auth


class ConsoleAuthMiddleware(AbstractAuthenticationMiddleware):
    """The console's pages need a live session; the sign-in form and static files do not."""

    async def authenticate_request(self, connection: ASGIConnection[Any, Any, Any, Any]) -> AuthenticationResult:
        token = connection.cookies.get(cookie_name(connection), "")
        found = await anyio.to_thread.run_sync(_lookup, connection.app.state.read_sessions, token) if token else None
        if found is None:
            raise SignInRequired
        return AuthenticationResult(user=Actor(tenant_id=found.tenant_id, user_id=found.user_id, role=found.role,
                                               partner_id=found.partner_id), auth=found)


def _lookup(sessions: Any, token: str) -> ConsoleSession | None:
    with sessions() as db:
        return session_by_token(db.connection(), token)


class SignInThrottle:
    """Failed sign-ins per (e-mail, client address) in this API process: after ``limit`` within
    ``window_s`` the pair is refused until the oldest failure leaves the window, so guessing a
    password from one place stays slow while the person elsewhere can still sign in."""

    def __init__(self, limit: int = 5, window_s: float = 900.0) -> None:
        self.limit, self.window_s = limit, window_s
        self._failures: dict[tuple[str, str], list[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: tuple[str, str], now: float) -> list[float]:
        kept = [t for t in self._failures.get(key, ()) if now - t < self.window_s]
        if kept:
            self._failures[key] = kept
        else:
            self._failures.pop(key, None)
        return kept

    def wait_s(self, key: tuple[str, str], now: float | None = None) -> float:
        """0 when the pair may try, else the seconds until it may."""
        now = time.monotonic() if now is None else now
        with self._lock:
            recent = self._recent(key, now)
            return 0.0 if len(recent) < self.limit else self.window_s - (now - recent[0])

    def failed(self, key: tuple[str, str], now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._recent(key, now)
            self._failures.setdefault(key, []).append(now)
            if len(self._failures) > 100_000:  # bounded: the oldest pairs go first
                for old in list(self._failures)[:10_000]:
                    del self._failures[old]

    def succeeded(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._failures.pop(key, None)


def throttle_of(connection: ASGIConnection[Any, Any, Any, Any]) -> SignInThrottle:
    state = connection.app.state
    found = getattr(state, "console_throttle", None)
    if found is None:
        found = state.console_throttle = SignInThrottle()
    return found


def check_csrf(connection: ASGIConnection[Any, Any, Any, Any], expected: str, presented: str | None) -> None:
    """A POST must carry ``expected`` and, when the browser names its origin, come from ours."""
    origin = connection.headers.get("origin")
    if origin and origin != "null":
        own = f"{connection.url.scheme}://{connection.url.netloc}"
        if origin != own:
            raise CsrfRefused
    token = presented or connection.headers.get("x-csrf-token") or ""
    if not expected or not hmac.compare_digest(token.encode(), expected.encode()):
        raise CsrfRefused


def console_allow(role_set: str) -> Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler],
                                             Awaitable[None]]:
    """A guard on the console's pages by the API's own role sets (``api.auth.ROLE_SETS``)."""

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        roles = ROLE_SETS[role_set]
        actor = connection.user
        if not isinstance(actor, Actor) or actor.role not in roles:
            raise RoleRefused(role_set)

    guard.__name__ = f"console_allow_{role_set}"
    return guard
