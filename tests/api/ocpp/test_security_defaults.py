"""Defect 11: the gateway listens on loopback unless told otherwise, and an unknown charger is
refused exactly like wrong credentials (no identity enumeration at the handshake)."""

from __future__ import annotations

import argparse
import base64

import pytest
import websockets
from websockets.exceptions import InvalidStatus

from api.ocpp import GatewaySettings
from api.serve import start_ocpp_gateway
from tests.api.ocpp.conftest import OcppEnv, run


def test_gateway_defaults_to_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    assert GatewaySettings().host == "127.0.0.1"
    seen: list[str] = []

    def fake_start(engine: object, settings: GatewaySettings) -> tuple[object, object]:
        seen.append(settings.host)
        return type("Gw", (), {"port": settings.port})(), None

    monkeypatch.setattr("api.ocpp.start_gateway_thread", fake_start)
    monkeypatch.delenv("EVBILL_OCPP_HOST", raising=False)
    start_ocpp_gateway(argparse.Namespace(ocpp_port=9000, ocpp_host=None), object())
    monkeypatch.setenv("EVBILL_OCPP_HOST", "0.0.0.0")
    start_ocpp_gateway(argparse.Namespace(ocpp_port=9000, ocpp_host=None), object())
    start_ocpp_gateway(argparse.Namespace(ocpp_port=9000, ocpp_host="::1"), object())
    assert seen == ["127.0.0.1", "0.0.0.0", "::1"]


def test_serve_help_names_the_hosts() -> None:
    from api.cli import build_parser

    args = build_parser().parse_args(["serve"])
    assert args.host == "127.0.0.1" and args.ocpp_host is None
    assert build_parser().parse_args(["serve", "--ocpp-host", "0.0.0.0"]).ocpp_host == "0.0.0.0"


async def _refusal(url: str, headers: dict[str, str]) -> tuple[int, bytes]:
    with pytest.raises(InvalidStatus) as exc:
        async with websockets.connect(url, subprotocols=["ocpp1.6"], additional_headers=headers):  # type: ignore[list-item]
            pass
    return exc.value.response.status_code, exc.value.response.body


def test_unknown_identity_and_wrong_password_answer_alike(ocpp_env: OcppEnv) -> None:
    oe = ocpp_env
    oe.add_charger("CP-ENUM")
    wrong = run(_refusal(oe.url("CP-ENUM"), oe.auth("CP-ENUM", "not-the-password-at-all")))
    basic = "Basic " + base64.b64encode(b"NO-SUCH-CHARGER:whatever-password").decode()
    unknown = run(_refusal(oe.url("NO-SUCH-CHARGER"), {"Authorization": basic}))
    no_auth = run(_refusal(oe.url("NO-SUCH-CHARGER"), {}))
    assert wrong == unknown == no_auth
    assert wrong[0] == 401
