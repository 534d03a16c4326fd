"""A charger's first session over OCPP 1.6J: boot, authorize, start, meter values, stop.

Run against `evbill serve` (`python docs/ocpp16_first_session.py [ws://HOST:PORT]`) after docs/getting-started.md steps 4 and 5 (the
identity CP-MARKT-1 with its password, and the token 04A1B2C3D4)."""
import asyncio
import base64
import json
import sys

import websockets

URL = (sys.argv[1] if len(sys.argv) > 1 else "ws://127.0.0.1:9000") + "/ocpp/CP-MARKT-1"
AUTH = base64.b64encode(b"CP-MARKT-1:a-long-charger-secret-1").decode()

async def main() -> None:
    async with websockets.connect(URL, subprotocols=["ocpp1.6"],
                                  additional_headers={"Authorization": f"Basic {AUTH}"}) as ws:
        n = 0
        async def call(action: str, payload: dict) -> dict:
            nonlocal n
            n += 1
            await ws.send(json.dumps([2, str(n), action, payload]))
            reply = json.loads(await ws.recv())
            print(action, "->", reply[2])
            return reply[2]
        await call("BootNotification", {"chargePointVendor": "ACME", "chargePointModel": "AC22"})
        await call("Authorize", {"idTag": "04A1B2C3D4"})
        tx = await call("StartTransaction", {"connectorId": 1, "idTag": "04A1B2C3D4", "meterStart": 0,
                                             "timestamp": "2026-11-18T19:00:00Z"})
        await call("MeterValues", {"connectorId": 1, "transactionId": tx["transactionId"], "meterValue": [
            {"timestamp": "2026-11-18T20:00:00Z", "sampledValue": [{"value": "11000",
             "measurand": "Energy.Active.Import.Register", "unit": "Wh"}]}]})
        await call("StopTransaction", {"transactionId": tx["transactionId"], "meterStop": 22000,
                                       "timestamp": "2026-11-18T21:00:00Z", "idTag": "04A1B2C3D4"})

asyncio.run(main())
