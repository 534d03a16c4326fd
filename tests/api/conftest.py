"""API fixtures: an app on a fresh database (SQLite, and PostgreSQL when
``EVBILL_TEST_POSTGRES_URL`` is set) with two tenants, A and B, each holding a key per role and one
object of every kind, so tests can aim one tenant's credentials at the other's objects."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from api.app import Settings, create_app
from api.rating import dsl_available
from store.models import ROLES
from store.tenants import bootstrap_tenant, create_user, issue_key
from tests.ocmf_signer import Meter
from tests.store.conftest import BACKENDS, fresh_engine

DEMO_RULESET = """ruleset demo currency EUR timezone Europe/Berlin
tariff standard "Standard" {
  vat 19%
  start_fee 0.35
  energy 0.49 per kWh
}
"""

DEMO_RULESET_V2 = DEMO_RULESET.replace("energy 0.49 per kWh", "energy 0.59 per kWh")


@dataclass
class Tenantry:
    name: str
    tenant_id: str
    keys: dict[str, str] = field(default_factory=dict)
    users: dict[str, str] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)

    def h(self, role: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}


@dataclass
class Env:
    client: TestClient[Any]
    engine: Engine
    a: Tenantry
    b: Tenantry
    backend: str


def _ok(r: Any, *codes: int) -> dict[str, Any]:
    assert r.status_code in (codes or (200, 201)), (r.status_code, r.text)
    return r.json() if r.content else {}


def make_tenant(client: TestClient[Any], engine: Engine, name: str) -> Tenantry:
    with Session(engine) as db:
        tenant, cred = bootstrap_tenant(db, name, admin_email=f"admin@{name}.test")
    t = Tenantry(name, tenant.id, keys={"admin": cred.key}, users={"admin": cred.user_id})
    t.ids["api_key_id"] = cred.key_id
    c, h = client, t.h()
    # with what a self-billing credit note needs of it (address, e-mail, phone, IBAN)
    t.ids["partner_id"] = _ok(c.post("/partners", json={
        "kind": "site_host", "name": f"Hotel {name}", "country_code": "DE", "street": "Marktplatz 3",
        "postal_code": "88131", "city": "Lindau", "email": f"host@{name}.test", "phone": "+49 8382 4711",
        "iban": "DE89370400440532013000"}, headers=h))["id"]
    emsp = _ok(c.post("/partners", json={"kind": "emsp", "name": f"eMSP {name}", "party_id": "EMS",
                                         "country_code": "DE"}, headers=h))["id"]
    t.ids["emsp_partner_id"] = emsp
    t.ids["agreement_id"] = _ok(c.post("/agreements", json={
        "partner_id": t.ids["partner_id"], "kind": "revenue_share", "valid_from": "2026-01-01",
        "rule_name": "hotel"}, headers=h))["id"]
    with Session(engine) as db:
        for role in ROLES:
            if role == "admin":
                continue
            user = create_user(db, tenant.id, f"{role}@{name}.test", role,
                               partner_id=t.ids["partner_id"] if role == "partner" else None)
            db.flush()
            _, key = issue_key(db, tenant.id, user.id, role)
            t.keys[role], t.users[role] = key, user.id
        db.commit()
    t.ids["user_id"] = t.users["operator"]
    t.ids["customer_group_id"] = _ok(c.post("/customer-groups", json={"name": "employees"}, headers=h))["id"]
    t.ids["customer_id"] = _ok(c.post("/customers", json={
        "name": f"Erika {name}", "email": f"erika@{name}.test", "groups": ["employees"], "country": "DE"},
        headers=h))["id"]
    t.ids["billing_account_id"] = _ok(c.post("/billing-accounts", json={"customer_id": t.ids["customer_id"]},
                                             headers=h))["id"]
    t.ids["account_id"] = t.ids["billing_account_id"]  # the billing area's name for it
    t.ids["contract_id"] = _ok(c.post("/contracts", json={
        "account_id": t.ids["billing_account_id"], "customer_id": t.ids["customer_id"],
        "start_date": "2026-01-01", "mandate_reference": "M-1", "mandate_signed_on": "2025-12-20",
        "mandate_sequence": "FRST", "debtor_iban": "DE89370400440532013000"}, headers=h))["id"]
    t.ids["token_id"] = _ok(c.post("/tokens", json={"uid": f"TOK-{name}", "contract_id": t.ids["contract_id"],
                                                    "issuing_partner_id": emsp}, headers=h))["id"]
    t.ids["location_id"] = _ok(c.post("/locations", json={
        "code": "berlin_1", "name": "Berlin Mitte", "country": "DE", "timezone": "Europe/Berlin",
        "site_host_id": t.ids["partner_id"]}, headers=h))["id"]
    t.ids["charge_point_id"] = _ok(c.post("/charge-points", json={
        "location_id": t.ids["location_id"], "identity": f"CP-{name}-1"}, headers=h))["id"]
    t.ids["evse_id"] = _ok(c.post("/evses", json={
        "location_id": t.ids["location_id"], "charge_point_id": t.ids["charge_point_id"],
        "evse_uid": "DE*ABC*E1*1", "max_power_kw": "22"}, headers=h))["id"]
    # a rule that decides nothing for the seeded tokens (OCPP tests build on these tenants)
    t.ids["access_rule_id"] = _ok(c.post("/access-rules", json={
        "location_id": t.ids["location_id"], "subject": "customer_group", "value": "nobody_in_particular",
        "effect": "deny"}, headers=h))["id"]
    t.ids["meter_key_id"] = _ok(c.post("/meter-keys", json={
        "meter_serial": f"SEED-{name}", "public_key": Meter().public_key_hex,
        "charge_point_id": t.ids["charge_point_id"]}, headers=h))["id"]
    t.ids["transaction_id"] = str(_ocpp_transaction(engine, t))
    t.ids["price_series_id"] = _ok(c.post("/price-series", json={"name": "spot_de"}, headers=h))["id"]
    _ok(c.put(f"/price-series/{t.ids['price_series_id']}/points", json={"points": [
        {"start": "2026-03-01T00:00:00Z", "value": "0.1012"}, {"start": "2026-03-01T01:00:00Z", "value": "0.0950"}]},
        headers=h))
    t.ids["ruleset_id"] = _ok(c.post("/rulesets", json={"name": "demo"}, headers=h))["id"]
    if dsl_available():
        draft = _ok(c.post(f"/rulesets/{t.ids['ruleset_id']}/drafts", json={"source": DEMO_RULESET},
                           headers=t.h("analyst")))
        assert draft["ok"], draft
        t.ids["draft_id"] = draft["id"]
        t.ids["version_id"] = _ok(c.post(f"/rulesets/{t.ids['ruleset_id']}/versions", json={
            "draft_id": draft["id"], "effective_from": "2020-01-01T00:00:00Z"}, headers=t.h("approver")))["id"]
    res = _ok(c.post("/sessions/batch", json={"sessions": [
        {"id": "S-1", "start": "2026-03-01T10:00:00Z", "end": "2026-03-01T11:00:00Z", "energy_kwh": "10",
         "location_id": "berlin_1", "token_uid": f"TOK-{name}"},
        {"id": "S-2", "start": "2026-03-02T10:00:00Z", "end": "2026-03-02T11:30:00Z", "energy_kwh": "20.5",
         "location_id": "elsewhere"},
    ]}, headers=h))
    assert res["created"] == 2, res
    t.ids["session_id"] = res["items"][0]["session_id"]
    t.ids["other_session_id"] = res["items"][1]["session_id"]
    return t


def publish_ruleset(client: TestClient[Any], t: Tenantry, name: str, source: str,
                    effective_from: str = "2026-01-01T00:00:00Z") -> dict[str, Any]:
    """Create ruleset ``name``, draft ``source`` (analyst) and publish it (approver); the ruleset."""
    rs = _ok(client.post("/rulesets", json={"name": name}, headers=t.h()), 201)
    draft = _ok(client.post(f"/rulesets/{rs['id']}/drafts", json={"source": source}, headers=t.h("analyst")), 201)
    assert draft["ok"], draft
    _ok(client.post(f"/rulesets/{rs['id']}/versions", json={"draft_id": draft["id"], "effective_from": effective_from},
                    headers=t.h("approver")), 201)
    return rs


def _ocpp_transaction(engine: Engine, t: Tenantry) -> int:
    """A gateway transaction row, as the OCPP gateway would have written it."""
    from datetime import datetime
    from decimal import Decimal

    from store.ocpp import OcppTransaction

    with Session(engine) as db:
        tx = OcppTransaction(tenant_id=t.tenant_id, charge_point_id=t.ids["charge_point_id"],
                             identity=f"CP-{t.name}-1", ocpp_version="1.6", transaction_ref=f"tx-{t.name}",
                             location_id=t.ids["location_id"], connector_id=1, id_tag=f"TOK-{t.name}",
                             start=datetime(2026, 3, 1, 9, tzinfo=UTC), meter_start_wh=Decimal(1000))
        db.add(tx)
        db.commit()
        return int(tx.id or 0)


def _reservation(engine: Engine, t: Tenantry) -> str:
    """A reservation row as the API stores one the charger accepted (issue 18)."""
    from datetime import datetime

    from store.reservations import Reservation

    with Session(engine) as db:
        r = Reservation(id=f"rsv_{t.name}", tenant_id=t.tenant_id, ocpp_id=4711, location_id=t.ids["location_id"],
                        charge_point_id=t.ids["charge_point_id"], evse_uid="DE*ABC*E1*1", connector_id=1,
                        id_tag=f"TOK-{t.name}", token_id=t.ids["token_id"], start=datetime(2099, 1, 1, 8, tzinfo=UTC),
                        expiry=datetime(2099, 1, 1, 9, tzinfo=UTC), status="accepted", ocpp_version="1.6",
                        charger_status="Accepted")
        db.add(r)
        db.commit()
        return r.id


def seed_other_areas(env: Env) -> None:
    """Objects of areas whose own tests count them exactly (documents): only the tests that walk
    every route ask for them."""
    for t in (env.a, env.b):
        if "document_id" not in t.ids:
            t.ids["document_id"] = _document(env.engine, t)
        if "reservation_id" not in t.ids:
            t.ids["reservation_id"] = _reservation(env.engine, t)
        if "task_id" not in t.ids:
            _held_invoice(env, t)
        if "service_item_id" not in t.ids:
            acc = t.ids["billing_account_id"]
            t.ids["service_item_id"] = _ok(env.client.post(f"/billing/accounts/{acc}/service-items", json={
                "description": "SIM card", "unit_price": "2.50", "per": "month", "tax_rate": "19",
                "valid_from": "2026-03-01"}, headers=t.h()))["id"]
            t.ids["discount_id"] = _ok(env.client.post(f"/billing/accounts/{acc}/discounts", json={
                "description": "5% off", "percent": "5", "valid_from": "2026-03-01"}, headers=t.h()))["id"]
        if "creditor_account_id" not in t.ids:
            t.ids["creditor_account_id"] = _ok(env.client.post("/collections/creditor-accounts", json={
                "name": "Ladestrom GmbH", "iban": "DE02120300000000202051", "creditor_id": "DE98ZZZ09999999999"},
                headers=t.h()))["id"]
            t.ids["mandate_id"] = _ok(env.client.post(
                f"/billing/accounts/{t.ids['billing_account_id']}/mandates", json={
                    "creditor_account_id": t.ids["creditor_account_id"], "reference": f"M-{t.name}",
                    "signed_on": "2026-01-05", "iban": "DE89370400440532013000"}, headers=t.h()))["id"]
        if "payable_id" not in t.ids:
            # a refund of a credit balance: a payment with nothing open to pay becomes the credit
            _ok(env.client.post("/receivables/payments", json={
                "account_id": t.ids["billing_account_id"], "amount": "5.00", "currency": "EUR",
                "booked_on": "2026-03-05", "idempotency_key": f"seed-credit-{t.name}"}, headers=t.h()))
            t.ids["payable_id"] = _ok(env.client.post("/payouts/refunds", json={
                "account_id": t.ids["billing_account_id"], "amount": "5.00", "idempotency_key": f"seed-{t.name}"},
                headers=t.h()))["id"]
        if "case_id" not in t.ids:
            _dunning_case(env.engine, t)
        if "partner_statement_id" not in t.ids:
            # February: the walks issue March (routes.bodies) and must not meet an overlap
            r = env.client.post("/partner-statements", json={"partner_id": t.ids["partner_id"], "month": "2026-02"},
                                headers=t.h())
            assert r.status_code == 201, r.text
            t.ids["partner_statement_id"] = r.json()["id"]


def _held_invoice(env: Env, t: Tenantry) -> None:
    """A held invoice with its open finance task and a manual hold, as the billing cycle leaves
    them (rows only: no Temporal in this suite)."""
    from datetime import date, datetime
    from decimal import Decimal

    from store import billing as B
    from store.types import new_id

    now = datetime(2026, 4, 1, tzinfo=UTC)
    inv, task = new_id("inv"), new_id("task")
    with env.engine.begin() as conn:
        conn.execute(B.invoice.insert().values(
            id=inv, tenant_id=t.tenant_id, account_id=t.ids["billing_account_id"], customer_id=t.ids["customer_id"],
            cycle_key=f"2026-03-{t.name}", kind="invoice", status="held", currency="EUR",
            period_start=datetime(2026, 3, 1, tzinfo=UTC), period_end=now, local_start=date(2026, 3, 1),
            local_end=date(2026, 3, 31), timezone="Europe/Berlin", issue_date=date(2026, 4, 1),
            due_date=date(2026, 4, 15), payment_terms="net 14", net_total=Decimal("5.25"),
            tax_total=Decimal("1.00"), gross_total=Decimal("6.25"),
            tax_groups=[{"rate": "19", "net": "5.25", "tax": "1.00"}], sessions=1,
            energy_kwh=Decimal(10), hold_reasons=[{"kind": "manual", "name": "manual", "detail": "seed"}], comparison={}, corrects=[],
            workflow_id=f"wf-{t.name}", rejected_reason="", decided_by="", created_at=now))
        conn.execute(B.finance_task.insert().values(
            id=task, tenant_id=t.tenant_id, invoice_id=inv, account_id=t.ids["billing_account_id"],
            workflow_id=f"wf-{t.name}", kind="invoice_hold", status="open", reasons=[{"kind": "manual", "name": "manual", "detail": "seed"}],
            comparison={},
            escalation_level=0, decided_by="", decision_reason="", created_at=now))
    t.ids["invoice_id"], t.ids["task_id"] = inv, task
    r = env.client.post(f"/billing/accounts/{t.ids['billing_account_id']}/holds", json={"reason": "seed"},
                        headers=t.h())
    assert r.status_code == 201, r.text
    t.ids["hold_id"] = r.json()["id"]


def _dunning_case(engine: Engine, t: Tenantry) -> None:
    """An open dunning case waiting for stage 2, with a stage 1 letter archived (rows only: no
    Temporal in this suite, so pause and resume signal nothing and a decision finds the case not
    waiting for one)."""
    from datetime import date

    from store import dunning as DN

    with engine.begin() as conn:
        case = DN.open_case(conn, t.tenant_id, customer_id=t.ids["customer_id"], account_id=t.ids["billing_account_id"],
                            currency="EUR", workflow_id=f"dunning:{t.tenant_id}:{t.ids['customer_id']}:EUR",
                            ruleset_version_id=None, policy="standard", debtor="consumer", today=date(2026, 3, 10))
        DN.set_status(conn, t.tenant_id, case.id, "waiting", next_stage=2, next_on=date(2026, 3, 24),
                      reason="seeded")
        letter = DN.save_letter(conn, t.tenant_id, case.id, 1, "de", f"reminder-{t.name}.pdf", b"%PDF-1.7 test")
    t.ids["case_id"], t.ids["letter_id"] = case.id, str(letter["id"])


def _document(engine: Engine, t: Tenantry) -> str:
    """An archived document, as invoicing would have stored it."""
    from datetime import date
    from decimal import Decimal

    from store.documents import store_document

    with engine.begin() as conn:
        doc = store_document(conn, t.tenant_id, kind="invoice", number=f"INV-{t.name}-1", fmt="pdf",
                             media_type="application/pdf", content=b"%PDF-1.7 test", issue_date=date(2026, 3, 31),
                             currency="EUR", gross_total=Decimal("6.25"), customer_id=t.ids["customer_id"])
    return str(doc.id)


def build_env(backend: str, tmp: Path) -> tuple[Env, Any]:
    engine, cleanup = fresh_engine(backend, tmp)  # migrated: the app's own migration finds nothing to do
    app = create_app(Settings(engine=engine))
    client = TestClient(app, raise_server_exceptions=False)
    client.__enter__()
    env = Env(client, engine, make_tenant(client, engine, "alpha"), make_tenant(client, engine, "beta"), backend)

    def close() -> None:
        client.__exit__(None, None, None)
        cleanup()  # type: ignore[operator]

    return env, close


@pytest.fixture(scope="module", params=BACKENDS)
def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    e, close = build_env(request.param, tmp_path_factory.mktemp("api"))
    yield e
    close()


@pytest.fixture(scope="module")
def sqlite_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    e, close = build_env("sqlite", tmp_path_factory.mktemp("api"))
    yield e
    close()


requires_dsl = pytest.mark.skipif(not dsl_available(), reason="dsl.compile_ruleset not available yet")


def pytest_configure(config: pytest.Config) -> None:
    # Litestar 2.x announces its 3.0 parameter style on every handler; not actionable here
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning:litestar.*")
    config.addinivalue_line("filterwarnings", "ignore:.*deprecated inferred style.*")
    config.addinivalue_line("filterwarnings", "ignore:.*without a body marker.*")
