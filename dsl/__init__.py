"""The evbill pricing language: parse, check and compile rulesets into rating functions.

    >>> res = compile_ruleset(source, "rulesets/public/public.evb")
    >>> res.ok, [d.to_dict() for d in res.diagnostics]
    >>> res.ruleset.rate(session).to_dict()
"""

from __future__ import annotations

from dsl.compiler import CompiledRuleset, CompileResult, RulesetError, compile_ruleset
from dsl.diagnostics import Diagnostic, render, render_all
from runtime.rating import PriceSeries, RatingContext

__all__ = [
           "CompileResult",
           "CompiledRuleset",
           "Diagnostic",
           "PriceSeries",
           "RatingContext",
           "RulesetError",
           "compile_ruleset",
           "render",
           "render_all",
]
