"""``evbill serve`` says at start, in one WARNING line each, what degrades it (the doctor's checks)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from api import doctor
from api.cli import build_parser


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved = (root.level, list(root.handlers), logging.getLogger("evbill").level)
    yield
    for h in list(root.handlers):
        if h not in saved[1]:
            root.removeHandler(h)
    root.setLevel(saved[0])
    logging.getLogger("evbill").setLevel(saved[2])
    logging.captureWarnings(False)


def test_serve_warns_about_the_subsetting_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   caplog: pytest.LogCaptureFixture, restore_logging: None) -> None:
    import uvicorn

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EVBILL_DATABASE_URL", f"sqlite:///{tmp_path / 'serve.db'}")
    monkeypatch.delenv("EVBILL_SMTP_HOST", raising=False)
    monkeypatch.setattr(doctor, "check_harfbuzz", lambda: doctor.Check(
        "font subsetting", doctor.WARN, "fontTools fallback, documents render at half speed",
        "install libharfbuzz-subset0"))
    served: list[object] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.append(kw))
    args = build_parser().parse_args(["serve", "--no-temporal", "--port", "0", "--ocpp-port", "0"])
    assert args.func(args) == 0
    assert served and served[0]["log_config"] is None  # uvicorn keeps to our logging set-up
    warnings = [r for r in caplog.records if r.name == "evbill.serve" and r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        "font subsetting: fontTools fallback, documents render at half speed: install libharfbuzz-subset0"]
    # nothing from the libraries below WARNING: Alembic's migration docstrings stay out
    assert not [r for r in caplog.records if r.name.startswith("alembic") and r.levelno < logging.WARNING]
