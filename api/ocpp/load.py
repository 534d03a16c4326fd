"""Load limits at the gateway (issue 18): a location's capacity shared among its running sessions
and enforced with charging profiles (1.6J and 2.0.1 ``SetChargingProfile``, purpose TxProfile).

Off the hot path: a start or stop only marks its location (``started``/``stopped``, no I/O) and
the charger gets its answer at once; a task per location recomputes a moment later, once for
whatever arrived meanwhile (a burst of starts is one recompute, not hundreds). The location's
running sessions are kept in memory after the first recompute, so a recompute reads only the
sessions that just started (and the capacity; a change through the API recomputes at once,
``notify_capacity_change``). ``runtime.load.allocate`` gives the limits; a
profile goes only to a session whose limit changed, decreases first (their answers awaited)
then increases, so the sum of what chargers were told stays under the capacity while limits
move; an increase under ``deadband_w`` waits while those waiting leave at most
``deadband_share`` of the capacity unused (``runtime.load.plan_changes``). Every profile sent
and every answer is stored (``store.load.ChargingLimit``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ocpp.charge_point import camel_to_snake_case
from ocpp.messages import MessageType
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from api.ocpp.priority import session_priorities
from runtime.load import Demand, allocate, amperes, electrical, plan_changes
from store.load import (
    SiteCharger,
    capacity_w,
    default_capacity_w,
    record_answers,
    record_limits,
    running_sessions,
    set_rate_units,
    site_chargers,
)

if TYPE_CHECKING:
    from api.ocpp.server import Gateway

__all__ = ["DEFAULT_PROFILE_ID", "MIN_RATE_W", "LoadManager", "LoadStats", "ask_rate_units", "notify_capacity_change",
           "parse_rate_units", "profile_payload", "profile_request"]

log = logging.getLogger("evbill.ocpp.load")

# below these a car stops charging (IEC 61851: 6 A on one phase for AC); a session that cannot get
# its minimum is paused (limit 0) rather than given a rate it cannot use
MIN_RATE_W = {"AC": Decimal(1380), "DC": Decimal(1000)}
# the TxDefaultProfile's id at every charger: far above the TxProfiles' (transaction ids), so a
# TxProfile never replaces it (a SetChargingProfile replaces the profile of the same id)
DEFAULT_PROFILE_ID = 2_000_000_000
RATE_UNIT_KEY_16 = "ChargingScheduleAllowedChargingRateUnit"


@dataclass
class LoadStats:
    recomputes: int = 0
    profiles_sent: int = 0
    allocate_s: float = 0.0
    max_allocate_s: float = 0.0
    recompute_s: float = 0.0
    max_sessions: int = 0
    increases_held: int = 0  # small increases not sent (the deadband)


@dataclass
class _Running:
    tx_id: int
    tenant_id: str
    charge_point_id: str
    identity: str
    version: str
    ref: str
    connector_id: int
    evse_uid: str
    priority: int
    max_w: Decimal
    min_w: Decimal
    power_type: str = "AC"
    rate_units: str = ""  # as stored when it started (the manager's ``units`` is newer)
    sent_w: Decimal | None = None  # the last limit sent (None: none, it charges at its maximum)


@dataclass(frozen=True, slots=True)
class _Profile:
    """One SetChargingProfile to send: a TxProfile of a running session or a charger's TxDefaultProfile."""

    tenant_id: str
    charge_point_id: str
    identity: str
    version: str
    connector_id: int
    evse_uid: str
    power_type: str
    rate_units: str
    tx_id: int | None = None  # None: a TxDefaultProfile
    ref: str = ""
    priority: int | None = None


@dataclass
class _Site:
    location_id: str
    loaded: bool = False
    capacity_w: Decimal | None = None
    sessions: dict[int, _Running] = field(default_factory=dict)
    new: set[int] = field(default_factory=set)
    gone: set[int] = field(default_factory=set)
    booted: set[str] = field(default_factory=set)  # charge points that booted: their TxDefaultProfile
    reasons: set[str] = field(default_factory=set)
    dirty: bool = False
    task: asyncio.Task[Any] | None = None


