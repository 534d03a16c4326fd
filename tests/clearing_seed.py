"""Clearing test and benchmark data: a tenant with a ruleset whose ``roam`` tariff prices roaming
sessions, an eMSP partner (OCPI country code and party id) with a roaming agreement naming that
tariff, tokens the partner issued, and rated roaming sessions written straight into the tables."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, insert

from store.models import (
    Agreement,
    ChargingSession,
    Partner,
    Ruleset,
    RulesetDraft,
    RulesetVersion,
    Tenant,
    Token,
)

RULESET = """\
ruleset clearing_test currency EUR timezone Europe/Berlin

tariff ac "AC" {
  vat 19%
  start_fee 0.50
  energy 0.40 per kWh
}

tariff roam "Roaming" {
  vat 19%
  start_fee 0.30
  energy 0.55 per kWh
  parking 0.10 per min
}
"""
START_FEE = Decimal("0.30")
ENERGY = Decimal("0.55")
CENT = Decimal("0.01")


def roam_net(kwh: Decimal) -> Decimal:
    """What the roam tariff bills a session of ``kwh`` within an hour (lines rounded each)."""
    return START_FEE + (kwh * ENERGY).quantize(CENT)


@dataclass
class ClearingSeed:
    tenant_id: str
    partner_id: str
    party: str


def _t(model: Any) -> Any:
    return model.__table__


def seed_clearing(engine: Engine, tenant_id: str, *, create_tenant: bool = True, partner_country: str = "NL",
                  partner_vat: str = "NL123456789B01", ruleset: str = RULESET,
                  terms: dict[str, Any] | None = None) -> ClearingSeed:
    """``ruleset``: the source (RULESET and more, e.g. commission blocks); ``terms``: the roaming
    agreement's (``{"commissions": "a, b"}``)."""
    now = datetime(2020, 1, 1, tzinfo=UTC)
    sha = hashlib.sha256(ruleset.encode()).hexdigest()
    pid = f"par_{tenant_id}"
    with engine.begin() as conn:
        if create_tenant:
            conn.execute(insert(_t(Tenant)).values(
                id=tenant_id, name=tenant_id, legal_name="Stadtwerke Test GmbH", street="Hauptstr. 1",
                postal_code="10115", city="Berlin", country="DE", vat_id="DE123456789", tax_number="",
                creditor_id="", iban="DE02120300000000202051", bic="BYLADEM1001", email="billing@example.com",
                currency="EUR", timezone="Europe/Berlin", branding={"phone": "+49 30 123456"}, audit_seq=0,
                audit_head="", created_at=now))
        conn.execute(insert(_t(Ruleset)).values(id=f"rs_{tenant_id}", tenant_id=tenant_id, name="clearing_test",
                                                description="", created_by="seed", created_at=now))
        conn.execute(insert(_t(RulesetDraft)).values(id=f"rd_{tenant_id}", tenant_id=tenant_id,
                                                     ruleset_id=f"rs_{tenant_id}", source=ruleset, sha256=sha,
                                                     ok=True, diagnostics=[], author_id="seed", created_at=now))
        conn.execute(insert(_t(RulesetVersion)).values(
            id=f"rv_{tenant_id}", tenant_id=tenant_id, ruleset_id=f"rs_{tenant_id}", version=1,
            draft_id=f"rd_{tenant_id}", source=ruleset, sha256=sha, dsl_name="clearing_test", currency="EUR",
            timezone="Europe/Berlin", tariff_names=["ac", "roam"], effective_from=now, author_id="seed",
            publisher_id="seed2", published_at=now, note=""))
        conn.execute(insert(_t(Partner)).values(
            id=pid, tenant_id=tenant_id, kind="emsp", name="Roam Mobility B.V.", country_code=partner_country,
            party_id="ABC", vat_id=partner_vat, iban="", email="", street="Keizersgracht 1", postal_code="1015 CJ",
            city="Amsterdam", created_at=now))
        conn.execute(insert(_t(Agreement)).values(
            id=f"agr_{tenant_id}", tenant_id=tenant_id, partner_id=pid, kind="roaming", reference="roaming 2026",
            ruleset_name="clearing_test", rule_name="roam", valid_from=date(2020, 1, 1), valid_to=None, terms=terms or {},
            created_at=now))
    return ClearingSeed(tenant_id, pid, "ABC")


def add_tokens(engine: Engine, seed: ClearingSeed, uids: Sequence[str]) -> None:
    now = datetime(2020, 1, 1, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(insert(_t(Token)), [dict(
            id=f"tok_{seed.tenant_id}_{u}", tenant_id=seed.tenant_id, uid=u, kind="rfid", emaid=f"NL-ABC-C{u}",
            visual_number="", status="active", contract_id=None, issuing_partner_id=seed.partner_id,
            created_at=now) for u in uids])


def facts_of(sid: str, start: datetime, kwh: Decimal, uid: str, minutes: int = 45) -> dict[str, Any]:
    return {"id": sid, "start": start.isoformat(), "end": (start + timedelta(minutes=minutes)).isoformat(),
            "energy_kwh": format(kwh, "f"), "location_id": "LOC1", "evse_id": "DE*EVB*E1*1", "country": "DE",
            "timezone": "Europe/Berlin", "power_type": "AC", "token_uid": uid, "token_type": "rfid",
            "partner": "ABC"}


def add_sessions(engine: Engine, seed: ClearingSeed, items: Sequence[tuple[str, datetime, Decimal, str]]) -> None:
    """Roaming sessions ``(session id, start, kWh, token uid)``, as the importer stores them."""
    rows = [dict(id=sid, tenant_id=seed.tenant_id, external_id=sid, source="json", payload_sha256="0" * 64,
                 start=start, end=start + timedelta(minutes=45), energy_kwh=kwh, location_ref="LOC1", evse_ref="",
                 token_uid=uid, token_id=f"tok_{seed.tenant_id}_{uid}", customer_id=None, contract_id=None,
                 tariff="", facts=facts_of(sid, start, kwh, uid), status="rated", rating_error="",
                 current_rating_id=None, currency="EUR", net_total=None, tax_total=None, gross_total=None,
                 created_at=start)
            for sid, start, kwh, uid in items]
    with engine.begin() as conn:
        conn.execute(insert(_t(ChargingSession)), rows)
