"""Per-credential rate limiting (``api.auth.RateLimiter``): off unless configured; when on, a key
(and the tokens made from it) past its budget gets 429 problem+json with Retry-After, and other
keys are not affected."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient

from api.app import Settings, create_app
from api.auth import RateLimiter
from tests.api.conftest import Env


def test_bucket_refills_at_the_rate() -> None:
    rl = RateLimiter(rate=2, burst=3)
    assert [rl.wait_s("k", now=100.0) for _ in range(3)] == [0, 0, 0]
    assert rl.wait_s("k", now=100.0) == pytest.approx(0.5)
    assert rl.wait_s("other", now=100.0) == 0
    assert rl.wait_s("k", now=100.5) == 0  # one request's worth came back
    assert rl.wait_s("k", now=100.5) > 0


def test_off_unless_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVBILL_RATE_LIMIT", raising=False)
    assert RateLimiter.from_env() is None
    monkeypatch.setenv("EVBILL_RATE_LIMIT", "5")
    rl = RateLimiter.from_env()
    assert rl is not None and (rl.rate, rl.burst) == (5, 10)
    monkeypatch.setenv("EVBILL_RATE_BURST", "3")
    rl = RateLimiter.from_env()
    assert rl is not None and rl.burst == 3


@pytest.fixture
def limited(env: Env) -> Iterator[TestClient[Any]]:
    app = create_app(Settings(engine=env.engine, migrate=False, rate_limit=RateLimiter(rate=0.01, burst=3),
                              jwt_secret=env.client.app.state.jwt_secret))
    with TestClient(app) as client:
        yield client


def test_a_key_past_its_budget_gets_429(env: Env, limited: TestClient[Any]) -> None:
    a = env.a
    h = a.h("auditor")
    assert [limited.get("/me", headers=h).status_code for _ in range(3)] == [200, 200, 200]
    r = limited.get("/me", headers=h)
    assert r.status_code == 429
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "rate_limited" and r.json()["status"] == 429
    assert int(r.headers["retry-after"]) >= 1
    # another key of the same tenant has a budget of its own
    assert limited.get("/me", headers=a.h("analyst")).status_code == 200
    # a bad key is a 401, never counted against anyone
    assert limited.get("/me", headers={"Authorization": "Bearer key_x.nope"}).status_code == 401


def test_tokens_draw_from_their_keys_budget(env: Env, limited: TestClient[Any]) -> None:
    h = env.b.h("approver")
    token = limited.post("/auth/token", json={}, headers=h).json()["access_token"]
    assert limited.get("/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert limited.get("/me", headers=h).status_code == 200
    assert limited.get("/me", headers={"Authorization": f"Bearer {token}"}).status_code == 429
