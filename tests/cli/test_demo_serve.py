"""``evbill demo --serve``: after the month, the demo's database stays served (API, console and
embedded Temporal) with a sign-in printed for the console, and the first charging point's ad-hoc
page takes cards through the local card sandbox (no provider configured); SIGTERM stops it all."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.mailbox import free_port

ROOT = Path(__file__).resolve().parents[2]


def _until(c: httpx.Client, url: str, text: str, log: Path, seconds: float = 60) -> str:
    deadline = time.monotonic() + seconds
    while text not in (page := c.get(url).text):
        assert time.monotonic() < deadline, (text, page[:1500], log.read_text()[-2000:])
        time.sleep(0.5)
    return page


def test_demo_serve_prints_a_sign_in_that_works(tmp_path: Path) -> None:
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), EVBILL_TEMPORAL_PORT=str(free_port()))
    for name in ("TEMPORAL_ADDRESS", "EVBILL_DATABASE_URL", "EVBILL_SMTP_HOST", "EVBILL_RATE_LIMIT",
                 "EVBILL_PAYMENT_PROVIDER", "EVBILL_STRIPE_SECRET_KEY", "EVBILL_STRIPE_API_BASE"):
        env.pop(name, None)
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "api.cli", "demo", "--out", str(tmp_path / "out"),
                                 "--sessions", "50", "--seed", "11", "--serve", "--port", str(port),
                                 "--ocpp-port", str(free_port())], cwd=tmp_path, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 400
        found = None
        while found is None:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            found = re.search(r"console: (http://\S+/console)  sign in as (\S+) with password (\S+)  .*\n"
                              r"ad-hoc charging: (http://\S+/charge/\S+) .*its charger MARKT-AC-1 is simulated.*\n"
                              r"card payments: local sandbox at (http://127\.0\.0\.1:\d+), test card 4242", log.read_text())
            time.sleep(0.5)
        url, email, password, adhoc, sandbox = found.groups()
        assert url == f"{base}/console" and adhoc.startswith(f"{base}/charge/")
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        with httpx.Client(base_url=base, timeout=30) as c:
            form = c.get("/console/sign-in")
            token = re.search(r'name="form_token" value="([^"]+)"', form.text)
            assert token, form.text[:500]
            r = c.post("/console/sign-in", data={"email": email, "password": password, "form_token": token.group(1)})
            assert r.status_code == 303 and r.headers["location"] == "/console", r.text[:500]
            inbox = c.get("/console/inbox")
            # the demo's month: its unknown payer waits in the inbox
            assert inbox.status_code == 200 and "Unbekannt Handels GmbH" in inbox.text
        # the site host's person in the partner portal: its statement and credit note, nothing of the back office
        host = re.search(r"partner portal: the site host signs in at the same address as (\S+) with password (\S+) ",
                         log.read_text())
        assert host, log.read_text()[-2000:]
        with httpx.Client(base_url=base, timeout=30) as c:
            form = c.get("/console/sign-in")
            token = re.search(r'name="form_token" value="([^"]+)"', form.text)
            assert token, form.text[:500]
            r = c.post("/console/sign-in", data={"email": host.group(1), "password": host.group(2),
                                                 "form_token": token.group(1)})
            assert r.status_code == 303, r.text[:500]
            portal = c.get("/console/portal")
            assert portal.status_code == 200 and "PS-000001" in portal.text, portal.text[:2000]
            assert c.get("/console/inbox").status_code == 403
        # the ad-hoc page: the price and the card form, which leads to the sandbox's Checkout page
        with httpx.Client(timeout=30) as c:
            page = c.get(adhoc, params={"lang": "en"})
            assert page.status_code == 200 and "card payment is not set up" not in page.text, page.text[:500]
            assert 'name="accept"' in page.text and "/ kWh" in page.text
            assert f"form-action 'self' {sandbox}" in page.headers["content-security-policy"]
            to = c.post(adhoc, data={"accept": "yes", "lang": "en", "email": "driver@example.com"})
            assert to.status_code == 303 and to.headers["location"].startswith(f"{sandbox}/pay/cs_test_"), to.text[:500]
            checkout = c.get(to.headers["location"])
            assert checkout.status_code == 200 and "evbill card sandbox" in checkout.text and "Pay 50.00 EUR" in checkout.text
            back = c.get(to.headers["location"] + "/cancel", follow_redirects=True)
            assert back.status_code == 200 and str(back.url).startswith(adhoc)
            # paid with the test Visa: the simulated charger starts, meters, and stops from the page
            to = c.post(adhoc, data={"accept": "yes", "lang": "en"})
            paid = c.post(to.headers["location"], data={"card": "visa"})
            assert paid.status_code == 303 and paid.headers["location"].startswith(f"{base}/charge/sessions/")
            status = _until(c, paid.headers["location"], "Cost so far", log)
            stop = re.search(r'<form method="post" action="([^"]+/stop)"', status)
            assert stop, status[:1000]
            assert c.post(base + stop.group(1)).status_code == 303
            done = _until(c, paid.headers["location"], "Charging finished and paid", log)
            receipt = re.search(r'href="([^"]+/receipt\.pdf)"', done)
            assert receipt and "6.000 kWh" in done, done[:2000]
            pdf = c.get(base + receipt.group(1))
            assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
            raise
