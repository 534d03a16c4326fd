"""Partner statements: what was charged at a partner's sites in a period, and the partner's share.

A pure function like invoice assembly: the caller gathers the period's rated sessions (their lines
at full precision) and the agreement's share terms; ``build_statement`` groups them, rounds once per
statement line (to the currency's minor unit, half-up unless told otherwise) and totals the rounded
lines. Nothing here reads a database or the clock.

Lines, in this order:
- ``revenue``: one per currency and VAT rate: sessions and kWh that have lines at that rate, net as
  the rounded sum of the lines' exact nets, VAT rounded once on that exact net, gross = net + VAT;
- the partner's share, for sessions whose local start day lies within the agreement's validity
  (and, when the terms name sites, at one of those sites):
  ``share_percent`` (per currency, of the exact net revenue), ``share_per_kwh``,
  ``share_per_session``, ``share_monthly_fee`` (one line per calendar month, pro rata by days when
  the period or the agreement covers part of the month), ``reimbursement`` (energy at a static
  price per kWh; or, with ``ShareTerms.reimburse``, one line per price of the block, each session's
  energy priced per stretch at the series' value then, the stretches in the line's ``trace``) and
  ``commission`` (one line per commission rule, negative when the partner is charged; each names its
  rule in ``trace``; see ``runtime.settlements``). Share lines are net amounts; VAT on a payout
  belongs to the credit note.
  With several agreements in the period (``ShareSegment``s: one ends on the 15th, the next starts
  on the 16th), each segment's terms apply to the sessions whose local start day lies in it, and
  its monthly fee is pro rata by the segment's days; every share line names its agreement and
  ``agreements`` sums them per agreement and currency;
- ``share_correction``: a session an issued statement included was re-rated since: the share now
  minus the share stated so far (exact amounts, so the difference is exact), one line per session
  and currency, referring to the statement that included it;
- ``share_late_session``: a session of an already issued period that no statement included (it
  arrived or was rated late): its share under the agreement of its own day, referring to that
  period's statement.

``stated`` records, per session and currency, the exact share this statement states for it (zero
for sessions that earn nothing) and the rating it used: the next statement's corrections are
computed from these records, never by editing an issued statement.

``breakdown`` (issue 18) reports the revenue per cost centre (the session's, taken from its token
or contract when it was stored; "" for none) and per site: sessions, kWh, net, VAT and gross per
currency. Each revenue line's rounded net and VAT are apportioned to the cost centres (and,
separately, to the sites) by the largest remainder of their exact parts (``apportion``), so each
column of either table adds up to the statement's revenue totals exactly and each row stays within
a cent per revenue line of its sessions' exact revenue.
"""

from __future__ import annotations

import calendar
import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

from runtime.invoicing import Period, ad_hoc_period
from runtime.money import ZERO, apportion, minor_unit, quantize
from runtime.rating import PriceSeries
from runtime.sessions import SessionFacts
from runtime.settlements import CommissionTerms, EnergyReimbursement, Stretch, commission_days

__all__ = [
    "SHARE_KINDS",
    "AgreementSubtotal",
    "BreakdownRow",
    "CurrencyTotal",
    "PriorSession",
    "SessionRevenue",
    "ShareSegment",
    "ShareTerms",
    "StatedShare",
    "StatementDraft",
    "StatementLine",
    "breakdown",
    "build_statement",
    "session_share",
    "statement_period",
]

SHARE_KINDS = ("share_percent", "share_per_kwh", "share_per_session", "share_monthly_fee", "reimbursement",
               "commission", "share_correction", "share_late_session")
MAX_PERIOD_DAYS = 366


def _plain(obj: Any) -> dict[str, Any]:
    """A slotted dataclass as JSON-ready values: decimals as strings, never floats."""
    return {f: (format(v, "f") if isinstance(v, Decimal) else v)
            for f, v in ((f, getattr(obj, f)) for f in obj.__slots__)}


