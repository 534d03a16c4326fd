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


# ---------------------------------------------------------------- defect 10's leftovers
TWO_IN_ONE_BLOCK = """\
ruleset r currency EUR timezone UTC
groups staff

tariff a {
  energy 0.30 kWh
  parking 0.10 per minn
  when group stuff { time 0.01 per min }
}
"""

UNCLOSED = """\
ruleset r currency EUR timezone UTC
groups staff

tariff a {
  energy 0.30 per kWh

tariff b {
  when group stuff { energy 0.25 per kWh }
}
"""

BROKEN_HEADER = """\
ruleset r currency EUR timezone
groups staff

tariff b {
  when group stuff { energy 0.25 per kWh }
}
"""

POLICY_STATEMENTS = """\
ruleset r currency EUR timezone UTC
dunning standard {
  stage 1 after 7 days remindr
  stage 2 after 14 days fee 5,00
  stage 3 after 14 days fee 10.00 approval required then block_token
}
"""


def test_a_second_syntax_error_in_the_same_block_is_reported() -> None:
    # the block keeps its other statements: the unknown group in it is still found
    assert _found(TWO_IN_ONE_BLOCK) == [("E101", 5, 15), ("E101", 6, 20), ("E201", 7, 14)]


def test_an_unclosed_brace_hides_nothing_after_it() -> None:
    found = _found(UNCLOSED)
    assert found == [("E103", 5, 22), ("E201", 8, 14)]
    res = compile_ruleset(UNCLOSED, "t.evb")
    assert res.diagnostics[0].hint == "a block is not closed: add '}'"


def test_a_broken_header_is_reported_and_the_blocks_still_checked() -> None:
    assert _found(BROKEN_HEADER) == [("E103", 1, 32), ("E201", 5, 14)]


def test_each_statement_of_a_policy_block_is_checked_on_its_own() -> None:
    res = compile_ruleset(POLICY_STATEMENTS, "t.evb")
    assert [(d.code, d.span.line, d.hint) for d in res.diagnostics] == [
        ("E101", 3, "did you mean 'reminder'?"),
        ("E101", 4, "use a decimal point, not a comma: 0.49"),
        ("E310", 5, "did you mean 'block_tokens'?"),  # not "stage 3 should be stage 1": two were lost
    ]
