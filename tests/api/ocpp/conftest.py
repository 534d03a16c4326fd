"""OCPP fixtures: the API app on a fresh database (SQLite, and PostgreSQL when
``EVBILL_TEST_POSTGRES_URL`` is set) with tenant 'alpha' from the API fixtures, a ruleset with an
evening window published for its location, chargers with passwords, and a real gateway listening
on a free port in a thread of its own. Tests connect real WebSocket clients (the ``ocpp`` package
as the charger)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import websockets
from ocpp.routing import on
from ocpp.v16 import ChargePoint as Cp16
from ocpp.v16 import call_result as result16
from ocpp.v16.enums import Action as Action16
from ocpp.v201 import ChargePoint as Cp201
from ocpp.v201 import call_result as result201
from ocpp.v201.enums import Action as Action201
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.ocpp import Gateway, GatewaySettings, start_gateway_thread
from store.models import ChargingSession, RatedLineRow
from store.ocpp import OcppTransaction
from tests.api.conftest import Env, _ok, build_env
from tests.store.conftest import BACKENDS

TARIFF = """ruleset ocpptest currency EUR timezone Europe/Berlin
tariff standard "Standard" {
  vat 19%
  start_fee 0.50
  energy 0.40 per kWh
  when time 18:00..22:00 { energy 0.60 per kWh }
}
"""


@dataclass
class OcppEnv:
    env: Env
    gw: Gateway
    ids: dict[str, str] = field(default_factory=dict)
    passwords: dict[str, str] = field(default_factory=dict)

    @property
    def client(self) -> Any:
        return self.env.client

    def h(self, role: str = "admin") -> dict[str, str]:
        return self.env.a.h(role)

    def url(self, identity: str) -> str:
        return f"ws://127.0.0.1:{self.gw.port}/ocpp/{identity}"

    def auth(self, identity: str, password: str | None = None) -> dict[str, str]:
        pw = self.passwords[identity] if password is None else password
        return {"Authorization": "Basic " + base64.b64encode(f"{identity}:{pw}".encode()).decode()}

    def idle(self) -> None:
        """Wait for the gateway's background work (sessions being stored)."""
        assert self.gw.loop is not None
        asyncio.run_coroutine_threadsafe(self.gw.idle(), self.gw.loop).result(30)

    def db(self) -> Session:
        return Session(self.env.engine)

    def transactions(self, identity: str) -> list[OcppTransaction]:
        with self.db() as db:
            return list(db.execute(select(OcppTransaction).where(OcppTransaction.identity == identity)
                                   .order_by(OcppTransaction.id)).scalars())

    def sessions(self, identity: str) -> list[ChargingSession]:
        with self.db() as db:
            return list(db.execute(select(ChargingSession).where(
                ChargingSession.external_id.like(f"ocpp:{identity}:%"))  # type: ignore[attr-defined]
                .order_by(ChargingSession.start)).scalars())

    def lines(self, session: ChargingSession) -> list[RatedLineRow]:
        with self.db() as db:
            return list(db.execute(select(RatedLineRow).where(RatedLineRow.rating_id == session.current_rating_id)
                                   .order_by(RatedLineRow.seq)).scalars())

    def add_charger(self, identity: str, *, location_id: str | None = None, connector: int = 1,
                    evse_uid: str | None = None, power_type: str = "AC") -> str:
        c, h = self.client, self.h()
        loc = location_id or self.ids["location_id"]
        cp = _ok(c.post("/charge-points", json={"location_id": loc, "identity": identity}, headers=h))["id"]
        _ok(c.post("/evses", json={"location_id": loc, "charge_point_id": cp, "evse_uid": evse_uid or f"DE*EVB*{identity}*1",
                                   "connector_id": connector, "power_type": power_type, "max_power_kw": "22"},
                   headers=h))
        pw = _ok(c.put(f"/charge-points/{cp}/ocpp-password", json={}, headers=h))["password"]
        self.passwords[identity] = pw
        self.ids[identity] = cp
        return cp