@dataclass(frozen=True, slots=True)
class ShareTerms:
    """What a partner earns. Fixed amounts are in ``currency``; ``percent`` applies to the net
    revenue (excluding VAT) in each currency the sessions were charged in."""

    currency: str
    percent: Decimal | None = None
    per_kwh: Decimal | None = None
    per_session: Decimal | None = None
    monthly_fee: Decimal | None = None
    reimburse_per_kwh: Decimal | None = None
    source: str = "terms"
    sites: tuple[str, ...] = ()  # location codes (globs) the share is limited to; empty: every site
    # energy reimbursement priced per session (time-of-use or indexed; replaces reimburse_per_kwh)
    reimburse: EnergyReimbursement | None = None
    commissions: tuple[CommissionTerms, ...] = ()

    def covers(self, site: str) -> bool:
        return not self.sites or any(fnmatch.fnmatchcase(site, p) for p in self.sites)

    @property
    def empty(self) -> bool:
        return all(v is None for v in (self.percent, self.per_kwh, self.per_session, self.monthly_fee,
                                       self.reimburse_per_kwh, self.reimburse)) and not self.commissions


@dataclass(frozen=True, slots=True)
class SessionRevenue:
    """One rated session at the partner's sites: its current rating's lines as (VAT rate in
    percent, net at full precision)."""

    session_id: str
    local_date: date  # the session's start day in the statement's zone
    currency: str
    energy_kwh: Decimal
    lines: tuple[tuple[Decimal, Decimal], ...]
    site: str = ""  # the location's code
    rating_id: str = ""  # the rating whose lines these are
    facts: SessionFacts | None = None  # what rating saw (times, meter values, groups): per-session prices read it
    cost_centre: str = ""  # the session's cost centre (its token's, else its contract's)
    site_name: str = ""  # the location's name

    @property
    def net(self) -> Decimal:
        return sum((net for _, net in self.lines), ZERO)


@dataclass(frozen=True, slots=True)
class ShareSegment:
    """One agreement's part of a statement period: local days ``[first, end)``."""

    agreement_id: str | None
    terms: ShareTerms | None
    first: date
    end: date  # exclusive

    def holds(self, day: date) -> bool:
        return self.first <= day < self.end


_NO_SERIES: Mapping[str, PriceSeries] = {}


@dataclass(frozen=True, slots=True)
class SessionParts:
    """What one session earns under one agreement's terms, before summing: its reimbursed
    stretches and its commission amounts ((block, rule, quantity, signed exact amount))."""

    stretches: tuple[Stretch, ...] = ()
    commissions: tuple[tuple[int, int, Decimal, Decimal], ...] = ()


def session_parts(terms: ShareTerms, s: SessionRevenue,
                  series: Mapping[str, PriceSeries] = _NO_SERIES) -> SessionParts:
    """Raises ``runtime.settlements.SettlementError`` naming the session and interval."""
    stretches: tuple[Stretch, ...] = ()
    if terms.reimburse is not None:
        stretches = tuple(terms.reimburse.price(s.session_id, s.local_date, s.energy_kwh, s.facts, series))
    comms = tuple((b, k, qty, amount) for b, ct in enumerate(terms.commissions)
                  for k, qty, amount in ct.session_amounts(s.session_id, s.local_date, s.energy_kwh, s.net, s.facts))
    return SessionParts(stretches, comms)


