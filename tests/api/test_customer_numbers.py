"""Customer numbers through the API: read-only, drawn per tenant at creation, filterable (issue 11,
defect 8). SQLite and PostgreSQL (the ``env`` fixture)."""

from __future__ import annotations

from tests.api.conftest import Env
from tests.api.test_crm import _problem


def test_customers_show_their_number_and_can_be_found_by_it(env: Env) -> None:
    c = env.client
    for t in (env.a, env.b):
        h = t.h("operator")
        first = c.get(f"/customers/{t.ids['customer_id']}", headers=h).json()
        assert first["number"] == "K-10001"  # each tenant's series starts on its own
        made = [c.post("/customers", json={"name": f"Numbered {i}"}, headers=h).json() for i in range(2)]
        assert [m["number"] for m in made] == ["K-10002", "K-10003"]
        page = c.get("/customers", params={"number": "K-10003"}, headers=h).json()["items"]
        assert [x["id"] for x in page] == [made[1]["id"]]
        assert [x["id"] for x in c.get("/customers", params={"q": "k-10002"}, headers=h).json()["items"]] \
            == [made[0]["id"]]
        # the number is the customer's for good: neither chosen at creation nor changed later
        _problem(c.post("/customers", json={"name": "Mine", "number": "K-1"}, headers=h), 400, "validation_failed")
        _problem(c.patch(f"/customers/{made[0]['id']}", json={"number": "K-9"}, headers=h), 400,
                 "validation_failed")
        assert c.get(f"/customers/{made[0]['id']}", headers=h).json()["number"] == "K-10002"
