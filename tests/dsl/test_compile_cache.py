"""One compiled-ruleset cache for the process, keyed by the source's sha256 (issue 11): the API's
stored versions, the billing cycle's policies and partner statements all read through it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import dsl.compiler as compiler
from dsl.compiler import cache_info, compile_ruleset
from dsl.revenue_share import revenue_share_terms

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def compiles(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The file names of real compilations (cache misses) during the test."""
    calls: list[str] = []
    real = compiler._compile

    def counting(source: str, filename: str, sha: str) -> Any:
        calls.append(filename)
        return real(source, filename, sha)

    monkeypatch.setattr(compiler, "_compile", counting)
    monkeypatch.setattr(compiler, "_CACHE", type(compiler._CACHE)())
    return calls


def test_one_compilation_per_content_whatever_the_file_name(compiles: list[str]) -> None:
    src = (ROOT / "rulesets/partner_depot/partner_depot.evb").read_text() + "# a comment makes it new\n"
    first = compile_ruleset(src, "a.evb")
    second = compile_ruleset(src, "b.evb")
    assert first.ruleset is not None and second.ruleset is first.ruleset
    assert compiles == ["a.evb"]
    # partner statements read the revenue share through the same cache
    terms, diags = revenue_share_terms(src, "landlord", "depot v1")
    assert diags == [] and terms is not None and compiles == ["a.evb"]
    # policies are read once per compiled ruleset
    assert first.ruleset.policies is second.ruleset.policies


def test_diagnostics_carry_the_callers_file_name(compiles: list[str]) -> None:
    src = "ruleset r currency EUR timezone UTC\ntariff t { energy 0.3 kWh }\n"
    assert compile_ruleset(src, "one.evb").diagnostics[0].file == "one.evb"
    again = compile_ruleset(src, "two.evb")
    assert again.diagnostics[0].file == "two.evb" and "two.evb:2:" in again.render()
    assert compiles == ["one.evb"]


def test_the_cache_is_bounded_least_recently_used_first(compiles: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compiler, "CACHE_SIZE", 2)
    sources = [f"ruleset r{i} currency EUR timezone UTC\ntariff t {{ vat 19%\n energy 0.{i} per kWh }}\n"
               for i in range(3)]
    compile_ruleset(sources[0], "0")
    compile_ruleset(sources[1], "1")
    compile_ruleset(sources[0], "0")  # used again: 1 is now the least recent
    compile_ruleset(sources[2], "2")
    assert cache_info() == (2, 2)
    compile_ruleset(sources[0], "0")
    compile_ruleset(sources[1], "1")
    assert compiles == ["0", "1", "2", "1"]
