"""Issue 11, defect 5: a session no billing account takes is stored as ``unassigned`` with a
reason (it used to be ``rated`` with ``customer_id: null`` and no word), listed for review, and
brought in by the token/contract data that resolve it. On SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import Env, _ok, requires_dsl

pytestmark = requires_dsl


def _import(env: Env, *sessions: dict[str, Any]) -> list[dict[str, Any]]:
    res = _ok(env.client.post("/sessions/batch", json={"sessions": list(sessions)}, headers=env.a.h("operator")))
    assert res["created"] == len(sessions), res
    return list(res["items"])


def _s(ext: str, day: str, token: str, kwh: str = "10", location: str = "nowhere_9") -> dict[str, Any]:
    return {"id": ext, "start": f"2026-03-{day}T10:00:00Z", "end": f"2026-03-{day}T11:00:00Z", "energy_kwh": kwh,
            "location_id": location, "token_uid": token}


def _unassigned(env: Env, **params: str) -> list[dict[str, Any]]:
    r = env.client.get("/sessions", params={"status": "unassigned", **params}, headers=env.a.h("auditor"))
    return list(_ok(r)["items"])


def test_unknown_token_and_location_is_unassigned_with_a_reason(env: Env) -> None:
    [item] = _import(env, _s("U-1", "03", "STRANGER-1"))
    assert item["rating_status"] == "unassigned" and item["unassigned_reason"] == "unknown_token", item
    s = _ok(env.client.get(f"/sessions/{item['session_id']}", headers=env.a.h()))
    assert (s["status"], s["customer_id"], s["contract_id"]) == ("unassigned", None, None)
    assert s["unassigned_reason"] == "unknown_token" and "STRANGER-1" in s["unassigned_message"]
    # still priced by the tenant's ruleset (0.35 + 10 × 0.49 = 5.25 net), so the amount is known
    assert s["net_total"] == "5.25" and s["current_rating_id"]
    listed = {x["id"]: x for x in _unassigned(env)}
    row = listed[item["session_id"]]
    assert (row["token_uid"], row["location_ref"], row["energy_kwh"], row["gross_total"]) == (
        "STRANGER-1", "nowhere_9", "10", "6.25")
    assert row["start"].startswith("2026-03-03T10:00:00")
    assert [x["id"] for x in _unassigned(env, unassigned_reason="unknown_token")].count(item["session_id"]) == 1
    # tenant-scoped: the other tenant sees none of it
    other = env.client.get("/sessions", params={"status": "unassigned"}, headers=env.b.h())
    assert item["session_id"] not in {x["id"] for x in _ok(other)["items"]}
    assert env.client.get(f"/sessions/{item['session_id']}", headers=env.b.h()).status_code == 404
    assert env.client.post(f"/sessions/{item['session_id']}/assign", headers=env.b.h()).status_code == 404


def test_each_broken_link_has_its_reason(env: Env) -> None:
    c, a = env.client, env.a
    h = a.h()
    cus = _ok(c.post("/customers", json={"name": "Reasons"}, headers=h))["id"]
    acc = _ok(c.post("/billing-accounts", json={"customer_id": cus}, headers=h))["id"]
    late = _ok(c.post("/contracts", json={"account_id": acc, "customer_id": cus,
                                          "start_date": "2026-04-01", "payment_method": "invoice"}, headers=h))["id"]
    _ok(c.post("/tokens", json={"uid": "LOOSE-1"}, headers=h))
    _ok(c.post("/tokens", json={"uid": "EARLY-1", "contract_id": late}, headers=h))
    closed_cus = _ok(c.post("/customers", json={"name": "Closed"}, headers=h))["id"]
    closed = _ok(c.post("/billing-accounts", json={"customer_id": closed_cus, "status": "closed"}, headers=h))["id"]
    con = _ok(c.post("/contracts", json={"account_id": closed, "customer_id": closed_cus,
                                         "start_date": "2026-01-01", "payment_method": "invoice"}, headers=h))["id"]
    _ok(c.post("/tokens", json={"uid": "CLOSED-1", "contract_id": con}, headers=h))
    items = _import(env, _s("R-1", "04", "LOOSE-1"), _s("R-2", "04", "EARLY-1"), _s("R-3", "04", "CLOSED-1"),
                    _s("R-4", "04", "", location="berlin_1"), _s("R-5", "04", f"TOK-{a.name}"))
    reasons = [(i["rating_status"], i["unassigned_reason"]) for i in items]
    assert reasons == [("unassigned", "token_without_customer"), ("unassigned", "no_active_contract"),
                       ("unassigned", "no_billing_account"),
                       # no token at all: an ad-hoc session, billed by nobody here; a known token: billed
                       ("rated", None), ("rated", None)], reasons
    # a contract the session's customer had not yet signed gives it no product price either
    early = _ok(c.get(f"/sessions/{items[1]['session_id']}", headers=h))
    assert not early["facts"].get("product") and early["customer_id"] is None
    assert "2026-04-01" in early["unassigned_message"] and "2026-03-04" in early["unassigned_message"]


def test_assignment_brings_it_in_and_a_second_resolution_changes_nothing(env: Env) -> None:
    c, a = env.client, env.a
    h, op = a.h(), a.h("operator")
    [item] = _import(env, _s("A-1", "05", "LATECOMER-1", kwh="20"))
    sid = item["session_id"]
    assert item["unassigned_reason"] == "unknown_token"
    # the operator retries before anything was fixed: nothing changes, nothing is audited
    res = _ok(c.post(f"/sessions/{sid}/assign", headers=op))
    assert (res["status"], res["changed"], res["unassigned_reason"]) == ("unassigned", False, "unknown_token")
    # the token is registered without a contract: still out, for another reason (audited)
    tok = _ok(c.post("/tokens", json={"uid": "LATECOMER-1"}, headers=h))["id"]
    s = _ok(c.get(f"/sessions/{sid}", headers=h))
    assert (s["status"], s["unassigned_reason"], s["token_id"]) == ("unassigned", "token_without_customer", tok)
    cus = _ok(c.post("/customers", json={"name": "Latecomer", "groups": ["employees"]}, headers=h))["id"]
    acc = _ok(c.post("/billing-accounts", json={"customer_id": cus}, headers=h))["id"]
    con = _ok(c.post("/contracts", json={"account_id": acc, "customer_id": cus,
                                         "start_date": "2026-03-01", "payment_method": "invoice"}, headers=h))["id"]
    ratings_before = _ok(c.get(f"/sessions/{sid}/ratings", headers=h))
    # giving the token its contract resolves the session in the same request
    _ok(c.patch(f"/tokens/{tok}", json={"contract_id": con}, headers=h))
    s = _ok(c.get(f"/sessions/{sid}", headers=h))
    assert (s["status"], s["customer_id"], s["contract_id"], s["unassigned_reason"]) == ("rated", cus, con, "")
    # the customer's groups come with the assignment (contracts without a product: tariffs alone price)
    assert s["facts"]["customer_groups"] == ["employees"]
    ratings = _ok(c.get(f"/sessions/{sid}/ratings", headers=h))
    assert len(ratings) == len(ratings_before) + 1 and ratings[-1]["reason"] == "assignment"
    assert ratings[:-1] == ratings_before and s["current_rating_id"] == ratings[-1]["id"]
    assert sid not in {x["id"] for x in _unassigned(env)}
    audit = _ok(c.get("/audit", params={"action": "session.assign"}, headers=a.h("auditor")))["items"]
    mine = [e for e in audit if e["entity_id"] == sid]
    assert len(mine) == 1 and mine[0]["after"]["trigger"] == f"token {tok}"
    [change] = mine[0]["after"]["sessions"]
    assert change["id"] == sid and change["after"]["customer_id"] == cus and change["before"]["status"] == "unassigned"
    moved = _ok(c.get("/audit", params={"action": "session.unassigned"}, headers=a.h("auditor")))["items"]
    assert [e["after"]["sessions"][0]["after"]["unassigned_reason"] for e in moved if e["entity_id"] == sid] == [
        "token_without_customer"]
    # a duplicate resolution changes nothing: no rating, no audit entry, same answer
    again = _ok(c.post(f"/sessions/{sid}/assign", headers=op))
    assert (again["status"], again["changed"], again["customer_id"]) == ("rated", False, cus)
    bulk = _ok(c.post("/sessions/unassigned/resolve", params={"token_uid": "LATECOMER-1"}, headers=op))
    assert (bulk["checked"], bulk["assigned"]) == (0, 0)
    _ok(c.patch(f"/tokens/{tok}", json={"visual_number": "V-1"}, headers=h))
    assert len(_ok(c.get(f"/sessions/{sid}/ratings", headers=h))) == len(ratings)
    audit = _ok(c.get("/audit", params={"action": "session.assign"}, headers=a.h("auditor")))["items"]
    assert len([e for e in audit if e["entity_id"] == sid]) == 1


def test_fixing_the_contract_dates_resolves_through_the_contract(env: Env) -> None:
    c, a = env.client, env.a
    h = a.h()
    cus = _ok(c.post("/customers", json={"name": "Backdated"}, headers=h))["id"]
    acc = _ok(c.post("/billing-accounts", json={"customer_id": cus}, headers=h))["id"]
    con = _ok(c.post("/contracts", json={"account_id": acc, "customer_id": cus,
                                         "start_date": "2026-03-20", "payment_method": "invoice"}, headers=h))["id"]
    _ok(c.post("/tokens", json={"uid": "BACKDATED-1", "contract_id": con}, headers=h))
    [item] = _import(env, _s("B-1", "06", "BACKDATED-1"))
    assert item["unassigned_reason"] == "no_active_contract"
    _ok(c.patch(f"/contracts/{con}", json={"start_date": "2026-03-01"}, headers=h))
    s = _ok(c.get(f"/sessions/{item['session_id']}", headers=h))
    assert (s["status"], s["contract_id"]) == ("rated", con)


def test_the_operator_resolves_after_fixing_master_data(env: Env) -> None:
    c, a = env.client, env.a
    h, op = a.h(), a.h("operator")
    cus = _ok(c.post("/customers", json={"name": "Reopened"}, headers=h))["id"]
    acc = _ok(c.post("/billing-accounts", json={"customer_id": cus, "status": "closed"}, headers=h))["id"]
    con = _ok(c.post("/contracts", json={"account_id": acc, "customer_id": cus,
                                         "start_date": "2026-01-01", "payment_method": "invoice"}, headers=h))["id"]
    _ok(c.post("/tokens", json={"uid": "REOPEN-1", "contract_id": con}, headers=h))
    items = _import(env, _s("O-1", "07", "REOPEN-1"), _s("O-2", "08", "REOPEN-1"))
    assert {i["unassigned_reason"] for i in items} == {"no_billing_account"}
    # reopening the account brings both in
    _ok(c.patch(f"/billing-accounts/{acc}", json={"status": "active"}, headers=h))
    for i in items:
        assert _ok(c.get(f"/sessions/{i['session_id']}", headers=h))["status"] == "rated"
    # one audit entry for the two, naming each with its before and after
    audit = _ok(c.get("/audit", params={"action": "session.assign"}, headers=a.h("auditor")))["items"]
    [entry] = [e for e in audit if e["after"]["trigger"] == f"billing account {acc}"]
    assert sorted(x["id"] for x in entry["after"]["sessions"]) == sorted(i["session_id"] for i in items)
    # and the operator's bulk retry sees only what is still unassigned
    res = _ok(c.post("/sessions/unassigned/resolve", headers=op))
    assert res["assigned"] == 0 and res["checked"] == res["still_unassigned"] and res["more"] is False
    assert {x["session_id"] for x in res["items"]} >= {x["id"] for x in _unassigned(env)}
    assert c.post("/sessions/unassigned/resolve", headers=a.h("auditor")).status_code == 403
    # another tenant's resolution neither sees nor touches these
    theirs = _ok(c.post("/sessions/unassigned/resolve", headers=env.b.h("operator")))
    assert not {x["session_id"] for x in theirs["items"]} & {x["id"] for x in _unassigned(env)}


def test_ocpp_session_with_an_unknown_token_is_unassigned(env: Env) -> None:
    """The gateway's sessions take the same path (``import_sessions``)."""
    from datetime import UTC, datetime
    from decimal import Decimal

    from sqlalchemy.orm import Session

    from api.ocpp.service import finalize
    from store.models import ChargingSession
    from store.ocpp import OcppTransaction

    a = env.a
    with Session(env.engine) as db:
        tx = OcppTransaction(tenant_id=a.tenant_id, charge_point_id=a.ids["charge_point_id"],
                             identity=f"CP-{a.name}-1", ocpp_version="1.6", transaction_ref="tx-unassigned",
                             location_id=a.ids["location_id"], connector_id=1, id_tag="NOBODY-KNOWS",
                             start=datetime(2026, 3, 9, 9, tzinfo=UTC), stop=datetime(2026, 3, 9, 10, tzinfo=UTC),
                             meter_start_wh=Decimal(0), meter_stop_wh=Decimal(7000), status="stopped")
        db.add(tx)
        db.commit()
        sid = finalize(db, int(tx.id or 0))
        assert sid is not None
        s = db.get(ChargingSession, sid)
        assert s is not None
        assert (s.status, s.unassigned_reason, s.customer_id) == ("unassigned", "unknown_token", None)
        assert s.location_id == a.ids["location_id"] and s.net_total == Decimal("3.78")  # 0.35 + 7 × 0.49