class LoadManager:
    def __init__(self, gw: Gateway, *, step_w: Decimal = Decimal(100), linger_s: float = 0.05,
                 min_interval_s: float = 0.5, chunk: int = 50, deadband_w: Decimal = Decimal(1000),
                 deadband_share: Decimal = Decimal("0.02")) -> None:
        self.gw = gw
        self.step_w = step_w
        self.linger_s = linger_s  # a start's answer goes out first; starts meanwhile share the recompute
        self.min_interval_s = min_interval_s  # between recomputes of one location during a burst
        self.chunk = chunk  # profiles stored and sent together
        # increases below deadband_w are not sent while all those held back leave at most
        # deadband_share of the capacity unused (runtime.load.plan_changes): a car cannot follow a
        # few hundred watts (AC: 1 A per phase is 690 W) and a site-wide burst of +100 W profiles
        # only delays chargers' answers; decreases are always sent
        self.deadband_w = deadband_w
        self.deadband_share = deadband_share
        self.sites: dict[str, _Site] = {}
        self.stats = LoadStats()
        # charge point id -> the rate units it said it accepts ("A", "W", "A,W", "?": no usable
        # answer), asked at its first profile since it booted and stored (``OcppChargePointState``)
        self.units: dict[str, str] = {}
        self._asking: dict[str, asyncio.Future[str]] = {}

    # --- events (called by the protocol handlers; no I/O here) -----------------------------------

    def started(self, location_id: str | None, tx_id: int) -> None:
        if location_id:
            site = self._site(location_id)
            site.new.add(tx_id)
            site.gone.discard(tx_id)
            self._kick(site, "session_started")

    def stopped(self, location_id: str | None, tx_id: int) -> None:
        if location_id:
            # a site not tracked yet (the gateway restarted): its first recompute loads what runs
            site = self._site(location_id)
            site.gone.add(tx_id)
            site.new.discard(tx_id)
            self._kick(site, "session_stopped")

    def capacity_changed(self, location_id: str) -> None:
        """The location's capacity was set, changed or removed through the API."""
        self._kick(self._site(location_id), "capacity_changed")

    def booted(self, location_id: str | None, charge_point_id: str) -> None:
        """A charger booted (its BootNotification answered): its rate units are asked again at its
        next profile, and at a location with a capacity it gets its TxDefaultProfile."""
        self.units[charge_point_id] = ""  # not known since the boot, whatever was stored before
        if location_id:
            site = self._site(location_id)
            site.booted.add(charge_point_id)
            self._kick(site, "charger_booted")

    def _site(self, location_id: str) -> _Site:
        site = self.sites.get(location_id)
        if site is None:
            site = self.sites[location_id] = _Site(location_id)
        return site

    def _kick(self, site: _Site, reason: str) -> None:
        site.reasons.add(reason)
        site.dirty = True
        if site.task is None or site.task.done():
            site.task = self.gw._spawn(self._run(site))

    async def _run(self, site: _Site) -> None:
        await asyncio.sleep(self.linger_s)
        while site.dirty:
            site.dirty = False
            t0 = time.perf_counter()
            try:
                await self._recompute(site)
            except Exception:
                log.exception("load limits at %s: recompute failed", site.location_id)
            self.stats.recompute_s += time.perf_counter() - t0
            if site.dirty:
                await asyncio.sleep(self.min_interval_s)

    # --- the recompute ---------------------------------------------------------------------------

    async def _recompute(self, site: _Site) -> None:
        new, gone, reasons, booted = site.new, site.gone, site.reasons, site.booted
        site.new, site.gone, site.reasons, site.booted = set(), set(), set(), set()
        loaded = site.loaded
        loc = site.location_id
        everyone = "capacity_changed" in reasons
        defaults: tuple[int, list[SiteCharger]] | None = None

        def read(db: Any) -> tuple[Decimal | None, list[tuple[Any, int]] | None]:
            nonlocal defaults
            cap = capacity_w(db, loc)
            if booted and cap is not None:
                defaults = site_chargers(db, loc, sorted(booted))  # the chargers that booted: their default
            if everyone:
                # all chargers at the location, when the capacity differs from the one the last
                # defaults were computed from (set, changed, or removed after defaults were sent)
                sent, last = default_capacity_w(db, loc)
                if (cap is not None and (not sent or last != cap)) or (cap is None and last is not None):
                    defaults = site_chargers(db, loc)
            if cap is None and not loaded:
                return None, None  # no capacity here: nothing to track (the common case)
            rows = running_sessions(db, loc, None if not loaded else sorted(new)) if (new or not loaded) else []
            # who is served first: the depot owner's fleet, partners, ad hoc, or an access rule's
            # session_priority (api.ocpp.priority), with the rules' windows read now; in one pass per
            # tenant (a location has one), not queries per session: this runs on the gateway's loop
            now = datetime.now(UTC)
            prio: dict[int, int] = {}
            for tenant in {r.tenant_id for r in rows}:
                mine = [r for r in rows if r.tenant_id == tenant]
                prio.update(zip((r.tx_id for r in mine), session_priorities(
                    db, tenant, location_id=loc, sessions=[(r.id_tag, r.evse_uid) for r in mine], at=now)))
            return cap, [(r, prio[r.tx_id]) for r in rows]

        try:
            cap, rows = await self.gw.db.read(read)
        except Exception:
            # nothing was applied: the next recompute takes these again
            site.new |= new - site.gone
            site.gone |= gone
            raise
        site.capacity_w = cap
        if defaults is not None:
            await self._send_defaults(site, cap, *defaults, "capacity_changed" if everyone else "charger_booted")
        if rows is None:
            return
        site.loaded = True
        for r, prio in rows:
            if r.tx_id in site.sessions:
                continue
            max_w = r.max_power_kw * 1000 if r.max_power_kw is not None else (cap or Decimal(0))
            site.sessions[r.tx_id] = _Running(r.tx_id, r.tenant_id, r.charge_point_id, r.identity, r.ocpp_version,
                                              r.transaction_ref, r.connector_id, r.evse_uid, prio, max_w,
                                              MIN_RATE_W.get(r.power_type, Decimal(0)), r.power_type, r.rate_units)
        for tx_id in gone:
            site.sessions.pop(tx_id, None)
        running = list(site.sessions.values())
        self.stats.recomputes += 1
        self.stats.max_sessions = max(self.stats.max_sessions, len(running))
        t0 = time.perf_counter()
        if cap is None:
            # the capacity was removed: sessions that were limited get their maximum back
            targets = {s.tx_id: s.max_w for s in running if s.sent_w is not None}
        else:
            targets = allocate(cap, [Demand(s.tx_id, s.priority, s.max_w, s.min_w) for s in running], self.step_w)
        dt = time.perf_counter() - t0
        self.stats.allocate_s += dt
        self.stats.max_allocate_s = max(self.stats.max_allocate_s, dt)
        # what each charger has now: the last limit sent, or its maximum (no profile yet)
        by_id = {s.tx_id: s for s in running}
        plan = plan_changes(cap, [(s.tx_id, s.sent_w if s.sent_w is not None else (s.max_w // self.step_w) * self.step_w,
                                   targets[s.tx_id]) for s in running if s.tx_id in targets],
                            self.deadband_w, self.deadband_share)
        self.stats.increases_held += len(plan.held)
        down = [(by_id[k], t) for k, t in plan.down]  # type: ignore[index]
        up = [(by_id[k], t) for k, t in plan.up]  # type: ignore[index]
        reason = ("session_started" if "session_started" in reasons else
                  "session_stopped" if "session_stopped" in reasons else
                  "charger_booted" if "charger_booted" in reasons else "capacity_changed")
        # decreases first: what the others gain must be free before they take it
        await self._send(site, down, cap, reason)
        await self._send(site, up, cap, reason)

    async def _send_defaults(self, site: _Site, cap: Decimal | None, evses: int, chargers: list[SiteCharger],
                             reason: str) -> None:
        """TxDefaultProfiles (connector / EVSE 0: each of the charger's connectors) so that a session
        starting before its own TxProfile arrives draws no more than an equal share of the capacity
        among the location's EVSEs (capped at the charger's largest EVSE): with every EVSE charging
        at its default, the sum is the capacity. The capacity removed: the EVSE's maximum."""
        items = []
        for c in chargers:
            version = self.gw.version_of(c.identity)
            if version is None:
                continue  # not connected here: it gets its default when it boots
            if cap is None:
                limit = c.max_w
            else:
                share = (cap / max(evses, 1) // self.step_w) * self.step_w
                limit = min(share, c.max_w) if c.max_w > 0 else share
            p = _Profile(c.tenant_id, c.charge_point_id, c.identity, version, 0, "", c.power_type, c.rate_units)
            items.append((p, limit))
        for k in range(0, len(items), self.chunk):
            await self._send_profiles(site, items[k:k + self.chunk], cap, reason)

    async def _send(self, site: _Site, items: list[tuple[_Running, Decimal]], cap: Decimal | None,
                    reason: str) -> None:
        # in chunks: a site-wide change is thousands of rows and calls, and every database job of
        # the gateway (on SQLite run on its loop) delays chargers' answers while it runs
        for k in range(0, len(items), self.chunk):
            await self._send_chunk(site, items[k:k + self.chunk], cap, reason)

    async def _send_chunk(self, site: _Site, items: list[tuple[_Running, Decimal]], cap: Decimal | None,
                          reason: str) -> None:
        # sessions that stopped while earlier chunks were out get nothing (the next recompute
        # hands their share on)
        items = [(s, t) for s, t in items if s.tx_id not in site.gone and s.tx_id in site.sessions]
        if not items:
            return
        for s, target in items:
            s.sent_w = target  # sent once per change, whatever the answer (a refusal is stored, not retried)
        await self._send_profiles(site, [(_Profile(s.tenant_id, s.charge_point_id, s.identity, s.version,
                                                   s.connector_id, s.evse_uid, s.power_type, s.rate_units, s.tx_id,
                                                   s.ref, s.priority), t) for s, t in items], cap, reason)

    async def _send_profiles(self, site: _Site, items: list[tuple[_Profile, Decimal]], cap: Decimal | None,
                             reason: str) -> None:
        # chargers whose rate unit is not known since they booted are asked first (once each)
        ask = {p.charge_point_id: p for p, _ in items if not self._known(p)}
        if ask:
            said = await asyncio.gather(*(self._units_of(p) for p in ask.values()))
            heard = [(cp, u) for cp, u in zip(ask, said) if u]
            await self.gw.db.write(lambda db: set_rate_units(db, heard))
        rows, reqs = [], []
        for p, target in items:
            unit = "A" if self._known(p) == "A" else "W"
            phases, volts = electrical(p.power_type) if unit == "A" else (None, None)
            limit_a = amperes(target, phases, volts) if phases and volts else None
            default = p.tx_id is None
            rows.append({"tenant_id": p.tenant_id, "location_id": site.location_id, "transaction_id": p.tx_id,
                         "charge_point_id": p.charge_point_id, "evse_uid": p.evse_uid[:64],
                         "connector_id": p.connector_id, "profile_id": DEFAULT_PROFILE_ID if default else p.tx_id,
                         "priority": p.priority, "limit_w": target, "capacity_w": cap, "reason": reason,
                         "purpose": "TxDefaultProfile" if default else "TxProfile", "rate_unit": unit,
                         "limit_a": limit_a, "phases": phases, "voltage_v": volts})
            reqs.append(profile_request(p.version, DEFAULT_PROFILE_ID if default else p.tx_id or 0, p.ref,
                                        p.connector_id, limit_a if limit_a is not None else target, unit=unit,
                                        phases=phases, purpose="TxDefaultProfile" if default else "TxProfile"))
        ids = await self.gw.db.write(lambda db: record_limits(db, rows))
        answers = await asyncio.gather(*(self._one(p.identity, p.version, req) for (p, _), req in zip(items, reqs)))
        self.stats.profiles_sent += len(items)
        at = datetime.now(UTC)
        done = [(lid, status, detail, at) for lid, (status, detail) in zip(ids, answers)]
        refused = [(p.identity, st) for (p, _), (st, _) in zip(items, answers) if st != "Accepted"]
        if refused:
            log.warning("load limits at %s: %d profiles not accepted (%s)", site.location_id, len(refused),
                        ", ".join(f"{i}: {st}" for i, st in refused[:5]))
        await self.gw.db.write(lambda db: record_answers(db, done))

    def _known(self, p: _Profile) -> str:
        """What the charger said since it booted ("": not asked yet); read from the database when
        this gateway has not heard it boot."""
        return self.units.get(p.charge_point_id, p.rate_units)

    async def _units_of(self, p: _Profile) -> str:
        """The rate units the charger accepts: asked once per boot (concurrent asks share one)."""
        fut = self._asking.get(p.charge_point_id)
        if fut is None:
            fut = self._asking[p.charge_point_id] = asyncio.ensure_future(self._ask(p))
        try:
            return await fut
        finally:
            self._asking.pop(p.charge_point_id, None)

    async def _ask(self, p: _Profile) -> str:
        handler = self.gw.connections.get(p.identity)
        if handler is None:
            return ""  # not connected: its profile is stored as not_connected anyway
        units = await ask_rate_units(handler, p.version)
        self.units[p.charge_point_id] = units  # stored by the caller, with the others asked together
        if units != "?":
            log.info("%s accepts charging profiles in %s", p.identity, units)
        return units

    async def _one(self, identity: str, version: str, req: dict[str, Any]) -> tuple[str, str]:
        handler = self.gw.connections.get(identity)
        if handler is None:
            return "not_connected", ""
        if self.gw.settings.validate_responses:  # the package's path: request and answer validated
            payload = (call201 if version == "2.0.1" else call16).SetChargingProfile(**camel_to_snake_case(req))
            try:
                res = await handler.call(payload, suppress=False)  # type: ignore[attr-defined]
            except Exception as exc:  # noqa: BLE001  (a CALLERROR, a timeout, a closed socket: stored)
                return "failed", f"{type(exc).__name__}: {exc}"[:300]
            return str(getattr(res, "status", "") or "unknown"), ""
        # the frame built directly (the package's call converts a dataclass key by key with
        # regexes, thousands of times in a site-wide recompute)
        try:
            res = await direct_call(handler, "SetChargingProfile", req)
        except Exception as exc:  # noqa: BLE001  (a CALLERROR, a timeout, a closed socket: stored)
            return "failed", f"{type(exc).__name__}: {exc}"[:300]
        status = res.get("status")
        return str(status or "unknown")[:20], ""


async def direct_call(handler: Any, action: str, payload: dict[str, Any]) -> dict[str, Any]:
    """A CALL whose JSON the gateway built itself, sent and answered the ``ocpp`` package's way:
    one CALL at a time per connection, the answer matched by its id. -> the answer's payload
    (camelCase); raises the charger's CALLERROR, a timeout or a closed socket."""
    uid = str(handler._unique_id_generator())
    frame = json.dumps([2, uid, action, payload], separators=(",", ":"))
    async with handler._call_lock:
        await handler._send(frame)
        res = await handler._get_specific_response(uid, handler._response_timeout)
    if res.message_type_id == MessageType.CallError:
        raise res.to_exception()
    return res.payload if isinstance(res.payload, dict) else {}


def parse_rate_units(value: str) -> str:
    """A charger's answer -> "A", "W" or "A,W" ("" when it names neither): 1.6J's CSL of
    ``Current``/``Power``, 2.0.1's member list of ``A``/``W``."""
    units = set()
    for part in value.replace(";", ",").split(","):
        word = part.strip().lower()
        if word in ("a", "current"):
            units.add("A")
        elif word in ("w", "power"):
            units.add("W")
    return ",".join(sorted(units))


async def ask_rate_units(handler: Any, version: str) -> str:
    """Ask a charger which rate units its charging profiles take: 1.6J GetConfiguration of
    ``ChargingScheduleAllowedChargingRateUnit``, 2.0.1 GetVariables of ``SmartChargingCtrlr.RateUnit``.
    -> ``parse_rate_units`` of the answer, or "?" (no answer, an error, or neither unit named)."""
    values: list[str] = []
    try:
        if version == "2.0.1":
            res = await direct_call(handler, "GetVariables", {"getVariableData": [{
                "component": {"name": "SmartChargingCtrlr"}, "variable": {"name": "RateUnit"}}]})
            values = [str(r.get("attributeValue") or "") for r in (res.get("getVariableResult") or [])
                      if isinstance(r, dict) and r.get("attributeStatus") == "Accepted"]
        else:
            res = await direct_call(handler, "GetConfiguration", {"key": [RATE_UNIT_KEY_16]})
            values = [str(k.get("value") or "") for k in (res.get("configurationKey") or [])
                      if isinstance(k, dict) and k.get("key") == RATE_UNIT_KEY_16]
    except Exception as exc:  # noqa: BLE001  (NotImplemented, NotSupported, a timeout: profiles go in W)
        log.debug("asking the charging rate unit failed: %s", exc)
        return "?"
    return parse_rate_units(",".join(values)) or "?"


def _limit_number(limit_w: Decimal) -> int | float:
    return int(limit_w) if limit_w == limit_w.to_integral_value() else float(limit_w)


def profile_request(version: str, profile_id: int, ref: str, connector_id: int, limit: Decimal, *,
                    unit: str = "W", phases: int | None = None, purpose: str = "TxProfile") -> dict[str, Any]:
    """SetChargingProfile as it goes on the wire (camelCase JSON): a TxProfile for the transaction
    ``ref`` (or, ``purpose`` TxDefaultProfile, for any transaction at connector / EVSE
    ``connector_id``, 0: each), one period from its start of ``limit`` in ``unit`` (W, or A with
    ``phases``). Kind Relative: the schedule starts with the transaction, no start time to agree on."""
    period: dict[str, Any] = {"startPeriod": 0, "limit": _limit_number(limit)}
    if phases is not None:
        period["numberPhases"] = phases
    tx = purpose == "TxProfile"
    if version == "2.0.1":
        profile: dict[str, Any] = {"id": profile_id, "stackLevel": 0, "chargingProfilePurpose": purpose,
                                   "chargingProfileKind": "Relative"}
        if tx:
            profile["transactionId"] = ref
        profile["chargingSchedule"] = [{"id": profile_id, "chargingRateUnit": unit, "chargingSchedulePeriod": [period]}]
        return {"evseId": connector_id, "chargingProfile": profile}
    cs: dict[str, Any] = {"chargingProfileId": profile_id}
    if tx:
        cs["transactionId"] = int(ref) if ref.isdigit() else profile_id
    cs.update({"stackLevel": 0, "chargingProfilePurpose": purpose, "chargingProfileKind": "Relative",
               "chargingSchedule": {"chargingRateUnit": unit, "chargingSchedulePeriod": [period]}})
    return {"connectorId": connector_id, "csChargingProfiles": cs}


def profile_payload(version: str, profile_id: int, ref: str, connector_id: int, limit: Decimal, **kw: Any) -> Any:
    """``profile_request`` as the ``ocpp`` package's call object."""
    req = camel_to_snake_case(profile_request(version, profile_id, ref, connector_id, limit, **kw))
    return (call201 if version == "2.0.1" else call16).SetChargingProfile(**req)


def notify_capacity_change(db: Any, location_id: str) -> None:
    """Have the gateway of this process (``evbill serve``) recompute the location once the API's
    transaction that changed its capacity has committed."""
    from sqlalchemy import event

    from api.ocpp.server import current_gateway

    def after_commit(_session: Any) -> None:
        gw = current_gateway()
        if gw is not None and gw.loop is not None:
            gw.loop.call_soon_threadsafe(gw.load.capacity_changed, location_id)

    event.listen(db, "after_commit", after_commit, once=True)
