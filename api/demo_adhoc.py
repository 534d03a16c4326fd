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

METER_START_WH = 1_000_000  # far beyond the month the charger reported before


class AdhocCharger(ChargePoint):  # type: ignore[misc]
    """Accepts RemoteStart/RemoteStop and reports the transaction they ask for."""

    tx: int | None = None
    t0: datetime | None = None

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
                                                    meter_start=METER_START_WH, timestamp=self._iso(0)))
        self.tx = res.transaction_id
        await self.call(call.MeterValues(connector_id=kw.get("connector_id") or 1, transaction_id=self.tx, meter_value=[
            {"timestamp": self._iso(15), "sampledValue": [{"value": str(METER_START_WH + 3000),
                                                           "measurand": "Energy.Active.Import.Register",
                                                           "unit": "Wh"}]}]))

    @after(Action.remote_stop_transaction)
    async def stopped(self, transaction_id: int, **kw: Any) -> None:
        await self.call(call.StopTransaction(meter_stop=METER_START_WH + 6000, timestamp=self._iso(29),
                                             transaction_id=transaction_id, reason="Remote"))


@contextmanager
def connected(url: str, identity: str, password: str) -> Iterator[AdhocCharger]:
    """The charger on an event loop of its own thread, connected to ``url`` until the block ends."""
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
                cp = AdhocCharger(identity, ws, response_timeout=30)
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
        loop.close()
