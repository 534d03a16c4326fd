"""Meaning for ``revenue_share``, ``reimbursement`` and ``commission`` blocks, as partner
statements need it.

The grammar reads these blocks into typed statements and the checker reports what does not fit;
this reader turns a checked block into ``runtime.statements.ShareTerms``. Statements::

    revenue_share hotel_adler {
      sites adler hotel_*                  # location codes (globs); without: all the partner's sites
      host gets 30% of net revenue
      host gets 0.05 per kWh               # or: per session, per month
      reimburse energy at index(spot_de) + 0.02 per kWh          # priced per session and interval
      reimburse energy at 0.20 per kWh when time 22:00..06:00    # time-of-use, as in tariffs
      commission booking_fee, sales_bonus  # commission blocks applied on this partner's statements
    }

    reimbursement company_car "Company car charged at home" {
      energy at index(spot_de) + 0.02 per kWh
      sites home_*                         # the employee's home charger(s)
      for group employees                  # optional: only sessions of these customers
      valid 2026-01-01..2027-01-01
    }

    commission booking_fee {
      0.30 per session                     # or: per transaction
      0.01 per kWh for group fleet         # for: any tariff condition (group, site, token, ...)
      2% of net revenue for site adler_*
      25.00 per month                      # flat, pro rata by the days of the month covered
      charge host                          # the host pays it; 'pay host' / 'pay partner acme': it is paid
      valid 2026-01-01..2027-01-01
    }

Energy prices match as tariff rules do: those with ``when`` first, in source order, the one without
last; a session's energy is split at their time windows and at the series' intervals and each
stretch priced by the first that holds at its start (``runtime.settlements``). A price ``per MWh``
or ``per Wh`` is turned into a price per kWh exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date
from decimal import Decimal

from dsl import ast as A
from dsl.checker import SHARE_PER, walk_atoms
from dsl.diagnostics import Diagnostic
from runtime.rating import UNIT_SIZE, CutSpec, PriceSeries
from runtime.settlements import CommissionRule, CommissionTerms, EnergyReimbursement, EnergyRule
from runtime.statements import ShareTerms

__all__ = ["commission_terms", "emsp_commissions", "energy_reimbursement", "read_reimbursement", "read_revenue_share",
           "revenue_share_terms", "static_price"]

_PER_KWH = {"kWh": Decimal(1), "Wh": Decimal(1000), "MWh": Decimal("0.001")}
_COMMISSION_KIND = {"session": "per_session", "transaction": "per_session", "kWh": "per_kwh", "month": "monthly"}


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


def _scaled(fn: Callable[[int, Mapping[str, PriceSeries]], Decimal],
            factor: Decimal) -> Callable[[int, Mapping[str, PriceSeries]], Decimal]:
    if factor == 1:
        return fn
    return lambda ms, ser: fn(ms, ser) * factor


def _cond_cuts(c: A.Cond | None, day: set[int], dur: set[int]) -> bool:
    """Adds where condition ``c`` can change within a session; True when it reads local time."""
    from dsl.compiler import _sod

    reads_time = False
    for a in walk_atoms(c):
        if a.kind == "time":
            day.update((_sod(str(a.args[0])) % 86400, _sod(str(a.args[1])) % 86400))
            reads_time = True
        elif a.kind in ("days", "date", "holiday"):
            day.add(0)
            reads_time = True
        elif a.kind == "duration" and isinstance(a.args[1], Decimal):
            dur.add(int(a.args[1] * UNIT_SIZE[str(a.args[2])] * 1000))
    return reads_time


def energy_reimbursement(prices: tuple[A.EnergyPrice, ...], rs: A.Ruleset, label: str, source: str,
                         groups: frozenset[str] = frozenset(), valid_from: date | None = None,
                         valid_until: date | None = None) -> EnergyReimbursement:
    """Energy prices in matching order (with ``when`` first, in source order; the one without last)."""
    from dsl.compiler import _Codegen, _price_fn, _series_of

    ordered = [p for p in prices if p.condition is not None] + [p for p in prices if p.condition is None][:1]
    rules: list[EnergyRule] = []
    day: set[int] = set()
    dur: set[int] = set()
    series: set[str] = set()
    local = False
    for st in ordered:
        const, fn = _price_fn(st.price)
        factor = _PER_KWH[st.unit]
        pred = None
        if st.condition is not None and not (isinstance(st.condition, A.Atom) and st.condition.kind == "always"):
            pred = _Codegen(rs).function(st.condition)
            local = _cond_cuts(st.condition, day, dur) or local
        names = tuple(dict.fromkeys(_series_of(st.price)))
        series.update(names)
        rules.append(EnergyRule(f"{label}, line {st.span.line}", st.text(),
                                const * factor if const is not None else None,
                                _scaled(fn, factor) if fn is not None else None, names, pred))
    cuts = CutSpec(tuple(sorted(day)), tuple(sorted(dur)), tuple(sorted(series)), local)
    return EnergyReimbursement(tuple(rules), cuts, rs.timezone, source, groups, valid_from, valid_until)


def commission_terms(pol: A.Policy, rs: A.Ruleset, source: str = "") -> CommissionTerms:
    """A checked ``commission`` block as statements apply it."""
    from dsl.compiler import _Codegen

    rules: list[CommissionRule] = []
    for st in pol.of(A.Commission):
        pred = _Codegen(rs).function(st.condition) if st.condition is not None else None
        label = f"commission {pol.name}, line {st.span.line}"
        if st.percent is not None:
            rules.append(CommissionRule(label, st.text(), "percent", st.percent.value, pred))
        elif st.amount is not None and st.per is not None and st.per.value in _COMMISSION_KIND:
            kind = _COMMISSION_KIND[st.per.value]
            rules.append(CommissionRule(label, st.text(), kind, st.amount.value, None if kind == "monthly" else pred))
    party = pol.of(A.Party)
    direction, who = (party[0].direction, party[0].party.value) if party else ("pay", "partner")
    valid = pol.of(A.Validity)
    vf = date.fromisoformat(valid[0].valid_from) if valid else None
    vu = date.fromisoformat(valid[0].valid_until) if valid and valid[0].valid_until else None
    return CommissionTerms(pol.name, source or f"commission {pol.name}", direction, who, tuple(rules),
                           rs.timezone, vf, vu)


def emsp_commissions(rs: A.Ruleset, names: Sequence[str], party: str,
                     source: str = "") -> tuple[list[CommissionTerms], list[str]]:
    """The ``commission`` blocks a roaming agreement names (``terms.commissions``), as an eMSP
    clearing applies them, and what is wrong (a block the ruleset lacks, one that is not
    ``charge emsp``/``pay emsp``, one naming another eMSP than ``party``, "NL*ABC")."""
    out: list[CommissionTerms] = []
    errors: list[str] = []
    want = party.upper().replace("*", "").replace("-", "")
    for name in names:
        block = next((p for p in rs.policies if p.kind == "commission" and p.name == name), None)
        if block is None:
            errors.append(f"commission '{name}' is not in the ruleset")
            continue
        ct = commission_terms(block, rs, f"{source}, commission {name}" if source else "")
        who = block.of(A.Party)
        named = who[0].id.value if who and who[0].id is not None else ""
        if ct.party != "emsp":
            errors.append(f"commission '{name}' is {ct.direction}d to the {ct.party}, not to the eMSP: "
                          "write 'charge emsp' in it")
        elif named and named.upper().replace("*", "").replace("-", "") != want:
            errors.append(f"commission '{name}' charges the eMSP {named}, not {party}")
        else:
            out.append(ct)
    return out, errors


def read_revenue_share(pol: A.Policy, currency: str, filename: str = "<ruleset>",
                       source: str = "", ruleset: A.Ruleset | None = None) -> tuple[ShareTerms, list[Diagnostic]]:
    """The terms of one checked ``revenue_share`` block. Without ``ruleset`` (the AST the block
    belongs to) only static prices can be read: indexed and time-of-use ones are reported (E212)."""
    diags: list[Diagnostic] = []
    found: dict[str, Decimal] = {}
    sites: list[str] = []
    prices = pol.of(A.EnergyPrice)
    src = source or f"revenue_share {pol.name}"
    for st in pol.statements:
        if isinstance(st, A.Sites):
            sites.extend(n.value for n in st.patterns)
        elif isinstance(st, A.HostShare) and st.percent is not None:
            found.setdefault("percent", st.percent.value)
        elif isinstance(st, A.HostShare) and st.amount is not None and st.per is not None:
            key = SHARE_PER.get(st.per.value)
            if key is not None:
                found.setdefault(key, st.amount.value)
    reimburse: EnergyReimbursement | None = None
    if len(prices) == 1 and prices[0].condition is None and static_price(prices[0].price) is not None:
        value = static_price(prices[0].price)
        assert value is not None
        found["reimburse_per_kwh"] = value * _PER_KWH[prices[0].unit]
    elif prices and ruleset is not None:
        reimburse = energy_reimbursement(prices, ruleset, f"revenue_share {pol.name}", src)
    elif prices:
        for st in prices:
            diags.append(Diagnostic("E212", "error", f"'{st.text()}' is priced per session, which needs the whole "
                                    "ruleset", st.span, "read the block with its ruleset (revenue_share_terms)",
                                    filename))
    commissions: list[CommissionTerms] = []
    for ref in pol.of(A.CommissionRef):
        for n in ref.names:
            block = next((p for p in (ruleset.policies if ruleset else ())
                          if p.kind == "commission" and p.name == n.value), None)
            if block is None:
                if ruleset is None:
                    diags.append(Diagnostic("E212", "error", f"commission '{n.value}' needs the whole ruleset",
                                            n.span, None, filename))
                continue  # unknown: the checker reported it (E202)
            assert ruleset is not None
            ct = commission_terms(block, ruleset, f"{src}, commission {n.value}")
            if ct.party != "host":
                where = "eMSP clearing" if ct.party == "emsp" else "the sales partner's statement (a commission agreement)"
                diags.append(Diagnostic("E212", "error", f"commission '{n.value}' is {ct.direction}d to the "
                                        f"{ct.party}: it belongs on {where}, not on a host's statement", n.span,
                                        f"write 'charge host' or 'pay host' in commission '{n.value}', or remove "
                                        "it here", filename))
                continue
            commissions.append(ct)
    terms = ShareTerms(currency, found.get("percent"), found.get("per_kwh"), found.get("per_session"),
                       found.get("monthly_fee"), found.get("reimburse_per_kwh"), src, tuple(sites), reimburse,
                       tuple(commissions))
    return terms, diags


def read_reimbursement(pol: A.Policy, rs: A.Ruleset, currency: str, source: str = "") -> ShareTerms:
    """A ``reimbursement`` block (company car charged at home, a host paid for its energy only) as
    statement terms: its energy prices, sites, customer groups and validity."""
    sites = tuple(n.value for st in pol.of(A.Sites) for n in st.patterns)
    groups = frozenset(n.value for st in pol.of(A.ForGroups) for n in st.groups)
    valid = pol.of(A.Validity)
    vf = date.fromisoformat(valid[0].valid_from) if valid else None
    vu = date.fromisoformat(valid[0].valid_until) if valid and valid[0].valid_until else None
    src = source or f"reimbursement {pol.name}"
    rb = energy_reimbursement(pol.of(A.EnergyPrice), rs, f"reimbursement {pol.name}", src, groups, vf, vu)
    return ShareTerms(currency, source=src, sites=sites, reimburse=rb)


def revenue_share_terms(text: str, block: str, filename: str = "<ruleset>",
                        source: str = "") -> tuple[ShareTerms | None, list[Diagnostic]]:
    """The terms of the ``revenue_share`` block named ``block`` in ruleset source ``text`` (else of
    the ``reimbursement``, else the ``commission`` block of that name: a sales partner's commission
    agreement) (None and no diagnostics: the ruleset has no such block; None and its errors: the
    ruleset does not compile)."""
    from dsl.compiler import compile_ruleset

    res = compile_ruleset(text, filename)
    if res.ruleset is None:
        return None, res.errors
    ast = res.ruleset.ast
    for pol in ast.policies:
        if pol.kind == "revenue_share" and pol.name == block:
            return read_revenue_share(pol, res.ruleset.currency, filename, source, ast)
    for pol in ast.policies:
        if pol.kind == "reimbursement" and pol.name == block:
            return read_reimbursement(pol, ast, res.ruleset.currency, source), []
    for pol in ast.policies:
        if pol.kind == "commission" and pol.name == block:
            ct = commission_terms(pol, ast, source or f"commission {pol.name}")
            if ct.party == "emsp":
                return None, [Diagnostic("E212", "error", f"commission '{pol.name}' charges the eMSP: it belongs on "
                                         "eMSP clearing, not on a partner statement", pol.name_span, None, filename)]
            return ShareTerms(res.ruleset.currency, source=ct.source, commissions=(ct,)), []
    return None, []
