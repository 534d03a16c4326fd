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


def test_console_passwords_from_the_command_line(tmp_path: Path) -> None:
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from store.console import sign_in, user_password

    url = f"sqlite:///{tmp_path / 'evbill.db'}"
    assert run(url, "tenants", "create", "Stadtwerke Test", "--admin-email", "admin@sw.example").returncode == 0

    def run_in(stdin: str, *args: str) -> subprocess.CompletedProcess[str]:
        env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "EVBILL_DATABASE_URL": url,
               "HOME": os.environ.get("HOME", "/tmp")}
        return subprocess.run([sys.executable, "-m", "api.cli", *args], input=stdin, capture_output=True,
                              text=True, cwd=ROOT, timeout=120, env=env)

    added = run_in("finance password 1\n", "users", "add", "--email", "finance@sw.example", "--role", "approver",
                   "--password-stdin")
    assert added.returncode == 0, added.stderr
    short = run_in("short\n", "users", "passwd", "--email", "admin@sw.example", "--password-stdin")
    assert short.returncode == 1 and "at least 12 characters" in short.stderr
    unknown = run_in("long enough password\n", "users", "passwd", "--email", "nobody@sw.example", "--password-stdin")
    assert unknown.returncode == 1 and "no user 'nobody@sw.example'" in unknown.stderr
    done = run_in("the admin's password\n", "users", "passwd", "--email", "admin@sw.example", "--password-stdin")
    assert done.returncode == 0 and "console password set for admin@sw.example" in done.stdout
    assert "the admin's password" not in done.stdout + done.stderr
    engine = make_engine(url)
    try:
        with Session(engine) as db:
            [who] = sign_in(db, "admin@sw.example", "the admin's password")
            assert who.role == "admin"
            assert [c.role for c in sign_in(db, "finance@sw.example", "finance password 1")] == ["approver"]
            assert sign_in(db, "admin@sw.example", "finance password 1") == []
            hashes = db.execute(select(user_password.c.hash)).scalars().all()
            assert len(hashes) == 2 and all(h.startswith("$argon2id$") for h in hashes)
        with TestClient(create_app(Settings(engine=engine)), raise_server_exceptions=False) as client:
            admin_key = json.loads(run(url, "keys", "issue", "--email", "admin@sw.example", "--json").stdout)["key"]
            audit = client.get("/audit", params={"limit": 200},
                               headers={"Authorization": f"Bearer {admin_key}"}).json()["items"]
            sets = [a for a in audit if a["action"] == "user.password_set"]
            assert len(sets) == 2 and all("password" not in json.dumps(a["after"]).replace("password_set", "")
                                          for a in sets)
    finally:
        engine.dispose()
