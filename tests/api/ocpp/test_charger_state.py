"""What a charger's BootNotification and StatusNotifications leave in its stored state (the
gateway writes it with statements built once and bound per message: issue 18's CPU per message)."""

from __future__ import annotations

from typing import Any

from ocpp.v16 import call

from tests.api.conftest import _ok
from tests.api.ocpp.conftest import OcppEnv, connect, run


def test_boot_and_connector_states_are_stored_per_connector(ocpp_env: OcppEnv) -> None:
    oe = ocpp_env
    ident = "CP16-STATE"
    oe.add_charger(ident)

    async def scenario() -> None:
        async with connect(oe, ident) as cp:
            await cp.call(call.BootNotification(charge_point_vendor="Vend", charge_point_model="M1",
                                                 firmware_version="1.2.3", meter_serial_number=""))
            for conn, status, err in ((1, "Available", "NoError"), (2, "Faulted", "GroundFailure"),
                                      (1, "Charging", "NoError")):
                await cp.call(call.StatusNotification(connector_id=conn, error_code=err, status=status,
                                                      timestamp=f"2026-03-10T08:00:0{conn}Z"))
            await cp.call(call.BootNotification(charge_point_vendor="Vend", charge_point_model="M2"))

    run(scenario())
    state: dict[str, Any] = _ok(oe.client.get(f"/charge-points/{oe.ids[ident]}/ocpp", headers=oe.h()))
    # the second boot replaced the boot fields (firmware not sent: empty), the connectors kept
    assert (state["vendor"], state["model"], state["firmware_version"], state["ocpp_version"]) == (
        "Vend", "M2", "", "1.6")
    assert {k: (v["status"], v["error_code"]) for k, v in state["connectors"].items()} == {
        "1": ("Charging", "NoError"), "2": ("Faulted", "GroundFailure")}
    assert state["connectors"]["2"]["at"] == "2026-03-10T08:00:02+00:00"
    assert state["last_boot_at"] is not None and state["last_seen_at"] is not None
