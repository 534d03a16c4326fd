"""Every route × every role: the guard answers 403 exactly for the roles the matrix below excludes.

The matrix is written out here on purpose (not read back from the app), so a route that quietly
loosens or tightens its guard fails this test."""

from __future__ import annotations

from tests.api.conftest import Env, seed_other_areas
from tests.api.routes import call, declared_roles, operations

ROLES = ("admin", "analyst", "operator", "approver", "auditor", "partner")
READ = {"admin", "operator", "analyst", "approver", "auditor"}
WRITE = {"admin", "operator"}


# areas built by other people after this matrix was written: their routes are held to the roles
# they declare (the test still proves the guard enforces exactly those)
FOREIGN_PREFIXES = ("/billing/", "/documents", "/collections/", "/mandates/")


def expected_roles(op_id: str) -> set[str]:
    if op_id == "get_health":
        return set(ROLES)
    if op_id in ("get_me", "issue_access_token"):
        return set(ROLES)
    if op_id in ("list_sessions", "get_session", "list_session_ratings", "get_session_signed_data"):
        return READ | {"partner"}
    if op_id in ("import_sessions_batch", "import_ocpi_cdrs", "import_sessions_csv", "rerate_session",
                 "assign_session", "resolve_unassigned_sessions"):
        return WRITE
    if op_id in ("update_tenant", "create_api_key", "list_api_keys", "revoke_api_key") or op_id.endswith("_user") \
            or op_id == "list_users":
        return {"admin"}
    if op_id in ("list_audit_entries", "verify_audit_chain"):
        return {"admin", "auditor"}
    if op_id in ("create_ruleset", "update_ruleset", "create_ruleset_draft", "simulate_ruleset"):
        return {"admin", "analyst"}
    if op_id == "publish_ruleset_version":
        return {"admin", "approver"}
    if op_id in ("create_price_series", "update_price_series", "put_price_points", "import_price_series_csv"):
        return {"admin", "analyst", "operator"}
    if op_id in ("rotate_charge_point_password", "set_charge_point_password", "remote_start", "remote_stop",
                 "change_availability", "revoke_meter_key", "cancel_reservation"):
        return WRITE
    if op_id in ("list_ocpp_transactions", "get_ocpp_transaction", "get_ocpp_transaction_cost"):
        return WRITE
    if op_id == "download_document":
        return READ
    if op_id in ("preview_partner_statement", "list_partner_statements", "get_partner_statement",
                 "export_partner_statement_csv", "render_partner_statement_pdf"):
        # finance reads statements, a partner its own; analysts price, they do not see payouts
        return {"admin", "operator", "approver", "auditor", "partner"}
    if op_id == "issue_partner_statement":
        return WRITE
    # host credit notes (issue 15): read like statements (a partner its own), issued by operations
    if op_id in ("list_host_credit_notes", "get_host_credit_note"):
        return {"admin", "operator", "approver", "auditor", "partner"}
    if op_id in ("issue_host_credit_note", "correct_host_credit_note"):
        return WRITE
    # receivables and bank statements: finance's; analysts price, they do not see money come in
    if op_id in ("list_receivable_items", "get_aged_receivables", "get_account_statement", "list_bank_entries",
                 "list_bank_accounts"):
        return {"admin", "operator", "approver", "auditor"}
    if op_id in ("book_payment", "import_bank_statement", "match_bank_entry", "dismiss_bank_entry",
                 "register_bank_account", "dispute_receivable_item", "undispute_receivable_item",
                 "pause_dunning_case", "resume_dunning_case"):
        return {"admin", "operator", "approver"}
    # refunds and payouts: finance's; approvers (and admins, as for collections) reach the decision,
    # whose workflow admits approvers only, never the starter nor a requester (four eyes)
    if op_id in ("list_payables", "get_payable", "list_payout_runs", "get_payout_run", "download_payout_file",
                 "get_payout_schedule"):
        return {"admin", "operator", "approver", "auditor"}
    # ad-hoc card charges (issue 16): finance reads them and refunds through the provider; the QR
    # sheet of a site is for everyone who reads the sites
    if op_id == "get_adhoc_charge":
        return {"admin", "operator", "approver", "auditor"}
    if op_id == "refund_adhoc_charge":
        return {"admin", "operator", "approver"}
    if op_id == "get_adhoc_qr_sheet":
        return READ
    if op_id in ("request_refund", "start_payout_run"):
        return {"admin", "operator", "approver"}
    if op_id in ("approve_payout_run", "reject_payout_run"):
        return {"approver", "admin"}
    # eMSP clearing: finance and the partner (its own) read statements; the partner's key or finance
    # disputes a CDR (the workflow checks the window), approvers resolve
    if op_id in ("list_clearing_statements", "get_clearing_statement", "download_clearing_xlsx",
                 "download_clearing_cdrs"):
        return {"admin", "operator", "approver", "auditor", "partner"}
    if op_id == "start_clearing":
        return {"admin", "operator", "approver"}
    if op_id == "dispute_clearing_cdr":
        return {"admin", "operator", "approver", "partner"}
    if op_id == "resolve_clearing_dispute":
        return {"admin", "approver"}
    if op_id == "issue_ocpi_token":
        return {"admin"}  # it opens the partner's OCPI access
    # dunning: finance reads cases and letters; only approvers decide a stage that needs approval
    if op_id in ("list_dunning_cases", "get_dunning_case", "download_dunning_letter", "download_dunning_hand_over"):
        return {"admin", "operator", "approver", "auditor"}
    if op_id in ("approve_dunning_stage", "reject_dunning_stage"):
        return {"admin", "approver"}
    if op_id == "check_customer_vat_id":
        return WRITE  # asks VIES again, as a customer write does
    if op_id == "write_off_receivable_item":
        return {"admin", "approver"}  # finance gives a receivable up
    # accounting: finance reads the journal and batches; admins and approvers set the chart, close
    # periods and cut batches
    if op_id in ("get_chart_of_accounts", "list_chart_templates", "list_closed_periods", "list_journal_entries",
                 "get_reconciliation", "get_open_items_list", "list_posting_batches", "get_posting_batch", "download_posting_batch_file",
                 "get_sftp_target", "get_batch_schedule"):
        return {"admin", "operator", "approver", "auditor"}
    if op_id in ("set_chart_of_accounts", "close_period", "create_posting_batch", "deliver_posting_batch",
                 "set_batch_schedule"):
        return {"admin", "approver"}
    if op_id == "set_sftp_target":
        return {"admin"}  # it holds the ERP's credentials
    if op_id == "set_payout_schedule":
        return {"admin"}  # when money leaves by itself
    if op_id.startswith(("list_", "get_", "diff_")):
        return READ
    if op_id.startswith(("create_", "update_", "delete_")):
        return WRITE
    raise AssertionError(f"{op_id}: no expectation in the role matrix")


