"""The online VAT ID check (VIES ``checkVatApprox``) against a local HTTP server on 127.0.0.1 that
speaks the service's SOAP wire format: valid with a consultation number, invalid, a member state
that does not answer (a SOAP fault), an unreachable service and a non-EU VAT ID. Through the API
(SQLite and PostgreSQL): the outcome is stored with the customer and shown; an invalid answer
costs the customer its reverse charge at month-end; VIES off or unreachable never refuses the
write and leaves the decision to the format."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
from lxml import etree
from sqlalchemy import update

from api.vies import ViesClient, check_vat_id, vies_from_env
from runtime.tax import valid_vat_id
from tests.api.conftest import Env

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
TYPES = "urn:ec.europa.eu:taxud:vies:services:checkVat:types"
CONSULTATION = "WAPIAAAAZ5dLRhVg"

# what the fake VIES knows: (country, number) -> valid (True/False) or a fault string
KNOWN: dict[tuple[str, str], bool | str] = {
    ("AT", "U13585627"): True,
    ("DE", "811569869"): False,
    ("AT", "U12345602"): False,  # right checksum, but no such trader
    ("NL", "004495445B01"): "MS_UNAVAILABLE",
}


class _Vies(BaseHTTPRequestHandler):
    requests: ClassVar[list[dict[str, str]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        root = etree.fromstring(body)
        op = root.find(f"{{{SOAP}}}Body/{{{TYPES}}}checkVatApprox")
        assert op is not None, body
        fields = {etree.QName(el).localname: el.text or "" for el in op}
        type(self).requests.append({**fields, "content_type": self.headers["Content-Type"]})
        known = KNOWN.get((fields["countryCode"], fields["vatNumber"]), False)
        if isinstance(known, str):
            self._send(500, f'<env:Envelope xmlns:env="{SOAP}"><env:Body><env:Fault><faultcode>env:Server'
                            f'</faultcode><faultstring>{known}</faultstring></env:Fault></env:Body></env:Envelope>')
            return
        ident = (f"<ns2:requestIdentifier>{CONSULTATION}</ns2:requestIdentifier>"
                 if fields.get("requesterCountryCode") else "")
        name, address = ("Alpen Mobility GmbH", "Mariahilfer Straße 20\n1070 Wien") if known else ("---", "---")
        self._send(200, f'<env:Envelope xmlns:env="{SOAP}"><env:Header/><env:Body>'
                        f'<ns2:checkVatApproxResponse xmlns:ns2="{TYPES}">'
                        f'<ns2:countryCode>{fields["countryCode"]}</ns2:countryCode>'
                        f'<ns2:vatNumber>{fields["vatNumber"]}</ns2:vatNumber>'
                        f'<ns2:requestDate>2026-12-06+01:00</ns2:requestDate>'
                        f'<ns2:valid>{"true" if known else "false"}</ns2:valid>'
                        f'<ns2:traderName>{name}</ns2:traderName><ns2:traderCompanyType>---</ns2:traderCompanyType>'
                        f'<ns2:traderAddress>{address}</ns2:traderAddress>{ident}'
                        f'</ns2:checkVatApproxResponse></env:Body></env:Envelope>')

    def _send(self, status: int, text: str) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/xml;charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def vies_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Vies)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/taxation_customs/vies/services/checkVatService"
    server.shutdown()
    server.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_client_speaks_check_vat_approx(vies_url: str) -> None:
    client = ViesClient(vies_url, timeout=5)
    ok = client.check("ATU13585627", requester="DE136695976")
    assert (ok.outcome, ok.source, ok.consultation, ok.name) == ("valid", "vies", CONSULTATION, "Alpen Mobility GmbH")
    assert ok.address == "Mariahilfer Straße 20\n1070 Wien"
    sent = _Vies.requests[-1]
    assert sent == {"countryCode": "AT", "vatNumber": "U13585627", "requesterCountryCode": "DE",
                    "requesterVatNumber": "136695976", "content_type": "text/xml; charset=utf-8"}
    no = client.check("DE811569869")
    assert (no.outcome, no.consultation, no.name, no.address) == ("invalid", "", "", "")
    assert "requesterCountryCode" not in _Vies.requests[-1]  # no requester: no consultation number
    busy = client.check("NL004495445B01", requester="DE136695976")
    assert (busy.outcome, busy.reason) == ("unchecked", "VIES: MS_UNAVAILABLE")
    gone = ViesClient(f"http://127.0.0.1:{_closed_port()}/vies", timeout=2).check("ATU13585627")
    assert gone.outcome == "unchecked" and gone.reason.startswith("VIES not reachable")
    swiss = client.check("CHE116281710MWST")
    assert (swiss.outcome, swiss.source) == ("unchecked", "format")
    # the seam: runtime.tax.valid_vat_id with the client as its online check
    assert valid_vat_id("ATU13585627", "AT", online=client.online)
    assert not valid_vat_id("DE811569869", "DE", online=client.online)     # VIES refuses it
    assert valid_vat_id("NL004495445B01", "NL", online=client.online)      # VIES cannot tell: the format decides
    # off by default; on with a URL (or the Commission's endpoint)
    assert vies_from_env({}) is None and vies_from_env({"EVBILL_VIES_URL": "off"}) is None
    on = vies_from_env({"EVBILL_VIES_URL": "on", "EVBILL_VIES_TIMEOUT": "3"})
    assert on is not None and on.url.startswith("https://ec.europa.eu/") and on.timeout == 3
    assert check_vat_id("ATU13585627").outcome == "unchecked"


def test_customers_keep_their_vat_check(env: Env, vies_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from store.models import Tenant
    from tests.workflows.seed import RULESET
    from workflows.billing.activities import BillingActivities

    c, a = env.client, env.a
    with env.engine.begin() as conn:
        conn.execute(update(Tenant.__table__).where(Tenant.__table__.c.id == a.tenant_id)  # type: ignore[attr-defined]
                     .values(vat_id="DE136695976", country="DE"))
    # off (the default): the format decides, recorded as unchecked
    monkeypatch.delenv("EVBILL_VIES_URL", raising=False)
    r = c.post("/customers", json={"kind": "business", "name": "Off", "company_name": "Off GmbH",
                                   "vat_id": "ATU13585627", "country": "AT"}, headers=a.h())
    assert r.status_code == 201, r.text
    off = r.json()
    assert off["vat_check"]["outcome"] == "unchecked" and off["vat_check"]["source"] == "format"
    monkeypatch.setenv("EVBILL_VIES_URL", vies_url)
    r = c.post("/customers", json={"kind": "business", "name": "Anna", "company_name": "Alpen Mobility GmbH",
                                   "vat_id": "ATU13585627", "country": "AT"}, headers=a.h())
    assert r.status_code == 201, r.text
    valid = r.json()["vat_check"]
    assert (valid["vat_id"], valid["outcome"], valid["consultation"]) == ("ATU13585627", "valid", CONSULTATION)
    assert valid["checked_at"] and valid["name"] == "Alpen Mobility GmbH"
    got = c.get(f"/customers/{r.json()['id']}", headers=a.h("auditor")).json()
    assert got["vat_check"] == valid
    # a write without a new VAT ID does not ask again; a new VAT ID does
    n = len(_Vies.requests)
    assert c.patch(f"/customers/{r.json()['id']}", json={"city": "Wien"}, headers=a.h()).status_code == 200
    assert len(_Vies.requests) == n
    bad = c.patch(f"/customers/{r.json()['id']}", json={"vat_id": "DE811569869", "country": "DE"}, headers=a.h())
    assert bad.status_code == 200 and bad.json()["vat_check"]["outcome"] == "invalid"
    # a member state that does not answer, or VIES unreachable: stored as unchecked, never refused
    r = c.post("/customers", json={"kind": "business", "name": "Jan", "company_name": "Dutch BV",
                                   "vat_id": "NL004495445B01", "country": "NL"}, headers=a.h())
    assert r.status_code == 201 and r.json()["vat_check"]["reason"] == "VIES: MS_UNAVAILABLE"
    dutch = r.json()["id"]
    monkeypatch.setenv("EVBILL_VIES_URL", f"http://127.0.0.1:{_closed_port()}/vies")
    r = c.post("/customers", json={"kind": "business", "name": "Piet", "company_name": "Elsewhere BV",
                                   "vat_id": "ATU13585627", "country": "AT"}, headers=a.h())
    assert r.status_code == 201 and r.json()["vat_check"]["outcome"] == "unchecked"
    # once VIES answers again, the next write of an unchecked customer asks again
    monkeypatch.setenv("EVBILL_VIES_URL", vies_url)
    KNOWN[("NL", "004495445B01")] = True
    try:
        again = c.patch(f"/customers/{dutch}", json={"city": "Amsterdam"}, headers=a.h()).json()["vat_check"]
    finally:
        KNOWN[("NL", "004495445B01")] = "MS_UNAVAILABLE"
    assert again["outcome"] == "valid" and again["consultation"] == CONSULTATION
    cleared = c.patch(f"/customers/{dutch}", json={"vat_id": ""}, headers=a.h()).json()
    assert cleared["vat_id"] == "" and cleared["vat_check"] is None
    # asked again on demand (a VAT ID can be withdrawn): a new check, stored; none to check: 422
    first = c.get(f"/customers/{dutch}", headers=a.h()).json()
    assert first["vat_id"] == "" and c.post(f"/customers/{dutch}/vat-check", headers=a.h()).status_code == 422
    n = len(_Vies.requests)
    r = c.post(f"/customers/{got['id']}/vat-check", headers=a.h("operator"))
    assert r.status_code == 200 and r.json()["vat_check"]["outcome"] == "invalid", r.text  # DE811569869 now
    assert len(_Vies.requests) == n + 1 and r.json()["vat_check"]["checked_at"] > bad.json()["vat_check"]["checked_at"]
    assert c.post(f"/customers/{got['id']}/vat-check", headers=a.h("auditor")).status_code == 403
    assert c.post(f"/customers/{got['id']}/vat-check", headers=env.b.h()).status_code == 404
    # month-end: VIES's "invalid" costs the reverse charge the format would have given; "valid"
    # and "unchecked" keep it
    from dsl import compile_ruleset

    res = compile_ruleset(RULESET + '\ntax eu "B2B" {\n  reverse_charge\n}\n')
    assert res.ok, res.render()
    r = c.post("/customers", json={"kind": "business", "name": "Ghost", "company_name": "Ghost GmbH",
                                   "vat_id": "ATU12345602", "country": "AT"}, headers=a.h())
    assert r.status_code == 201 and r.json()["vat_check"]["outcome"] == "invalid"
    ghost = r.json()["id"]
    r = c.post("/customers", json={"kind": "business", "name": "Eva", "company_name": "Alpen Two GmbH",
                                   "vat_id": "ATU13585627", "country": "AT"}, headers=a.h())
    assert r.status_code == 201 and r.json()["vat_check"]["outcome"] == "valid"
    acts = BillingActivities(env.engine)
    with env.engine.connect() as conn:
        for customer_id, expected in ((ghost, "S"), (r.json()["id"], "AE"), (off["id"], "AE")):
            acct = _account(c, a, customer_id)
            assert acts._treatment(conn, a.tenant_id, acct, res.ruleset).category == expected, customer_id


def _account(c: Any, a: Any, customer_id: str) -> Any:
    from types import SimpleNamespace

    r = c.post("/billing-accounts", json={"customer_id": customer_id}, headers=a.h())
    assert r.status_code == 201, r.text
    return SimpleNamespace(id=r.json()["id"], customer_id=customer_id, street="", country="")
