"""Signed bearer tokens: a caller with a valid API key exchanges it at ``POST /auth/token``
(``api.areas.tokens``) for a short-lived JWT (HS256, PyJWT) naming tenant, user, role, partner and
the key it came from.

The middleware (``api.auth``) accepts such a token wherever an API key is accepted. A token is
only as good as its key: each use checks, through the same in-process cache as API keys, that the
key is not revoked, its user is still active and still has the token's tenant, role and partner;
otherwise the token is refused (401) and the caller asks for a new one. A token cannot mint
another token, so it never outlives its key's decision.

The signing secret is ``EVBILL_JWT_SECRET`` when set (every replica of a deployment must share
it), else one generated on first start and kept in ``var/jwt-secret`` (mode 600), so ``evbill
serve`` needs no setup and tokens survive a restart.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from store.audit import Actor

__all__ = ["ISSUER", "TokenClaims", "decode_token", "issue_token", "looks_like_token", "signing_secret"]

ISSUER = "evbill"
ALGORITHM = "HS256"
SECRET_FILE = Path("var") / "jwt-secret"
_REQUIRED = ["exp", "iat", "iss", "sub", "ten", "role", "kid"]


def signing_secret(path: Path = SECRET_FILE) -> str:
    """``EVBILL_JWT_SECRET``, else the secret in ``path``, created once (safe when several API
    processes start together: the file appears whole or not at all, and the first one wins)."""
    env = os.environ.get("EVBILL_JWT_SECRET", "").strip()
    if env:
        if len(env) < 32:
            raise ValueError("EVBILL_JWT_SECRET must be at least 32 characters")
        return env
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".jwt-secret-")
        try:
            os.write(fd, (secrets.token_urlsafe(48) + "\n").encode())
            os.fchmod(fd, 0o600)
            os.close(fd)
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
        finally:
            os.unlink(tmp)
    return path.read_text().strip()


@dataclass(frozen=True, slots=True)
class TokenClaims:
    key_id: str
    actor: Actor
    expires_at: int


def issue_token(secret: str, actor: Actor, key_id: str, ttl_s: int, now: float | None = None) -> tuple[str, int]:
    """A signed token for ``actor`` that came from API key ``key_id``; returns (token, expiry)."""
    iat = int(time.time() if now is None else now)
    exp = iat + ttl_s
    claims: dict[str, Any] = {"iss": ISSUER, "sub": actor.user_id, "ten": actor.tenant_id, "role": actor.role,
                              "kid": key_id, "iat": iat, "exp": exp, "jti": secrets.token_hex(8)}
    if actor.partner_id:
        claims["ptn"] = actor.partner_id
    return jwt.encode(claims, secret, algorithm=ALGORITHM), exp


def looks_like_token(presented: str) -> bool:
    # a JWT is three base64url parts and begins with an encoded '{"'; an API key is "<id>.<secret>"
    return presented.startswith("eyJ") and presented.count(".") == 2


def decode_token(secret: str, token: str) -> TokenClaims:
    """Verify signature, algorithm, issuer and expiry; raises ``jwt.InvalidTokenError``."""
    c = jwt.decode(token, secret, algorithms=[ALGORITHM], issuer=ISSUER, options={"require": _REQUIRED})
    for name in ("sub", "ten", "role", "kid"):
        if not isinstance(c[name], str) or not c[name]:
            raise jwt.InvalidTokenError(f"claim {name!r} is not a string")
    partner = c.get("ptn")
    if partner is not None and not isinstance(partner, str):
        raise jwt.InvalidTokenError("claim 'ptn' is not a string")
    return TokenClaims(c["kid"], Actor(tenant_id=c["ten"], user_id=c["sub"], role=c["role"], partner_id=partner),
                       int(c["exp"]))
