"""A customer whose dunning case blocked its tokens gets ``Blocked`` at a real WebSocket charger on
Authorize and StartTransaction (1.6J) and on Authorize and TransactionEvent (2.0.1), the reason
``dunning_blocked`` in the decision log; once the case closes (paid) the same token is accepted
again. A suspended contract is refused the same way (``dunning_contract_suspended``)."""

from __future__ import annotations

from datetime import date

from ocpp.v16 import call as call16
from ocpp.v201 import call as call201
from sqlalchemy import insert

from store import dunning as DN
from store.types import new_id, utcnow
from tests.api.conftest import _ok
from tests.api.ocpp.conftest import OcppEnv, connect, run


def test_dunning_block_at_the_charger(ocpp_env: OcppEnv) -> None:
    oe = ocpp_env
    oe.add_charger("CP-DUN-16")
    oe.add_charger("CP-DUN-201")
    tenant, customer = oe.env.a.tenant_id, oe.ids["customer_id"]

    async def answers(at: str) -> tuple[str, str, str, str]:
        async with connect(oe, "CP-DUN-16") as cp:
            a16 = (await cp.call(call16.Authorize(id_tag="TOK-alpha"))).id_tag_info["status"]
            s16 = (await cp.call(call16.StartTransaction(connector_id=1, id_tag="TOK-alpha", meter_start=0,
                                                         timestamp=at))).id_tag_info["status"]
        async with connect(oe, "CP-DUN-201", "2.0.1") as cp:
            a201 = (await cp.call(call201.Authorize(id_token={"idToken": "TOK-alpha", "type": "ISO14443"})
                                  )).id_token_info["status"]
            ev = await cp.call(call201.TransactionEvent(
                event_type="Started", timestamp=at, trigger_reason="Authorized", seq_no=0,
                transaction_info={"transactionId": f"TX-DUN-{at}"}, evse={"id": 1, "connectorId": 1},
                id_token={"idToken": "TOK-alpha", "type": "ISO14443"}))
        return str(a16), str(s16), str(a201), str(ev.id_token_info["status"])

    assert run(answers("2026-03-10T09:00:00Z"))[0] == "Accepted"
    with oe.env.engine.begin() as conn:
        case = DN.open_case(conn, tenant, customer_id=customer, account_id=oe.ids["account_id"], currency="EUR",
                            workflow_id="dunning:test", ruleset_version_id=None, policy="standard",
                            debtor="consumers", today=date(2026, 3, 1))
        conn.execute(insert(DN.dunning_block).values(id=new_id("blk"), tenant_id=tenant, customer_id=customer,
                                                     case_id=case.id, action="block_tokens", stage=3,
                                                     started_at=utcnow(), released_at=None, release_reason=None))
    # each start its own time: a start repeated with the same facts gets its first answer (exactly once)
    assert run(answers("2026-03-11T09:00:00Z")) == ("Blocked", "Blocked", "Blocked", "Blocked")
    log = _ok(oe.client.get(f"/locations/{oe.ids['location_id']}/authorizations", params={"status": "Blocked"},
                            headers=oe.h()))["items"]
    assert {(i["id_tag"], i["reason"]) for i in log} == {("TOK-alpha", "dunning_blocked")} and len(log) == 4
    with oe.env.engine.begin() as conn:
        assert DN.close_case(conn, tenant, case.id, date(2026, 3, 20), "paid") == ["block_tokens"]
    assert run(answers("2026-03-21T09:00:00Z")) == ("Accepted", "Accepted", "Accepted", "Accepted")
    # a suspended contract (another case's stage) refuses the same way, with its own reason
    with oe.env.engine.begin() as conn:
        case2 = DN.open_case(conn, tenant, customer_id=customer, account_id=oe.ids["account_id"], currency="EUR",
                             workflow_id="dunning:test2", ruleset_version_id=None, policy="standard",
                             debtor="consumers", today=date(2026, 4, 1))
        conn.execute(insert(DN.dunning_block).values(id=new_id("blk"), tenant_id=tenant, customer_id=customer,
                                                     case_id=case2.id, action="suspend_contract", stage=3,
                                                     started_at=utcnow(), released_at=None, release_reason=None))
    assert run(answers("2026-04-11T09:00:00Z")) == ("Blocked", "Blocked", "Blocked", "Blocked")
    log = _ok(oe.client.get(f"/locations/{oe.ids['location_id']}/authorizations", params={"status": "Blocked"},
                            headers=oe.h()))["items"]
    assert sorted({i["reason"] for i in log}) == ["dunning_blocked", "dunning_contract_suspended"]
    with oe.env.engine.begin() as conn:
        assert DN.close_case(conn, tenant, case2.id, date(2026, 4, 20), "paid") == ["suspend_contract"]
    assert run(answers("2026-04-21T09:00:00Z")) == ("Accepted", "Accepted", "Accepted", "Accepted")