def test_role_matrix(env: Env) -> None:
    seed_other_areas(env)
    spec = env.client.get("/schema/openapi.json").json()
    a = env.a
    # revoking must not hit the admin's own key, which the rest of the walk uses
    spare = env.client.post("/api-keys", json={"user_id": a.users["auditor"]}, headers=a.h()).json()
    ids = {**a.ids, "api_key_id": spare["id"]}
    wrong: list[str] = []
    # deletes last, so the objects other calls need still exist while they run
    ops = sorted(operations(spec), key=lambda o: o[0] == "DELETE")
    declared = declared_roles(env.client.app)
    for method, path, op_id, _ in ops:
        allowed = set(declared[op_id]) if path.startswith(FOREIGN_PREFIXES) else expected_roles(op_id)
        for role in ROLES:
            r = call(env.client, method, path, op_id, ids, a, a.h(role))
            if role in allowed:
                if r.status_code in (401, 403) or r.status_code >= 500:
                    wrong.append(f"{role} {op_id}: expected access, got {r.status_code} {r.text[:150]}")
            elif r.status_code != 403 or r.json().get("code") != "forbidden":
                wrong.append(f"{role} {op_id}: expected 403, got {r.status_code} {r.text[:150]}")
    assert not wrong, "\n".join(wrong)


def test_partner_sees_only_its_own_sites_sessions(env: Env) -> None:
    a = env.a
    h = a.h("partner")
    items = env.client.get("/sessions", headers=h).json()["items"]
    assert items and {s["site_host_id"] for s in items} == {a.ids["partner_id"]}
    assert env.client.get(f"/sessions/{a.ids['session_id']}", headers=h).status_code == 200
    # S-2 happened at a location that is not the partner's site
    r = env.client.get(f"/sessions/{a.ids['other_session_id']}", headers=h)
    assert r.status_code == 404 and r.json()["code"] == "session_not_found"
    assert env.client.get(f"/sessions/{a.ids['other_session_id']}/ratings", headers=h).status_code == 404


def test_authentication(env: Env) -> None:
    c, a = env.client, env.a
    r = c.get("/customers")
    assert r.status_code == 401 and r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "unauthenticated"
    assert c.get("/customers", headers={"Authorization": "Bearer nope"}).status_code == 401
    key_id = a.keys["admin"].split(".")[0]
    assert c.get("/customers", headers={"Authorization": f"Bearer {key_id}.wrong-secret"}).status_code == 401
    assert c.get("/customers", headers={"X-API-Key": a.keys["operator"]}).status_code == 200
    created = c.post("/api-keys", json={"user_id": a.users["auditor"], "name": "tmp"}, headers=a.h()).json()
    h = {"X-API-Key": created["key"]}
    assert c.get("/audit/verify", headers=h).status_code == 200
    assert c.delete(f"/api-keys/{created['id']}", headers=a.h()).status_code == 204
    assert c.get("/audit/verify", headers=h).status_code == 401
    listed = c.get("/api-keys", headers=a.h()).json()["items"]
    assert all("key" not in k and "secret_sha256" not in k for k in listed)
