"""The logging set-up of serve and demo (api/logs.py): third-party INFO chatter stays out, our own
lines stay in, and EVBILL_LOG_FORMAT=json gives one JSON object per line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from api.logs import setup_logging

THIRD = ("fontTools", "weasyprint", "alembic")


@pytest.fixture
def clean_logging() -> Iterator[None]:
    """Put the process's logging back as it was (other tests share it)."""
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    names = ["evbill", *THIRD, "uvicorn", "temporalio", "httpx", "websockets"]
    levels = {n: logging.getLogger(n).level for n in names}
    yield
    for h in list(root.handlers):
        if h not in saved[1]:
            root.removeHandler(h)
    root.setLevel(saved[0])
    for n, lvl in levels.items():
        logging.getLogger(n).setLevel(lvl)
    logging.captureWarnings(False)


def _render_and_migrate(tmp_path: Path) -> None:
    from runtime.documents import render
    from runtime.documents.demo import demo_invoice_input
    from runtime.documents.from_invoice import document_from_invoice
    from store.db import make_engine, migrate

    pdf = render(document_from_invoice(demo_invoice_input("b2b", sessions=3, number="RE-LOG-1")), "facturx-pdf")
    assert pdf.startswith(b"%PDF")
    engine = make_engine(f"sqlite:///{tmp_path / 'log.db'}")
    migrate(engine)
    engine.dispose()


def test_third_party_info_is_kept_out(tmp_path: Path, clean_logging: None) -> None:
    # what the old set-up (basicConfig at INFO) let through: alembic at least, fontTools too
    # on a machine without libharfbuzz-subset0
    before: list[logging.LogRecord] = []
    catch = logging.Handler()
    catch.emit = before.append  # type: ignore[method-assign]
    root = logging.getLogger()
    root.addHandler(catch)
    root.setLevel(logging.INFO)
    for n in THIRD:
        logging.getLogger(n).setLevel(logging.NOTSET)
    try:
        (tmp_path / "a").mkdir()
        _render_and_migrate(tmp_path / "a")
    finally:
        root.removeHandler(catch)
    assert any(r.name.startswith("alembic") and r.levelno == logging.INFO for r in before)

    buf = io.StringIO()
    setup_logging(level="INFO", fmt="text", stream=buf)
    seen: list[logging.LogRecord] = []
    spy = logging.Handler()
    spy.emit = seen.append  # type: ignore[method-assign]
    root.addHandler(spy)
    try:
        (tmp_path / "b").mkdir()
        _render_and_migrate(tmp_path / "b")
        logging.getLogger("evbill.billing").info("invoice %s finalized", "INV-000001")
    finally:
        root.removeHandler(spy)
    noisy = [r for r in seen if r.name.split(".")[0] in THIRD and r.levelno < logging.WARNING]
    assert noisy == []
    assert [r.getMessage() for r in seen if r.name.startswith("evbill")] == ["invoice INV-000001 finalized"]
    assert "fontTools" not in buf.getvalue() and "alembic" not in buf.getvalue()
    assert buf.getvalue().rstrip().endswith("INFO evbill.billing: invoice INV-000001 finalized")


def test_json_lines_parse_with_extra_fields(clean_logging: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVBILL_LOG_FORMAT", "json")
    monkeypatch.setenv("EVBILL_LOG_LEVEL", "debug")
    buf = io.StringIO()
    setup_logging(stream=buf)
    log = logging.getLogger("evbill.test")
    log.debug("draft %s held", "inv_1", extra={"account_id": "acc_1", "gross": Decimal("250.10")})
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("render failed")
    logging.getLogger("fontTools.subset").info("Glyph names: ...")  # kept out: WARNING for them
    lines = [json.loads(x) for x in buf.getvalue().splitlines()]
    assert len(lines) == 2
    first, second = lines
    assert {k: first[k] for k in ("level", "logger", "message", "account_id", "gross")} == {
        "level": "DEBUG", "logger": "evbill.test", "message": "draft inv_1 held", "account_id": "acc_1",
        "gross": "250.10"}
    assert first["time"].endswith("+00:00")
    assert second["level"] == "ERROR" and "ValueError: boom" in second["exception"]


def test_setting_up_twice_does_not_double_lines(clean_logging: None) -> None:
    buf = io.StringIO()
    setup_logging(level="INFO", fmt="text", stream=buf)
    setup_logging(level="INFO", fmt="text", stream=buf)
    logging.getLogger("evbill.test").info("once")
    assert buf.getvalue().count("once") == 1


def test_bad_level_is_refused() -> None:
    with pytest.raises(ValueError, match="EVBILL_LOG_LEVEL"):
        setup_logging(level="LOUD")


def test_the_app_leaves_logging_to_the_command(tmp_path: Path, clean_logging: None) -> None:
    # Litestar's default logging config replaced the root handlers (another format) and set the
    # root logger to INFO, so every library's INFO came back once the app was built
    from litestar.testing import TestClient

    from api.app import Settings, create_app
    from store.db import make_engine

    buf = io.StringIO()
    setup_logging(level="INFO", fmt="text", stream=buf)
    engine = make_engine(f"sqlite:///{tmp_path / 'app.db'}")
    with TestClient(create_app(Settings(engine=engine))) as client:
        assert client.get("/health").status_code == 200
    engine.dispose()
    logging.getLogger("some.library").info("chatter")
    logging.getLogger("evbill.api").info("after the app")
    assert logging.getLogger().level == logging.WARNING
    assert buf.getvalue().splitlines() == [buf.getvalue().splitlines()[-1]]
    assert buf.getvalue().rstrip().endswith("INFO evbill.api: after the app")


@pytest.mark.parametrize("enabled", ["1", "0"])
def test_one_access_line_per_request(tmp_path: Path, clean_logging: None, monkeypatch: pytest.MonkeyPatch,
                                     enabled: str) -> None:
    from litestar.testing import TestClient

    from api.app import Settings, create_app
    from store.db import make_engine

    monkeypatch.setenv("EVBILL_ACCESS_LOG", enabled)
    buf = io.StringIO()
    setup_logging(level="INFO", fmt="json", stream=buf)
    engine = make_engine(f"sqlite:///{tmp_path / 'app.db'}")
    with TestClient(create_app(Settings(engine=engine))) as client:
        assert client.get("/health").status_code == 200  # probes are left out
        assert client.get("/customers").status_code == 401
    engine.dispose()
    lines = [json.loads(x) for x in buf.getvalue().splitlines()]
    if enabled == "0":
        assert lines == []
        return
    [line] = lines
    assert {k: line[k] for k in ("logger", "level", "method", "path", "status")} == {
        "logger": "evbill.api.access", "level": "INFO", "method": "GET", "path": "/customers", "status": 401}
    assert line["message"].startswith("GET /customers 401 ") and line["duration_ms"] >= 0
