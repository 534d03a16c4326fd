"""Partner quotas at a depot (issue 18) over real WebSocket chargers, SQLite and PostgreSQL: a
``limit`` rule ("Fleet X at most 2 connectors 06:00-18:00") refuses the start that would exceed it
with ``partner_quota_exceeded`` in the decision log, accepts outside its window, leaves another
partner alone, and a stopped session frees its slot; two drivers authorizing at the same moment
for the last slot do not both get it (1.6J Authorize), and 2.0.1 Authorize and TransactionEvent
Started are refused the same way. Cost centres: a session stored from a charger carries its
token's cost centre, else its contract's. Load-management priority: defaults and a rule's."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from api.ocpp.priority import session_priority
from tests.api.conftest import _ok
from tests.api.ocpp.conftest import OcppEnv, connect, run


def _fleets(oe: OcppEnv) -> dict[str, str]:
    """Two fleet partners with tokens, two depots: depot A caps Fleet X at 2 between 06:00 and
    18:00 (Berlin), depot B caps it at 1 all day; both let Fleet X and Fleet Y in."""
    if "quota_x" in oe.ids:
        return oe.ids
    c, h = oe.client, oe.h()
    x = _ok(c.post("/partners", json={"kind": "fleet", "name": "Quota Fleet X"}, headers=h))["id"]
    y = _ok(c.post("/partners", json={"kind": "fleet", "name": "Quota Fleet Y"}, headers=h))["id"]
    for uid, partner in (("QX-1", x), ("QX-2", x), ("QX-3", x), ("QY-1", y)):
        _ok(c.post("/tokens", json={"uid": uid, "issuing_partner_id": partner}, headers=h))
    _ok(c.post("/tokens", json={"uid": "QO-1", "contract_id": oe.ids["contract_id"]}, headers=h))  # our own
    for code in ("quota_a", "quota_b"):
        loc = _ok(c.post("/locations", json={"code": code, "name": code, "country": "DE",
                                             "timezone": "Europe/Berlin"}, headers=h))["id"]
        oe.ids[code] = loc
        for partner in (x, y):
            _ok(c.post("/access-rules", json={"location_id": loc, "subject": "partner", "value": partner}, headers=h))
    limit = {"effect": "limit", "subject": "partner", "value": x}
    _ok(c.post("/access-rules", json={"location_id": oe.ids["quota_a"], **limit, "max_sessions": 2,
                                      "time_from": "06:00", "time_to": "18:00", "session_priority": 5,
                                      "description": "Fleet X at most 2 connectors 06:00-18:00"}, headers=h))
    _ok(c.post("/access-rules", json={"location_id": oe.ids["quota_b"], **limit, "max_sessions": 1}, headers=h))
    for ident in ("CP-QA-1", "CP-QA-2", "CP-QA-3", "CP-QA-4"):
        oe.add_charger(ident, location_id=oe.ids["quota_a"])
    for ident in ("CP-QB-1", "CP-QB-2", "CP-QB-201"):
        oe.add_charger(ident, location_id=oe.ids["quota_b"])
    oe.ids["quota_x"], oe.ids["quota_y"] = x, y
    return oe.ids


async def _start(oe: OcppEnv, ident: str, tag: str, at: str) -> tuple[int, str]:
    async with connect(oe, ident) as cp:
        res = await cp.call(call16.StartTransaction(connector_id=1, id_tag=tag, meter_start=0, timestamp=at))
        return int(res.transaction_id), str(res.id_tag_info["status"])


async def _stop(oe: OcppEnv, ident: str, tx: int, at: str) -> None:
    async with connect(oe, ident) as cp:
        await cp.call(call16.StopTransaction(meter_stop=5000, timestamp=at, transaction_id=tx, reason="Local"))


def _log(oe: OcppEnv, loc: str) -> list[tuple[str, str, str]]:
    items = _ok(oe.client.get(f"/locations/{loc}/authorizations", params={"limit": 200}, headers=oe.h()))["items"]
    return [(i["id_tag"], i["status"], i["reason"]) for i in reversed(items)]


def test_quota_refuses_in_its_window_only_and_a_stop_frees_the_slot(ocpp_env: OcppEnv) -> None:
    oe = ocpp_env
    ids = _fleets(oe)
    tue = "2026-03-10T{}:00Z"  # a Tuesday; Berlin is UTC+1 in March
    tx1, s1 = run(_start(oe, "CP-QA-1", "QX-1", tue.format("08:00")))  # 09:00 local
    _tx2, s2 = run(_start(oe, "CP-QA-2", "QX-2", tue.format("08:10")))
    tx3, s3 = run(_start(oe, "CP-QA-3", "QX-3", tue.format("08:20")))
    assert (s1, s2, s3) == ("Accepted", "Accepted", "Invalid")
    run(_stop(oe, "CP-QA-3", tx3, tue.format("08:21")))  # the charger gives up: the refused one ends
    # another partner is not counted against Fleet X, nor limited by its rule
    _txy, sy = run(_start(oe, "CP-QA-3", "QY-1", tue.format("08:30")))
    assert sy == "Accepted"
    # a stopped session frees its slot
    run(_stop(oe, "CP-QA-1", tx1, tue.format("09:00")))
    tx3b, s3b = run(_start(oe, "CP-QA-1", "QX-3", tue.format("09:10")))
    assert s3b == "Accepted"
    # outside 06:00-18:00 local the quota does not hold: a third Fleet X session is let in
    _tx1b, s1b = run(_start(oe, "CP-QA-4", "QX-1", tue.format("18:30")))  # 19:30 local
    assert s1b == "Accepted"
    log = _log(oe, ids["quota_a"])
    assert log == [("QX-1", "Accepted", "allowed_by_rule:partner"), ("QX-2", "Accepted", "allowed_by_rule:partner"),
                   ("QX-3", "Invalid", "partner_quota_exceeded"), ("QY-1", "Accepted", "allowed_by_rule:partner"),
                   ("QX-3", "Accepted", "allowed_by_rule:partner"), ("QX-1", "Accepted", "allowed_by_rule:partner")]
    refused = _ok(oe.client.get(f"/locations/{ids['quota_a']}/authorizations", params={"status": "Invalid"},
                                headers=oe.h()))["items"]
    rule = next(r for r in _ok(oe.client.get("/access-rules", params={"location_id": ids["quota_a"]},
                                         headers=oe.h()))["items"] if r["effect"] == "limit")
    assert refused[0]["rule_id"] == rule["id"] and rule["max_sessions"] == 2 and rule["session_priority"] == 5
    # the running sessions hold their slots at 10:20 local (QX-2 and QX-3, both in the window)
    _tx, again = run(_start(oe, "CP-QA-2", "QX-1", tue.format("09:20")))
    assert again == "Invalid"
    _ = tx3b


def test_two_authorizes_for_the_last_slot_and_201(ocpp_env: OcppEnv) -> None:
    """Depot B: Fleet X at most one session, all day (so the gateway's own clock, which stamps an
    Authorize, cannot fall outside the window)."""
    oe = ocpp_env
    ids = _fleets(oe)

    async def both() -> list[str]:
        async with connect(oe, "CP-QB-1") as a, connect(oe, "CP-QB-2") as b:
            got = await asyncio.gather(a.call(call16.Authorize(id_tag="QX-1")), b.call(call16.Authorize(id_tag="QX-2")))
            return [str(r.id_tag_info["status"]) for r in got]

    answers = run(both())
    assert sorted(answers) == ["Accepted", "Invalid"], answers
    winner, loser = ("QX-1", "QX-2") if answers[0] == "Accepted" else ("QX-2", "QX-1")
    # the winner's start takes its own claimed slot; the other driver is still refused at the start
    tx, started = run(_start(oe, "CP-QB-1", winner, "2026-03-12T10:00:00Z"))
    _tx, refused = run(_start(oe, "CP-QB-2", loser, "2026-03-12T10:01:00Z"))
    assert (started, refused) == ("Accepted", "Invalid")
    run(_stop(oe, "CP-QB-2", _tx, "2026-03-12T10:02:00Z"))

    async def station(tag: str, tx_id: str) -> tuple[str, str]:
        token = {"idToken": tag, "type": "ISO14443"}
        async with connect(oe, "CP-QB-201", "2.0.1") as cp:
            auth = await cp.call(call201.Authorize(id_token=token))
            ev = await cp.call(call201.TransactionEvent(
                event_type="Started", timestamp="2026-03-12T10:05:00Z", trigger_reason="Authorized", seq_no=0,
                transaction_info={"transactionId": tx_id}, evse={"id": 1, "connectorId": 1}, id_token=token))
            return str(auth.id_token_info["status"]), str(ev.id_token_info["status"])

    assert run(station(loser, "TX-QB-1")) == ("Invalid", "Invalid")
    # Fleet Y is not Fleet X
    assert run(station("QY-1", "TX-QB-2")) == ("Accepted", "Accepted")
    run(_stop(oe, "CP-QB-1", tx, "2026-03-12T10:30:00Z"))
    assert run(station(loser, "TX-QB-3")) == ("Accepted", "Accepted")
    # the same card again: an Authorize may be the driver ending the session (its own slot), a
    # second start is a second connector and counts

    async def again() -> tuple[str, str]:
        async with connect(oe, "CP-QB-1") as cp:
            auth = await cp.call(call16.Authorize(id_tag=loser))
            start = await cp.call(call16.StartTransaction(connector_id=1, id_tag=loser, meter_start=0,
                                                          timestamp="2026-03-12T10:40:00Z"))
            return str(auth.id_tag_info["status"]), str(start.id_tag_info["status"])

    assert run(again()) == ("Accepted", "Invalid")
    reasons = [r for _, s, r in _log(oe, ids["quota_b"]) if s == "Invalid"]
    assert reasons and set(reasons) == {"partner_quota_exceeded"} and len(reasons) == 5


def test_session_priority_defaults_and_rules(ocpp_env: OcppEnv) -> None:
    oe = ocpp_env
    ids = _fleets(oe)
    day, night = datetime(2026, 3, 10, 9, tzinfo=UTC), datetime(2026, 3, 10, 20, tzinfo=UTC)
    with oe.db() as db:
        tenant = oe.env.a.tenant_id

        def prio(tag: str, loc: str, at: datetime = day) -> int:
            return session_priority(db, tenant, location_id=ids[loc], id_tag=tag, at=at)

        # the tenant's own customer's token, a fleet partner's, an eMSP's, an unknown one
        assert (prio("QO-1", "quota_b"), prio("QY-1", "quota_b"), prio("TOK-alpha", "quota_b"),
                prio("NOBODY", "quota_b")) == (0, 10, 10, 20)
        # depot A's limit rule gives Fleet X priority 5 within its window only
        assert (prio("QX-1", "quota_a"), prio("QX-1", "quota_a", night), prio("QY-1", "quota_a")) == (5, 10, 10)
        # the depot's owner (its site host) is served as the own fleet there, elsewhere as a partner
        c, h = oe.client, oe.h()
        owner = _ok(c.post("/partners", json={"kind": "site_host", "name": "Depot owner"}, headers=h))["id"]
        _ok(c.post("/tokens", json={"uid": "QD-1", "issuing_partner_id": owner}, headers=h))
        _ok(c.patch(f"/locations/{ids['quota_b']}", json={"site_host_id": owner}, headers=h))
        assert (prio("QD-1", "quota_b"), prio("QD-1", "quota_a")) == (0, 10)


def test_quota_and_priority_validation(ocpp_env: OcppEnv) -> None:
    oe = ocpp_env
    ids = _fleets(oe)
    c, h = oe.client, oe.h()
    base: dict[str, Any] = {"location_id": ids["quota_a"], "subject": "partner", "value": ids["quota_x"]}
    cases = [({"effect": "limit"}, "quota_missing"), ({"max_sessions": 3}, "quota_needs_limit_rule"),
             ({"effect": "limit", "max_sessions": 2, "time_from": "06:00", "time_to": "06:00"}, "empty_time_window"),
             ({"effect": "limit", "max_sessions": 2, "time_from": "06:00"}, "incomplete_time_window"),
             ({"effect": "deny", "session_priority": 1}, "priority_on_deny_rule")]
    for extra, code in cases:
        r = c.post("/access-rules", json={**base, **extra}, headers=h)
        assert r.status_code == 422 and r.json()["code"] == code, (extra, r.text)
    for extra in ({"effect": "limit", "max_sessions": 0}, {"effect": "limit", "max_sessions": "two"},
                  {"effect": "limit", "max_sessions": 2, "time_from": "25:00", "time_to": "06:00"},
                  {"session_priority": -1}, {"effect": "cap", "max_sessions": 2}):
        r = c.post("/access-rules", json={**base, **extra}, headers=h)
        assert r.status_code in (400, 422), (extra, r.text)
    rule = _ok(c.post("/access-rules", json={**base, "effect": "limit", "max_sessions": 3}, headers=h))
    r = c.patch(f"/access-rules/{rule['id']}", json={"effect": "allow"}, headers=h)
    assert r.status_code == 422 and r.json()["code"] == "quota_needs_limit_rule"
    changed = _ok(c.patch(f"/access-rules/{rule['id']}", json={"effect": "allow", "max_sessions": None}, headers=h))
    assert changed["effect"] == "allow" and changed["max_sessions"] is None
    _ok(c.delete(f"/access-rules/{rule['id']}", headers=h), 204)


def test_sessions_carry_the_token_or_contract_cost_centre(ocpp_env: OcppEnv) -> None:
    oe = ocpp_env
    c, h = oe.client, oe.h()
    oe.add_charger("CP-CC-1")
    _ok(c.patch(f"/contracts/{oe.ids['contract_id']}", json={"cost_centre": "KST-200 Fuhrpark"}, headers=h))
    tok = _ok(c.post("/tokens", json={"uid": "TOK-CC", "contract_id": oe.ids["contract_id"],
                                      "cost_centre": "KST-100"}, headers=h))
    assert tok["cost_centre"] == "KST-100"
    bad = c.post("/tokens", json={"uid": "TOK-CC-BAD", "cost_centre": " padded "}, headers=h)
    assert bad.status_code in (400, 422)
    for n, tag in enumerate(("TOK-CC", "TOK-alpha")):
        tx, status = run(_start(oe, "CP-CC-1", tag, f"2026-03-1{n + 3}T09:00:00Z"))
        assert status == "Accepted"
        run(_stop(oe, "CP-CC-1", tx, f"2026-03-1{n + 3}T10:00:00Z"))
    oe.idle()
    sessions = oe.sessions("CP-CC-1")
    assert [(s.token_uid, s.cost_centre) for s in sessions] == [("TOK-CC", "KST-100"), ("TOK-alpha", "KST-200 Fuhrpark")]
    listed = _ok(c.get("/sessions", params={"cost_centre": "KST-100"}, headers=h))["items"]
    assert [s["token_uid"] for s in listed] == ["TOK-CC"] and listed[0]["cost_centre"] == "KST-100"


def test_two_gateways_deciding_at_once_do_not_share_the_last_slot(ocpp_env: OcppEnv) -> None:
    """Two deciders in transactions of their own (as two gateway processes would be), both past
    their reads before either commits: the location's lock makes the second count the first's
    claim. Without it both would count zero taken slots and both be accepted."""
    import threading
    import time

    from sqlalchemy.orm import Session

    from api.ocpp.access import authorize

    oe = ocpp_env
    ids = _fleets(oe)
    c, h = oe.client, oe.h()
    loc = _ok(c.post("/locations", json={"code": "quota_c", "name": "quota_c", "country": "DE",
                                         "timezone": "Europe/Berlin"}, headers=h))["id"]
    _ok(c.post("/access-rules", json={"location_id": loc, "subject": "partner", "value": ids["quota_x"]}, headers=h))
    _ok(c.post("/access-rules", json={"location_id": loc, "effect": "limit", "subject": "partner",
                                      "value": ids["quota_x"], "max_sessions": 1}, headers=h))
    barrier = threading.Barrier(2)
    answers: dict[str, str] = {}

    def decide(tag: str) -> None:
        with Session(oe.env.engine) as db:
            barrier.wait(10)
            d = authorize(db, tenant_id=oe.env.a.tenant_id, charge_point_id=oe.ids["CP-QA-1"], location_id=loc,
                          evse_uid="", id_tag=tag, at=datetime.now(UTC), tz="Europe/Berlin", context="Authorize")
            time.sleep(0.5)  # hold the transaction open: the other decider is past its reads by now
            db.commit()
            answers[tag] = d.reason

    threads = [threading.Thread(target=decide, args=(t,)) for t in ("QX-1", "QX-2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(answers.values()) == ["allowed_by_rule:partner", "partner_quota_exceeded"], answers
