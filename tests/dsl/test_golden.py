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
    rendered = res.render() + "\n"
    expected = path.with_suffix(".expected")
    if os.environ.get("EVBILL_UPDATE_GOLDEN") or not expected.exists():
        expected.write_text(rendered, encoding="utf-8")
    assert rendered == expected.read_text(encoding="utf-8")
