"""The demo's ad-hoc charger: a simulated OCPP 1.6J charger that stays connected to the gateway and
does what a driver's payment asks of it — on RemoteStartTransaction it starts a transaction with
the one-time tag it was given and meters 3 kWh, on RemoteStopTransaction it stops at 6 kWh. With it
``evbill demo`` runs one ad-hoc charge from the QR page through the card sandbox to the receipt.

The transaction runs in the public tariff's daytime window whatever the hour: from 09:00 UTC of
today (10:00 or 11:00 in Berlin), or of yesterday before 09:30 UTC, 29 minutes long; so the same
ruleset gives the same price on every run.
"""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from ocpp.routing import after, on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action

METER_START_WH = 1_000_000  # far beyond the month the charger reported before (``--serve``: 2,000,000)


class AdhocCharger(ChargePoint):  # type: ignore[misc]
    """Accepts RemoteStart/RemoteStop and reports the transaction they ask for."""

    tx: int | None = None
    t0: datetime | None = None
    loop: asyncio.AbstractEventLoop | None = None  # the loop it runs on (``connected``'s thread)
    meter: int = METER_START_WH  # the register: each transaction goes on from where the last stopped

    def _iso(self, minutes: int) -> str:
        assert self.t0 is not None
        return (self.t0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")

    @on(Action.remote_start_transaction)
    def on_remote_start(self, id_tag: str, **kw: Any) -> Any:
        return call_result.RemoteStartTransaction(status="Accepted")

    @on(Action.remote_stop_transaction)
    def on_remote_stop(self, transaction_id: int) -> Any:
        return call_result.RemoteStopTransaction(status="Accepted")

    @after(Action.remote_start_transaction)
    async def started(self, id_tag: str, **kw: Any) -> None:
        now = datetime.now(UTC).replace(microsecond=0)
        day = now.replace(hour=9, minute=0, second=0)
        self.t0 = day if day + timedelta(minutes=30) <= now else day - timedelta(days=1)
        res = await self.call(call.StartTransaction(connector_id=kw.get("connector_id") or 1, id_tag=id_tag,
                                                    meter_start=self.meter, timestamp=self._iso(0)))
        self.tx = res.transaction_id
        await self.call(call.MeterValues(connector_id=kw.get("connector_id") or 1, transaction_id=self.tx, meter_value=[
            {"timestamp": self._iso(15), "sampledValue": [{"value": str(self.meter + 3000),
                                                           "measurand": "Energy.Active.Import.Register",
                                                           "unit": "Wh"}]}]))

    @after(Action.remote_stop_transaction)
    async def stopped(self, transaction_id: int, **kw: Any) -> None:
        self.meter += 6000
        await self.call(call.StopTransaction(meter_stop=self.meter, timestamp=self._iso(29),
                                             transaction_id=transaction_id, reason="Remote"))


@contextmanager
def connected(url: str, identity: str, password: str, meter_wh: int = METER_START_WH,
              charger_class: type[AdhocCharger] = AdhocCharger) -> Iterator[AdhocCharger]:
    """The charger (``charger_class``) on an event loop of its own thread, connected to ``url``
    until the block ends."""
    import websockets

    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: list[AdhocCharger] = []
    failed: list[BaseException] = []
    stop = asyncio.Event()
    auth = {"Authorization": "Basic " + base64.b64encode(f"{identity}:{password}".encode()).decode()}

    async def main() -> None:
        try:
            async with websockets.connect(url, subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                                          additional_headers=auth) as ws:
                cp = charger_class(identity, ws, response_timeout=30)
                cp.meter, cp.loop = meter_wh, loop
                holder.append(cp)
                task = asyncio.create_task(cp.start())
                await cp.call(call.BootNotification(charge_point_vendor="Demo", charge_point_model="AC22"))
                ready.set()
                await stop.wait()
                task.cancel()
        except Exception as exc:  # noqa: BLE001 - reported to the caller below
            failed.append(exc)
            ready.set()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), name="demo-adhoc-charger", daemon=True)
    thread.start()
    try:
        if not ready.wait(30) or failed:
            raise RuntimeError(f"the ad-hoc charger {identity} did not connect: {failed[:1]}")
        yield holder[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        if not thread.is_alive():
            loop.close()


def keep_connected(engine: Any, tenant_id: str) -> str | None:
    """``evbill demo --serve``: the first EVSE's charger (a fresh OCPP password set here) connects
    to this process's gateway once it listens and stays connected while the server runs, so that a
    payment on its ad-hoc page starts, meters and stops a session. Its identity, or None."""
    import secrets
    import time

    from sqlalchemy import select, update

    from api.ocpp.server import current_gateway, hash_password
    from store.models import ChargePoint, Evse
    from store.records import evse_ids

    with engine.begin() as conn:
        evses = evse_ids(conn, tenant_id, limit=1)
        if not evses:
            return None
        cp_id, identity = conn.execute(select(ChargePoint.id, ChargePoint.identity)
                                       .join(Evse, Evse.charge_point_id == ChargePoint.id)
                                       .where(Evse.id == evses[0])).one()
        password = secrets.token_urlsafe(24)[:32]
        conn.execute(update(ChargePoint).where(ChargePoint.id == cp_id).values(password_sha256=hash_password(password)))

    def run() -> None:
        deadline = time.monotonic() + 300
        while (gw := current_gateway()) is None or not getattr(gw, "port", None):
            if time.monotonic() > deadline:
                return
            time.sleep(0.5)
        with connected(f"ws://127.0.0.1:{gw.port}/ocpp/{identity}", identity, password, meter_wh=2 * METER_START_WH):
            threading.Event().wait()  # until the process ends

    threading.Thread(target=run, name="demo-adhoc-charger-serve", daemon=True).start()
    return str(identity)
