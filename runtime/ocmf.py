"""OCMF (Open Charge Metering Format, S.A.F.E. e.V.): signed meter data read and its signature
checked, and a session's signed readings held against what the session bills (Eichrecht).

An OCMF record as a meter writes it is ``OCMF|{payload json}|{signature json}``; the signature is
over the payload section's bytes exactly as they travel, so nothing here re-serialises JSON.
Public keys are DER SubjectPublicKeyInfo (as the S.A.F.E. Transparenzsoftware takes them), given
as hex or base64. The curves are those the OCMF specification lists for ``SA``.

Written here rather than taken from PyPI's ``pyocmf`` (0.6.0, evaluated in session h18a): that
package is marked alpha, is one person's, and pulls pydantic-extra-types, phonenumbers and
``ecdsa`` into the pure core for what is ~150 lines over ``cryptography``; it also splits the
record on ``|`` where a payload may carry one inside a string.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

__all__ = [
    "CURVES",
    "METER_CHECKS",
    "MeterCheck",
    "Ocmf",
    "OcmfError",
    "OcmfReading",
    "check_session",
    "decode_signed_data",
    "key_curve",
    "load_public_key",
    "normalize_public_key",
    "parse",
    "verify",
]

# SA curve names of the OCMF specification (table "Signature algorithm")
CURVES: dict[str, type[ec.EllipticCurve]] = {
    "secp192r1": ec.SECP192R1, "secp256r1": ec.SECP256R1, "secp384r1": ec.SECP384R1,
    "secp256k1": ec.SECP256K1, "secp521r1": ec.SECP521R1,
    "brainpool256r1": ec.BrainpoolP256R1, "brainpool384r1": ec.BrainpoolP384R1,
}
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {"SHA256": hashes.SHA256, "SHA384": hashes.SHA384,
                                                   "SHA512": hashes.SHA512}
# cryptography's curve name -> the OCMF name
_OCMF_NAME = {"brainpoolP256r1": "brainpool256r1", "brainpoolP384r1": "brainpool384r1"}
_KWH = {"kwh": Decimal(1), "wh": Decimal("0.001")}

# TX of a reading that ends a transaction (OCMF 1.0: E end, L/R/A/P/S/T ends of another kind)
_END_TYPES = frozenset("ELRAPST")

# what a session's signed data came to: ``verified`` (signature good, readings agree),
# ``unsigned`` (no OCMF data), and the two hold reasons
METER_CHECKS = ("verified", "unsigned", "meter_signature_invalid", "meter_mismatch")


class OcmfError(ValueError):
    """Signed data that is not a readable OCMF record, or a key that is not a usable EC key."""


@dataclass(frozen=True, slots=True)
class OcmfReading:
    time: str  # TM as the meter wrote it ("2026-12-01T09:00:00,000+0100 S")
    type: str  # TX: B begin, C charging, X exception, E end, L/R/A/P/S/T ends of another kind
    value: Decimal  # RV
    unit: str  # RU: kWh | Wh | ...
    obis: str  # RI
    status: str  # ST: G good

    @property
    def kwh(self) -> Decimal | None:
        f = _KWH.get(self.unit.lower())
        return None if f is None else self.value * f


@dataclass(frozen=True, slots=True)
class Ocmf:
    raw: str
    payload_text: str  # the signed bytes' text
    payload: dict[str, Any]
    signature: dict[str, Any]
    readings: tuple[OcmfReading, ...]

    @property
    def meter_serial(self) -> str:
        return str(self.payload.get("MS") or "")

    @property
    def algorithm(self) -> str:
        return str(self.signature.get("SA") or "ECDSA-secp256r1-SHA256")


def decode_signed_data(text: str) -> str:
    """The OCMF text of signed data as chargers send it: plain (most 1.6 chargers, many 2.0.1) or
    base64 (what OCPP 2.0.1 says ``signedMeterData`` is); "" when it is neither."""
    t = text.strip()
    if t.startswith("OCMF|"):
        return t
    try:
        decoded = base64.b64decode(t, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return ""
    return decoded if decoded.startswith("OCMF|") else ""


def parse(raw: str) -> Ocmf:
    """Read one OCMF record; ``OcmfError`` says what is wrong with it."""
    text = decode_signed_data(raw)
    if not text:
        raise OcmfError("not an OCMF record (it must start with 'OCMF|')")
    body = text[len("OCMF|"):]
    # the payload is a JSON object: let the decoder find where it ends, '|' may sit inside a string
    dec = json.JSONDecoder()
    try:
        payload, end = dec.raw_decode(body)
    except json.JSONDecodeError as exc:
        raise OcmfError(f"payload section is not JSON: {exc.msg}") from None
    if not isinstance(payload, dict) or body[end:end + 1] != "|":
        raise OcmfError("expected 'OCMF|{payload}|{signature}'")
    try:
        signature, _ = dec.raw_decode(body[end + 1:])
    except json.JSONDecodeError as exc:
        raise OcmfError(f"signature section is not JSON: {exc.msg}") from None
    if not isinstance(signature, dict) or not signature.get("SD"):
        raise OcmfError("signature section has no 'SD'")
    readings = []
    for r in payload.get("RD") or ():
        if not isinstance(r, dict):
            raise OcmfError("'RD' holds something that is not a reading")
        try:
            value = Decimal(str(r.get("RV")))
        except InvalidOperation:
            raise OcmfError(f"reading value {r.get('RV')!r} is not a number") from None
        readings.append(OcmfReading(str(r.get("TM") or ""), str(r.get("TX") or ""), value, str(r.get("RU") or ""),
                                    str(r.get("RI") or ""), str(r.get("ST") or "")))
    return Ocmf(text, body[:end], payload, signature, tuple(readings))


def _key_bytes(text: str) -> bytes:
    t = "".join(text.split())
    try:
        return bytes.fromhex(t)
    except ValueError:
        pass
    try:
        raw = base64.b64decode(t, validate=True)
    except (binascii.Error, ValueError):
        raise OcmfError("public key is neither hex nor base64") from None
    try:  # base64 of the hex text, as some chargers send it in 2.0.1's publicKey
        return bytes.fromhex(raw.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return raw


def load_public_key(text: str) -> ec.EllipticCurvePublicKey:
    """An EC public key from DER SubjectPublicKeyInfo in hex or base64."""
    try:
        key = serialization.load_der_public_key(_key_bytes(text))
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise OcmfError(f"public key is not DER SubjectPublicKeyInfo: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise OcmfError("public key is not an elliptic-curve key")
    return key


def key_curve(key: ec.EllipticCurvePublicKey) -> str:
    return _OCMF_NAME.get(key.curve.name, key.curve.name)


def normalize_public_key(text: str) -> str:
    """The key as upper-case hex DER, the form the Transparenzsoftware shows and we store."""
    key = load_public_key(text)
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo).hex().upper()


def verify(record: Ocmf, public_key: str) -> str:
    """"" when ``record`` is signed by ``public_key``, else why not (``bad_signature``,
    ``curve_mismatch``, ``unsupported_algorithm``, ``bad_key``, ``bad_encoding``)."""
    parts = record.algorithm.split("-")
    if len(parts) != 3 or parts[0] != "ECDSA" or parts[1] not in CURVES or parts[2] not in _HASHES:
        return "unsupported_algorithm"
    try:
        key = load_public_key(public_key)
    except OcmfError:
        return "bad_key"
    if key_curve(key) != parts[1]:
        return "curve_mismatch"
    sd = str(record.signature.get("SD"))
    try:
        sig = base64.b64decode(sd, validate=True) if str(record.signature.get("SE") or "hex").lower() == "base64" \
            else bytes.fromhex(sd)
    except (binascii.Error, ValueError):
        return "bad_encoding"
    try:
        key.verify(sig, record.payload_text.encode("utf-8"), ec.ECDSA(_HASHES[parts[2]]()))
    except InvalidSignature:
        return "bad_signature"
    return ""


@dataclass(frozen=True, slots=True)
class MeterCheck:
    """A session's signed data held against the session: ``check`` is one of ``METER_CHECKS``;
    ``reason`` refines a failure (``bad_signature``, ``unknown_key``, ``revoked_key``, ``unreadable``,
    ``no_begin_reading``, ``no_end_reading``, ``energy_differs``, ``meter_differs``...)."""

    check: str
    reason: str = ""
    meter_serial: str = ""
    start_kwh: Decimal | None = None
    end_kwh: Decimal | None = None
    public_key: str = ""

    @property
    def signed_kwh(self) -> Decimal | None:
        if self.start_kwh is None or self.end_kwh is None:
            return None
        return self.end_kwh - self.start_kwh

    def to_dict(self) -> dict[str, str]:
        d = {"check": self.check, "reason": self.reason, "meter_serial": self.meter_serial,
             "public_key": self.public_key}
        for k, v in (("start_kwh", self.start_kwh), ("end_kwh", self.end_kwh), ("signed_kwh", self.signed_kwh)):
            if v is not None:
                d[k] = format(v, "f")
        return d


def check_session(records: list[str], keys: dict[str, tuple[str, bool]], session_kwh: Decimal | None,
                  sent_keys: dict[str, str] | None = None) -> MeterCheck:
    """Hold a session's signed records (raw text, in the order they came) against the session.

    ``keys``: meter serial -> (public key, revoked) as registered; ``sent_keys``: meter serial ->
    the key the charger sent with the data, used only where nothing is registered for the meter.
    The signed energy is the end reading (TX ``E``, else the last) less the begin reading (TX
    ``B``, else the first) of the energy register; ``session_kwh`` must equal it exactly (a
    legal-for-trade session is billed from these readings; ``None``: not compared)."""
    parsed: list[Ocmf] = []
    for raw in records:
        if not decode_signed_data(raw):
            continue  # another format (EDL, SML...): not ours to read, kept byte for byte
        try:
            parsed.append(parse(raw))
        except OcmfError:
            return MeterCheck("meter_signature_invalid", "unreadable")
    if not parsed:
        return MeterCheck("unsigned")
    serials = {p.meter_serial for p in parsed}
    serial = parsed[0].meter_serial
    if len(serials) > 1:
        return MeterCheck("meter_mismatch", "meter_differs", serial)
    key, revoked = keys.get(serial, ("", False))
    if not key:
        key = (sent_keys or {}).get(serial, "")
    if not key:
        return MeterCheck("meter_signature_invalid", "unknown_key", serial)
    if revoked:
        return MeterCheck("meter_signature_invalid", "revoked_key", serial, public_key=key)
    for p in parsed:
        why = verify(p, key)
        if why:
            return MeterCheck("meter_signature_invalid", why, serial, public_key=key)
    energy = [r for p in parsed for r in p.readings if r.kwh is not None and (not r.obis or "1.8.0" in r.obis)]
    begin = next((r for r in energy if r.type == "B"), energy[0] if energy else None)
    end = next((r for r in reversed(energy) if r.type in _END_TYPES), energy[-1] if energy else None)
    if begin is None:
        return MeterCheck("meter_mismatch", "no_begin_reading", serial, public_key=key)
    if end is None or end is begin:
        return MeterCheck("meter_mismatch", "no_end_reading", serial, public_key=key)
    for r in (begin, end):
        if r.status and r.status != "G":
            # the meter itself says the reading is not good (T tampered, D dead, R reversed, E error,
            # M mismatch, ...): signed, but not billable as it stands
            return MeterCheck("meter_mismatch", f"reading_status_{r.status}", serial, begin.kwh, end.kwh, key)
    out = MeterCheck("verified", "", serial, begin.kwh, end.kwh, key)
    if session_kwh is not None and out.signed_kwh != session_kwh:
        return MeterCheck("meter_mismatch", "energy_differs", serial, begin.kwh, end.kwh, key)
    return out


_END_TYPES = frozenset("ELRAPST")


def _context(raw: str) -> str:
    """What a record is, as the Transparenzsoftware's tree names it: the transaction's begin, its end,
    both in one record, or a reading in between."""
    try:
        kinds = {r.type for r in parse(raw).readings}
    except OcmfError:
        return "Transaction"
    begin, end = "B" in kinds, bool(kinds & _END_TYPES)
    if begin and not end:
        return "Transaction.Begin"
    if end and not begin:
        return "Transaction.End"
    return "Transaction"


def transparency_xml(records: Sequence[str], public_key: str = "") -> str:
    """The session's signed records and the key they verify with, in the XML container that S.A.F.E.'s
    Transparenzsoftware reads (``<values><value transactionId context><signedData format="OCMF"
    encoding="plain">…</signedData><publicKey encoding="hex">…</publicKey></value>…</values>``): one
    ``value`` per record, each with the key; the record text exactly as the meter signed it (decoded
    from base64 where the charger sent it so), nothing around it, else its signature cannot verify."""
    from xml.sax.saxutils import escape, quoteattr

    parts = ['<?xml version="1.0" encoding="UTF-8"?>', "<values>"]
    for n, raw in enumerate(records, start=1):
        text = decode_signed_data(raw) or raw.strip()
        parts.append(f'<value transactionId="{n}" context={quoteattr(_context(text))}>'
                     f'<signedData format="OCMF" encoding="plain">{escape(text)}</signedData>')
        if public_key:
            parts.append(f'<publicKey encoding="hex">{escape(public_key.strip())}</publicKey>')
        parts.append("</value>")
    parts.append("</values>")
    return "".join(parts)
