"""``evbill tenants|users|keys``: a tenant made from the command line, a second person for four
eyes and a recovered admin key all work against the API, and each lands in the audit chain."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from litestar.testing import TestClient

from api.app import Settings, create_app
from store.db import make_engine

ROOT = Path(__file__).resolve().parents[2]


def run(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "EVBILL_DATABASE_URL": db_url,
           "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run([sys.executable, "-m", "api.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=120, env=env)


def test_tenant_user_and_recovered_key_work_against_the_api(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'evbill.db'}"
    none = run(url, "users", "list")
    assert none.returncode == 1 and "no tenant yet" in none.stderr

    made = run(url, "tenants", "create", "Stadtwerke Test", "--admin-email", "admin@sw.example", "--json")
    assert made.returncode == 0, made.stderr
    tenant = json.loads(made.stdout)
    bad = run(url, "tenants", "create", "Other", "--timezone", "Mars/Olympus")
    assert bad.returncode == 1 and "unknown time zone 'Mars/Olympus'" in bad.stderr
    # two tenants now? no: the bad one was refused, so --tenant is not needed
    approver = run(url, "users", "add", "--email", "finance@sw.example", "--role", "approver", "--json")
    assert approver.returncode == 0, approver.stderr
    again = run(url, "users", "add", "--email", "finance@sw.example", "--role", "approver")
    assert again.returncode == 1 and "already has a user" in again.stderr
    wrong = run(url, "users", "add", "--email", "x@sw.example", "--role", "boss")
    assert wrong.returncode == 1 and "unknown role 'boss'" in wrong.stderr
    recovered = run(url, "keys", "issue", "--email", "admin@sw.example", "--json")
    assert recovered.returncode == 0, recovered.stderr
    admin_key = json.loads(recovered.stdout)["key"]
    approver_key = json.loads(approver.stdout)["key"]
    assert admin_key != tenant["key"]

    engine = make_engine(url)
    try:
        with TestClient(create_app(Settings(engine=engine)), raise_server_exceptions=False) as client:
            def get(path: str, key: str) -> Any:
                return client.get(path, headers={"Authorization": f"Bearer {key}"})

            for key in (tenant["key"], admin_key):  # the first key still works beside the new one
                users = get("/users", key)
                assert users.status_code == 200, users.text
                emails = {u["email"]: u["role"] for u in users.json()["items"]}
                assert emails == {"admin@sw.example": "admin", "finance@sw.example": "approver"}
            assert get("/users", approver_key).status_code == 403  # an approver is no admin
            audit = get("/audit/verify", admin_key)
            assert audit.status_code == 200 and audit.json()["ok"] is True, audit.text
            actions = [e["action"] for e in get("/audit", admin_key).json()["items"]]
            assert actions.count("api_key.create") == 2 and "user.create" in actions
    finally:
        engine.dispose()
