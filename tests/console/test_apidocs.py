"""The API reference at ``/schema/`` works offline: Swagger UI from the swagger-ui-bundle
package, every asset the page loads comes from our own server, and the page shows the API's
operations in a real browser."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlparse

from litestar.testing import TestClient

from api.app import Settings, create_app
from tests.console.browser import chromium
from tests.console.server import served


def test_schema_page_names_only_local_assets(tmp_path: Path) -> None:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}"))
    with TestClient(app) as c:
        r = c.get("/schema/")
        assert r.status_code == 200 and "SwaggerUIBundle" in r.text
        urls = re.findall(r"""(?:src|href)=["']([^"']+)""", r.text)
        assert len(urls) == 4, urls
        for url in urls:
            assert url.startswith("/schema/static/"), url
            asset = c.get(url)
            assert asset.status_code == 200 and len(asset.content) > 500, url
        assert "cdn" not in r.text.split("spec:")[0].lower()
        # the bundle's own files only, no way out of its folder
        assert c.get("/schema/static/../../api/app.py").status_code == 404
        assert c.get("/schema/openapi.json").json()["info"]["title"] == "evbill operator API"


def test_schema_page_renders_from_our_server_in_chromium(tmp_path: Path) -> None:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}"))
    with served(app) as base, chromium() as browser:
        page = browser.new_page()
        requested: list[str] = []
        failed: list[str] = []
        page.on("request", lambda req: requested.append(req.url))
        page.on("requestfailed", lambda req: failed.append(req.url))
        page.goto(f"{base}/schema/")
        page.wait_for_selector(".opblock-tag", timeout=30_000)
        assert "evbill operator API" in page.locator(".info .title").inner_text()
        # Swagger UI read the whole document (it draws the tags as they scroll into view)
        assert page.evaluate("ui.specSelectors.operations().size") > 80
        assert "bank" in page.evaluate("ui.specSelectors.taggedOperations().keySeq().toArray()")
        page.get_by_role("button", name="Authorize").click()
        page.wait_for_selector("text=Available authorizations")
        origin = urlparse(base).netloc
        foreign = [u for u in requested if not u.startswith("data:") and urlparse(u).netloc != origin]
        assert not foreign, foreign
        assert not failed, failed
        assert any(u.endswith("/schema/static/swagger-ui-bundle.js") for u in requested), requested