@pytest.fixture(scope="module", params=BACKENDS)
def ocpp_env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OcppEnv]:
    env, close = build_env(request.param, tmp_path_factory.mktemp("ocpp"))
    c, a = env.client, env.a
    rs = _ok(c.post("/rulesets", json={"name": "ocpptest"}, headers=a.h()))["id"]
    draft = _ok(c.post(f"/rulesets/{rs}/drafts", json={"source": TARIFF}, headers=a.h("analyst")))
    assert draft["ok"], draft
    _ok(c.post(f"/rulesets/{rs}/versions", json={"draft_id": draft["id"], "effective_from": "2021-01-01T00:00:00Z"},
               headers=a.h("approver")))
    # a location of our own: the shared API fixtures may put access rules on theirs
    loc = _ok(c.post("/locations", json={"code": "ocpp_site", "name": "OCPP site", "country": "DE",
                                         "timezone": "Europe/Berlin", "ruleset_id": rs}, headers=a.h()))["id"]
    gw, _thread = start_gateway_thread(env.engine, GatewaySettings(host="127.0.0.1", port=0, response_timeout=5,
                                                                   cost_update_interval_s=0, validate_responses=True))
    oe = OcppEnv(env, gw, ids=dict(a.ids))
    oe.ids["ruleset_id"], oe.ids["location_id"] = rs, loc
    try:
        yield oe
    finally:
        gw.shutdown()  # type: ignore[attr-defined]
        close()


class Charger16(Cp16):
    """The ``ocpp`` package's 1.6 charge point, answering the central system's commands."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.remote: list[tuple[str, dict[str, Any]]] = []

    @on(Action16.remote_start_transaction)
    def on_remote_start(self, id_tag: str, **kw: Any) -> Any:
        self.remote.append(("RemoteStartTransaction", {"id_tag": id_tag, **kw}))
        return result16.RemoteStartTransaction(status="Accepted")

    @on(Action16.remote_stop_transaction)
    def on_remote_stop(self, transaction_id: int) -> Any:
        self.remote.append(("RemoteStopTransaction", {"transaction_id": transaction_id}))
        return result16.RemoteStopTransaction(status="Accepted")

    @on(Action16.change_availability)
    def on_change_availability(self, connector_id: int, type: str) -> Any:
        self.remote.append(("ChangeAvailability", {"connector_id": connector_id, "type": type}))
        return result16.ChangeAvailability(status="Accepted")


class Charger201(Cp201):
    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.costs: list[float] = []
        self.remote: list[tuple[str, dict[str, Any]]] = []

    @on(Action201.cost_updated)
    def on_cost_updated(self, total_cost: float, transaction_id: str, **kw: Any) -> Any:
        self.costs.append(total_cost)
        return result201.CostUpdated()

    @on(Action201.request_start_transaction)
    def on_request_start(self, id_token: dict[str, Any], remote_start_id: int, **kw: Any) -> Any:
        self.remote.append(("RequestStartTransaction", {"id_token": id_token, **kw}))
        return result201.RequestStartTransaction(status="Accepted")

    @on(Action201.change_availability)
    def on_change_availability(self, operational_status: str, **kw: Any) -> Any:
        self.remote.append(("ChangeAvailability", {"operational_status": operational_status, **kw}))
        return result201.ChangeAvailability(status="Rejected")

    @on(Action201.request_stop_transaction)
    def on_request_stop(self, transaction_id: str, **kw: Any) -> Any:
        self.remote.append(("RequestStopTransaction", {"transaction_id": transaction_id}))
        return result201.RequestStopTransaction(status="Accepted")


@contextlib.asynccontextmanager
async def connect(oe: OcppEnv, identity: str, version: str = "1.6",
                  password: str | None = None, charger: Callable[..., Any] | None = None) -> AsyncIterator[Any]:
    """A connected charger (the package's ChargePoint, or ``charger``) with its receive loop running."""
    cls: Callable[..., Any] = charger or (Charger16 if version == "1.6" else Charger201)
    async with websockets.connect(oe.url(identity), subprotocols=[f"ocpp{version}"],  # type: ignore[list-item]
                                  additional_headers=oe.auth(identity, password)) as ws:
        cp = cls(identity, ws, response_timeout=10)
        task = asyncio.create_task(cp.start())
        try:
            yield cp
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def run(coro: Any) -> Any:
    return asyncio.run(coro)


_ = Path
