"""Meaning for ``revenue_share`` policy blocks, as partner statements need it.

The parser keeps policy statements as word lists; this reader turns one ``revenue_share`` block
into ``runtime.statements.ShareTerms`` and reports what it cannot read as diagnostics with the
existing codes (E212 cannot read, E310 value out of range). Accepted statements::

    revenue_share hotel_adler {
      sites adler hotel_*                  # location codes (globs); without: all the partner's sites
      host gets 30% of net revenue
      host gets 0.05 per kWh               # or: per session, per month
      reimburse energy at 0.25 per kWh     # a static price; index(...) prices are not read yet
    }
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from dsl import ast as A
from dsl.diagnostics import Diagnostic
from dsl.parser import parse
from runtime.statements import ShareTerms

__all__ = ["read_revenue_share", "revenue_share_terms"]

_SITES = ("sites", "site", "locations", "location")
_IGNORED = ("partner", "payout", "statement")
_PER = {"kwh": "per_kwh", "session": "per_session", "sessions": "per_session", "month": "monthly_fee"}
_GETS = "host gets P% of net revenue | host gets AMOUNT per kWh | per session | per month"


def _amount(w: A.PolicyWord) -> Decimal | None:
    if w.kind != "number":
        return None
    try:
        return Decimal(w.value)
    except InvalidOperation:
        return None


def read_revenue_share(pol: A.Policy, currency: str, filename: str = "<ruleset>",
                       source: str = "") -> tuple[ShareTerms, list[Diagnostic]]:
    diags: list[Diagnostic] = []
    found: dict[str, Decimal] = {}
    sites: list[str] = []

    def err(code: str, msg: str, span: A.Span, hint: str | None = None) -> None:
        diags.append(Diagnostic(code, "error", msg, span, hint, filename))

    def put(key: str, value: Decimal, st: A.PolicyStmt) -> None:
        if key in found:
            err("E212", f"'{st.text()}' repeats a term of this block", st.span, "state each term once")
        elif value < 0:
            err("E310", f"a share must not be negative, found '{value}'", st.span)
        else:
            found[key] = value

    for st in pol.statements:
        ws = st.words
        vals = [w.value for w in ws]
        if vals[0] in _IGNORED:
            continue
        if vals[0] in _SITES:
            names = [w.value for w in ws[1:] if w.kind != "sep"]
            if not names or any(w.kind not in ("word", "sep") for w in ws[1:]):
                err("E212", f"cannot read '{st.text()}'", st.span, "expected: sites CODE [CODE ...]")
            sites.extend(names)
            continue
        if vals[:2] == ["host", "gets"] and len(ws) >= 3:
            rest = [v.lower() for v in vals[3:]]
            if ws[2].kind == "percent" and rest in (["of", "net", "revenue"], ["of", "net"], ["of", "revenue"]):
                pct = Decimal(vals[2].rstrip("%"))
                if pct > 100:
                    err("E310", f"a share of {vals[2]} is out of range", ws[2].span, "use 0%..100%")
                else:
                    put("percent", pct, st)
                continue
            amount = _amount(ws[2])
            if amount is not None and len(rest) == 2 and rest[0] == "per" and rest[1] in _PER:
                put(_PER[rest[1]], amount, st)
                continue
            err("E212", f"cannot read '{st.text()}'", st.span, f"expected: {_GETS}")
        elif vals[:3] == ["reimburse", "energy", "at"] and len(ws) == 6 and [v.lower() for v in vals[4:]] == [
                "per", "kwh"] and _amount(ws[3]) is not None:
            put("reimburse_per_kwh", _amount(ws[3]) or Decimal(0), st)
        elif vals[:1] == ["reimburse"] and any(w.kind == "index" for w in ws):
            err("E212", f"'{st.text()}' is an indexed price, which statements do not read yet", st.span,
                "use a static price: reimburse energy at 0.25 per kWh")
        else:
            err("E212", f"cannot read '{st.text()}'", st.span,
                f"expected: {_GETS} | reimburse energy at AMOUNT per kWh")
    terms = ShareTerms(currency, found.get("percent"), found.get("per_kwh"), found.get("per_session"),
                       found.get("monthly_fee"), found.get("reimburse_per_kwh"), source or f"revenue_share {pol.name}",
                       tuple(sites))
    return terms, diags


def revenue_share_terms(text: str, block: str, filename: str = "<ruleset>",
                        source: str = "") -> tuple[ShareTerms | None, list[Diagnostic]]:
    """The terms of the ``revenue_share`` block named ``block`` in ruleset source ``text``
    (None and no diagnostics: the ruleset has no such block)."""
    outcome = parse(text, filename)
    if outcome.ruleset is None:
        return None, outcome.diagnostics
    for pol in outcome.ruleset.policies:
        if pol.kind == "revenue_share" and pol.name == block:
            return read_revenue_share(pol, outcome.ruleset.currency, filename, source)
    return None, []
