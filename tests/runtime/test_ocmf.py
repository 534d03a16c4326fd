"""OCMF records as meters write them: parsed, signatures checked on every curve the specification
lists, and a session's signed readings held against what it bills, tampering included."""

from __future__ import annotations

import base64
from decimal import Decimal

import pytest

from runtime import ocmf
from tests.ocmf_signer import Meter, tamper

BEGIN = ("2026-12-01T09:00:00,000+0100 S", "B", "1234.5670")
END = ("2026-12-01T10:30:00,000+0100 S", "E", "1256.0120")


@pytest.mark.parametrize("curve", ["secp192r1", "secp256r1", "secp384r1", "brainpool256r1", "brainpool384r1"])
@pytest.mark.parametrize("encoding", ["hex", "base64"])
def test_signatures_verify_on_every_listed_curve(curve: str, encoding: str) -> None:
    m = Meter(curve=curve, encoding=encoding)
    rec = ocmf.parse(m.record([BEGIN, END]))
    assert rec.algorithm == f"ECDSA-{curve}-SHA256"
    assert ocmf.verify(rec, m.public_key_hex) == ""
    assert ocmf.verify(rec, m.public_key_b64) == ""  # base64 DER, as 2.0.1 publicKey carries it
    assert ocmf.key_curve(ocmf.load_public_key(m.public_key_hex)) == curve


def test_parse_reads_the_payload_as_sent() -> None:
    m = Meter()
    raw = m.record([BEGIN, END])
    rec = ocmf.parse(raw)
    assert rec.raw == raw and rec.meter_serial == "EMH-1234567"
    assert [(r.type, r.value, r.kwh) for r in rec.readings] == [("B", Decimal("1234.567"), Decimal("1234.567")),
                                                                ("E", Decimal("1256.012"), Decimal("1256.012"))]
    # base64 of the record (what OCPP 2.0.1 says signedMeterData is) reads the same
    assert ocmf.parse(base64.b64encode(raw.encode()).decode()).payload_text == rec.payload_text


def test_a_pipe_inside_the_payload_does_not_cut_the_record() -> None:
    m = Meter()
    raw = m.sign(m.payload([BEGIN, END], CI="DE*ABC|E1"))
    assert ocmf.verify(ocmf.parse(raw), m.public_key_hex) == ""


def test_tampered_reading_wrong_key_and_curve_are_refused() -> None:
    m, other = Meter(), Meter()
    raw = m.record([BEGIN, END])
    assert ocmf.verify(ocmf.parse(tamper(raw, "1256.012", "1266.012")), m.public_key_hex) == "bad_signature"
    assert ocmf.verify(ocmf.parse(raw), other.public_key_hex) == "bad_signature"
    assert ocmf.verify(ocmf.parse(raw), Meter(curve="secp384r1").public_key_hex) == "curve_mismatch"
    assert ocmf.verify(ocmf.parse(raw), "00ff") == "bad_key"
    assert ocmf.verify(ocmf.parse(tamper(raw, "ECDSA-secp256r1-SHA256", "RSA-2048-SHA256")),
                       m.public_key_hex) == "unsupported_algorithm"


@pytest.mark.parametrize("raw, message", [
    ("EDL|xyz", "not an OCMF record"),
    ("OCMF|{\"FV\":\"1.0\"", "payload section is not JSON"),
    ("OCMF|{\"FV\":\"1.0\"}|{}", "signature section has no 'SD'"),
    ("OCMF|{\"RD\":[{\"RV\":\"x\"}]}|{\"SD\":\"00\"}", "is not a number"),
])
def test_unreadable_records_say_why(raw: str, message: str) -> None:
    with pytest.raises(ocmf.OcmfError, match=message):
        ocmf.parse(raw)


def test_check_session_outcomes() -> None:
    m = Meter()
    keys = {m.serial: (m.public_key_hex, False)}
    good = [m.record([BEGIN]), m.record([END])]  # begin and end records, as most meters send them
    ok = ocmf.check_session(good, keys, Decimal("21.445"))
    assert (ok.check, ok.start_kwh, ok.end_kwh, ok.signed_kwh) == (
        "verified", Decimal("1234.567"), Decimal("1256.012"), Decimal("21.445"))
    assert ocmf.check_session([m.record([BEGIN, END])], keys, Decimal("21.445")).check == "verified"
    # the session bills more than the meter signed
    bad = ocmf.check_session(good, keys, Decimal(22))
    assert (bad.check, bad.reason, bad.signed_kwh) == ("meter_mismatch", "energy_differs", Decimal("21.445"))
    # a reading changed after signing
    forged = [good[0], tamper(good[1], "1256.012", "1266.012")]
    assert ocmf.check_session(forged, keys, Decimal("31.445")).to_dict()["reason"] == "bad_signature"
    assert ocmf.check_session(good, {}, None).reason == "unknown_key"
    # the key the charger sent counts only where none is registered
    assert ocmf.check_session(good, {}, None, {m.serial: m.public_key_b64}).check == "verified"
    assert ocmf.check_session(good, {m.serial: (Meter().public_key_hex, False)}, None,
                              {m.serial: m.public_key_hex}).reason == "bad_signature"
    assert ocmf.check_session(good, {m.serial: (m.public_key_hex, True)}, None).reason == "revoked_key"
    assert ocmf.check_session([good[0]], keys, None).reason == "no_end_reading"
    assert ocmf.check_session(["EDL|opaque"], keys, None).check == "unsigned"
    assert ocmf.check_session(["OCMF|{"], keys, None).reason == "unreadable"
    # an end of another kind (TX L: loss of power) is an end; a reading the meter marks not good is not billable
    lost = ocmf.check_session([good[0], m.record([(END[0], "L", END[2])])], keys, Decimal("21.445"))
    assert (lost.check, lost.end_kwh) == ("verified", Decimal("1256.012"))
    bad_status = ocmf.check_session([good[0], tamper(m.record([END]), '"ST":"G"', '"ST":"E"')], keys, None)
    assert bad_status.reason == "bad_signature"  # changed after signing
    errored = m.sign(m.payload([END]).replace('"ST":"G"', '"ST":"E"'))
    assert ocmf.check_session([good[0], errored], keys, None).reason == "reading_status_E"
    other = Meter(serial="OTHER-1")
    assert ocmf.check_session([good[0], other.record([END])], {**keys, other.serial: (other.public_key_hex, False)},
                              None).reason == "meter_differs"
