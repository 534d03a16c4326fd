"""The handshake refuses unknown and wrongly authenticated chargers; TLS (security profile 2) with a
certificate; every bad frame gets a CALLERROR and the connection stays up."""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
from pathlib import Path

import pytest
import websockets
from websockets.exceptions import InvalidStatus

from api.ocpp import GatewaySettings, start_gateway_thread
from tests.api.ocpp.conftest import OcppEnv, run


def _status(oe: OcppEnv, ident: str, headers: dict[str, str], subprotocols: list[str] | None = None) -> int:
    async def go() -> int:
        try:
            async with websockets.connect(oe.url(ident), subprotocols=subprotocols or ["ocpp1.6"],  # type: ignore[arg-type]
                                          additional_headers=headers):
                return 101
        except InvalidStatus as exc:
            return exc.response.status_code

    return int(run(go()))


def test_handshake_refusals(ocpp_env: OcppEnv) -> None:
    oe = ocpp_env
    oe.add_charger("CP-HS")
    assert _status(oe, "CP-HS", oe.auth("CP-HS")) == 101
    assert _status(oe, "CP-UNKNOWN", oe.auth("CP-HS")) == 401  # like a wrong password: no enumeration
    assert _status(oe, "CP-HS", oe.auth("CP-HS", "wrong-password-123456")) == 401
    assert _status(oe, "CP-HS", {}) == 401
    # the user name must be the charger's own identity
    import base64
    other = {"Authorization": "Basic " + base64.b64encode(f"CP-X:{oe.passwords['CP-HS']}".encode()).decode()}
    assert _status(oe, "CP-HS", other) == 401
    assert _status(oe, "CP-HS", oe.auth("CP-HS"), ["ocpp1.5"]) == 400
    assert oe.gw.stats.refused >= 4  # the 400 is websockets' own


def test_callerror_and_connection_stays_up(ocpp_env: OcppEnv) -> None:
    oe = ocpp_env
    oe.add_charger("CP-ERR")

    async def go() -> list[list[object]]:
        out = []
        async with websockets.connect(oe.url("CP-ERR"), subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                                      additional_headers=oe.auth("CP-ERR")) as ws:
            for frame in ('{"this is": not json', '[2, "u-1", "NoSuchAction", {}]',
                          '[2, "u-2", "StartTransaction", {"connectorId": "one", "idTag": "T"}]',
                          '[2, "u-3", "Heartbeat", {"unexpected": 1}]', '[2]', '"just a string"',
                          '[2, "u-4", ["Heartbeat"], {}]', '[2, "u-5", "Heartbeat", []]',
                          '[2, "u-7", "GetConfiguration", {}]', '[2, "u-6", "Heartbeat", {}]'):
                await ws.send(frame)
                out.append(json.loads(await ws.recv()))
        return out

    replies = run(go())
    errors = replies[:-1]
    assert all(r[0] == 4 for r in errors), replies
    assert errors[0][1:3] == ["-1", "FormationViolation"]
    assert errors[1][1:3] == ["u-1", "NotImplemented"]
    assert errors[2][1] == "u-2" and errors[2][2] in ("TypeConstraintViolation", "ProtocolError",
                                                      "FormationViolation", "OccurrenceConstraintViolation")
    assert errors[3][1] == "u-3"
    assert errors[-1][1:3] == ["u-7", "NotSupported"]  # a 1.6 action, but one a charger never sends
    assert replies[-1][0] == 3 and replies[-1][1] == "u-6" and "currentTime" in replies[-1][2]  # type: ignore[operator]


def test_callerror_201_uses_201_codes(ocpp_env: OcppEnv) -> None:
    oe = ocpp_env
    oe.add_charger("CP-ERR2")

    async def go() -> list[list[object]]:
        out = []
        async with websockets.connect(oe.url("CP-ERR2"), subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
                                      additional_headers=oe.auth("CP-ERR2")) as ws:
            for frame in ("[2, 'x'", '[2, "v-1", "TransactionEvent", {"eventType": "Sideways"}]',
                          '[2, "v-2", "Heartbeat", {}]'):
                await ws.send(frame)
                out.append(json.loads(await ws.recv()))
        return out

    replies = run(go())
    assert replies[0][:3] == [4, "-1", "FormatViolation"]
    assert replies[1][:2] == [4, "v-1"]
    assert replies[2][:2] == [3, "v-2"]


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    """A throw-away certificate for localhost: ``cryptography`` when installed, else the openssl CLI."""
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    try:
        import datetime as dt
        import ipaddress

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                        "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                        "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
        return cert, key
    pk = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    crt = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(pk.public_key())
           .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
           .not_valid_after(now + dt.timedelta(days=1))
           .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                       x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
           .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
           .sign(pk, hashes.SHA256()))
    cert.write_bytes(crt.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(pk.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()))
    return cert, key


def test_tls_security_profile_2(ocpp_env: OcppEnv, tmp_path: Path) -> None:
    oe = ocpp_env
    oe.add_charger("CP-TLS")
    cert, key = _self_signed(tmp_path)
    gw, _ = start_gateway_thread(oe.env.engine, GatewaySettings(host="127.0.0.1", port=0, certfile=str(cert),
                                                                keyfile=str(key)))
    try:
        ctx = ssl.create_default_context(cafile=str(cert))

        async def go(headers: dict[str, str]) -> object:
            try:
                async with websockets.connect(f"wss://localhost:{gw.port}/ocpp/CP-TLS", ssl=ctx,
                                              subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                                              additional_headers=headers) as ws:
                    await ws.send('[2, "t-1", "Heartbeat", {}]')
                    return json.loads(await ws.recv())
            except InvalidStatus as exc:
                return exc.response.status_code

        reply = run(go(oe.auth("CP-TLS")))
        assert isinstance(reply, list) and reply[:2] == [3, "t-1"]
        assert run(go(oe.auth("CP-TLS", "not-the-password-000"))) == 401

        async def plain() -> None:
            async with websockets.connect(f"ws://localhost:{gw.port}/ocpp/CP-TLS", subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                                          additional_headers=oe.auth("CP-TLS"), open_timeout=3):
                pass

        with pytest.raises((OSError, EOFError, asyncio.TimeoutError, websockets.exceptions.WebSocketException)):
            run(plain())
    finally:
        gw.shutdown()  # type: ignore[attr-defined]


_ = asyncio


def test_schema_errors_without_the_compiled_validators(ocpp_env: OcppEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without fastjsonschema the package's jsonschema path validates, with the same answers."""
    from api.ocpp import handlers

    monkeypatch.setattr(handlers, "_validators", {("1.6", a): False for a in ("StartTransaction", "Heartbeat")})
    oe = ocpp_env
    oe.add_charger("CP-ERR3")

    async def go() -> list[list[object]]:
        out = []
        async with websockets.connect(oe.url("CP-ERR3"), subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                                      additional_headers=oe.auth("CP-ERR3")) as ws:
            for frame in ('[2, "w-1", "StartTransaction", {"connectorId": "one", "idTag": "T"}]',
                          '[2, "w-2", "Heartbeat", {}]'):
                await ws.send(frame)
                out.append(json.loads(await ws.recv()))
        return out

    replies = run(go())
    assert replies[0][:2] == [4, "w-1"] and replies[1][:2] == [3, "w-2"]
