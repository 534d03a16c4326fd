"""The online VAT ID check: the EU's VIES ``checkVatService`` (SOAP, operation ``checkVatApprox``).

``runtime.tax.valid_vat_id(..., online=...)`` is the seam: format and checksum are python-stdnum's,
and an online check may refuse a number the format accepts. This module is that check for the
API: when a customer's VAT ID is set or changed (and again on a later write while the last check
could not tell), ``check_vat_id`` asks VIES — with the tenant's own VAT ID as the requester, so
VIES answers a consultation number (``requestIdentifier``), the proof German practice keeps for
reverse charge — and the outcome is stored with the customer (``customer.vat_check``: the VAT ID
checked, ``valid`` / ``invalid`` / ``unchecked``, when, the consultation number, the registered
name and address VIES gave, or why it could not tell). Month-end reads that record
(``store.customers.vat_check_refused``): a VAT ID VIES called invalid gets no reverse charge; an
unchecked one is decided by its format, so an unreachable VIES never stops billing.

Off by default (this machine has no internet): ``EVBILL_VIES_URL`` turns it on — ``on`` for the
Commission's endpoint, or the URL of another (a test server) —, ``EVBILL_VIES_TIMEOUT`` bounds each
request (seconds, default 5). VIES knows EU member states (and Northern Ireland, XI) only: other
VAT IDs are recorded as checked by format.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Final

import httpx
from lxml import etree

from store.types import utcnow

__all__ = ["OFFICIAL_URL", "VatCheck", "ViesClient", "check_vat_id", "vies_from_env"]

OFFICIAL_URL: Final = "https://ec.europa.eu/taxation_customs/vies/services/checkVatService"
_SOAP: Final = "http://schemas.xmlsoap.org/soap/envelope/"
_TYPES: Final = "urn:ec.europa.eu:taxud:vies:services:checkVat:types"
# VIES member state codes: the EU's ISO codes, Greece as EL, Northern Ireland as XI
_VIES_STATES: Final = frozenset({
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "EL", "ES", "FI", "FR", "HR", "HU", "IE", "IT", "LT", "LU",
    "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK", "XI"})


@dataclass(frozen=True, slots=True)
class VatCheck:
    """One check of a VAT ID, as stored with the customer. ``outcome``: ``valid`` / ``invalid``
    (VIES said so) or ``unchecked`` (VIES off, unreachable, busy, or not VIES's country: the
    format decides); ``source``: ``vies`` or ``format``."""

    vat_id: str
    outcome: str
    checked_at: datetime
    source: str
    consultation: str = ""  # VIES's requestIdentifier (with a requester VAT ID)
    name: str = ""
    address: str = ""
    reason: str = ""  # why unchecked (VIES's fault string, the network error)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["checked_at"] = self.checked_at.isoformat()
        return d


class ViesClient:
    """``checkVatApprox`` over httpx (SOAP 1.1, document/literal, as the service's WSDL says)."""

    def __init__(self, url: str = OFFICIAL_URL, timeout: float = 5.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.url, self.timeout, self.transport = url, timeout, transport

    def check(self, vat_id: str, requester: str = "") -> VatCheck:
        """Ask VIES about ``vat_id`` (compact, with its prefix); never raises for VIES's or the
        network's trouble: that is an ``unchecked`` result with the reason."""
        now = utcnow()
        country, number = vat_id[:2].upper(), vat_id[2:]
        if country not in _VIES_STATES:
            return VatCheck(vat_id, "unchecked", now, "format", reason="VIES checks VAT IDs of EU member states only")
        body = _request(country, number, requester)
        try:
            with httpx.Client(timeout=self.timeout, transport=self.transport) as client:
                r = client.post(self.url, content=body, headers={"Content-Type": "text/xml; charset=utf-8",
                                                                  "SOAPAction": ""})
        except httpx.HTTPError as e:
            return VatCheck(vat_id, "unchecked", now, "vies", reason=f"VIES not reachable: {type(e).__name__}")
        return _answer(vat_id, now, r.status_code, r.content)

    def online(self, vat_id: str) -> bool | None:
        """The check as ``runtime.tax.VatIdCheck``: True valid, False refused, None could not tell."""
        return {"valid": True, "invalid": False}.get(self.check(vat_id).outcome)


def _request(country: str, number: str, requester: str) -> bytes:
    env = etree.Element(f"{{{_SOAP}}}Envelope", nsmap={"soapenv": _SOAP, "urn": _TYPES})
    op = etree.SubElement(etree.SubElement(env, f"{{{_SOAP}}}Body"), f"{{{_TYPES}}}checkVatApprox")
    fields = [("countryCode", country), ("vatNumber", number)]
    if requester[:2].upper() in _VIES_STATES and len(requester) > 2:
        fields += [("requesterCountryCode", requester[:2].upper()), ("requesterVatNumber", requester[2:])]
    for tag, text in fields:
        etree.SubElement(op, f"{{{_TYPES}}}{tag}").text = text
    result: bytes = etree.tostring(env, xml_declaration=True, encoding="UTF-8")
    return result


def _answer(vat_id: str, now: datetime, status: int, content: bytes) -> VatCheck:
    try:
        root = etree.fromstring(content, parser=etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError:
        return VatCheck(vat_id, "unchecked", now, "vies", reason=f"VIES answered HTTP {status} without SOAP")
    fault = root.find(f"{{{_SOAP}}}Body/{{{_SOAP}}}Fault")
    if fault is not None:
        # e.g. MS_UNAVAILABLE, MS_MAX_CONCURRENT_REQ, SERVICE_UNAVAILABLE, TIMEOUT, INVALID_INPUT
        return VatCheck(vat_id, "unchecked", now, "vies", reason=f"VIES: {fault.findtext('faultstring') or status}")
    resp = root.find(f"{{{_SOAP}}}Body/{{{_TYPES}}}checkVatApproxResponse")
    valid = resp.findtext(f"{{{_TYPES}}}valid") if resp is not None else None
    if resp is None or valid not in ("true", "false"):
        return VatCheck(vat_id, "unchecked", now, "vies", reason=f"VIES answered HTTP {status} without a result")

    def text(tag: str) -> str:
        value = (resp.findtext(f"{{{_TYPES}}}{tag}") or "").strip()
        return "" if value == "---" else value  # VIES's "not given"

    return VatCheck(vat_id, "valid" if valid == "true" else "invalid", now, "vies",
                    consultation=text("requestIdentifier"), name=text("traderName"), address=text("traderAddress"))


def vies_from_env(environ: Mapping[str, str] | None = None) -> ViesClient | None:
    """The client ``EVBILL_VIES_URL`` asks for (``on``: the Commission's endpoint; a URL: that
    one), or None: off, the default."""
    env = os.environ if environ is None else environ
    url = env.get("EVBILL_VIES_URL", "").strip()
    if not url or url.lower() in ("off", "0", "false", "no"):
        return None
    timeout = float(env.get("EVBILL_VIES_TIMEOUT", "") or 5)
    return ViesClient(OFFICIAL_URL if url.lower() in ("on", "1", "true", "yes") else url, timeout)


def check_vat_id(vat_id: str, requester: str = "", client: ViesClient | None = None) -> VatCheck:
    """The record to store for a customer's VAT ID: VIES's answer when the check is on, else
    ``unchecked`` by format."""
    if client is None:
        return VatCheck(vat_id, "unchecked", utcnow(), "format", reason="online check off (EVBILL_VIES_URL)")
    return client.check(vat_id, requester)
