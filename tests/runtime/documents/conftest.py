"""Shared fixtures: the offline e-invoice validation kit (one compiled Validator per session)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

# ../shared beside the checkout; EVBILL_EINVOICE_KIT names it for a checkout elsewhere (a git worktree)
KIT = Path(os.environ.get("EVBILL_EINVOICE_KIT")
           or Path(__file__).resolve().parents[3].parent / "shared" / "conformance" / "einvoice")


def _kit() -> Any:
    if not (KIT / "validate.py").exists():
        reason = f"e-invoice validation kit not found at {KIT}"
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    if str(KIT) not in sys.path:
        sys.path.insert(0, str(KIT))
    import validate as kit  # type: ignore[import-not-found]

    return kit


@pytest.fixture(scope="session")
def validator() -> Any:
    return _kit().Validator()


@pytest.fixture(scope="session")
def validator_next() -> Any:
    """The newer CEN rules (EN 16931 1.3.16) that KoSIT has not released yet, as an early warning."""
    return _kit().Validator(en16931_version="1.3.16")


@pytest.fixture
def validate(validator: Any, tmp_path: Path) -> Any:
    """Validate bytes; returns the kit's report (``.valid``, ``.errors``, ``.error_rules()``)."""
    counter = iter(range(10_000))

    def run(xml: bytes) -> Any:
        path = tmp_path / f"doc{next(counter)}.xml"
        path.write_bytes(xml)
        return validator.validate(str(path))

    return run


def explain(report: Any) -> str:
    return "\n".join(f"{m.id}: {m.text} @ {m.location}" for m in report.errors)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """A migrated database for the archive, delivery and hand-over tests: SQLite always,
    PostgreSQL when ``EVBILL_TEST_POSTGRES_URL`` is set (a schema of its own, dropped after)."""
    from tests.store.conftest import BACKENDS, fresh_engine

    if request.param not in BACKENDS:
        pytest.skip("EVBILL_TEST_POSTGRES_URL is not set")
    eng, cleanup = fresh_engine(request.param, tmp_path)
    yield eng
    cleanup()  # type: ignore[operator]
