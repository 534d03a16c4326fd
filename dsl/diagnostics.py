"""Diagnostics as data, and the one place they are rendered.

Codes are stable: E1xx syntax, E2xx names, E3xx types/units/currencies/values, Wxxx warnings.
Rendering follows the ``file:line:col: error[E201]: message`` form, then the source line with a
caret under the span and an optional ``= help:`` hint.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from dsl.ast import Span

__all__ = ["CODES", "Diagnostic", "render", "render_all", "suggest"]

# Every code the compiler can emit, with a one-line description (the golden tests cover each).
CODES: dict[str, str] = {
    "E101": "unexpected token",
    "E102": "unexpected character",
    "E103": "unexpected end of input",
    "E201": "unknown customer group",
    "E202": "unknown tariff",
    "E203": "unknown price series",
    "E204": "duplicate name",
    "E205": "unknown product",
    "E206": "unknown time zone",
    "E207": "unknown holiday region",
    "E208": "unknown partner",
    "E209": "unknown token type",
    "E210": "unknown rounding mode",
    "E211": "component defined twice in one rule",
    "E212": "unknown policy statement",
    "E301": "unit does not fit the component",
    "E302": "step or grace unit does not fit the component",
    "E303": "percentage out of range",
    "E304": "unknown currency",
    "E305": "invalid time of day or date",
    "E306": "empty or reversed range",
    "E307": "tiers are not contiguous",
    "E308": "minimum price above maximum price",
    "E309": "discount has no amount",
    "E310": "value out of range",
    "W001": "unreachable rule",
    "W002": "overlapping rules: the first one wins",
    "W003": "tariff has no VAT rate",
    "W004": "tariff prices nothing",
    "W005": "declared but never used",
    "W006": "legal-for-trade tariff prices no energy",
}


@dataclass(frozen=True, slots=True)
class Diagnostic:
    code: str
    severity: str  # "error" | "warning"
    message: str
    span: Span
    hint: str | None = None
    file: str = "<ruleset>"

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "file": self.file,
            "line": self.span.line,
            "col": self.span.col,
            "end_line": self.span.end_line,
            "end_col": self.span.end_col,
            "hint": self.hint,
        }


def suggest(name: str, known: Iterable[str]) -> str | None:
    """A 'did you mean' hint from the closest known names."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


def render(d: Diagnostic, source: str) -> str:
    lines = source.splitlines()
    head = f"{d.file}:{d.span.line}:{d.span.col}: {d.severity}[{d.code}]: {d.message}"
    out = [head]
    if 1 <= d.span.line <= len(lines):
        text = lines[d.span.line - 1].rstrip("\n").replace("\t", " ")
        num = str(d.span.line)
        pad = " " * len(num)
        if d.span.end_line == d.span.line and d.span.end_col > d.span.col:
            width = d.span.end_col - d.span.col
        else:
            width = 1
        width = max(1, min(width, max(1, len(text) - d.span.col + 1)))
        out.append(f" {pad} |")
        out.append(f" {num} | {text}")
        out.append(f" {pad} | {' ' * (d.span.col - 1)}{'^' * width}")
    if d.hint:
        out.append(f"   = help: {d.hint}")
    return "\n".join(out)


def render_all(diags: Sequence[Diagnostic], source: str) -> str:
    return "\n".join(render(d, source) for d in diags)
