"""Reservations on the invoice (issue 18): a reservation that expired unused becomes a session of its
own (priced with ``reservation_expires`` through the one rating path) and the customer's next
billing cycle bills it like any session; the German PDF names its lines in German. A cancelled
reservation of the same month is on no invoice. SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from temporalio.testing import WorkflowEnvironment

from api.ocpp.reservations import expire_due
from store import billing as B
from store.clearing import roaming_sessions
from store.documents import documents_by_number, issue_for_invoice
from store.models import ChargePoint, ChargingSession, Evse, Location, Partner, Token
from store.reservations import Reservation
from tests.store.conftest import BACKENDS, fresh_engine
from tests.workflows.seed import RULESET, seed_tenant
from tests.workflows.test_currency_hold import invoices, start
from workflows.billing.worker import build_worker

pytestmark = pytest.mark.asyncio(loop_scope="session")

RESERVING = (RULESET.replace("  approval required\n", "  auto_release after 1 hours\n")
             .replace("  energy 0.40 per kWh\n", "  energy 0.40 per kWh\n  when reservation_expires {\n"
                                                 "    reservation 3.00 per h\n    reservation_fee 2.00\n  }\n"))
assert "reservation_fee 2.00" in RESERVING


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    eng, cleanup = fresh_engine(str(request.param), tmp_path)
    yield eng
    cleanup()  # type: ignore[operator]


def _site(engine: Engine, t: str, contract_id: str) -> dict[str, str]:
    with Session(engine) as s:
        s.add(Location(id=f"loc_{t}", tenant_id=t, code=f"depot_{t}", name="Depot Adlershof", country="DE",
                       timezone="Europe/Berlin"))
        s.flush()
        s.add(ChargePoint(id=f"cp_{t}", tenant_id=t, location_id=f"loc_{t}", identity=f"CP-{t}"))
        s.flush()
        s.add(Evse(id=f"evse_{t}", tenant_id=t, location_id=f"loc_{t}", charge_point_id=f"cp_{t}",
                   evse_uid=f"DE*EVB*{t}*1", connector_id=1, max_power_kw=D(22)))
        s.add(Token(id=f"tok_{t}", tenant_id=t, uid=f"TOK-{t}", contract_id=contract_id))
        s.commit()
    return {"location_id": f"loc_{t}", "charge_point_id": f"cp_{t}", "evse_uid": f"DE*EVB*{t}*1",
            "token_id": f"tok_{t}", "uid": f"TOK-{t}"}


def _reserve(engine: Engine, t: str, site: dict[str, str], rid: str, ocpp_id: int, start: datetime,
             expiry: datetime, status: str) -> None:
    with Session(engine) as s:
        s.add(Reservation(id=rid, tenant_id=t, ocpp_id=ocpp_id, location_id=site["location_id"],
                          charge_point_id=site["charge_point_id"], evse_uid=site["evse_uid"], connector_id=1,
                          id_tag=site["uid"], token_id=site["token_id"], start=start, expiry=expiry, status=status,
                          ocpp_version="1.6", charger_status="Accepted"))
        s.commit()


async def test_an_expired_reservation_is_billed_on_the_next_invoice(env: WorkflowEnvironment, db: Engine,
                                                                    task_queue: str, tmp_path: Path) -> None:
    t = f"rsv{uuid.uuid4().hex[:6]}"
    seeded = seed_tenant(db, t, 1, ruleset=RESERVING)
    acc = seeded.account_ids[0]
    site = _site(db, t, seeded.contract_of[acc])
    # 90 minutes held on 12 November, never used; another one cancelled by the operator
    _reserve(db, t, site, f"rsv_{t}_x", 11, datetime(2026, 11, 12, 9, 0, tzinfo=UTC),
             datetime(2026, 11, 12, 10, 30, tzinfo=UTC), "accepted")
    _reserve(db, t, site, f"rsv_{t}_c", 12, datetime(2026, 11, 13, 9, 0, tzinfo=UTC),
             datetime(2026, 11, 13, 10, 0, tzinfo=UTC), "cancelled")
    with Session(db) as s:
        assert expire_due(s, datetime(2026, 11, 12, 10, 29, tzinfo=UTC)) == []
        assert expire_due(s, datetime(2026, 11, 12, 10, 31, tzinfo=UTC)) == [f"rsv_{t}_x"]
        ses = s.execute(select(ChargingSession).where(ChargingSession.tenant_id == t)).scalars().all()
    [session] = ses
    assert session.external_id == f"reservation:rsv_{t}_x" and session.contract_id == seeded.contract_of[acc]
    assert session.net_total == D("6.50")  # 1.5 h at 3.00 + the 2.00 fee; no start fee, no energy

    async with build_worker(env.client, db, task_queue):
        h = await start(env, t, acc, task_queue, "2026-12-01T00:05:00+01:00")
        res = await h.result()
    assert res.status == "finalized", res
    [inv] = invoices(db, t)
    with db.connect() as conn:
        lines = conn.execute(select(B.invoice_line).where(B.invoice_line.c.invoice_id == inv.id)
                             .order_by(B.invoice_line.c.seq)).all()
        billed = {(ln.component, ln.session_id): ln for ln in lines}
        assert billed[("reservation", session.id)].net == D("4.50")
        assert billed[("reservation", session.id)].quantity == D("1.5")
        assert billed[("reservation_fee", session.id)].net == D("2.00")
        # the product's monthly fee, and nothing of the cancelled reservation
        assert {ln.session_id for ln in lines} == {session.id, ""}
        assert inv.net_total == D("6.50") + D("4.99")
        docs = documents_by_number(conn, t, inv.number)
    if not docs:
        issue_for_invoice(db, t, inv.id)
        with db.connect() as conn:
            docs = documents_by_number(conn, t, inv.number)
    pdf = next(content for d, content in docs if d.media_type == "application/pdf")
    path = tmp_path / "invoice.pdf"
    path.write_bytes(pdf)
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True,
                          check=True).stdout
    assert "Reservierungsgebühr" in text and "Reservierung" in text, text
    assert "Reservation fee" not in text and "Reservation time" not in text, text


async def test_an_expired_reservation_for_a_partner_is_billed_to_the_partners_fleet_contract(
        env: WorkflowEnvironment, db: Engine, task_queue: str) -> None:
    """A reservation for a partner's tokens (no token of its own) that expired unused bills the
    partner: its fleet's cards charge on the fleet customer's contract, so the session names one of
    them and the contract's next cycle invoices it. A partner whose cards have no contract in force
    leaves it unassigned with its reason (visible, resolvable); a partner without any card too."""
    t = f"rsp{uuid.uuid4().hex[:6]}"
    seeded = seed_tenant(db, t, 2, ruleset=RESERVING)
    fleet_acc, other_acc = seeded.account_ids
    site = _site(db, t, seeded.contract_of[other_acc])  # the site's own token: another customer's
    with Session(db) as s:
        s.add(Partner(id=f"par_{t}_f", tenant_id=t, kind="fleet", name="Spedition Nord GmbH", country_code="DE"))
        s.add(Partner(id=f"par_{t}_n", tenant_id=t, kind="fleet", name="Kurier Süd", country_code="DE"))
        s.add(Partner(id=f"par_{t}_e", tenant_id=t, kind="fleet", name="Ohne Karten", country_code="DE"))
        s.add(Partner(id=f"par_{t}_r", tenant_id=t, kind="emsp", name="Roaming AG", country_code="DE", party_id="RMG"))
        s.flush()
        # the fleet's cards: a blocked one first, then two on the fleet's contract
        s.add(Token(id=f"tok_{t}_f0", tenant_id=t, uid=f"FLT-{t}-0", status="blocked",
                    contract_id=seeded.contract_of[other_acc], issuing_partner_id=f"par_{t}_f",
                    created_at=datetime(2026, 1, 1, tzinfo=UTC)))
        for i in (1, 2):
            s.add(Token(id=f"tok_{t}_f{i}", tenant_id=t, uid=f"FLT-{t}-{i}", contract_id=seeded.contract_of[fleet_acc],
                        issuing_partner_id=f"par_{t}_f", created_at=datetime(2026, 1, 1 + i, tzinfo=UTC)))
        s.add(Token(id=f"tok_{t}_n", tenant_id=t, uid=f"NOC-{t}", issuing_partner_id=f"par_{t}_n"))
        s.add(Token(id=f"tok_{t}_r", tenant_id=t, uid=f"DE-RMG-{t}", kind="emaid", issuing_partner_id=f"par_{t}_r"))
        s.commit()
    window = (datetime(2026, 11, 20, 7, 0, tzinfo=UTC), datetime(2026, 11, 20, 9, 0, tzinfo=UTC))
    for rid, ocpp_id, partner in ((f"rsv_{t}_f", 21, "f"), (f"rsv_{t}_n", 22, "n"), (f"rsv_{t}_e", 23, "e"),
                                    (f"rsv_{t}_r", 24, "r")):
        with Session(db) as s:
            s.add(Reservation(id=rid, tenant_id=t, ocpp_id=ocpp_id, location_id=site["location_id"],
                              charge_point_id=site["charge_point_id"], evse_uid=site["evse_uid"], connector_id=1,
                              id_tag=f"GRP-{partner}{t}"[:20], partner_id=f"par_{t}_{partner}", start=window[0],
                              expiry=window[1], status="accepted", ocpp_version="1.6", charger_status="Accepted"))
            s.commit()
        window = (window[0].replace(day=window[0].day + 1), window[1].replace(day=window[1].day + 1))
    with Session(db) as s:
        assert sorted(expire_due(s, datetime(2026, 11, 24, tzinfo=UTC))) == sorted(
            [f"rsv_{t}_f", f"rsv_{t}_n", f"rsv_{t}_e", f"rsv_{t}_r"])
        by_ext = {x.external_id: x for x in s.execute(
            select(ChargingSession).where(ChargingSession.tenant_id == t)).scalars()}
    fleet = by_ext[f"reservation:rsv_{t}_f"]
    assert fleet.status == "rated" and fleet.contract_id == seeded.contract_of[fleet_acc], fleet
    assert fleet.token_id == f"tok_{t}_f1" and fleet.customer_id == seeded.customer_of[fleet_acc]
    assert fleet.net_total == D("8.00")  # 2 h at 3.00 + the 2.00 fee
    assert fleet.facts["partner"] == f"par_{t}_f"
    nocontract = by_ext[f"reservation:rsv_{t}_n"]
    assert (nocontract.status, nocontract.unassigned_reason, nocontract.contract_id) == (
        "unassigned", "token_without_customer", None)
    nocard = by_ext[f"reservation:rsv_{t}_e"]
    assert (nocard.status, nocard.unassigned_reason) == ("unassigned", "unknown_token")
    # an eMSP's reservation is a roaming session of the partner: its clearing statement takes it
    roaming = by_ext[f"reservation:rsv_{t}_r"]
    assert (roaming.status, roaming.contract_id, roaming.token_id) == ("rated", None, f"tok_{t}_r")
    with db.connect() as conn:
        stated = roaming_sessions(conn, t, f"par_{t}_r", datetime(2026, 12, 1, tzinfo=UTC))
    assert [x.id for x in stated] == [roaming.id] and roaming.net_total == D("8.00")

    async with build_worker(env.client, db, task_queue):
        res = await (await start(env, t, fleet_acc, task_queue, "2026-12-01T00:05:00+01:00")).result()
    assert res.status == "finalized", res
    [inv] = invoices(db, t)
    with db.connect() as conn:
        lines = conn.execute(select(B.invoice_line).where(B.invoice_line.c.invoice_id == inv.id)).all()
    assert inv.account_id == fleet_acc and inv.currency == "EUR"
    billed = {(ln.component, ln.session_id): ln.net for ln in lines}
    assert billed[("reservation", fleet.id)] == D("6.00") and billed[("reservation_fee", fleet.id)] == D("2.00")
    assert inv.net_total == D("8.00") + D("4.99")  # the fee and the product's monthly fee
