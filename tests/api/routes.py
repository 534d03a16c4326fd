"""What every route of the OpenAPI document needs to be called: a valid body per operation, built
from one tenant's object ids, so a test can aim tenant A's key at tenant B's objects (or a role's
key at anything) and get past validation to the part that matters."""

from __future__ import annotations

import re
from typing import Any

from tests.api.conftest import DEMO_RULESET, Tenantry
from tests.ocmf_signer import Meter

SESSION = {"id": "X-1", "start": "2026-03-01T10:00:00Z", "end": "2026-03-01T11:00:00Z", "energy_kwh": "5"}
CDR = {
    "id": "CDR-X-1", "start_date_time": "2026-03-01T10:00:00Z", "end_date_time": "2026-03-01T11:00:00Z",
    "cdr_token": {"uid": "TOK", "type": "RFID", "contract_id": "DE-ABC-C1", "country_code": "DE", "party_id": "ABC"},
    "cdr_location": {"id": "berlin_1", "country": "DEU", "evse_uid": "E1", "connector_power_type": "AC_3_PHASE"},
    "currency": "EUR", "total_energy": 12.5, "total_time": 1.0,
    "charging_periods": [{"start_date_time": "2026-03-01T10:00:00Z",
                          "dimensions": [{"type": "ENERGY", "volume": 12.5}, {"type": "TIME", "volume": 1.0}]}],
}


# a meter's public key for the walks (Eichrecht): a real P-256 key, made once per test run
METER_KEY = Meter().public_key_hex


def camt_sample(name: str) -> bytes:
    """A small camt.053 (one unmatched credit) for the routes that import bank statements."""
    from datetime import UTC, date, datetime
    from decimal import Decimal

    from runtime.bank.simulate import SimEntry, SimTransaction, statement_xml

    return statement_xml(message_id=f"walk-{name}", statement_id=f"walk-{name}", sequence=1,
                         created=datetime(2026, 3, 5, tzinfo=UTC), account_iban="DE89370400440532013000",
                         currency="EUR", opening=Decimal(0),
                         entries=[SimEntry(Decimal("3.00"), True, date(2026, 3, 4), f"walk-{name}",
                                           [SimTransaction(Decimal("3.00"), remittance="walk")])])


def _in_an_hour() -> str:
    from datetime import UTC, datetime, timedelta

    return (datetime.now(UTC) + timedelta(hours=1)).isoformat()


