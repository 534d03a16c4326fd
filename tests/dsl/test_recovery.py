"""One syntax or value error must not hide the name errors elsewhere in the file (issue 11, defect 10)."""

from __future__ import annotations

from dsl import compile_ruleset

SYNTAX_AND_NAME = """\
ruleset r currency EUR timezone UTC
groups staff

tariff a {
  energy 0.30 kWh
}

tariff b {
  when group stuff { energy 0.25 per kWh }
}
"""

VALUE_AND_NAME = """\
ruleset r currency EUR timezone UTC
groups staff

tariff a {
  when time 25:00..06:00 { energy 0.30 per kWh }
}

tariff b {
  when group stuff { energy 0.25 per kWh }
}
"""

LOWER_KWH = """\
ruleset r currency EUR timezone UTC
tariff a {
  energy 0.30 per kwh
}
"""


def _found(source: str) -> list[tuple[str, int, int]]:
    res = compile_ruleset(source, "t.evb")
    assert not res.ok
    return [(d.code, d.span.line, d.span.col) for d in res.diagnostics]


def test_syntax_error_in_one_tariff_and_unknown_group_in_another() -> None:
    assert _found(SYNTAX_AND_NAME) == [("E101", 5, 15), ("E201", 9, 14)]


def test_bad_value_and_name_error_both_reported() -> None:
    assert _found(VALUE_AND_NAME) == [("E305", 5, 13), ("E201", 9, 14)]


def test_names_of_a_block_that_did_not_parse_are_not_called_unknown() -> None:
    source = SYNTAX_AND_NAME + "default tariff a\n"
    assert [c for c, _, _ in _found(source)] == ["E101", "E201"]


def test_lower_case_kwh_suggests_kwh() -> None:
    res = compile_ruleset(LOWER_KWH, "t.evb")
    [d] = res.diagnostics
    assert d.code == "E101"
    assert d.hint is not None and "'kWh'" in d.hint
