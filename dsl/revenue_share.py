"""Meaning for ``revenue_share`` policy blocks, as partner statements need it.

The grammar reads a ``revenue_share`` block into typed statements and the checker reports what does
not fit; this reader turns a checked block into ``runtime.statements.ShareTerms``. Statements::

    revenue_share hotel_adler {
      sites adler hotel_*                  # location codes (globs); without: all the partner's sites
      host gets 30% of net revenue
      host gets 0.05 per kWh               # or: per session, per month
      reimburse energy at 0.25 per kWh     # indexed or time-of-use prices: issue 15
    }

Statements read indexed (``index(spot_de) + 0.02``) and time-of-use (``when time ...``)
reimbursement prices, and statements do not apply them yet: those are reported (E212) by this
reader, not by the checker, since the ruleset itself is valid.
"""

from __future__ import annotations

from decimal import Decimal

from dsl import ast as A
from dsl.checker import SHARE_PER
from dsl.diagnostics import Diagnostic
from runtime.statements import ShareTerms

__all__ = ["read_revenue_share", "revenue_share_terms", "static_price"]

_PER_KWH = {"kWh": Decimal(1), "Wh": Decimal(1000), "MWh": Decimal("0.001")}


def static_price(e: A.PriceExpr) -> Decimal | None:
    """The value of a price expression without series (None: it reads a series)."""
    if isinstance(e, A.Num):
        return e.value
    if isinstance(e, A.Neg):
        inner = static_price(e.operand)
        return -inner if inner is not None else None
    if isinstance(e, A.BinOp):
        left, right = static_price(e.left), static_price(e.right)
        if left is None or right is None:
            return None
        if e.op == "+":
            return left + right
        if e.op == "-":
            return left - right
        if e.op == "*":
            return left * right
        return left / right if right else None
    return None


def read_revenue_share(pol: A.Policy, currency: str, filename: str = "<ruleset>",
                       source: str = "") -> tuple[ShareTerms, list[Diagnostic]]:
    diags: list[Diagnostic] = []
    found: dict[str, Decimal] = {}
    sites: list[str] = []
    for st in pol.statements:
        if isinstance(st, A.Sites):
            sites.extend(n.value for n in st.patterns)
        elif isinstance(st, A.HostShare) and st.percent is not None:
            found.setdefault("percent", st.percent.value)
        elif isinstance(st, A.HostShare) and st.amount is not None and st.per is not None:
            key = SHARE_PER.get(st.per.value)
            if key is not None:
                found.setdefault(key, st.amount.value)
        elif isinstance(st, A.EnergyPrice):
            value = static_price(st.price)
            if value is None:
                diags.append(Diagnostic(
                    "E212", "error", f"'{st.text()}' is an indexed price, which statements do not read yet", st.span,
                    "use a static price: reimburse energy at 0.25 per kWh", filename))
            elif st.condition is not None:
                diags.append(Diagnostic(
                    "E212", "error", f"'{st.text()}' is a time-of-use price, which statements do not read yet",
                    st.span, "use one static price: reimburse energy at 0.25 per kWh", filename))
            else:
                found.setdefault("reimburse_per_kwh", value * _PER_KWH[st.unit])
    terms = ShareTerms(currency, found.get("percent"), found.get("per_kwh"), found.get("per_session"),
                       found.get("monthly_fee"), found.get("reimburse_per_kwh"), source or f"revenue_share {pol.name}",
                       tuple(sites))
    return terms, diags


def revenue_share_terms(text: str, block: str, filename: str = "<ruleset>",
                        source: str = "") -> tuple[ShareTerms | None, list[Diagnostic]]:
    """The terms of the ``revenue_share`` block named ``block`` in ruleset source ``text``
    (None and no diagnostics: the ruleset has no such block; None and its errors: the ruleset
    does not compile)."""
    from dsl.compiler import compile_ruleset

    res = compile_ruleset(text, filename)
    if res.ruleset is None:
        return None, res.errors
    for pol in res.ruleset.ast.policies:
        if pol.kind == "revenue_share" and pol.name == block:
            return read_revenue_share(pol, res.ruleset.currency, filename, source)
    return None, []
