"""The ad-hoc pages' routes (public, outside the OpenAPI document): each is classified in
``api.adhoc.HTML_ROUTES``, and each answers a bad request with a 4xx (a problem document for
clients that do not ask for HTML), never a 5xx, whoever calls (SQLite and PostgreSQL)."""

from __future__ import annotations

import re

from api.adhoc import HTML_ROUTES
from tests.api.conftest import Env


def test_every_adhoc_route_is_classified(env: Env) -> None:
    found = set()
    for route in env.client.app.routes:
        if route.path.startswith(("/charge/", "/adhoc/", "/payments/webhooks/")):
            found |= {f"{m} {route.path}" for m in getattr(route, "methods", ()) if m not in ("HEAD", "OPTIONS")}
    assert found == set(HTML_ROUTES), found ^ set(HTML_ROUTES)


def test_bad_requests_are_4xx_problems(env: Env) -> None:
    c = env.client
    values = {"evse_id": "evse_nobody", "key": "nobody", "provider_name": "stripe", "file_path": "nothing.css"}
    for key in HTML_ROUTES:
        method, path = key.split(" ", 1)
        url = re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: values[m.group(1)], path)
        for headers in ({"Accept": "application/json"}, {"Accept": "text/html"}, env.a.h()):
            r = c.request(method, url, headers=headers, data={"accept": "yes"} if method == "POST" else None,
                          follow_redirects=False)
            assert 400 <= r.status_code < 500, (key, headers, r.status_code, r.text[:300])
            if headers.get("Accept") == "application/json" and not path.startswith("/adhoc/static"):
                assert r.headers["content-type"].startswith("application/problem+json"), (key, r.headers)
                assert r.json()["code"], key
    # the stylesheet is there, from our origin
    css = c.get("/adhoc/static/adhoc.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
