"""Tenant A's credentials against tenant B's objects, on every route of the OpenAPI document.

Routes with an id in the path must answer 404 (or 403) for B's ids; routes without one must not
show or touch B's objects (lists come back without them, creates that reference B's objects
answer 404, imports never match B's sessions)."""

from __future__ import annotations

import warnings
from typing import Any

from tests.api.conftest import Env, seed_other_areas
from tests.api.routes import bodies, call, operations, unseeded

# routes without path parameters, by what isolation means for them
LISTS = {"list_api_keys", "list_users", "list_customer_groups", "list_customers", "list_billing_accounts",
         "list_contracts", "list_tokens", "list_locations", "list_charge_points", "list_evses", "list_partners",
         "list_agreements", "list_rulesets", "list_price_series_list", "list_sessions", "list_audit_entries",
         "list_access_rules", "list_ocpp_transactions", "list_documents", "list_finance_tasks", "list_invoices",
         "list_partner_statements", "list_receivable_items", "list_bank_entries", "list_bank_accounts",
         "list_creditor_accounts", "list_collection_runs", "list_payables", "list_payout_runs",
         "list_dunning_cases", "list_chart_templates", "list_closed_periods", "list_journal_entries",
         "list_posting_batches", "list_clearing_statements", "list_host_credit_notes",
         "list_meter_keys", "list_reservations"}
REFERENCING_CREATES = {"create_api_key", "create_billing_account", "create_contract", "create_token",
                       "create_location", "create_charge_point", "create_evse", "create_agreement",
                       "simulate_ruleset", "create_access_rule", "preview_partner_statement",
                       "issue_partner_statement", "book_payment", "start_collection_run", "request_refund",
                       "start_payout_run", "start_clearing", "create_meter_key",
                       "create_reservation"}
OWN_TENANT_ONLY = {"get_tenant", "update_tenant", "get_me", "verify_audit_chain", "issue_access_token",
                   "get_aged_receivables", "register_bank_account", "get_chart_of_accounts", "get_reconciliation",
                   "get_open_items_list", "get_batch_schedule", "get_payout_schedule",
                   "get_sftp_target"}
FREE_CREATES = {"create_user", "create_customer_group", "create_customer", "create_partner", "create_ruleset",
                "create_price_series", "create_creditor_account"}
IMPORTS = {"import_sessions_batch", "import_ocpi_cdrs", "import_sessions_csv", "import_bank_statement"}
# tenant-wide actions: whatever they touch and answer is the caller's tenant's
ACTIONS = {"resolve_unassigned_sessions", "set_chart_of_accounts", "close_period", "set_sftp_target",
           "set_batch_schedule", "set_payout_schedule"}
# a batch takes the caller's own journal entries; with none left to export it answers 409
BATCHES = {"create_posting_batch"}
# routes that talk to Temporal, which this suite does not start: a problem naming that, never a 5xx
NEEDS_TEMPORAL = {"sync_billing_schedules"}
PUBLIC = {"get_health"}


def _all_ids(body: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(body, dict):
        for k, v in body.items():
            if isinstance(v, str) and (k == "id" or k.endswith("_id")):
                found.add(v)
            else:
                found |= _all_ids(v)
    elif isinstance(body, list):
        for v in body:
            found |= _all_ids(v)
    return found


def test_every_route_keeps_tenants_apart(env: Env) -> None:
    seed_other_areas(env)
    spec = env.client.get("/schema/openapi.json").json()
    a, b = env.a, env.b
    b_ids = set(b.ids.values()) | {b.tenant_id} | set(b.users.values())
    failures: list[str] = []
    seen: set[str] = set()
    for method, path, op_id, params in operations(spec):
        seen.add(op_id)
        if params:
            # A's body (valid for A), B's ids in the path
            r = call(env.client, method, path, op_id, b.ids, a, a.h())
            if r.status_code not in (403, 404):
                failures.append(f"{method} {path} ({op_id}) with B's ids: {r.status_code} {r.text[:200]}")
            continue
        if op_id in PUBLIC:
            continue
        if op_id in LISTS:
            r = call(env.client, method, path, op_id, {}, a, a.h())
            leaked = _all_ids(r.json()) & b_ids if r.status_code == 200 else set()
            if r.status_code != 200 or leaked:
                failures.append(f"{op_id}: {r.status_code}, leaked {sorted(leaked)}")
            # filters naming B's objects find nothing
            for fname in ("customer_id", "location_id", "partner_id", "site_host_id", "user_id", "contract_id"):
                if any(p.get("name") == fname for p in spec["paths"][path]["get"].get("parameters", [])):
                    fid = b.ids["partner_id"] if fname == "site_host_id" else b.ids[fname]
                    r = env.client.get(path, params={fname: fid}, headers=a.h())
                    if r.status_code != 200 or r.json()["items"]:
                        failures.append(f"{op_id}?{fname}=B: {r.status_code} {r.text[:200]}")
        elif op_id in REFERENCING_CREATES:
            # A's request referencing B's objects
            r = env.client.post(path, json=bodies(b)[op_id], headers=a.h())
            if r.status_code not in (403, 404):
                failures.append(f"{op_id} referencing B's objects: {r.status_code} {r.text[:200]}")
        elif op_id in OWN_TENANT_ONLY:
            r = call(env.client, method, path, op_id, {}, a, a.h())
            if r.status_code != 200 or _all_ids(r.json()) & b_ids or b.tenant_id in r.text:
                failures.append(f"{op_id}: {r.status_code} {r.text[:200]}")
        elif op_id in FREE_CREATES:
            r = call(env.client, method, path, op_id, {}, a, a.h())
            if r.status_code != 201 or _all_ids(r.json()) & b_ids:
                failures.append(f"{op_id}: {r.status_code} {r.text[:200]}")
        elif op_id in IMPORTS or op_id in ACTIONS:
            # B already holds a session "S-1"; A importing the same external id gets its own session
            r = call(env.client, method, path, op_id, {}, a, a.h())
            body = r.json()
            if r.status_code not in (200, 201) or _all_ids(body) & b_ids:
                failures.append(f"{op_id}: {r.status_code} {r.text[:300]}")
        elif op_id in BATCHES:
            r = call(env.client, method, path, op_id, {}, a, a.h())
            if not (r.status_code == 201 or (r.status_code == 409 and r.json()["code"] == "nothing_to_export")) \
                    or _all_ids(r.json()) & b_ids:
                failures.append(f"{op_id}: {r.status_code} {r.text[:200]}")
        elif op_id in NEEDS_TEMPORAL:
            r = call(env.client, method, path, op_id, {}, a, a.h())
            if r.status_code >= 500 or r.json().get("code") != "temporal_unavailable":
                failures.append(f"{op_id}: {r.status_code} {r.text[:200]}")
        else:
            failures.append(f"{op_id}: route not classified by the isolation test")
    assert not failures, "\n".join(failures)
    assert len(seen) >= 80
    missing = unseeded(spec, b.ids)
    if missing:
        warnings.warn(f"no seeded objects for path parameters {sorted(missing)}: those routes were "
                      f"walked with an id nobody has", stacklevel=1)


def test_b_objects_are_untouched_after_a_walked_everything(env: Env) -> None:
    r = env.client.get(f"/customers/{env.b.ids['customer_id']}", headers=env.b.h())
    assert r.status_code == 200 and r.json()["city"] == ""
    v = env.client.get("/audit/verify", headers=env.b.h("auditor")).json()
    assert v["ok"], v
