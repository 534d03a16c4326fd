from __future__ import annotations

from tests.api.conftest import Env


def test_seeded(env: Env) -> None:
    r = env.client.get(f"/sessions/{env.a.ids['session_id']}", headers=env.a.h())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "rated", body
    assert body["gross_total"] == "6.25"
