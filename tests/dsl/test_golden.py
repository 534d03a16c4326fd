"""One golden file per stable diagnostic code: the rendered output must not drift unnoticed.

Regenerate after an intended change with ``EVBILL_UPDATE_GOLDEN=1 pytest tests/dsl/test_golden.py``
and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dsl import compile_ruleset
from dsl.diagnostics import CODES

GOLDEN = Path(__file__).with_name("golden")
CASES = sorted(GOLDEN.glob("*.evb"))
# Files with several errors at once: every one must be reported (recovery after a syntax error).
MULTI = sorted((GOLDEN / "multi").glob("*.evb"))


def test_every_code_has_a_golden_file() -> None:
    assert {p.stem for p in CASES} == set(CODES)


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_golden(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    res = compile_ruleset(source, f"golden/{path.name}")
    codes = {d.code for d in res.diagnostics}
    assert path.stem in codes, f"{path.name} should produce {path.stem}, got {sorted(codes)}"
    if path.stem.startswith("E"):
        assert not res.ok, "an error code must stop compilation"
    else:
        assert res.ok, "a warning must not stop compilation"
    _compare(path, res.render() + "\n")


@pytest.mark.parametrize("path", MULTI, ids=[p.stem for p in MULTI])
def test_golden_multi(path: Path) -> None:
    res = compile_ruleset(path.read_text(encoding="utf-8"), f"golden/multi/{path.name}")
    assert not res.ok
    assert len(res.errors) >= 2, "each multi-error case must report more than one error"
    _compare(path, res.render() + "\n")


def _compare(path: Path, rendered: str) -> None:
    expected = path.with_suffix(".expected")
    if os.environ.get("EVBILL_UPDATE_GOLDEN") == "1":
        expected.write_text(rendered, encoding="utf-8")
    elif not expected.exists():
        pytest.fail(f"{expected.name} is missing: write it with EVBILL_UPDATE_GOLDEN=1 and review it")
    assert rendered == expected.read_text(encoding="utf-8")