def session_share(terms: ShareTerms | None, s: SessionRevenue, series: Mapping[str, PriceSeries] = _NO_SERIES,
                  parts: SessionParts | None = None) -> dict[str, Decimal]:
    """The exact (unrounded) share one session earns under ``terms``, per currency: the session's
    part of the share lines (the monthly fee and monthly commissions belong to no session). Summed
    over a segment's sessions, it is exactly what the share lines hold before rounding."""
    out: dict[str, Decimal] = {}
    if terms is None or not terms.covers(s.site):
        return out
    if terms.percent is not None:
        out[s.currency] = s.net * terms.percent / 100
    fixed = ZERO
    for rate in (terms.per_kwh, terms.reimburse_per_kwh):
        if rate is not None:
            fixed += s.energy_kwh * rate
    if terms.per_session is not None:
        fixed += terms.per_session
    if any(v is not None for v in (terms.per_kwh, terms.reimburse_per_kwh, terms.per_session)):
        out[terms.currency] = out.get(terms.currency, ZERO) + fixed
    if terms.reimburse is not None or terms.commissions:
        p = parts if parts is not None else session_parts(terms, s, series)
        if p.stretches:
            out[terms.currency] = out.get(terms.currency, ZERO) + sum((x.amount for x in p.stretches), ZERO)
        for b, k, _qty, amount in p.commissions:
            # a percentage is of the session's revenue, in its currency; fixed amounts in the terms'
            cur = s.currency if terms.commissions[b].rules[k].kind == "percent" else terms.currency
            out[cur] = out.get(cur, ZERO) + amount
    return out


@dataclass(frozen=True, slots=True)
class PriorSession:
    """A session of an already issued period, as it is now. ``stated`` (per currency, exact) is
    what issued statements stated for it so far: empty for a late session."""

    session: SessionRevenue
    refers_to: str  # the number of the statement that included it (late: that covers its day)
    segment: ShareSegment | None  # the agreement of its day, with the terms it is settled under
    stated: tuple[tuple[str, Decimal], ...] = ()

    @property
    def late(self) -> bool:
        return not self.stated


@dataclass(frozen=True, slots=True)
class StatedShare:
    """What a statement states for one session in one currency (exact), and from which rating."""

    session_id: str
    rating_id: str
    agreement_id: str | None
    currency: str
    share: Decimal
    refers_to: str | None = None  # corrections and late sessions: the statement they settle for

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)


@dataclass(frozen=True, slots=True)
class AgreementSubtotal:
    """The share lines of one agreement in one currency. ``local_start``/``local_end``: the days of
    this period the agreement covers (None: it only appears through corrections or late sessions)."""

    agreement_id: str | None
    source: str
    local_start: date | None
    local_end: date | None
    sessions: int
    currency: str
    payable: Decimal

    def to_dict(self) -> dict[str, Any]:
        d = _plain(self)
        for k in ("local_start", "local_end"):
            d[k] = d[k].isoformat() if d[k] is not None else None
        return d


@dataclass(frozen=True, slots=True)
class StatementLine:
    seq: int
    kind: str  # revenue | share_percent | share_per_kwh | share_per_session | share_monthly_fee | reimbursement
    description: str
    currency: str
    tax_rate: Decimal | None
    sessions: int
    energy_kwh: Decimal
    quantity: Decimal
    unit: str
    unit_price: Decimal
    net: Decimal  # rounded once, here
    tax: Decimal
    gross: Decimal
    net_unrounded: Decimal
    agreement_id: str | None = None  # share lines: the agreement they are earned under
    session_id: str | None = None  # corrections and late sessions: the session
    refers_to: str | None = None  # corrections and late sessions: the statement number they settle for
    # reimbursement and commission lines: the rule (first entry) and what the amount is made of
    trace: tuple[dict[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d = _plain(self)
        d["trace"] = list(self.trace) or None
        return d


@dataclass(frozen=True, slots=True)
class CurrencyTotal:
    """Sums of rounded lines, per currency; ``payable`` is what the partner earns (share lines)."""

    currency: str
    sessions: int
    energy_kwh: Decimal
    net: Decimal
    tax: Decimal
    gross: Decimal
    payable: Decimal

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)


@dataclass(frozen=True, slots=True)
class BreakdownRow:
    """The revenue of one cost centre (or site) in one currency; amounts apportioned from the
    statement's rounded revenue lines (see the module's docstring)."""

    dimension: str  # cost_centre | site
    key: str  # the cost centre ("" none) or the site's code
    label: str  # the site's name (cost centres: the key)
    currency: str
    sessions: int
    energy_kwh: Decimal
    net: Decimal
    tax: Decimal
    gross: Decimal

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)


