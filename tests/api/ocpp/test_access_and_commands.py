"""Access rules per location (a private depot for one partner fleet at set hours, employees at
their site, public chargers for contracts and roaming), blocked tokens, the decision log per
location, and remote commands from the API to connected chargers."""

from __future__ import annotations

import asyncio
from typing import Any

from ocpp.v16 import call

from tests.api.conftest import _ok
from tests.api.ocpp.conftest import OcppEnv, connect, run
from tests.api.ocpp.test_sessions_201 import full_session


def _setup(oe: OcppEnv) -> dict[str, str]:
    c, h = oe.client, oe.h()
    fleet = _ok(c.post("/partners", json={"kind": "fleet", "name": "Fleet X"}, headers=h))["id"]
    other_fleet = _ok(c.post("/partners", json={"kind": "fleet", "name": "Fleet Y"}, headers=h))["id"]
    emsp = _ok(c.post("/partners", json={"kind": "emsp", "name": "Roam", "party_id": "RMG", "country_code": "NL"},
                      headers=h))["id"]
    for uid, extra in (("FLEET-X-1", {"issuing_partner_id": fleet}), ("FLEET-Y-1", {"issuing_partner_id": other_fleet}),
                       ("ROAM-1", {"issuing_partner_id": emsp}), ("BLOCKED-1", {"status": "blocked"}),
                       ("LOOSE-1", {})):
        _ok(c.post("/tokens", json={"uid": uid, **extra}, headers=h))
    depot = _ok(c.post("/locations", json={"code": "depot_1", "name": "Depot", "country": "DE",
                                           "timezone": "Europe/Berlin"}, headers=h))["id"]
    office = _ok(c.post("/locations", json={"code": "office_1", "name": "Office", "country": "DE",
                                            "timezone": "Europe/Berlin"}, headers=h))["id"]
    _ok(c.post("/access-rules", json={"location_id": depot, "subject": "partner", "value": fleet,
                                      "time_from": "06:00", "time_to": "20:00", "weekdays": [1, 2, 3, 4, 5],
                                      "description": "Fleet X weekdays 06-20"}, headers=h))
    _ok(c.post("/access-rules", json={"location_id": office, "subject": "customer_group", "value": "employees"},
               headers=h))
    bad = c.post("/access-rules", json={"location_id": office, "subject": "partner"}, headers=h)
    assert bad.status_code == 422 and bad.json()["code"] == "rule_value_missing"
    oe.add_charger("CP-DEPOT", location_id=depot)
    oe.add_charger("CP-OFFICE", location_id=office)
    oe.add_charger("CP-PUBLIC")
    return {"depot": depot, "office": office}


def test_access_rules_and_decision_log(ocpp_env: OcppEnv) -> None:
    oe = ocpp_env
    locs = _setup(oe)

    async def authorize(ident: str, tags: list[str]) -> dict[str, str]:
        async with connect(oe, ident) as cp:
            return {t: (await cp.call(call.Authorize(id_tag=t))).id_tag_info["status"] for t in tags}

    async def start(ident: str, tag: str, at: str) -> str:
        async with connect(oe, ident) as cp:
            res = await cp.call(call.StartTransaction(connector_id=1, id_tag=tag, meter_start=0, timestamp=at))
            return str(res.id_tag_info["status"])

    tags = ["TOK-alpha", "FLEET-X-1", "FLEET-Y-1", "ROAM-1", "BLOCKED-1", "LOOSE-1", "NOBODY"]
    assert run(authorize("CP-PUBLIC", tags)) == {
        "TOK-alpha": "Accepted", "FLEET-X-1": "Invalid", "FLEET-Y-1": "Invalid", "ROAM-1": "Accepted",
        "BLOCKED-1": "Blocked", "LOOSE-1": "Invalid", "NOBODY": "Invalid"}
    assert run(authorize("CP-OFFICE", tags)) == {
        "TOK-alpha": "Accepted", "FLEET-X-1": "Invalid", "FLEET-Y-1": "Invalid", "ROAM-1": "Invalid",
        "BLOCKED-1": "Blocked", "LOOSE-1": "Invalid", "NOBODY": "Invalid"}
    # the depot: Fleet X on weekdays 06:00-20:00 local; a start's own timestamp decides (offline replays)
    assert run(start("CP-DEPOT", "FLEET-X-1", "2026-03-10T09:00:00Z")) == "Accepted"  # Tue 10:00
    assert run(start("CP-DEPOT", "FLEET-X-1", "2026-03-10T20:30:00Z")) == "Invalid"  # Tue 21:30
    assert run(start("CP-DEPOT", "FLEET-X-1", "2026-03-14T09:00:00Z")) == "Invalid"  # Saturday
    assert run(start("CP-DEPOT", "FLEET-Y-1", "2026-03-10T09:00:00Z")) == "Invalid"
    assert run(start("CP-DEPOT", "TOK-alpha", "2026-03-10T09:00:00Z")) == "Invalid"
    log = _ok(oe.client.get(f"/locations/{locs['depot']}/authorizations", headers=oe.h()))["items"]
    assert [(i["id_tag"], i["status"], i["reason"]) for i in reversed(log)] == [
        ("FLEET-X-1", "Accepted", "allowed_by_rule:partner"), ("FLEET-X-1", "Invalid", "outside_allowed_hours"),
        ("FLEET-X-1", "Invalid", "outside_allowed_hours"), ("FLEET-Y-1", "Invalid", "not_allowed_here"),
        ("TOK-alpha", "Invalid", "not_allowed_here")]
    assert log[-1]["rule_id"]
    office = _ok(oe.client.get(f"/locations/{locs['office']}/authorizations", params={"status": "Blocked"},
                               headers=oe.h()))["items"]
    assert [(i["id_tag"], i["reason"]) for i in office] == [("BLOCKED-1", "token_blocked")]
    # another tenant sees nothing of it
    other = oe.client.get(f"/locations/{locs['depot']}/authorizations", headers=oe.env.b.h())
    assert other.status_code == 404


