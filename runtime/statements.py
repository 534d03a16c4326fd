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
  the period or the agreement covers part of the month) and ``reimbursement`` (energy at a static
  price per kWh). Share lines are net amounts; VAT on a payout belongs to the credit note.
"""

from __future__ import annotations

import calendar
import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from runtime.invoicing import Period, ad_hoc_period
from runtime.money import ZERO, minor_unit, quantize

__all__ = [
    "SHARE_KINDS",
    "CurrencyTotal",
    "SessionRevenue",
    "ShareTerms",
    "StatementDraft",
    "StatementLine",
    "build_statement",
    "statement_period",
]

SHARE_KINDS = ("share_percent", "share_per_kwh", "share_per_session", "share_monthly_fee", "reimbursement")
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

    def covers(self, site: str) -> bool:
        return not self.sites or any(fnmatch.fnmatchcase(site, p) for p in self.sites)

    @property
    def empty(self) -> bool:
        return all(v is None for v in (self.percent, self.per_kwh, self.per_session, self.monthly_fee,
                                       self.reimburse_per_kwh))


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

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)


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
class StatementDraft:
    period: Period
    lines: tuple[StatementLine, ...]
    totals: tuple[CurrencyTotal, ...]
    sessions: int
    unrated_sessions: int
    energy_kwh: Decimal
    covered_sessions: int  # sessions within the agreement's validity (the ones that earn a share)
    notes: tuple[str, ...] = field(default=())


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
                    valid_to: date | None = None, rounding: str = "half_up") -> StatementDraft:
    """The statement of one partner and period. ``valid_from``/``valid_to`` (inclusive) bound the
    days on which the agreement earns the partner a share; ``terms`` None: revenue only."""
    lines: list[StatementLine] = []
    notes: list[str] = []

    def add(kind: str, description: str, currency: str, tax_rate: Decimal | None, n_sessions: int,
            kwh: Decimal, quantity: Decimal, unit: str, unit_price: Decimal, exact_net: Decimal,
            exact_tax: Decimal = ZERO) -> None:
        places = minor_unit(currency)
        net = quantize(exact_net, places, rounding)
        tax = quantize(exact_tax, places, rounding)
        lines.append(StatementLine(len(lines) + 1, kind, description, currency, tax_rate, n_sessions, kwh,
                                   quantity, unit, unit_price, net, tax, net + tax, exact_net))

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

    first = max(period.local_start, valid_from) if valid_from else period.local_start
    end = min(period.local_end, valid_to + timedelta(days=1)) if valid_to else period.local_end
    covered = [s for s in sessions if first <= s.local_date < end and (terms is None or terms.covers(s.site))]
    if terms is None or terms.empty:
        notes.append("no share terms: the statement shows revenue only")
    elif first >= end:
        notes.append("the agreement is not valid in this period: no share")
    else:
        if first > period.local_start or end < period.local_end:
            notes.append(f"share earned from {first.isoformat()} to {(end - timedelta(days=1)).isoformat()} "
                         f"(the agreement's validity)")
        elsewhere = sum(1 for s in sessions if first <= s.local_date < end and not terms.covers(s.site))
        if elsewhere:
            notes.append(f"{elsewhere} session(s) at sites the share does not name ({', '.join(terms.sites)}) "
                         f"earn no share")
        _share_lines(add, terms, covered, first, end)

    totals = []
    for cur in sorted({ln.currency for ln in lines} | {s.currency for s in sessions}):
        cs = [s for s in sessions if s.currency == cur]
        rev = [ln for ln in lines if ln.currency == cur and ln.kind == "revenue"]
        totals.append(CurrencyTotal(
            cur, len(cs), sum((s.energy_kwh for s in cs), ZERO), sum((ln.net for ln in rev), ZERO),
            sum((ln.tax for ln in rev), ZERO), sum((ln.gross for ln in rev), ZERO),
            sum((ln.net for ln in lines if ln.currency == cur and ln.kind != "revenue"), ZERO)))
    if unrated_sessions:
        notes.append(f"{unrated_sessions} session(s) in the period are not rated and not included")
    return StatementDraft(period, tuple(lines), tuple(totals), len(sessions), unrated_sessions,
                          sum((s.energy_kwh for s in sessions), ZERO), len(covered), tuple(notes))


def _share_lines(add: Any, terms: ShareTerms, covered: Sequence[SessionRevenue], first: date, end: date) -> None:
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
            kwh * terms.reimburse_per_kwh)