def bodies(t: Tenantry) -> dict[str, Any]:
    """A valid body per operation id, referencing ``t``'s objects."""
    ids = t.ids
    return {
        "update_tenant": {"city": "Köln"},
        "create_api_key": {"user_id": ids["user_id"], "name": "x"},
        "create_user": {"email": "new@x.test", "role": "operator"},
        "update_user": {"name": "renamed"},
        "create_customer_group": {"name": "vip"},
        "update_customer_group": {"description": "d"},
        "create_customer": {"name": "New Customer"},
        "update_customer": {"city": "Bonn"},
        "check_customer_vat_id": {},  # no body: the customer's stored VAT ID is checked again
        "create_billing_account": {"customer_id": ids["customer_id"]},
        "update_billing_account": {"name": "main"},
        "create_contract": {"account_id": ids["billing_account_id"], "customer_id": ids["customer_id"],
                            "start_date": "2026-01-01", "payment_method": "invoice"},
        "update_contract": {"billing_period": "quarterly"},
        "create_token": {"uid": "NEW-TOKEN", "contract_id": ids["contract_id"], "cost_centre": "KST 4711"},
        "update_token": {"status": "blocked"},
        "create_location": {"name": "New", "country": "DE", "timezone": "Europe/Berlin",
                            "site_host_id": ids["partner_id"]},
        "update_location": {"name": "Renamed"},
        "create_charge_point": {"location_id": ids["location_id"], "identity": "CP-NEW-" + t.name},
        "update_charge_point": {"vendor": "ABB"},
        "create_evse": {"location_id": ids["location_id"], "evse_uid": "NEW*1", "max_power_kw": "11"},
        "update_evse": {"status": "occupied"},
        "create_partner": {"kind": "fleet", "name": "Fleet"},
        "update_partner": {"name": "Renamed"},
        "create_agreement": {"partner_id": ids["partner_id"], "kind": "service", "valid_from": "2026-01-01"},
        "update_agreement": {"reference": "R-2"},
        "create_ruleset": {"name": "other"},
        "update_ruleset": {"description": "d"},
        "create_ruleset_draft": {"source": DEMO_RULESET},
        "publish_ruleset_version": {"draft_id": ids.get("draft_id", "rsd_missing"),
                                    "effective_from": "2027-01-01T00:00:00Z"},
        "simulate_ruleset": {"version_id": ids.get("version_id", "rsv_missing"), "sessions": [SESSION]},
        "create_price_series": {"name": "spot_new"},
        "update_price_series": {"description": "d"},
        "put_price_points": {"points": [{"start": "2026-03-02T00:00:00Z", "value": "0.11"}]},
        "import_sessions_batch": {"sessions": [dict(SESSION, id="S-1", location_id="berlin_1")]},
        "import_ocpi_cdrs": {"cdrs": [CDR]},
        "rerate_session": {"reason": "tariff fix"},
        "rotate_charge_point_password": {},
        "set_charge_point_password": {},
        "create_access_rule": {"location_id": ids["location_id"], "subject": "anyone", "session_priority": 5},
        "update_access_rule": {"priority": 5},  # the seeded rule denies: a priority is refused (422)
        "create_meter_key": {"meter_serial": f"M-{t.name}", "public_key": METER_KEY,
                             "charge_point_id": ids["charge_point_id"]},
        "update_meter_key": {"description": "on the charger's label"},
        "revoke_meter_key": {"reason": "meter replaced"},
        "remote_start": {"id_tag": "TOK"},
        "remote_stop": {"transaction_id": int(ids["transaction_id"])},
        "change_availability": {"type": "Operative"},
        # from now (windows are checked against the clock): no gateway runs here, so 409
        # charge_point_not_connected after the references are checked (404 for another tenant's)
        # (for the partner: the walk blocks the token on its way)
        "create_reservation": {"evse_uid": "DE*ABC*E1*1", "partner_id": ids["emsp_partner_id"],
                               "expiry": _in_an_hour()},
        "create_document_delivery": {"recipient": "finance@example.test"},
        "approve_finance_task": {"note": "ok"},
        "reject_finance_task": {"reason": "wrong period"},
        "adjust_finance_task": {"description": "goodwill", "amount": "-5.00", "tax_rate": "19"},
        "place_billing_hold": {"reason": "dispute"},
        "start_ad_hoc_cycle": {"start": "2026-03-01", "end": "2026-04-01"},
        "create_service_item": {"description": "SIM card", "unit_price": "2.50", "per": "month", "tax_rate": "19",
                                "valid_from": "2026-03-01"},
        "update_service_item": {"quantity": "2"},
        "end_service_item": {"valid_to": "2026-12-01"},
        "create_discount": {"description": "10% framework agreement", "percent": "10", "valid_from": "2026-03-01"},
        "end_discount": {"valid_to": "2026-12-01"},
        "preview_partner_statement": {"partner_id": ids["partner_id"], "month": "2026-03"},
        "issue_partner_statement": {"partner_id": ids["partner_id"], "month": "2026-03"},
        "issue_host_credit_note": {},
        "correct_host_credit_note": {"reason": "the host's address changed"},
        "book_payment": {"account_id": ids["billing_account_id"], "amount": "1.00", "currency": "EUR",
                         "booked_on": "2026-03-05", "idempotency_key": f"walk-{t.name}"},
        "match_bank_entry": {"account_id": ids["billing_account_id"]},
        "dismiss_bank_entry": {"reason": "not ours"},
        "register_bank_account": {"iban": "DE89370400440532013000", "name": "Hausbank"},
        "create_creditor_account": {"name": "Second creditor", "iban": "DE12500105170648489890",
                                    "creditor_id": "DE98ZZZ09999999999"},
        "set_collection_schedule": {"hour": 6},
        "create_mandate": {"creditor_account_id": ids.get("creditor_account_id", "cra_missing"),
                           "reference": "M-NEW-" + t.name, "signed_on": "2026-01-05",
                           "iban": "DE89370400440532013000"},
        "change_mandate": {"debtor_name": "Renamed"},
        "revoke_mandate": {},
        "start_collection_run": {"creditor_account_id": ids.get("creditor_account_id", "cra_missing")},
        "approve_collection_run": {},
        "reject_collection_run": {"reason": "not now"},
        "request_refund": {"account_id": ids["billing_account_id"], "amount": "1.00",
                           "iban": "DE89370400440532013000", "idempotency_key": f"walk-refund-{t.name}"},
        "start_payout_run": {"creditor_account_id": ids.get("creditor_account_id", "cra_missing")},
        "approve_payout_run": {},
        "reject_payout_run": {"reason": "not now"},
        "start_clearing": {"partner_id": ids["emsp_partner_id"], "month": "2026-03"},
        "dispute_clearing_cdr": {"cdr_id": "CDR-X-1", "reason": "not ours", "proposed_amount": "1.00"},
        "resolve_clearing_dispute": {"resolution": "keep"},
        "dispute_receivable_item": {"reason": "the session was not mine"},
        "undispute_receivable_item": {"resolution": "confirmed"},
        "write_off_receivable_item": {"reason": "insolvent", "idempotency_key": f"walk-wo-{t.name}"},
        "approve_dunning_stage": {},
        "reject_dunning_stage": {"reason": "customer called"},
        "pause_dunning_case": {"reason": "customer in hospital"},
        "resume_dunning_case": {},
        "set_chart_of_accounts": {"template": "plain"},
        "close_period": {"period": "2026-01"},
        "refund_adhoc_charge": {"amount": "1.00", "reason": "walk"},
        "create_posting_batch": {"period": "2026-03"},
        "set_batch_schedule": {"cadence": "monthly"},
        "set_payout_schedule": {"day_of_month": 28},
        "set_sftp_target": {"host": "127.0.0.1", "username": "erp", "password": "walk", "directory": "/inbox",
                            "host_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMURZahOtLfxfKSc+Eh8PdVEenkY0xs+FvMzk0uymhMY"},
    }


