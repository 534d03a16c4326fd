"""Signed bearer tokens (``POST /auth/token``, ``api.tokens``): a token acts as its API key did,
expires, cannot be forged or altered, stays in its tenant, and dies with its key or user."""

from __future__ import annotations

import base64
import json
import os
import stat
import time
from pathlib import Path
from typing import Any

import jwt
import pytest

from api.tokens import issue_token, signing_secret
from store.audit import Actor
from tests.api.conftest import Env, Tenantry


def _token(env: Env, key: str, **body: Any) -> dict[str, Any]:
    r = env.client.post("/auth/token", json=body, headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200, r.text
    return r.json()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _refused(r: Any) -> dict[str, Any]:
    assert r.status_code == 401, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == 401 and body["code"] == "unauthenticated"
    return body


def _fresh_key(env: Env, t: Tenantry, role: str, tag: str) -> tuple[str, str, str]:
    """A new user of ``role`` in ``t`` with a key of its own: (user id, key id, key)."""
    user = env.client.post("/users", json={"email": f"{tag}@{t.name}.test", "role": role},
                           headers=t.h()).json()
    key = env.client.post("/api-keys", json={"user_id": user["id"], "name": tag}, headers=t.h()).json()
    return user["id"], key["id"], key["key"]


def test_a_token_acts_as_its_key(env: Env) -> None:
    a = env.a
    tok = _token(env, a.keys["operator"])
    assert tok["token_type"] == "Bearer" and tok["expires_in"] == 900
    assert (tok["tenant_id"], tok["user_id"], tok["role"]) == (a.tenant_id, a.users["operator"], "operator")
    me = env.client.get("/me", headers=_bearer(tok["access_token"])).json()
    assert me == {"tenant_id": a.tenant_id, "user_id": a.users["operator"], "role": "operator", "partner_id": None}
    r = env.client.get(f"/customers/{a.ids['customer_id']}", headers=_bearer(tok["access_token"]))
    assert r.status_code == 200 and r.json()["id"] == a.ids["customer_id"]
    claims = jwt.decode(tok["access_token"], options={"verify_signature": False})
    assert claims["ten"] == a.tenant_id and claims["role"] == "operator" and claims["kid"] == tok["key_id"]
    assert claims["exp"] - claims["iat"] == 900


def test_the_token_keeps_the_role_of_its_key(env: Env) -> None:
    a = env.a
    auditor = _token(env, a.keys["auditor"])["access_token"]
    r = env.client.post("/customers", json={"name": "Not allowed"}, headers=_bearer(auditor))
    assert r.status_code == 403
    partner = _token(env, a.keys["partner"])
    me = env.client.get("/me", headers=_bearer(partner["access_token"])).json()
    assert me["role"] == "partner" and me["partner_id"] == a.ids["partner_id"]


def test_lifetime_is_bounded(env: Env) -> None:
    assert _token(env, env.a.keys["admin"], expires_in=60)["expires_in"] == 60
    for bad in (59, 3601, "soon"):
        r = env.client.post("/auth/token", json={"expires_in": bad}, headers=env.a.h())
        assert r.status_code == 400, r.text
        assert r.headers["content-type"].startswith("application/problem+json")


def test_expired_token_is_refused(env: Env) -> None:
    a = env.a
    secret = env.client.app.state.jwt_secret
    actor = Actor(a.tenant_id, a.users["admin"], "admin")
    old, _ = issue_token(secret, actor, a.ids["api_key_id"], 60, now=time.time() - 3600)
    body = _refused(env.client.get("/me", headers=_bearer(old)))
    assert "expired" in body["detail"]
    fresh, _ = issue_token(secret, actor, a.ids["api_key_id"], 60)
    assert env.client.get("/me", headers=_bearer(fresh)).status_code == 200


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def test_tampered_or_foreign_tokens_are_refused(env: Env) -> None:
    a = env.a
    token = _token(env, a.keys["auditor"])["access_token"]
    header, payload, sig = token.split(".")
    claims = jwt.decode(token, options={"verify_signature": False})
    # promote oneself to admin, keep the signature
    _refused(env.client.get("/me", headers=_bearer(f"{header}.{_b64({**claims, 'role': 'admin'})}.{sig}")))
    # move to the other tenant
    _refused(env.client.get("/me", headers=_bearer(f"{header}.{_b64({**claims, 'ten': env.b.tenant_id})}.{sig}")))
    # a flipped signature character
    _refused(env.client.get("/me", headers=_bearer(f"{header}.{payload}.{sig[:-2]}{'A' if sig[-2] != 'A' else 'B'}{sig[-1]}")))
    # signed with another secret; unsigned ("alg": "none"); garbage that merely looks like a JWT
    _refused(env.client.get("/me", headers=_bearer(jwt.encode(claims, "x" * 48, algorithm="HS256"))))
    _refused(env.client.get("/me", headers=_bearer(f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.")))
    _refused(env.client.get("/me", headers=_bearer("eyJ.eyJ.x")))
    # a token cannot mint another token
    r = env.client.post("/auth/token", json={}, headers=_bearer(token))
    assert r.status_code == 403 and r.json()["code"] == "api_key_required"


def test_a_token_stays_in_its_tenant(env: Env) -> None:
    a, b = env.a, env.b
    token = _token(env, a.keys["admin"])["access_token"]
    r = env.client.get(f"/customers/{b.ids['customer_id']}", headers=_bearer(token))
    assert r.status_code == 404
    r = env.client.patch(f"/customers/{b.ids['customer_id']}", json={"city": "X"}, headers=_bearer(token))
    assert r.status_code == 404
    listed = env.client.get("/customers", headers=_bearer(token)).json()["items"]
    assert listed and all(c["id"] != b.ids["customer_id"] for c in listed)


def test_revoking_the_key_kills_its_tokens(env: Env) -> None:
    a = env.a
    _, key_id, key = _fresh_key(env, a, "operator", "revoke-me")
    token = _token(env, key)["access_token"]
    assert env.client.get("/me", headers=_bearer(token)).status_code == 200
    assert env.client.delete(f"/api-keys/{key_id}", headers=a.h()).status_code == 204
    body = _refused(env.client.get("/me", headers=_bearer(token)))
    assert "revoked" in body["detail"]
    _refused(env.client.get("/me", headers=_bearer(key)))


def test_disabling_the_user_or_changing_the_role_kills_its_tokens(env: Env) -> None:
    a = env.a
    user_id, _, key = _fresh_key(env, a, "operator", "disable-me")
    token = _token(env, key)["access_token"]
    assert env.client.get("/me", headers=_bearer(token)).status_code == 200
    assert env.client.patch(f"/users/{user_id}", json={"role": "auditor"}, headers=a.h()).status_code == 200
    _refused(env.client.get("/me", headers=_bearer(token)))
    # the key itself carries the new role; a new token does too
    assert env.client.get("/me", headers=_bearer(_token(env, key)["access_token"])).json()["role"] == "auditor"
    token = _token(env, key)["access_token"]
    assert env.client.patch(f"/users/{user_id}", json={"active": False}, headers=a.h()).status_code == 200
    _refused(env.client.get("/me", headers=_bearer(token)))
    _refused(env.client.get("/me", headers=_bearer(key)))


def test_signing_secret_from_env_or_created_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVBILL_JWT_SECRET", raising=False)
    path = tmp_path / "var" / "jwt-secret"
    first = signing_secret(path)
    assert len(first) >= 48 and signing_secret(path) == first
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["jwt-secret"]
    monkeypatch.setenv("EVBILL_JWT_SECRET", "s" * 40)
    assert signing_secret(path) == "s" * 40
    monkeypatch.setenv("EVBILL_JWT_SECRET", "short")
    with pytest.raises(ValueError):
        signing_secret(path)
