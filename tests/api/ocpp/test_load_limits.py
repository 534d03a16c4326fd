"""Load limits (issue 18) over real WebSockets, 1.6J and 2.0.1: a location's capacity shared by
priority with SetChargingProfile (TxProfile), recomputed at every start and stop, the profiles
and the chargers' answers stored and read back through the API."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import pytest
from ocpp.routing import on
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v16.enums import Action as Action16
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from ocpp.v201.enums import Action as Action201

from tests.api.conftest import _ok
from tests.api.ocpp.conftest import Charger16, Charger201, OcppEnv, connect, run

CAPACITY_KW = "30"
_n = itertools.count()


class Load16(Charger16):
    """A 1.6J charger that records the profiles it is sent and answers with ``answer``."""

    answer = "Accepted"

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.profiles: list[dict[str, Any]] = []

    @on(Action16.set_charging_profile)
    def on_set_charging_profile(self, connector_id: int, cs_charging_profiles: dict[str, Any]) -> Any:
        self.profiles.append({"connector_id": connector_id, **cs_charging_profiles})
        return result16.SetChargingProfile(status=self.answer)


class Rejecting16(Load16):
    answer = "Rejected"


class Load201(Charger201):
    answer = "Accepted"

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.profiles: list[dict[str, Any]] = []

    @on(Action201.set_charging_profile)
    def on_set_charging_profile(self, evse_id: int, charging_profile: dict[str, Any], **kw: Any) -> Any:
        self.profiles.append({"evse_id": evse_id, **charging_profile})
        return result201.SetChargingProfile(status=self.answer)


class Rejecting201(Load201):
    answer = "Rejected"


def _site(oe: OcppEnv, capacity_kw: str | None) -> str:
    c, h = oe.client, oe.h()
    n = next(_n)
    body: dict[str, Any] = {"code": f"load_{n}", "name": f"Depot {n}", "country": "DE", "timezone": "Europe/Berlin",
                            "ruleset_id": oe.ids["ruleset_id"]}
    if capacity_kw is not None:
        body["capacity_kw"] = capacity_kw
    loc = _ok(c.post("/locations", json=body, headers=h))["id"]
    _ok(c.post("/access-rules", json={"location_id": loc, "subject": "anyone"}, headers=h))
    return str(loc)


def _tokens(oe: OcppEnv) -> dict[str, str]:
    """A partner fleet's tokens (priority 10) and one of the tenant's own contract tokens (0)."""
    c, h = oe.client, oe.h()
    if "load_partner" not in oe.ids:
        oe.ids["load_partner"] = _ok(c.post("/partners", json={"kind": "fleet", "name": "Partner fleet"},
                                            headers=h))["id"]
        for uid in ("PARTNER-1", "PARTNER-2"):
            _ok(c.post("/tokens", json={"uid": uid, "issuing_partner_id": oe.ids["load_partner"]}, headers=h))
        _ok(c.post("/tokens", json={"uid": "FLEET-OWN-1", "contract_id": oe.ids["contract_id"]}, headers=h))
    return {"p1": "PARTNER-1", "p2": "PARTNER-2", "own": "FLEET-OWN-1"}


@pytest.fixture(params=["package", "direct"])
def frames(request: pytest.FixtureRequest, ocpp_env: OcppEnv) -> Iterator[str]:
    """How the gateway sends SetChargingProfile: through the package's ``call`` (request and answer
    validated, ``validate_responses``) or as frames it builds itself (production's default); -> a
    suffix for the chargers' identities."""
    settings = ocpp_env.gw.settings
    old = settings.validate_responses
    settings.validate_responses = request.param == "package"
    try:
        yield "" if request.param == "package" else "D"
    finally:
        settings.validate_responses = old


def _limits(cp: Any, purpose: str = "TxProfile", unit: str = "W") -> list[float]:
    """The limits a charger was sent as ``purpose`` profiles (W, or ``unit``), in order."""
    out = []
    for p in cp.profiles:
        if p["charging_profile_purpose"] != purpose:
            continue
        sched = p["charging_schedule"]
        sched = sched[0] if isinstance(sched, list) else sched
        assert sched["charging_rate_unit"] == unit
        out.append(float(sched["charging_schedule_period"][0]["limit"]))
    return out


async def _idle(oe: OcppEnv) -> None:
    # the gateway's loop is another thread; ours must keep running so the chargers answer
    await asyncio.get_running_loop().run_in_executor(None, oe.idle)


class Station:
    """One charger at the site, driving 1.6J or 2.0.1 transactions."""

    def __init__(self, oe: OcppEnv, ident: str, version: str, cp: Any) -> None:
        self.oe, self.ident, self.version, self.cp = oe, ident, version, cp
        self.tx: Any = None
        self.seq = 0

    async def start(self, tag: str, at: str) -> None:
        if self.version == "1.6":
            res = await self.cp.call(call16.StartTransaction(connector_id=1, id_tag=tag, meter_start=0, timestamp=at))
            self.tx = res.transaction_id
            return
        self.tx = f"TX-{self.ident}-{self.seq}"
        await self.cp.call(call201.TransactionEvent(
            event_type="Started", timestamp=at, trigger_reason="Authorized", seq_no=self.seq,
            transaction_info={"transaction_id": self.tx}, id_token={"id_token": tag, "type": "ISO14443"},
            evse={"id": 1, "connector_id": 1}))
        self.seq += 1

    async def stop(self, at: str) -> None:
        if self.version == "1.6":
            await self.cp.call(call16.StopTransaction(meter_stop=5000, timestamp=at, transaction_id=self.tx))
            return
        await self.cp.call(call201.TransactionEvent(
            event_type="Ended", timestamp=at, trigger_reason="EVCommunicationLost", seq_no=self.seq,
            transaction_info={"transaction_id": self.tx, "stopped_reason": "EVDisconnected"}))
        self.seq += 1


@contextlib.asynccontextmanager
async def stations(oe: OcppEnv, version: str, specs: list[tuple[str, type]]) -> AsyncIterator[list[Station]]:
    async with contextlib.AsyncExitStack() as stack:
        out = []
        for ident, cls in specs:
            cp = await stack.enter_async_context(connect(oe, ident, version, charger=cls))
            out.append(Station(oe, ident, version, cp))
        yield out


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_capacity_shared_by_priority(ocpp_env: OcppEnv, version: str, frames: str) -> None:
    oe = ocpp_env
    tag = _tokens(oe)
    loc = _site(oe, CAPACITY_KW)
    v = version.replace(".", "") + frames
    idents = [f"LOAD{v}-A", f"LOAD{v}-B", f"LOAD{v}-C"]
    for ident in idents:
        oe.add_charger(ident, location_id=loc)  # each one EVSE of 22 kW
    load_cls = Load16 if version == "1.6" else Load201

    async def scenario() -> tuple[list[list[float]], Any]:
        async with stations(oe, version, [(idents[0], load_cls), (idents[1], load_cls),
                                          (idents[2], load_cls)]) as (a, b, c):
            # one partner session alone: 22 kW fit in 30 kW, no profile
            await a.start(tag["p1"], "2026-03-10T08:00:00Z")
            await _idle(oe)
            assert _limits(a.cp) == []
            # a second partner session: the two share 30 kW equally
            await b.start(tag["p2"], "2026-03-10T08:05:00Z")
            await _idle(oe)
            assert _limits(a.cp) == [15000] and _limits(b.cp) == [15000]
            # the depot owner's fleet (priority 0) takes its 22 kW from them; it needs no profile itself
            await c.start(tag["own"], "2026-03-10T08:10:00Z")
            await _idle(oe)
            assert _limits(a.cp) == [15000, 4000] and _limits(b.cp) == [15000, 4000]
            assert _limits(c.cp) == []
            alloc = _ok(oe.client.get(f"/locations/{loc}/load", headers=oe.h()))
            # the fleet stops: its share goes back
            await c.stop("2026-03-10T09:00:00Z")
            await _idle(oe)
            assert _limits(a.cp) == [15000, 4000, 15000] and _limits(b.cp) == [15000, 4000, 15000]
            # profiles name the transaction, as the version spells it
            p = a.cp.profiles[-1]
            if version == "1.6":
                assert p["transaction_id"] == a.tx and p["connector_id"] == 1 and p["stack_level"] == 0
            else:
                assert p["transaction_id"] == a.tx and p["evse_id"] == 1
                assert p["charging_schedule"][0]["charging_schedule_period"] == [{"start_period": 0, "limit": 15000}]
            # a stops: b is alone and gets its EVSE's maximum back
            await a.stop("2026-03-10T10:00:00Z")
            await _idle(oe)
            assert _limits(b.cp) == [15000, 4000, 15000, 22000] and len(_limits(a.cp)) == 3
            await b.stop("2026-03-10T10:00:00Z")
            await _idle(oe)
            return [_limits(s.cp) for s in (a, b, c)], alloc

    limits, alloc = run(scenario())
    assert limits == [[15000, 4000, 15000], [15000, 4000, 15000, 22000], []]
    assert alloc["capacity_kw"] == "30"
    by_cp = {s["charge_point_id"]: s for s in alloc["sessions"]}
    assert {by_cp[oe.ids[i]]["limit_kw"] for i in idents[:2]} == {"4"}
    assert by_cp[oe.ids[idents[2]]]["limit_kw"] is None and by_cp[oe.ids[idents[2]]]["max_power_kw"] == "22"
    assert alloc["allocated_kw"] == "30"
    hist = _ok(oe.client.get(f"/locations/{loc}/load/history", params={"limit": 200}, headers=oe.h()))["items"]
    assert all(h["status"] == "Accepted" and h["answered_at"] for h in hist)
    # (the TxDefaultProfiles, sent when the location was created with its capacity to chargers
    # connected by then, are the next test's)
    hist = [h for h in hist if h["purpose"] == "TxProfile"]
    assert [h["reason"] for h in reversed(hist)] == ["session_started"] * 4 + ["session_stopped"] * 3
    assert [h["limit_kw"] for h in reversed(hist)][-3:] == ["15", "15", "22"]
    assert {(h["priority"], h["capacity_kw"]) for h in hist} == {(10, "30")}
    # nothing runs any more: the allocation is empty
    assert _ok(oe.client.get(f"/locations/{loc}/load", headers=oe.h()))["sessions"] == []


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_rejected_answer_stored_and_no_capacity_no_profiles(ocpp_env: OcppEnv, version: str, frames: str) -> None:
    oe = ocpp_env
    tag = _tokens(oe)
    v = version.replace(".", "") + frames
    limited, free = _site(oe, "20"), _site(oe, None)
    oe.add_charger(f"REJ{v}-A", location_id=limited)
    oe.add_charger(f"REJ{v}-B", location_id=limited)
    oe.add_charger(f"FREE{v}-A", location_id=free)
    oe.add_charger(f"FREE{v}-B", location_id=free)
    load_cls, rejecting = (Load16, Rejecting16) if version == "1.6" else (Load201, Rejecting201)

    async def scenario() -> None:
        async with stations(oe, version, [(f"REJ{v}-A", load_cls), (f"REJ{v}-B", rejecting),
                                          (f"FREE{v}-A", load_cls), (f"FREE{v}-B", load_cls)]) as (a, b, fa, fb):
            await a.start(tag["p1"], "2026-03-11T08:00:00Z")
            await b.start(tag["p2"], "2026-03-11T08:00:05Z")
            await fa.start(tag["p1"], "2026-03-11T08:00:00Z")
            await fb.start(tag["p2"], "2026-03-11T08:00:05Z")
            await _idle(oe)
            assert _limits(a.cp)[-1] == 10000 and _limits(b.cp)[-1] == 10000
            # no capacity at the other site: nothing is limited there
            assert fa.cp.profiles == [] and fb.cp.profiles == []
            for s in (a, b, fa, fb):
                await s.stop("2026-03-11T09:00:00Z")
            await _idle(oe)

    run(scenario())
    hist = _ok(oe.client.get(f"/locations/{limited}/load/history", headers=oe.h()))["items"]
    by_cp = {}
    for h in reversed([h for h in hist if h["purpose"] == "TxProfile"]):
        by_cp.setdefault(h["charge_point_id"], []).append(h)
    # (a alone may have been sent 20 kW first, when its start was recomputed before b's)
    # (and b, when a's stop was recomputed before its own, 20 kW alone)
    first_b = by_cp[oe.ids[f"REJ{v}-B"]][0]
    assert (first_b["status"], first_b["limit_kw"]) == ("Rejected", "10")
    assert {x["status"] for x in by_cp[oe.ids[f"REJ{v}-B"]]} == {"Rejected"}
    assert by_cp[oe.ids[f"REJ{v}-A"]][-1]["status"] == "Accepted"
    assert by_cp[oe.ids[f"REJ{v}-A"]][-1]["limit_kw"] == "10"
    assert _ok(oe.client.get(f"/locations/{free}/load/history", headers=oe.h()))["items"] == []
    free_alloc = _ok(oe.client.get(f"/locations/{free}/load", headers=oe.h()))
    assert free_alloc["capacity_kw"] is None and free_alloc["sessions"] == []


def test_capacity_validated(ocpp_env: OcppEnv) -> None:
    oe = ocpp_env
    c, h = oe.client, oe.h()
    base = {"name": "Bad", "country": "DE", "timezone": "Europe/Berlin"}
    for bad in ("0", "-5", "2000000", "abc"):
        r = c.post("/locations", json={**base, "capacity_kw": bad}, headers=h)
        assert 400 <= r.status_code < 500, (bad, r.status_code, r.text)
    loc = _site(oe, "50")
    assert _ok(c.get(f"/locations/{loc}", headers=h))["capacity_kw"] == "50"
    r = c.patch(f"/locations/{loc}", json={"capacity_kw": "0"}, headers=h)
    assert r.status_code == 422 and r.json()["code"] == "invalid_capacity"
    _ok(c.patch(f"/locations/{loc}", json={"capacity_kw": None}, headers=h))
    assert _ok(c.get(f"/locations/{loc}", headers=h))["capacity_kw"] is None
    r = c.get(f"/locations/{loc}/load/history", params={"cursor": "nope"}, headers=h)
    assert r.status_code == 422
    # another tenant sees nothing of it
    assert c.get(f"/locations/{loc}/load", headers=oe.env.b.h()).status_code == 404


def test_capacity_set_and_removed_through_the_api_applies_at_once(ocpp_env: OcppEnv) -> None:
    oe = ocpp_env
    tag = _tokens(oe)
    loc = _site(oe, None)
    oe.add_charger("CAPCHG-A", location_id=loc)
    oe.add_charger("CAPCHG-B", location_id=loc)

    async def patch(capacity: str | None) -> None:
        def go() -> None:
            _ok(oe.client.patch(f"/locations/{loc}", json={"capacity_kw": capacity}, headers=oe.h()))
            oe.idle()
        await asyncio.get_running_loop().run_in_executor(None, go)

    async def scenario() -> list[list[float]]:
        async with stations(oe, "1.6", [("CAPCHG-A", Load16), ("CAPCHG-B", Load16)]) as (a, b):
            await a.start(tag["p1"], "2026-03-12T08:00:00Z")
            await b.start(tag["p2"], "2026-03-12T08:00:05Z")
            await _idle(oe)
            assert a.cp.profiles == [] and b.cp.profiles == []  # no capacity: no limits
            await patch("16")  # the site's connection is 16 kW after all: 8 kW each, at once
            assert _limits(a.cp) == [8000] and _limits(b.cp) == [8000]
            await patch(None)  # removed: both get their EVSE's maximum back
            out = [_limits(a.cp), _limits(b.cp)]
            # and a TxDefaultProfile each time: the capacity over the location's two EVSEs, then the maximum
            out += [_limits(a.cp, "TxDefaultProfile"), _limits(b.cp, "TxDefaultProfile")]
            await a.stop("2026-03-12T09:00:00Z")
            await b.stop("2026-03-12T09:00:00Z")
            await _idle(oe)
            return out

    assert run(scenario()) == [[8000, 22000]] * 4
    hist = _ok(oe.client.get(f"/locations/{loc}/load/history", headers=oe.h()))["items"]
    assert sorted((h["purpose"], h["reason"], h["capacity_kw"] or "", h["limit_kw"]) for h in hist) == sorted(
        [("TxProfile", "capacity_changed", "", "22")] * 2 + [("TxProfile", "capacity_changed", "16", "8")] * 2
        + [("TxDefaultProfile", "capacity_changed", "", "22")] * 2
        + [("TxDefaultProfile", "capacity_changed", "16", "8")] * 2)
    assert {(h["transaction_id"], h["priority"], h["connector_id"]) for h in hist
            if h["purpose"] == "TxDefaultProfile"} == {(None, None, 0)}


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
@pytest.mark.parametrize("limit", ["14900", "7400.5"])
def test_profile_frame_is_the_packages_and_valid(version: str, limit: str) -> None:
    """The gateway builds SetChargingProfile's JSON itself (load limits' fast path): it is what the
    package makes of ``profile_payload`` and passes the version's schema."""
    from ocpp.charge_point import remove_nones, serialize_as_dict, snake_to_camel_case
    from ocpp.messages import MessageType, get_validator

    from api.ocpp.load import profile_payload, profile_request

    args = (version, 41, "41" if version == "1.6" else "tx-41", 2, Decimal(limit))
    # in W; in A on three phases; a TxDefaultProfile for every connector, no transaction
    for kw in ({}, {"unit": "A", "phases": 3}, {"purpose": "TxDefaultProfile"}):
        frame = profile_request(*args, **kw)  # type: ignore[arg-type]
        assert frame == remove_nones(snake_to_camel_case(serialize_as_dict(profile_payload(*args, **kw))))
        # as the package validates a frame: JSON numbers with a fraction read as Decimal
        wire = json.loads(json.dumps([2, "1", "SetChargingProfile", frame]), parse_float=Decimal)
        get_validator(MessageType.Call, "SetChargingProfile", version).validate(wire[3])
        profile = frame.get("chargingProfile") or frame["csChargingProfiles"]
        assert ("transactionId" in profile) == (kw.get("purpose") is None)


class Amp16(Load16):
    """A 1.6J charger whose charging profiles take only amperes: it says so when asked
    (``ChargingScheduleAllowedChargingRateUnit`` = Current) and rejects a profile in W."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.asked = 0

    @on(Action16.get_configuration)
    def on_get_configuration(self, key: list[str] | None = None) -> Any:
        self.asked += 1
        return result16.GetConfiguration(configuration_key=[
            {"key": "ChargingScheduleAllowedChargingRateUnit", "readonly": True, "value": "Current"}])

    @on(Action16.set_charging_profile)
    def on_set_charging_profile(self, connector_id: int, cs_charging_profiles: dict[str, Any]) -> Any:
        self.profiles.append({"connector_id": connector_id, **cs_charging_profiles})
        unit = cs_charging_profiles["charging_schedule"]["charging_rate_unit"]
        return result16.SetChargingProfile(status="Accepted" if unit == "A" else "Rejected")


class Amp201(Load201):
    """The 2.0.1 charger of ``Amp16``: ``SmartChargingCtrlr.RateUnit`` is A."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.asked = 0

    @on(Action201.get_variables)
    def on_get_variables(self, get_variable_data: list[dict[str, Any]], **kw: Any) -> Any:
        self.asked += 1
        return result201.GetVariables(get_variable_result=[
            {"attribute_status": "Accepted", "attribute_value": "A", "component": d["component"],
             "variable": d["variable"]} for d in get_variable_data])

    @on(Action201.set_charging_profile)
    def on_set_charging_profile(self, evse_id: int, charging_profile: dict[str, Any], **kw: Any) -> Any:
        self.profiles.append({"evse_id": evse_id, **charging_profile})
        unit = charging_profile["charging_schedule"][0]["charging_rate_unit"]
        return result201.SetChargingProfile(status="Accepted" if unit == "A" else "Rejected")


def _phases(cp: Any) -> set[Any]:
    out = set()
    for p in cp.profiles:
        sched = p["charging_schedule"]
        sched = sched[0] if isinstance(sched, list) else sched
        out.add(sched["charging_schedule_period"][0].get("number_phases"))
    return out


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_amperes_for_chargers_that_take_only_amperes_and_defaults_at_boot(ocpp_env: OcppEnv, version: str,
                                                                         frames: str) -> None:
    """Chargers that accept only A are asked once after they boot and get their limits in A (the
    watts over 3 phases x 230 V, a tenth of an ampere rounded down); a W charger at the same site
    keeps W. At boot each gets a TxDefaultProfile: the capacity over the location's EVSEs. Summed
    back in watts, what they were sent never exceeds the capacity."""
    oe = ocpp_env
    tag = _tokens(oe)
    loc = _site(oe, CAPACITY_KW)
    oe.idle()  # the location's first recompute (its capacity) is done before chargers connect
    v = version.replace(".", "") + frames
    idents = [f"AMP{v}-A", f"AMP{v}-B", f"AMP{v}-W"]
    for ident in idents:
        oe.add_charger(ident, location_id=loc)  # each one EVSE of 22 kW
    amp, watt = (Amp16, Load16) if version == "1.6" else (Amp201, Load201)

    async def boot(s: Station) -> None:
        if version == "1.6":
            await s.cp.call(call16.BootNotification(charge_point_vendor="Test", charge_point_model="Amp"))
        else:
            await s.cp.call(call201.BootNotification(charging_station={"vendor_name": "Test", "model": "Amp"},
                                                     reason="PowerUp"))

    async def scenario() -> dict[str, Any]:
        async with stations(oe, version, [(idents[0], amp), (idents[1], amp), (idents[2], watt)]) as (a, b, w):
            for s in (a, b, w):
                await boot(s)
            await _idle(oe)
            out: dict[str, Any] = {"defaults": [_limits(a.cp, "TxDefaultProfile", "A"),
                                                _limits(b.cp, "TxDefaultProfile", "A"),
                                                _limits(w.cp, "TxDefaultProfile")]}
            await a.start(tag["p1"], "2026-03-13T08:00:00Z")
            await b.start(tag["p2"], "2026-03-13T08:00:05Z")
            await _idle(oe)
            out["shared"] = [_limits(a.cp, unit="A"), _limits(b.cp, unit="A")]
            await w.start(tag["own"], "2026-03-13T08:10:00Z")  # the fleet takes its 22 kW from the partners
            await _idle(oe)
            out["fleet"] = [_limits(a.cp, unit="A"), _limits(b.cp, unit="A"), _limits(w.cp)]
            out["asked"] = [a.cp.asked, b.cp.asked]
            out["phases"] = _phases(a.cp) | _phases(b.cp)
            out["state"] = _ok(oe.client.get(f"/charge-points/{oe.ids[idents[0]]}/ocpp", headers=oe.h()))
            for s in (a, b, w):
                await s.stop("2026-03-13T09:00:00Z")
            await _idle(oe)
            return out

    out = run(scenario())
    # 30 kW over three EVSEs: 10 kW each by default, 14.4 A on three phases (14.49 A rounded down)
    assert out["defaults"] == [[14.4], [14.4], [10000]]
    # two partners share 30 kW: 15 kW, 21.7 A; then 4 kW each, 5.7 A, beside the fleet's 22 kW
    assert out["shared"] == [[21.7], [21.7]]
    assert out["fleet"] == [[21.7, 5.7], [21.7, 5.7], []]
    assert out["asked"] == [1, 1] and out["phases"] == {3}
    assert out["state"]["rate_units"] == "A"
    hist = _ok(oe.client.get(f"/locations/{loc}/load/history", params={"limit": 200}, headers=oe.h()))["items"]
    assert all(h["status"] == "Accepted" for h in hist)
    amp_rows = [h for h in hist if h["charge_point_id"] != oe.ids[idents[2]]]
    assert {(h["rate_unit"], h["phases"], h["voltage_v"]) for h in amp_rows} == {("A", 3, 230)}
    assert {h["rate_unit"] for h in hist if h["charge_point_id"] == oe.ids[idents[2]]} == {"W"}
    # what the chargers were sent, summed back in watts, at every step: within the capacity
    assert Decimal("5.7") * 690 * 2 + 22000 <= Decimal(CAPACITY_KW) * 1000
    assert Decimal("21.7") * 690 * 2 <= Decimal(CAPACITY_KW) * 1000
    defaults = [h for h in hist if h["purpose"] == "TxDefaultProfile"]
    assert sorted((h["limit_kw"], h["limit_a"] or "", h["reason"]) for h in defaults) == [
        ("10", "", "charger_booted"), ("10", "14.4", "charger_booted"), ("10", "14.4", "charger_booted")]
