"""``evbill serve`` delivers invoice e-mails: the real server (embedded Temporal, worker, API) as a
subprocess, ``EVBILL_SMTP_*`` pointing at a real SMTP server (aiosmtpd on 127.0.0.1). A billing
cycle started through the API finalizes an invoice, and its e-mail arrives with the PDF attached
while the API shows the delivery sent, once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path

import httpx
from sqlalchemy import update
from sqlalchemy.orm import Session

from store.db import make_engine, migrate
from store.models import Customer
from store.tenants import bootstrap_tenant
from tests.mailbox import attachments, free_port, smtp_server
from tests.workflows.seed import insert_sessions, seed_accounts

ROOT = Path(__file__).resolve().parents[2]


def test_serve_e_mails_a_finalized_invoice(tmp_path: Path) -> None:
    # the database as an operator would have it: a tenant, a customer with an e-mail address, a
    # published ruleset, an account with November's sessions (written straight into the tables)
    db_url = f"sqlite:///{tmp_path / 'evbill.db'}"
    engine = make_engine(db_url)
    migrate(engine)
    with Session(engine) as db:
        tenant, cred = bootstrap_tenant(db, "stadtwerke", email="rechnung@stadtwerke.example",
                                        legal_name="Stadtwerke Musterstadt GmbH")
    s = seed_accounts(engine, tenant.id, 1)
    acc = s.account_ids[0]
    with engine.begin() as conn:
        conn.execute(update(Customer.__table__).where(  # type: ignore[attr-defined]
            Customer.__table__.c.id == s.customer_of[acc]).values(email="jonas@example.org"))  # type: ignore[attr-defined]
    insert_sessions(engine, s, [(acc, "e2e-s1", datetime(2026, 11, 10, 9, tzinfo=UTC), D("12.5"))])
    engine.dispose()

    port = free_port()
    with smtp_server() as (box, smtp_port):
        env = dict(os.environ, PYTHONPATH=str(ROOT), EVBILL_DATABASE_URL=db_url,
                   EVBILL_TEMPORAL_PORT=str(free_port()), EVBILL_SMTP_HOST="127.0.0.1",
                   EVBILL_SMTP_PORT=str(smtp_port))
        for name in ("TEMPORAL_ADDRESS", "EVBILL_SMTP_USER", "EVBILL_SMTP_PASSWORD", "EVBILL_SMTP_STARTTLS",
                     "EVBILL_SMTP_SENDER", "EVBILL_RATE_LIMIT", "EVBILL_RENDER_DOCUMENTS"):
            env.pop(name, None)
        log = tmp_path / "serve.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "api.cli", "serve", "--ocpp-port", "0",
                                     "--port", str(port)], cwd=tmp_path, env=env, stdout=out,
                                    stderr=subprocess.STDOUT)
        base, auth = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {cred.key}"}
        try:
            deadline = time.monotonic() + 90
            while True:
                try:
                    if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.2)
            assert f"e-mail delivery through 127.0.0.1:{smtp_port}" in log.read_text()

            r = httpx.post(f"{base}/billing/accounts/{acc}/cycles", headers=auth, timeout=30,
                           json={"start": "2026-11-01", "end": "2026-12-01"})
            assert r.status_code == 202, r.text
            wid = r.json()["workflow_id"]
            doc = None
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                cyc = httpx.get(f"{base}/billing/cycles/{wid}", headers=auth, timeout=10).json()
                invoice_id = (cyc.get("invoice") or {}).get("id")
                assert cyc.get("state") != "held", cyc  # a small clean invoice: no finance hold
                if invoice_id:
                    docs = httpx.get(f"{base}/documents", params={"invoice_id": invoice_id}, headers=auth,
                                     timeout=10).json()["items"]
                    if docs and docs[0]["delivery_status"] == "sent" and box.messages:
                        doc = docs[0]
                        break
                time.sleep(0.25)
            assert doc is not None, log.read_text()[-3000:]
            detail = httpx.get(f"{base}/documents/{doc['id']}", headers=auth, timeout=10).json()
            [d] = detail["deliveries"]
            assert (d["status"], d["attempts"], d["recipient"]) == ("sent", 1, "jonas@example.org")
            [msg] = box.messages
            assert msg["To"] == "jonas@example.org" and doc["number"] in msg["Subject"]
            assert set(attachments(msg)) == {f"{doc['number']}.pdf"}
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
