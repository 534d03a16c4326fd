"""Shared fixtures: the offline e-invoice validation kit (one compiled Validator per session)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

KIT = Path(__file__).resolve().parents[3].parent / "shared" / "conformance" / "einvoice"


@pytest.fixture(scope="session")
def validator() -> Any:
    if not (KIT / "validate.py").exists():
        reason = f"e-invoice validation kit not found at {KIT}"
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    sys.path.insert(0, str(KIT))
    from validate import Validator  # type: ignore[import-not-found]

    return Validator()


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