# path parameters of areas whose objects the fixtures do not seed yet: the walk still calls the
# route (guards and tenant checks run), with an id nobody has
UNSEEDED = "zz_unseeded_0"

QUERIES: dict[str, dict[str, Any]] = {"diff_ruleset_versions": {"from_version": 1, "to_version": 1}}


def unseeded(spec: dict[str, Any], ids: dict[str, str]) -> set[str]:
    return {n for _, _, _, params in operations(spec) for n in params if n not in ids}


def declared_roles(app: Any) -> dict[str, tuple[str, ...]]:
    """operation id -> roles its guard admits, as the route declares them (``route(roles=...)``)."""
    from api.auth import ROLE_SETS

    out: dict[str, tuple[str, ...]] = {}
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            if handler.operation_id and "roles" in (handler.opt or {}):
                out[str(handler.operation_id)] = ROLE_SETS[handler.opt["roles"]]
    return out


def operations(spec: dict[str, Any]) -> list[tuple[str, str, str, list[str]]]:
    """(method, path template, operation id, path parameter names) for every route."""
    out = []
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method.upper() not in ("GET", "POST", "PUT", "PATCH", "DELETE"):
                continue
            out.append((method.upper(), path, op["operationId"], re.findall(r"{(\w+)}", path)))
    return out


def call(client: Any, method: str, path: str, op_id: str, ids: dict[str, str], body_owner: Tenantry,
         headers: dict[str, str]) -> Any:
    url = path
    for name in re.findall(r"{(\w+)}", path):
        url = url.replace("{" + name + "}", ids.get(name, UNSEEDED))
    kw: dict[str, Any] = {"headers": headers, "params": QUERIES.get(op_id, {})}
    if op_id == "import_sessions_csv":
        kw["content"] = "id,start,end,energy_kwh\nCSV-1,2026-03-01T10:00:00Z,2026-03-01T11:00:00Z,3\n"
        kw["headers"] = {**headers, "Content-Type": "text/csv"}
    elif op_id == "import_price_series_csv":
        # after the seeded points (2026-03-01 00:00 and 01:00): a new day, so the first walk imports it
        kw["content"] = "timestamp,price\n2026-03-05T00:00:00Z,0.101\n2026-03-05T01:00:00Z,0.099\n"
        kw["headers"] = {**headers, "Content-Type": "text/csv"}
    elif op_id == "import_bank_statement":
        kw["content"] = camt_sample(body_owner.name)
        kw["headers"] = {**headers, "Content-Type": "application/xml"}
    elif method in ("POST", "PUT", "PATCH"):
        kw["json"] = bodies(body_owner).get(op_id, {})
    return client.request(method, url, **kw)
