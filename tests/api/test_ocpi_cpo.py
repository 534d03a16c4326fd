"""OCPI 2.2.1 as a CPO for an eMSP partner: token A from an admin, the credentials handshake
(token A opens versions and the registration only, then token C), ``cdrs`` with the spec's paging
(offset, limit, date_from/date_to, X-Total-Count, X-Limit, Link) and ``tariffs`` exported from the
ruleset; every payload read by another implementation's OCPI types (ocpi-types). SQLite and
PostgreSQL."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from api.app import Settings, create_app
from store.tenants import create_user, issue_key
from tests.clearing_seed import add_sessions, add_tokens, roam_net, seed_clearing
from tests.store.conftest import BACKENDS, fresh_engine
from workflows.clearing.activities import ClearingActivities
from workflows.clearing.types import BuildInput


@pytest.fixture(params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    eng, cleanup = fresh_engine(str(request.param), tmp_path)
    yield eng
    cleanup()  # type: ignore[operator]


def _tok(token: str) -> dict[str, str]:
    return {"Authorization": "Token " + base64.b64encode(token.encode()).decode()}


def test_handshake_cdrs_paging_and_tariffs(engine: Engine) -> None:
    from ocpi_types.v2_2_1 import Cdr, Credentials, Tariff, Version, VersionDetails

    tid = f"t{uuid.uuid4().hex[:8]}"
    seed = seed_clearing(engine, tid)
    add_tokens(engine, seed, ["T1"])
    start = datetime(2026, 11, 2, 8, tzinfo=UTC)
    sessions = [(f"c{i:02d}", start + timedelta(hours=5 * i), D(5) + D(i) / 10, "T1") for i in range(12)]
    add_sessions(engine, seed, sessions)
    ClearingActivities(engine).build(BuildInput(tid, seed.partner_id, "2026-11", "wf-ocpi", "ops"))
    with Session(engine) as db:
        u = create_user(db, tid, "admin@t.test", "admin")
        op = create_user(db, tid, "op@t.test", "operator")
        db.flush()
        admin, oper = issue_key(db, tid, u.id)[1], issue_key(db, tid, op.id)[1]
        db.commit()
    with TestClient(create_app(Settings(engine=engine, migrate=False)), raise_server_exceptions=False) as c:
        assert c.post(f"/partners/{seed.partner_id}/ocpi-token", headers={"X-API-Key": oper}).status_code == 403
        assert c.post("/partners/par_nope/ocpi-token", headers={"X-API-Key": admin}).status_code == 404
        r = c.post(f"/partners/{seed.partner_id}/ocpi-token", headers={"X-API-Key": admin})
        assert r.status_code == 201, r.text
        token_a = r.json()["token"]
        assert c.get("/ocpi/versions").status_code == 401
        assert c.get("/ocpi/versions", headers=_tok("wrong")).status_code == 401
        v = c.get("/ocpi/versions", headers=_tok(token_a))
        assert v.status_code == 200 and v.json()["status_code"] == 1000
        [ver] = [Version.from_dict(x) for x in v.json()["data"]]
        assert ver.version.value == "2.2.1"
        details = VersionDetails.from_dict(c.get(ver.url.replace("http://testserver.local", ""),
                                                 headers=_tok(token_a)).json()["data"])
        assert {e.identifier.value for e in details.endpoints} == {"credentials", "cdrs", "tariffs"}
        # token A does not open the modules
        assert c.get("/ocpi/2.2.1/cdrs", headers=_tok(token_a)).status_code == 401
        theirs = {"token": "their-token-b", "url": "https://emsp.example/ocpi/versions",
                  "roles": [{"role": "EMSP", "party_id": "ABC", "country_code": "NL",
                             "business_details": {"name": "Roam Mobility"}}]}
        assert c.post("/ocpi/2.2.1/credentials", json={"token": ""}, headers=_tok(token_a)).status_code == 400
        r = c.post("/ocpi/2.2.1/credentials", json=theirs, headers=_tok(token_a))
        assert r.status_code == 200, r.text
        ours = Credentials.from_dict(r.json()["data"])
        token_c = ours.token
        assert token_c != token_a and ours.roles[0].role.value == "CPO" and ours.roles[0].party_id == "EVB"
        assert c.get("/ocpi/versions", headers=_tok(token_a)).status_code == 401  # token A is spent
        assert c.post("/ocpi/2.2.1/credentials", json=theirs, headers=_tok(token_c)).status_code == 405

        # cdrs, paged by 5: 12 CDRs in three pages, each a valid OCPI CDR
        seen: list[Any] = []
        url: str | None = "/ocpi/2.2.1/cdrs?limit=5"
        pages = 0
        while url:
            r = c.get(url, headers=_tok(token_c))
            assert r.status_code == 200 and r.headers["X-Total-Count"] == "12" and r.headers["X-Limit"] == "500"
            body = r.json()
            seen += [Cdr.from_dict(x) for x in body["data"]]
            pages += 1
            link = r.headers.get("Link")
            url = link.split(";")[0].strip("<>").replace("http://testserver.local", "") if link else None
        assert pages == 3 and [x.id for x in seen] == [s[0] for s in sessions]
        first = json.loads(c.get("/ocpi/2.2.1/cdrs?offset=0&limit=1", headers=_tok(token_c)).text,
                           parse_float=D)["data"][0]
        assert first["total_cost"]["excl_vat"] == roam_net(D(5))  # a JSON number, exact
        assert first["cdr_token"] == {"country_code": "NL", "party_id": "ABC", "uid": "T1", "type": "RFID",
                                      "contract_id": "NL-ABC-CT1"}
        # date window on last_updated: all of them now, none before
        assert c.get("/ocpi/2.2.1/cdrs?date_to=2020-01-01T00:00:00Z",
                     headers=_tok(token_c)).headers["X-Total-Count"] == "0"
        assert c.get("/ocpi/2.2.1/cdrs?date_from=2020-01-01T00:00:00Z&offset=10",
                     headers=_tok(token_c)).json()["data"].__len__() == 2
        assert c.get("/ocpi/2.2.1/cdrs?limit=abc", headers=_tok(token_c)).status_code == 400

        # tariffs: the roaming agreement's tariff exported from the ruleset
        r = c.get("/ocpi/2.2.1/tariffs", headers=_tok(token_c))
        assert r.status_code == 200 and r.headers["X-Total-Count"] == "1"
        [tariff] = [Tariff.from_dict(x) for x in r.json()["data"]]
        assert tariff.id == "roam" and tariff.currency == "EUR"
        comps = {pc.type.value: pc.price for el in tariff.elements for pc in el.price_components}
        assert comps == {"FLAT": 0.3, "ENERGY": 0.55, "PARKING_TIME": 6.0}

        assert c.delete("/ocpi/2.2.1/credentials", headers=_tok(token_c)).status_code == 200
        assert c.get("/ocpi/2.2.1/cdrs", headers=_tok(token_c)).status_code == 401