BREAKDOWN_DIMENSIONS = ("cost_centre", "site")


def breakdown(sessions: Sequence[SessionRevenue], lines: Sequence[StatementLine]) -> tuple[BreakdownRow, ...]:
    """Energy and revenue per cost centre, then per site, each by currency and key: the revenue
    lines' net and VAT apportioned to the keys by their sessions' exact nets at each line's rate."""
    out: list[BreakdownRow] = []
    for dim in BREAKDOWN_DIMENSIONS:
        def key_of(s: SessionRevenue, dim: str = dim) -> str:
            return s.cost_centre if dim == "cost_centre" else s.site
        labels: dict[str, str] = {}
        for s in sessions:
            labels.setdefault(key_of(s), (s.site_name or s.site) if dim == "site" else s.cost_centre)
        for cur in sorted({s.currency for s in sessions}):
            mine = [s for s in sessions if s.currency == cur]
            keys = sorted({key_of(s) for s in mine})
            net = dict.fromkeys(keys, ZERO)
            tax = dict.fromkeys(keys, ZERO)
            for ln in lines:
                if ln.kind != "revenue" or ln.currency != cur or ln.tax_rate is None:
                    continue
                exact = dict.fromkeys(keys, ZERO)
                for s in mine:
                    exact[key_of(s)] += sum((n for r, n in s.lines if r == ln.tax_rate), ZERO)
                places = minor_unit(cur)
                parts = [exact[k] for k in keys]
                for k, part in zip(keys, apportion(ln.net, parts, places), strict=True):
                    net[k] += part
                for k, part in zip(keys, apportion(ln.tax, [p * ln.tax_rate / 100 for p in parts], places),
                                   strict=True):
                    tax[k] += part
            for k in keys:
                ks = [s for s in mine if key_of(s) == k]
                out.append(BreakdownRow(dim, k, labels.get(k, k), cur, len(ks), sum((s.energy_kwh for s in ks), ZERO),
                                        net[k], tax[k], net[k] + tax[k]))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class StatementDraft:
    period: Period
    lines: tuple[StatementLine, ...]
    totals: tuple[CurrencyTotal, ...]
    sessions: int
    unrated_sessions: int
    energy_kwh: Decimal
    covered_sessions: int  # sessions within the agreement's validity (the ones that earn a share)
    notes: tuple[str, ...] = field(default=())
    stated: tuple[StatedShare, ...] = ()
    agreements: tuple[AgreementSubtotal, ...] = ()
    corrections: int = 0  # sessions of earlier statements settled here (re-rated or late)
    breakdown: tuple[BreakdownRow, ...] = ()  # energy and revenue per cost centre and per site


