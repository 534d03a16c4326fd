"""The fast path of ``evbill ocpi price --cdrs``: one CDR line -> its printed totals.

``dsl.ocpi._fast_pricer`` gathers what one tariff and context need (the decoder, the timestamp
caches, the rating engine's generated totals function, the renderer) and ``pricer`` makes the
function that prices a line with them. This module computes no price itself: the amounts come from
the rating engine's totals (``runtime.rating.fused_totals``, generated from the engine's own step
tables) or pieces path; here the CDR's periods become the engine's pieces and the totals are printed.

The module is plain Python and is also compiled with mypyc by ``make install`` (``dsl.native``):
``dsl.ocpi`` uses the compiled module when it was built from this very source and this file
otherwise, and both print the same bytes (``tests/dsl/test_ocpi_native.py``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

try:  # native 64-bit integers when compiled (mypyc); plain ints otherwise
    from mypy_extensions import i64
except ImportError:  # pragma: no cover - an install without mypy: the plain module runs
    i64 = int  # type: ignore[misc]


def hours_text(ms: int) -> str:
    """``_fmt(max(ZERO, _hours))`` of a span of ``ms`` milliseconds, in integers: hours to 4 places
    are ms / 360, rounded half up. The same text: ms / 3,600,000 has the digits of a number over
    9 times a power of ten, so after its first few decimals one digit repeats, never a 9, and
    Decimal's rounding to 28 digits cannot carry the quotient across a half."""
    if ms <= 0:
        return "0.0000"
    q, rest = divmod(ms, 360)
    if rest >= 180:
        q += 1
    # the fraction's 4 digits with their leading zeros: those of 1xxxx after its "1"
    return str(q // 10000) + "." + str(q % 10000 + 10000)[1:]


def _two(s: str, i: i64) -> i64:
    """The number of the ASCII digits ``s[i:i + 2]``; -1 when either is not one."""
    a: i64 = ord(s[i]) - 48
    b: i64 = ord(s[i + 1]) - 48
    if a < 0 or a > 9 or b < 0 or b > 9:
        return -1
    return a * 10 + b


def utc_ms(when: str) -> int:
    """Epoch ms of ``YYYY-MM-DDTHH:MM:SSZ`` in ASCII digits, a real date and time in 1970 or later
    (what ``datetime.fromisoformat`` reads as that UTC instant); -1 for anything else. Integer
    arithmetic on the characters' codes, no slices, lookups or tables (compiled, a module-level
    table is a dict lookup per use): the day count is ``date.toordinal``'s proleptic Gregorian one,
    by the civil-from-days formula with March as the year's first month."""
    if (len(when) != 20 or ord(when[19]) != 90 or ord(when[10]) != 84 or ord(when[4]) != 45  # Z T -
            or ord(when[7]) != 45 or ord(when[13]) != 58 or ord(when[16]) != 58):  # - : :
        return -1
    c: i64 = _two(when, 0)
    y: i64 = _two(when, 2)
    mo: i64 = _two(when, 5)
    d: i64 = _two(when, 8)
    h: i64 = _two(when, 11)
    mi: i64 = _two(when, 14)
    sec: i64 = _two(when, 17)
    if c < 0 or y < 0 or mo < 1 or mo > 12 or d < 1 or h < 0 or h > 23 or mi < 0 or mi > 59 or sec < 0 or sec > 59:
        return -1
    year: i64 = c * 100 + y
    if year < 1970:
        return -1
    if mo == 2:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        if d > (29 if leap else 28):
            return -1
    elif d > 30 + (mo + mo // 8) % 2:  # 31 in Jan, Mar, May, Jul, Aug, Oct, Dec
        return -1
    if mo <= 2:  # January and February count as months 11 and 12 of the year before
        year -= 1
        mo += 9
    else:
        mo -= 3
    days: i64 = year * 365 + year // 4 - year // 100 + year // 400 + (153 * mo + 2) // 5 + d - 719469  # 1970-01-01: 0
    return ((days * 24 + h) * 60 + mi) * 60_000 + sec * 1000


def ms_of(when: str, epoch_ms: Callable[[str], int]) -> int:
    """Epoch ms of a timestamp: the common shape (2026-07-22T17:14:33Z) by ``utc_ms``, anything
    else -- before 1970, another separator, an offset -- by ``epoch_ms``."""
    ms = utc_ms(when)
    return ms if ms >= 0 else epoch_ms(when)


def pricer(decode: Callable[[str], Any], epoch_ms: Callable[[str], int], facts: dict[Any, Any],
           facts_of: Callable[[tuple[Any, Any, Any, bool]], Any], totals_fn: Callable[..., Any] | None,
           pieces_fn: Callable[..., Any], groups_of: Callable[[Any], Any], groups_printed: tuple[str, ...],
           ctx: Any, zero: Any, rzero: Any, quantize: Callable[[Any, Any], Any], four: Any, zero_text: str,
           dump: Callable[[str], str], parts: tuple[str, ...], slow: type[Exception]) -> Callable[[str], str]:
    """The function pricing one CDR line (``slow`` raised, or any error, for what the exact path must
    take). ``facts`` holds the session facts for (country, EVSE, power type, reserved), ``facts_of``
    makes and keeps the ones it lacks;
    an amount prints as ``str(quantize(x, four))`` (``quantize``: a half-up context's), and the
    line as the head (the id) then ``parts`` and the 15 texts in turn."""
    zero_group = (zero, zero)
    facts_get = facts.get
    # per printed amount, the last one quantized and its text (held, so ``is`` cannot meet a new object)
    memo: list[Any] = [None] * 12
    memo_text: list[str] = [""] * 12

    def price(line: str) -> str:
        c: Any = decode(line)
        begins: str = c.start_date_time
        start: int = ms_of(begins, epoch_ms)
        end: int = ms_of(c.end_date_time, epoch_ms)
        raw: list[Any] = c.charging_periods
        if end < start or not raw:
            raise slow
        # one pass: each period's piece is made with its end unknown (the next period's start, or the
        # CDR's end) and given it when that is read; an order the exact path refuses or reads
        # otherwise (a period before the one before it, after the end) is slow
        pieces: list[Any] = []
        reserved = False
        first = -1
        piece: list[Any] | None = None
        first_start: int = -(1 << 62)
        last: int = -(1 << 62)
        a: int
        for p in raw:
            when: str = p.start_date_time  # the first period's is often the CDR's: read once
            a = start if when == begins else ms_of(when, epoch_ms)
            if a < last:
                raise slow
            if piece is None:
                first_start = a
            else:
                piece[1] = a  # the previous period ends where this one begins
            last = a
            # energy, time s, parking s, reservation s, min/max power, min/max current, and a slot
            # for the dimensions pricing ignores
            vals: list[Any] = [zero, zero, zero, zero, None, None, None, None, None]
            seen = 0
            bit: int
            dims: list[Any] = p.dimensions  # (typed: the compiled loop indexes the list, the tuple)
            for d in dims:
                kb: tuple[int, int, dict[bytes, Any], Any] = d.kb
                bit = kb[1]
                if seen & bit:
                    raise slow
                seen |= bit
                text = bytes(d.volume)
                v = kb[2].get(text)
                vals[kb[0]] = v if v is not None else kb[3](text)
            e, t, pk, r, pmin, pmax, cmin, cmax, _ignored = vals
            if seen & 8:
                reserved = True
            if first < 0 and (e or t or pk or not r):
                first = len(pieces)
            piece = [a, end, e, t, pk, r, pmax if pmax is not None else pmin, cmax if cmax is not None else cmin]
            pieces.append(piece)
        if last > end:
            raise slow
        loc: Any = c.cdr_location
        key = (None, None, None, reserved) if loc is None else (loc.country, loc.evse_id, loc.connector_power_type,
                                                                reserved)
        f = facts_get(key) or facts_of(key)
        money: list[str] = []
        if totals_fn is not None:
            res: tuple[Any, ...] = totals_fn(f, ctx, pieces, start, end)
            for i in range(12):
                x = res[i]
                if x is rzero:
                    money.append(zero_text)
                elif x is memo[i]:  # the same amount as the last CDR's (a fee's constant)
                    money.append(memo_text[i])
                else:
                    amount = str(quantize(x, four))
                    memo[i] = x
                    memo_text[i] = amount
                    money.append(amount)
            kwh, parking_h = res[12], res[14]
        else:
            got: tuple[Any, ...] = pieces_fn(f, ctx, [tuple(x) for x in pieces], start, end)
            get = groups_of(got[0]).get
            for group in groups_printed:
                for x in get(group, zero_group):
                    money.append(zero_text if x is zero else str(quantize(x, four)))
            kwh, parking_h = got[1], got[3]
        # total_time: from the first period that is not only a reservation
        if first < 0:
            total_time = zero_text
        else:
            total_time = hours_text(end - (pieces[first][0] if first else min(start, first_start)))
        money.append(zero_text if kwh is zero else str(quantize(kwh, four)))
        money.append(total_time)
        money.append(zero_text if parking_h is zero else str(quantize(parking_h, four)))
        cid = c.id
        out = [f'{{"id": {dump(cid)}, ' if cid else "{"]
        for i in range(15):
            out.append(parts[i])
            out.append(money[i])
        out.append(parts[15])
        return "".join(out)
    return price
