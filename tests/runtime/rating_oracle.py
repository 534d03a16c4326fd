"""The rating algorithm as it was written before issue 17, kept only as a test oracle.

The product path is ``runtime.rating.specialise``: the engine specialised per tariff at compile
time. This is the plain, unspecialised reading of the same algorithm (segments, boundary splits,
first match per segment and component, steps, then ``finish_session``); the equivalence tests
(tests/dsl/test_engine_equivalence.py) hold the engine to it line for line. Nothing outside the
tests imports it.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_CEILING, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from runtime.money import ZERO
from runtime.rated import RatedLine, RatingResult, TraceEntry
from runtime.rating import (
    _DEFAULT_CTX,
    _FLAT_KINDS,
    _GROUP,
    _UNIT_LABEL,
    ONE,
    DiscountProgram,
    Env,
    PricedRule,
    RatingContext,
    RatingError,
    RulesetMeta,
    TariffProgram,
    _boundaries,
    _first,
    _in_unit,
    _ms,
    _price_of,
    _Seg,
    _seg_power,
    _set_env_time,
    _split,
    _split_energy,
    base_segments,
    finish_session,
    zone,
)
from runtime.sessions import SessionFacts

_Acc = list[tuple[PricedRule, Decimal, Decimal]]


def rate_session(prog: TariffProgram, discounts: Sequence[DiscountProgram], meta: RulesetMeta,
                 s: SessionFacts, ctx: RatingContext | None = None) -> RatingResult:
    """Rate one session. Pure: the same inputs give the same lines, always.

    This is the reference algorithm for every session shape; the compiler also generates a
    specialised function per tariff for plain sessions that must agree with it exactly."""
    ctx = ctx or _DEFAULT_CTX
    tzname = ctx.tz or s.timezone or prog.timezone
    try:
        tz = zone(tzname)
    except (KeyError, ValueError, OSError):  # ZoneInfoNotFoundError is a KeyError
        raise RatingError(f"session {s.id!r}: unknown time zone {tzname!r}") from None
    resv = ctx.reservation or s.reservation
    env = Env(s, resv)
    start = _ms(s.start)
    end = _ms(s.end)
    acc, trace, totals, first_ms, start = _accumulate(prog, s, env, start, end, tz, ctx, resv)
    cur = prog.currency
    sid = s.id
    lines: list[RatedLine] = []
    for r, price, vol in acc:
        qty = _in_unit(vol, r.unit)
        lines.append(RatedLine(r.kind, r.title, qty, _UNIT_LABEL[r.unit], price, qty * price, r.vat, cur,
                               r.label, sid, _GROUP[r.kind]))

    # once-per-session fees: start and flat fees when the session charged or parked at all;
    # reservation fees when there was a reservation
    rules = prog.rules
    if first_ms is not None:
        env.pw, env.cur = env.fees.get("active", (s.max_power_kw, None))
        if prog.needs_local_time:
            _set_env_time(env, first_ms, tz)
        env.el = first_ms - start
        env.kwh = ZERO
        for kind in _FLAT_KINDS:
            krules = rules.get(kind)
            if krules:
                fee = _first(krules, env)
                if fee is not None:
                    price = _price_of(fee, first_ms, ctx)
                    lines.append(RatedLine(kind, fee.title, ONE, "session", price, price, fee.vat, cur, fee.label,
                                           sid, "fixed"))
                    trace.append(TraceEntry(kind, fee.label, first_ms, first_ms, ONE, price))
    if resv is not None and rules.get("reservation_fee"):
        if prog.needs_local_time:
            _set_env_time(env, start, tz)
        env.el = 0
        env.pw, env.cur = env.fees.get("resv", env.fees.get("active", (s.max_power_kw, None)))
        rfee = _first(rules["reservation_fee"], env)
        if rfee is not None:
            price = _price_of(rfee, start, ctx)
            lines.append(RatedLine("reservation_fee", rfee.title, ONE, "session", price, price, rfee.vat, cur,
                                   rfee.label, sid, "reservation"))
            trace.append(TraceEntry("reservation_fee", rfee.label, start, start, ONE, price))
    mine = [d for d in discounts if not d.tariffs or prog.name in d.tariffs]
    return finish_session(prog, mine, meta, s, ctx, tz, start, end, lines, trace, totals, [a[0] for a in acc])



def _accumulate(prog: TariffProgram, s: SessionFacts, env: Env, start: int, end: int, tz: ZoneInfo,
                ctx: RatingContext, resv: str | None
                ) -> tuple[_Acc, list[TraceEntry], tuple[Decimal, Decimal, Decimal], int | None, int]:
    """The general path: segments, boundary splits, first match per segment and component."""
    segs = base_segments(s)
    if segs:
        start = min(start, segs[0].a)
        end = max(end, segs[-1].b)
    cuts_c: list[int] = []
    cuts_p: list[int] = []
    if prog.dynamic:
        if prog.energy_kwh:
            segs = _split_energy(segs, prog.energy_kwh)
        cuts_c = _boundaries(prog.charge_cuts, start, end, tz, ctx)
        cuts_p = _boundaries(prog.park_cuts, start, end, tz, ctx)
    rules = prog.rules
    e_rules = rules.get("energy")
    t_rules = rules.get("time")
    p_rules = rules.get("parking")
    r_rules = rules.get("reservation")
    # per (rule, unit price): accumulated volume, in first-seen order for the lines
    acc: dict[tuple[int, Decimal], list[Any]] = {}
    trace: list[TraceEntry] = []
    last_rule: dict[str, PricedRule] = {}
    kind_total: dict[str, Decimal] = {}
    idle_used: dict[int, Decimal] = {}
    tot_e = tot_t = tot_p = ZERO
    cum_kwh = ZERO
    need_power = prog.needs_power
    first_active: int | None = None
    fee_env: dict[str, tuple[Decimal | None, Decimal | None]] = env.fees

    def price_volume(kind: str, krules: tuple[PricedRule, ...] | None, vol: Decimal, seg: _Seg) -> None:
        if not krules:
            return
        r = _first(krules, env)
        if r is None:
            return
        free = ZERO
        if r.grace_ms is not None and env.el < r.grace_ms:
            free = vol  # boundaries were cut at the grace end, so the whole segment is inside
        elif r.grace_idle is not None:
            used = idle_used.get(id(r), ZERO)
            free = min(vol, max(ZERO, r.grace_idle - used))
            idle_used[id(r)] = used + vol
        billable = vol - free
        if free:
            trace.append(TraceEntry(kind, r.label, seg.a, seg.b, _in_unit(free, r.unit), ZERO, "free (grace)"))
        if not billable:
            return
        price = _price_of(r, seg.a, ctx)
        key = (id(r), price)
        slot = acc.get(key)
        if slot is None:
            acc[key] = [r, price, billable]
        else:
            slot[2] += billable
        last_rule[kind] = r
        kind_total[kind] = kind_total.get(kind, ZERO) + billable
        trace.append(TraceEntry(kind, r.label, seg.a, seg.b, _in_unit(billable, r.unit), price))

    time_c = prog.charge_cuts.needs_local_time
    time_p = prog.park_cuts.needs_local_time
    for seg in segs:
        if first_active is None and not seg.resv_s:
            first_active = seg.a
            # once-per-session fees are judged by the first charging period (its power and current)
            fee_env["active"] = (_seg_power(seg, s), seg.imax if seg.imax is not None else seg.imin)
        if seg.resv_s and "resv" not in fee_env:
            fee_env["resv"] = (_seg_power(seg, s), seg.imax if seg.imax is not None else seg.imin)
        cum0 = cum_kwh
        # totals are the measured volumes, not sums of the pieces they were cut into
        tot_e += seg.energy
        tot_t += seg.time_s
        tot_p += seg.park_s
        if seg.energy or seg.time_s or seg.resv_s:
            part = seg if not seg.park_s else _Seg(seg.a, seg.b, seg.energy, seg.time_s, ZERO, seg.resv_s,
                                                    seg.pmin, seg.pmax, seg.imin, seg.imax)
            for piece in _split([part], cuts_c) if cuts_c else (part,):
                env.kwh = cum_kwh
                env.el = piece.a - start
                if time_c:
                    _set_env_time(env, piece.a, tz)
                if need_power:
                    env.pw = _seg_power(piece, s)
                    env.cur = piece.imax if piece.imax is not None else piece.imin
                if piece.energy:
                    price_volume("energy", e_rules, piece.energy, piece)
                if piece.time_s:
                    price_volume("time", t_rules, piece.time_s, piece)
                if piece.resv_s:
                    price_volume("reservation", r_rules, piece.resv_s, piece)
                cum_kwh += piece.energy
        if seg.park_s:
            # parking is priced as of the period's start (what was charged before it), as in OCPI
            part = _Seg(seg.a, seg.b, ZERO, ZERO, seg.park_s, ZERO, seg.pmin, seg.pmax, seg.imin, seg.imax)
            for piece in _split([part], cuts_p) if cuts_p else (part,):
                env.kwh = cum0
                env.el = piece.a - start
                if time_p:
                    _set_env_time(env, piece.a, tz)
                if need_power:
                    env.pw = _seg_power(piece, s)
                    env.cur = piece.imax if piece.imax is not None else piece.imin
                price_volume("parking", p_rules, piece.park_s, piece)
    if not segs:
        first_active = start

    # step sizes: once per session per component, at the last pricing rule's step and price.
    # When parking was priced, the charging-time step is not applied (OCPI 2.2.1 mod_tariffs).
    for kind, r in last_rule.items():
        if not r.step or (kind == "time" and kind_total.get("parking")):
            continue
        total = kind_total[kind]
        rounded = (total / r.step).to_integral_value(rounding=ROUND_CEILING) * r.step
        if rounded > total:
            for key in reversed(list(acc)):
                if key[0] == id(r):
                    acc[key][2] += rounded - total
                    trace.append(TraceEntry(kind, r.label, end, end, _in_unit(rounded - total, r.unit), key[1],
                                            f"step {_in_unit(r.step, r.unit)} {r.unit}"))
                    break
    out: _Acc = [(r, price, vol) for r, price, vol in acc.values()]
    return out, trace, (tot_e, tot_t, tot_p), first_active, start