def statement_period(tzname: str, *, month: str | None = None, start: date | None = None,
                     end: date | None = None) -> Period:
    """A calendar month ("2026-03") or ``[start, end)`` local days, in ``tzname``.

    Raises ``ValueError`` with a readable message for anything else."""
    if month is not None:
        if start is not None or end is not None:
            raise ValueError("give either month or start and end, not both")
        try:
            y, m = (int(x) for x in month.split("-"))
            start = date(y, m, 1)
        except ValueError:
            raise ValueError(f"not a month: {month!r} (expected YYYY-MM)") from None
        end = date(y + m // 12, m % 12 + 1, 1)
    elif start is None or end is None:
        raise ValueError("give a month, or both start and end")
    if end <= start:
        raise ValueError("the period must end after it starts")
    if start.year < 1970 or end.year > 2200:
        raise ValueError("a statement period lies between 1970 and 2200")
    if (end - start).days > MAX_PERIOD_DAYS:
        raise ValueError(f"a statement covers at most {MAX_PERIOD_DAYS} days")
    return ad_hoc_period(start, end, tzname)


def _months(first: date, end: date) -> list[tuple[date, int, int]]:
    """(month start, days covered, days in month) for each calendar month touched by [first, end)."""
    out = []
    d = first
    while d < end:
        dim = calendar.monthrange(d.year, d.month)[1]
        nxt = date(d.year + d.month // 12, d.month % 12 + 1, 1)
        stop = min(nxt, end)
        out.append((d.replace(day=1), (stop - d).days, dim))
        d = stop
    return out


def build_statement(*, period: Period, sessions: Sequence[SessionRevenue], unrated_sessions: int = 0,
                    terms: ShareTerms | None = None, valid_from: date | None = None,
                    valid_to: date | None = None, rounding: str = "half_up",
                    segments: Sequence[ShareSegment] | None = None,
                    prior: Sequence[PriorSession] = (),
                    series: Mapping[str, PriceSeries] = _NO_SERIES) -> StatementDraft:
    """The statement of one partner and period. Either ``segments`` (agreements in date order, not
    overlapping) or one agreement's ``terms`` with ``valid_from``/``valid_to`` (inclusive), the
    days on which it earns the partner a share; no terms: revenue only. ``prior``: sessions of
    issued periods to settle (re-rated or late). ``series``: price series (per kWh) for indexed
    reimbursement; a session priced at a moment they do not cover raises
    ``runtime.settlements.SettlementError``."""
    lines: list[StatementLine] = []
    notes: list[str] = []
    cache: dict[tuple[int, str, str], SessionParts] = {}

    def parts_of(terms: ShareTerms, s: SessionRevenue) -> SessionParts:
        key = (id(terms), s.session_id, s.rating_id)
        found = cache.get(key)
        if found is None:
            found = cache[key] = session_parts(terms, s, series)
        return found

    def share_of(terms: ShareTerms | None, s: SessionRevenue) -> dict[str, Decimal]:
        if terms is None or not terms.covers(s.site):
            return {}
        return session_share(terms, s, series, parts_of(terms, s))

    def add(kind: str, description: str, currency: str, tax_rate: Decimal | None, n_sessions: int,
            kwh: Decimal, quantity: Decimal, unit: str, unit_price: Decimal, exact_net: Decimal,
            exact_tax: Decimal = ZERO, agreement_id: str | None = None, session_id: str | None = None,
            refers_to: str | None = None, trace: tuple[dict[str, Any], ...] = ()) -> None:
        places = minor_unit(currency)
        net = quantize(exact_net, places, rounding)
        tax = quantize(exact_tax, places, rounding)
        lines.append(StatementLine(len(lines) + 1, kind, description, currency, tax_rate, n_sessions, kwh,
                                   quantity, unit, unit_price, net, tax, net + tax, exact_net, agreement_id,
                                   session_id, refers_to, trace))

    # revenue per currency and VAT rate
    groups: dict[tuple[str, Decimal], tuple[set[str], Decimal, Decimal]] = {}
    for s in sessions:
        for rate, net in s.lines:
            ids, kwh, total = groups.get((s.currency, rate), (set(), ZERO, ZERO))
            if s.session_id not in ids:
                ids.add(s.session_id)
                kwh += s.energy_kwh
            groups[(s.currency, rate)] = (ids, kwh, total + net)
    for (cur, rate), (ids, kwh, total) in sorted(groups.items()):
        add("revenue", f"charging revenue, {format(rate.normalize(), 'f')}% VAT", cur, rate, len(ids), kwh,
            kwh, "kWh", ZERO, total, total * rate / 100)

    if segments is None:
        first = max(period.local_start, valid_from) if valid_from else period.local_start
        end = min(period.local_end, valid_to + timedelta(days=1)) if valid_to else period.local_end
        segments = [ShareSegment(None, terms, first, end)] if first < end else []
        if terms is not None and not terms.empty and first >= end:
            notes.append("the agreement is not valid in this period: no share")
    else:
        clipped = [ShareSegment(g.agreement_id, g.terms, max(g.first, period.local_start),
                                min(g.end, period.local_end)) for g in segments]
        segments = [g for g in clipped if g.first < g.end]
        if not segments and any(g.terms is not None and not g.terms.empty for g in clipped):
            notes.append("the agreement is not valid in this period: no share")
    earning = [g for g in segments if g.terms is not None and not g.terms.empty]
    if not earning and not notes:
        notes.append("no share terms: the statement shows revenue only")
    stated: list[StatedShare] = []
    subtotals: dict[str | None, tuple[ShareSegment | None, int]] = {}
    covered_ids: set[str] = set()
    for g in segments:
        in_segment = [s for s in sessions if g.holds(s.local_date)]
        if g.terms is None or g.terms.empty:
            continue
        covered = [s for s in in_segment if g.terms.covers(s.site)]
        covered_ids.update(s.session_id for s in covered)
        subtotals[g.agreement_id] = (g, len(covered))
        if g.first > period.local_start or g.end < period.local_end:
            via = f"{g.terms.source}" if len(earning) > 1 else "the agreement's validity"
            notes.append(f"share earned from {g.first.isoformat()} to {(g.end - timedelta(days=1)).isoformat()} "
                         f"({via})")
        elsewhere = len(in_segment) - len(covered)
        if elsewhere:
            notes.append(f"{elsewhere} session(s) at sites the share does not name ({', '.join(g.terms.sites)}) "
                         f"earn no share")
        _share_lines(add, g.terms, covered, g.first, g.end, g.agreement_id, parts_of)
    for s in sessions:
        seg = next((g for g in segments if g.holds(s.local_date)), None)
        stated.extend(_stated(s, seg, share_of(seg.terms if seg else None, s)))

    settled = 0
    for ps in prior:
        s, seg = ps.session, ps.segment
        now = share_of(seg.terms if seg else None, s)
        before = dict(ps.stated)
        diff = {cur: now.get(cur, ZERO) - before.get(cur, ZERO) for cur in sorted(set(now) | set(before))}
        settled += 1
        agreement_id = seg.agreement_id if seg else None
        if any(diff.values()):
            subtotals.setdefault(agreement_id, (None, 0))
        for cur, amount in diff.items():
            if not amount:
                continue
            if ps.late:
                add("share_late_session", f"late session {s.session_id} of {s.local_date.isoformat()} "
                    f"(period of {ps.refers_to})", cur, None, 1, s.energy_kwh, Decimal(1), "session", amount,
                    amount, agreement_id=agreement_id, session_id=s.session_id, refers_to=ps.refers_to)
            else:
                add("share_correction", f"correction of {ps.refers_to}, session {s.session_id} "
                    f"(re-rated): share {format(before.get(cur, ZERO), 'f')} -> {format(now.get(cur, ZERO), 'f')}",
                    cur, None, 1, s.energy_kwh, Decimal(1), "session", amount, amount,
                    agreement_id=agreement_id, session_id=s.session_id, refers_to=ps.refers_to)
        stated.extend(_stated(s, seg, diff, ps.refers_to))
    if settled:
        notes.append(f"{settled} session(s) of issued periods settled here (re-rated or late)")

    totals = []
    for cur in sorted({ln.currency for ln in lines} | {s.currency for s in sessions}):
        cs = [s for s in sessions if s.currency == cur]
        rev = [ln for ln in lines if ln.currency == cur and ln.kind == "revenue"]
        totals.append(CurrencyTotal(
            cur, len(cs), sum((s.energy_kwh for s in cs), ZERO), sum((ln.net for ln in rev), ZERO),
            sum((ln.tax for ln in rev), ZERO), sum((ln.gross for ln in rev), ZERO),
            sum((ln.net for ln in lines if ln.currency == cur and ln.kind != "revenue"), ZERO)))
    agreements = []
    for agreement_id, (part, n) in subtotals.items():
        mine = [ln for ln in lines if ln.kind != "revenue" and ln.agreement_id == agreement_id]
        src = part.terms.source if part is not None and part.terms is not None else next(
            (p.segment.terms.source for p in prior if p.segment and p.segment.terms
             and p.segment.agreement_id == agreement_id), "no terms")
        for cur in sorted({ln.currency for ln in mine}):
            agreements.append(AgreementSubtotal(
                agreement_id, src, part.first if part else None, part.end if part else None, n, cur,
                sum((ln.net for ln in mine if ln.currency == cur), ZERO)))
    if unrated_sessions:
        notes.append(f"{unrated_sessions} session(s) in the period are not rated and not included")
    return StatementDraft(period, tuple(lines), tuple(totals), len(sessions), unrated_sessions,
                          sum((s.energy_kwh for s in sessions), ZERO), len(covered_ids), tuple(notes),
                          tuple(stated), tuple(agreements), settled, breakdown(sessions, lines))


def _stated(s: SessionRevenue, seg: ShareSegment | None, shares: dict[str, Decimal],
            refers_to: str | None = None) -> list[StatedShare]:
    """One record per currency of ``shares``; a session earning nothing still gets one (zero), so
    that it counts as stated and is never settled again as a late session."""
    agreement_id = seg.agreement_id if seg else None
    rows = [StatedShare(s.session_id, s.rating_id, agreement_id, cur, amount, refers_to)
            for cur, amount in sorted(shares.items())]
    return rows or [StatedShare(s.session_id, s.rating_id, agreement_id, s.currency, ZERO, refers_to)]


def _share_lines(add: Any, terms: ShareTerms, covered: Sequence[SessionRevenue], first: date, end: date,
                 agreement_id: str | None, parts_of: Any = None) -> None:
    add = partial(add, agreement_id=agreement_id)
    kwh = sum((s.energy_kwh for s in covered), ZERO)
    if terms.percent is not None:
        pct = terms.percent
        for cur in sorted({s.currency for s in covered}):
            cs = [s for s in covered if s.currency == cur]
            basis = sum((net for s in cs for _, net in s.lines), ZERO)
            add("share_percent", f"{format(pct.normalize(), 'f')}% of net revenue", cur, None, len(cs),
                sum((s.energy_kwh for s in cs), ZERO), basis, f"{cur} net", pct / 100, basis * pct / 100)
    if terms.per_kwh is not None:
        add("share_per_kwh", f"{format(terms.per_kwh, 'f')} {terms.currency} per kWh", terms.currency, None,
            len(covered), kwh, kwh, "kWh", terms.per_kwh, kwh * terms.per_kwh)
    if terms.per_session is not None:
        n = Decimal(len(covered))
        add("share_per_session", f"{format(terms.per_session, 'f')} {terms.currency} per session", terms.currency,
            None, len(covered), kwh, n, "sessions", terms.per_session, n * terms.per_session)
    if terms.monthly_fee is not None:
        for month, days, dim in _months(first, end):
            part = "" if days == dim else f" ({days} of {dim} days)"
            add("share_monthly_fee", f"monthly fee {month:%Y-%m}{part}", terms.currency, None, 0, ZERO,
                Decimal(days), f"days of {dim}", terms.monthly_fee, terms.monthly_fee * days / dim)
    if terms.reimburse_per_kwh is not None:
        add("reimbursement", f"energy reimbursement at {format(terms.reimburse_per_kwh, 'f')} {terms.currency} per kWh",
            terms.currency, None, len(covered), kwh, kwh, "kWh", terms.reimburse_per_kwh,
            kwh * terms.reimburse_per_kwh, trace=({"rule": terms.source},))
    if terms.reimburse is None and not terms.commissions:
        return
    parts = [(s, parts_of(terms, s) if parts_of is not None else session_parts(terms, s)) for s in covered]
    if terms.reimburse is not None:
        _reimbursement_lines(add, terms, terms.reimburse, parts)
    for b, ct in enumerate(terms.commissions):
        _commission_lines(add, terms, b, ct, parts, first, end)


def _reimbursement_lines(add: Any, terms: ShareTerms, rb: EnergyReimbursement,
                         parts: Sequence[tuple[SessionRevenue, SessionParts]]) -> None:
    """One line per energy price of the block that priced any energy, the stretches in its trace."""
    for k, rule in enumerate(rb.rules):
        mine = [x for _, p in parts for x in p.stretches if x.rule == k]
        if not mine:
            continue
        kwh = sum((x.kwh for x in mine), ZERO)
        exact = sum((x.amount for x in mine), ZERO)
        n = len({x.session_id for x in mine})
        if rule.constant is not None:
            unit_price, how = rule.constant, f"at {format(rule.constant, 'f')} {terms.currency} per kWh"
        else:
            # a different price per stretch: the line states the average (the trace has each)
            unit_price = (exact / kwh).quantize(Decimal("0.000001")) if kwh else ZERO
            how = f"at {rule.text.removeprefix('energy at ')} (average {format(unit_price, 'f')} per kWh)"
        trace = ({"rule": f"{rule.label}: reimburse {rule.text}"}, *(x.trace() for x in mine))
        add("reimbursement", f"energy reimbursement {how}", terms.currency, None, n, kwh, kwh, "kWh",
            unit_price, exact, trace=trace)


_COMMISSION_UNITS = {"per_session": "sessions", "per_kwh": "kWh"}


def _commission_lines(add: Any, terms: ShareTerms, b: int, ct: CommissionTerms,
                      parts: Sequence[tuple[SessionRevenue, SessionParts]], first: date, end: date) -> None:
    """One line per rule of a commission block (per currency for a percentage), signed: negative
    when the partner is charged."""
    who = "charged to the partner" if ct.direction == "charge" else "paid to the partner"
    for k, rule in enumerate(ct.rules):
        head = {"rule": f"{rule.label}: {rule.text}", "commission": ct.name, "direction": ct.direction,
                "party": ct.party}
        if rule.kind == "monthly":
            days = commission_days(ct, first, end)
            if days is None:
                continue
            for month, n_days, dim in _months(*days):
                part = "" if n_days == dim else f" ({n_days} of {dim} days)"
                add("commission", f"commission {ct.name}: {rule.text} {month:%Y-%m}{part}, {who}", terms.currency,
                    None, 0, ZERO, Decimal(n_days), f"days of {dim}", ct.sign * rule.amount,
                    ct.sign * rule.amount * n_days / dim, trace=(head,))
            continue
        hits = [(s, qty, amount) for s, p in parts for bb, kk, qty, amount in p.commissions if bb == b and kk == k]
        if not hits:
            continue
        currencies = sorted({s.currency for s, _, _ in hits}) if rule.kind == "percent" else [terms.currency]
        for cur in currencies:
            mine = [h for h in hits if rule.kind != "percent" or h[0].currency == cur]
            qty = sum((q for _, q, _ in mine), ZERO)
            exact = sum((a for _, _, a in mine), ZERO)
            kwh = sum((s.energy_kwh for s, _, _ in mine), ZERO)
            unit = f"{cur} net" if rule.kind == "percent" else _COMMISSION_UNITS[rule.kind]
            price = ct.sign * (rule.amount / 100 if rule.kind == "percent" else rule.amount)
            trace = (head | {"sessions": [s.session_id for s, _, _ in mine]},)
            add("commission", f"commission {ct.name}: {rule.text}, {who}", cur, None, len(mine), kwh, qty, unit,
                price, exact, trace=trace)
