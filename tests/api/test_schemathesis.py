"""Property-based run of the app's own OpenAPI document through the ASGI app: no 5xx, responses
match their schemas, status codes and content types are documented."""

from __future__ import annotations

import os
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.conftest import build_env

MAX_EXAMPLES = int(os.environ.get("EVBILL_SCHEMATHESIS_EXAMPLES", "6"))

_env: Any = None


def _app() -> Any:
    global _env
    import tempfile
    from pathlib import Path

    env, _close = build_env("sqlite", Path(tempfile.mkdtemp(prefix="evbill-st-")))
    _env = env
    return env.client.app


schema = schemathesis.openapi.from_asgi("/schema/openapi.json", _app())


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi(case: Any) -> None:
    case.headers = {**(case.headers or {}), "Authorization": f"Bearer {_env.a.keys['admin']}"}
    if os.environ.get("EVBILL_SCHEMATHESIS_ALL_CHECKS"):
        case.call_and_validate()
    else:
        case.call_and_validate(checks=[not_a_server_error, response_schema_conformance, status_code_conformance,
                                       content_type_conformance])


_ = pytest


def test_responses_for_real_objects_match_the_schema() -> None:
    """Random ids mostly meet 404s; here every operation is called once with the seeded tenant's
    real ids and a valid body, and the answer is validated against the document."""
    import re

    from tests.api.conftest import seed_other_areas
    from tests.api.routes import QUERIES, UNSEEDED, bodies, camt_sample

    seed_other_areas(_env)
    a = _env.a
    ids = dict(a.ids)
    spare = _env.client.post("/api-keys", json={"user_id": a.users["auditor"]}, headers=a.h()).json()
    ids["api_key_id"] = spare["id"]
    checked = 0
    ops = sorted((r.ok() for r in schema.get_all_operations()), key=lambda op: op.method.upper() == "DELETE")
    for op in ops:
        params = {n: ids.get(n, UNSEEDED) for n in re.findall(r"{(\w+)}", op.path)}
        if op.path.endswith("/ocpi-token"):
            params["partner_id"] = ids["emsp_partner_id"]  # OCPI credentials are an eMSP's
        kw: dict[str, Any] = {"path_parameters": params, "query": QUERIES.get(op.label and "", None) or None,
                              "headers": {"Authorization": f"Bearer {a.keys['admin']}"}}
        op_id = op.definition.raw.get("operationId")
        if op_id in QUERIES:
            kw["query"] = QUERIES[op_id]
        if op_id == "import_sessions_csv":
            kw["body"] = "id,start,end,energy_kwh\nCSV-9,2026-03-01T10:00:00Z,2026-03-01T11:00:00Z,3\n"
            kw["media_type"] = "text/csv"
        elif op_id == "import_price_series_csv":
            kw["body"] = "timestamp,price\n2026-03-09T00:00:00Z,0.101\n2026-03-09T01:00:00Z,0.099\n"
            kw["media_type"] = "text/csv"
        elif op_id == "import_bank_statement":
            kw["body"] = camt_sample("schemathesis")
            kw["media_type"] = "application/xml"
        elif op.method.upper() in ("POST", "PUT", "PATCH"):
            kw["body"] = bodies(a).get(op_id, {})
            kw["media_type"] = "application/json"
        case = op.Case(**{k: v for k, v in kw.items() if v is not None})
        checks = [not_a_server_error, response_schema_conformance, status_code_conformance]
        # the archive serves each document with its own media type (PDF or XML) while the document
        # declares one; everything else must match its declared content type
        if op_id != "download_document":
            checks.append(content_type_conformance)
        resp = case.call_and_validate(checks=checks)
        # deleting an object others still refer to is refused with 409 still_referenced
        # and commands to a charger that is not connected are refused with 409 as well
        # and the seeded partner statement (no sessions) has nothing a credit note could credit
        # and the seeded dunning case waits for its next stage's day: no stage awaits a decision
        ok = resp.status_code < 400 or (resp.status_code == 409 and resp.json()["code"] in (
            "still_referenced", "charge_point_not_connected", "nothing_to_credit", "not_waiting"))
        # the billing area needs a Temporal server, which this suite does not start
        ok = ok or (resp.status_code == 400 and resp.json().get("code") == "temporal_unavailable")
        # the seeded customer is a private person without a VAT ID: nothing for VIES to check
        ok = ok or (op_id == "check_customer_vat_id" and resp.status_code == 422
                    and resp.json().get("code") == "no_vat_id")
        # the seeded dunning case waits for stage 2: it was not handed over to a collection agency
        ok = ok or (op_id == "download_dunning_hand_over" and resp.status_code == 404
                    and resp.json().get("code") == "dunning_hand_over_not_found")
        # the seeded session came from a JSON import: it has no signed meter data (Eichrecht; the
        # XML file itself is checked in tests/api/ocpp/test_eichrecht.py with a charger's session)
        ok = ok or (op_id == "get_session_signed_data" and resp.status_code == 404
                    and resp.json().get("code") == "signed_data_not_found")
        # objects the fixtures do not seed (areas added later) can only be missing
        ok = ok or (UNSEEDED in str(params.values()) and resp.status_code == 404)
        assert ok, (op_id, resp.status_code, resp.text)
        checked += 1
    assert checked >= 80