def test_remote_commands(ocpp_env: OcppEnv) -> None:
    oe = ocpp_env
    cp16 = oe.add_charger("CP-REMOTE16")
    cp201 = oe.add_charger("CP-REMOTE201")
    c, h = oe.client, oe.h()
    r = c.post(f"/charge-points/{cp16}/commands/remote-start", json={"id_tag": "TOK-alpha"}, headers=h)
    assert r.status_code == 409 and r.json()["code"] == "charge_point_not_connected"

    async def scenario() -> tuple[list[Any], list[Any], list[dict[str, Any]]]:
        async with connect(oe, "CP-REMOTE16") as ch16, connect(oe, "CP-REMOTE201", "2.0.1") as ch201:
            start = await ch16.call(call.StartTransaction(connector_id=1, id_tag="TOK-alpha", meter_start=0,
                                                          timestamp="2026-03-10T09:00:00Z"))
            await ch201.call(full_session("TX-REMOTE")[0])
            tx201 = oe.transactions("CP-REMOTE201")[0].id
            def post(path: str, body: Any) -> Any:
                return asyncio.to_thread(c.post, path, json=body, headers=h)

            replies = [
                await post(f"/charge-points/{cp16}/commands/remote-start", {"id_tag": "TOK-alpha", "connector_id": 1}),
                await post(f"/charge-points/{cp16}/commands/remote-stop", {"transaction_id": start.transaction_id}),
                await post(f"/charge-points/{cp16}/commands/change-availability",
                           {"connector_id": 1, "type": "Inoperative"}),
                await post(f"/charge-points/{cp201}/commands/remote-start", {"id_tag": "TOK-alpha"}),
                await post(f"/charge-points/{cp201}/commands/change-availability", {"type": "Operative"}),
                await post(f"/charge-points/{cp201}/commands/remote-stop", {"transaction_id": tx201}),
                # a transaction of another charger is refused before anything is sent
                await post(f"/charge-points/{cp201}/commands/remote-stop", {"transaction_id": start.transaction_id}),
            ]
            state = await asyncio.to_thread(c.get, f"/charge-points/{cp16}/ocpp", headers=h)
            return list(ch16.remote), list(ch201.remote), [r.json() | {"_s": r.status_code} for r in replies] + [
                state.json()]

    seen16, seen201, replies = run(scenario())
    assert [r["_s"] for r in replies[:7]] == [200] * 6 + [422], replies
    assert [(r["action"], r["response"].get("status")) for r in replies[:6]] == [
        ("RemoteStartTransaction", "Accepted"), ("RemoteStopTransaction", "Accepted"),
        ("ChangeAvailability", "Accepted"), ("RequestStartTransaction", "Accepted"),
        ("ChangeAvailability", "Rejected"), ("RequestStopTransaction", "Accepted")]
    assert replies[6]["code"] == "transaction_elsewhere"
    assert ("RequestStopTransaction", {"transaction_id": "TX-REMOTE"}) in seen201
    assert [a for a, _ in seen16] == ["RemoteStartTransaction", "RemoteStopTransaction", "ChangeAvailability"]
    assert seen201[0][1]["id_token"]["id_token"] == "TOK-alpha"
    assert replies[7]["connected"] is True and replies[7]["ocpp_version"] == "1.6"
