"""Source text -> AST, or syntax diagnostics (never an exception for bad input)."""

from __future__ import annotations

import dataclasses as _dc
import re
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import VisitError, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from dsl import ast as A
from dsl.diagnostics import Diagnostic, suggest

__all__ = ["parse", "ParseOutcome"]

_GRAMMAR = Path(__file__).with_name("evbill.lark")


@lru_cache(maxsize=1)
def _parser() -> Lark:
    return Lark(_GRAMMAR.read_text(encoding="utf-8"), parser="lalr", lexer="contextual",
                propagate_positions=True, maybe_placeholders=False)


# Readable names for terminals in "expected ..." messages.
_READABLE = {
    "NAME": "a name", "WORD": "a name or pattern", "NUMBER": "a number", "PERCENT": "a percentage like 19%",
    "STRING": "a quoted string", "DATE": "a date like 2026-12-01", "TIME": "a time like 22:00",
    "CURRENCY": "a currency code like EUR", "ZONE": "a time zone like Europe/Berlin",
    "ENERGY_UNIT": "an energy unit (kWh, Wh, MWh)", "TIME_UNIT": "a time unit (min, h, s)",
    "ANY_UNIT": "a unit", "DAY": "a weekday (mon..sun)", "CMP": "a comparison (>=, <, ...)",
    "TARGET": "a discount target (energy, time, parking, start_fee, flat, session, reservation)",
    "ONCE_SCOPE": "customer, period or session", "TIER_MODE": "graduated or volume",
    "INCLUDED_UNIT": "kWh or sessions", "PERIOD_UNIT": "month, quarter or year",
    "POLICY_KIND": "a block keyword", "IDLE": "'idle'", "USES": "'uses'", "PSEP": "';'",
    "PLUS": "'+'", "STAR": "'*'", "_SEP": "';'", "$END": "end of input",
}

# Common slips mapped to a hint (Lark's match_examples finds the one with the same parser state).
_EXAMPLES: dict[str, list[str]] = {
    "write 'per' before the unit, e.g. 'energy 0.49 per kWh'": [
        "ruleset r currency EUR timezone UTC tariff t { energy 0.49 kWh }",
        "ruleset r currency EUR timezone UTC tariff t { parking 0.10 min }",
        "ruleset r currency EUR timezone UTC tariff t { time 1 h }",
    ],
    "a tariff body goes in braces: tariff NAME \"Title\" { ... }": [
        "ruleset r currency EUR timezone UTC tariff t energy 0.49 per kWh }",
    ],
    "percentages need a '%' sign, e.g. 'vat 19%'": [
        "ruleset r currency EUR timezone UTC tariff t { vat 19 }",
        "ruleset r currency EUR timezone UTC discount d { 10 off energy }",
    ],
    "use a decimal point, not a comma: 0.49": [
        "ruleset r currency EUR timezone UTC tariff t { energy 0,49 per kWh }",
        "ruleset r currency EUR timezone UTC tariff t { start_fee 0,35 }",
    ],
    "a ruleset starts with: ruleset NAME currency EUR timezone Europe/Berlin": [
        "tariff t { }",
        "currency EUR",
    ],
}


class ParseOutcome:
    """A ruleset and the syntax diagnostics; after recovery both: the blocks that parsed, and the
    names declared by blocks that did not (the checker must not call those unknown)."""

    __slots__ = ("ruleset", "diagnostics", "lost_names")

    def __init__(self, ruleset: A.Ruleset | None, diagnostics: list[Diagnostic],
                 lost_names: frozenset[str] = frozenset()):
        self.ruleset = ruleset
        self.diagnostics = diagnostics
        self.lost_names = lost_names


def _readable(term: str) -> str:
    if term in _READABLE:
        return _READABLE[term]
    for t in _parser().terminals:
        if t.name == term:
            if t.pattern.type == "str":
                return f"'{t.pattern.value}'"
            break
    return term.lower()


def _expected(names: set[str] | frozenset[str]) -> str:
    items = sorted({_readable(n) for n in names})
    if len(items) > 8:
        items = items[:8] + ["..."]
    return ", ".join(items)


def _token_text(tok: Token) -> str:
    if tok.type == "$END":
        return "end of input"
    return f"'{tok}'"


def _hint_for(text: str, exc: UnexpectedInput) -> str | None:
    try:
        label = exc.match_examples(_parser().parse, _EXAMPLES, use_accepts=True)
    except Exception:  # noqa: BLE001 - a hint is optional; never let it break diagnostics
        return None
    return label if isinstance(label, str) else None


def _syntax_diag(exc: UnexpectedInput, text: str, filename: str) -> Diagnostic:
    hint = _hint_for(text, exc)
    if isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken) and exc.token.type == "$END"):
        lines = text.splitlines() or [""]
        line = len(lines)
        col = len(lines[-1]) + 1
        expected = getattr(exc, "expected", None) or getattr(exc, "accepts", None) or set()
        msg = "unexpected end of input"
        if expected:
            msg += f", expected {_expected(expected)}"
        return Diagnostic("E103", "error", msg, A.Span(line, col, line, col + 1), hint or _eof_hint(text), filename)
    if isinstance(exc, UnexpectedToken):
        tok = exc.token
        end_col = (tok.end_column or (tok.column or 1) + len(str(tok)))
        span = A.Span(tok.line or 1, tok.column or 1, tok.end_line or tok.line or 1, end_col)
        expected = exc.accepts or exc.expected
        msg = f"unexpected {_token_text(tok)}, expected {_expected(expected)}"
        if hint is None and expected & _UNIT_TERMINALS.keys():
            hint = _unit_hint(str(tok), [u for t in expected & _UNIT_TERMINALS.keys() for u in _UNIT_TERMINALS[t]])
        return Diagnostic("E101", "error", msg, span, hint, filename)
    if isinstance(exc, UnexpectedCharacters):
        pos = exc.pos_in_stream if exc.pos_in_stream is not None else -1
        ch = text[pos] if 0 <= pos < len(text) else "?"
        span = A.Span(exc.line, exc.column, exc.line, exc.column + 1)
        msg = f"unexpected character '{ch}'"
        if exc.allowed:
            msg += f", expected {_expected(exc.allowed)}"
        if ch == "€" or ch == "$":
            hint = hint or "write amounts as plain numbers; the ruleset's currency applies"
        return Diagnostic("E102", "error", msg, span, hint, filename)
    return Diagnostic("E101", "error", str(exc).splitlines()[0].lower(), A.Span.unknown(), hint, filename)


_ENERGY_UNITS = ("kWh", "Wh", "MWh")
_TIME_UNITS = ("min", "h", "s", "hour", "hours", "minutes", "minute", "seconds", "second", "sec", "days", "day")
_UNIT_TERMINALS: dict[str, tuple[str, ...]] = {
    "ENERGY_UNIT": _ENERGY_UNITS, "TIME_UNIT": _TIME_UNITS, "ANY_UNIT": _ENERGY_UNITS + _TIME_UNITS,
}


def _unit_hint(found: str, units: list[str]) -> str | None:
    """Units are case-sensitive (kWh, not kwh): match case-blind first, then by difflib."""
    for u in units:
        if u.lower() == found.lower():
            return f"units are case-sensitive: did you mean '{u}'?"
    return suggest(found, units)


def _eof_hint(text: str) -> str | None:
    if text.count("{") > text.count("}"):
        return "a block is not closed: add '}'"
    return None


def _parse_one(text: str, filename: str) -> tuple[A.Ruleset | None, list[Diagnostic]]:
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as exc:
        return None, [_syntax_diag(exc, text, filename)]
    except RecursionError:
        return None, [Diagnostic("E101", "error", "expression nested too deeply", A.Span.unknown(), None, filename)]
    try:
        return _ToAst().transform(tree), []
    except VisitError as wrapped:
        bad = wrapped.orig_exc
        if not isinstance(bad, _Invalid):
            raise
        return None, [Diagnostic(bad.code, "error", bad.message, bad.span, bad.hint, filename)]


# Keywords that open a top-level block; a block runs to the next such keyword at brace depth 0.
_BLOCK_START = re.compile(
    r"^[ \t]*(tariff|discount|product|groups|group|partners|series|default|tax|billing|hold|dunning"
    r"|revenue_share|commission|service|reimbursement)\b(?:[ \t]+(?:tariff[ \t]+)?([A-Za-z_][A-Za-z0-9_]*))?",
    re.MULTILINE)


def _blocks(text: str) -> list[tuple[int, int, list[str]]]:
    """(start, end, names) of each top-level block, found by braces outside strings and comments."""
    depth = 0
    starts: list[tuple[int, list[str]]] = []
    i, n = 0, len(text)
    candidates = {m.start(): m for m in _BLOCK_START.finditer(text)}
    line_start = True
    while i < n:
        ch = text[i]
        if line_start and depth == 0:
            m = candidates.get(i)
            if m is not None:
                names = [m.group(2)] if m.group(2) else []
                if m.group(1) in ("groups", "group", "partners"):
                    eol = text.find("\n", i)
                    names = re.findall(r"[A-Za-z_][A-Za-z0-9_*?\-]*", text[m.end(1):eol if eol >= 0 else n])
                starts.append((i, names))
        line_start = ch == "\n"
        if ch == "#":
            eol = text.find("\n", i)
            i = n if eol < 0 else eol
            continue
        if ch == '"':
            j = i + 1
            while j < n and text[j] not in '"\n':
                j += 2 if text[j] == "\\" else 1
            i = j + 1
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth = max(0, depth - 1)
        i += 1
    out: list[tuple[int, int, list[str]]] = []
    for k, (start, names) in enumerate(starts):
        end = starts[k + 1][0] if k + 1 < len(starts) else n
        out.append((start, end, names))
    return out


def _blank(text: str) -> str:
    """The same text with every character but newlines made a space, so positions stay put."""
    return re.sub(r"[^\n]", " ", text)


def parse(text: str, filename: str = "<ruleset>") -> ParseOutcome:
    rs, diags = _parse_one(text, filename)
    if rs is not None:
        return ParseOutcome(rs, [])
    # Recover: parse the header alone, then each top-level block with the rest blanked out (so
    # line:col stay those of the file), and keep what parsed for the checker.
    blocks = _blocks(text)
    if not blocks:
        return ParseOutcome(None, diags)
    head_end = blocks[0][0]
    header_text = text[:head_end]
    head, head_diags = _parse_one(header_text + _blank(text[head_end:]), filename)
    found: list[Diagnostic] = list(head_diags)
    if head is None:
        # Without a header no block can be read on its own; report what the whole parse found.
        return ParseOutcome(None, diags)
    parts: list[A.Ruleset] = []
    lost: set[str] = set()
    for start, end, names in blocks:
        piece = header_text + _blank(text[head_end:start]) + text[start:end] + _blank(text[end:])
        part, part_diags = _parse_one(piece, filename)
        if part is None:
            found.extend(part_diags)
            lost.update(names)
        else:
            parts.append(part)
    if not found:  # the blocks parse alone but not together: keep the whole-file diagnostic
        return ParseOutcome(None, diags)
    merged = _dc.replace(
        head,
        groups=head.groups + tuple(x for p in parts for x in p.groups),
        partners=head.partners + tuple(x for p in parts for x in p.partners),
        series=head.series + tuple(x for p in parts for x in p.series),
        default_tariff=next((p.default_tariff for p in parts if p.default_tariff is not None), None),
        tariffs=tuple(x for p in parts for x in p.tariffs),
        discounts=tuple(x for p in parts for x in p.discounts),
        products=tuple(x for p in parts for x in p.products),
        policies=tuple(x for p in parts for x in p.policies),
    )
    return ParseOutcome(merged, found, frozenset(lost))


class _Invalid(Exception):
    """A literal that the grammar accepts but that has no meaning (25:00, 2026-13-40)."""

    def __init__(self, code: str, message: str, span: A.Span, hint: str | None = None):
        super().__init__(message)
        self.code, self.message, self.span, self.hint = code, message, span, hint


def _span(meta_or_tok: Any) -> A.Span:
    if isinstance(meta_or_tok, Token):
        return A.Span(meta_or_tok.line or 1, meta_or_tok.column or 1,
                      meta_or_tok.end_line or meta_or_tok.line or 1,
                      meta_or_tok.end_column or (meta_or_tok.column or 1) + len(meta_or_tok))
    m = meta_or_tok
    if getattr(m, "empty", True):
        return A.Span.unknown()
    return A.Span(m.line, m.column, m.end_line, m.end_column)


def _dec(tok: Token) -> Decimal:
    return Decimal(str(tok).rstrip("%"))


def _str(tok: Token) -> str:
    s = str(tok)[1:-1]
    return s.replace('\\"', '"').replace("\\\\", "\\")


def _check_time(tok: Token) -> str:
    h, m = str(tok).split(":")
    if not (0 <= int(h) <= 24 and 0 <= int(m) < 60) or (int(h) == 24 and int(m) != 0):
        raise _Invalid("E305", f"invalid time of day '{tok}'", _span(tok), "use 00:00 to 24:00")
    return f"{int(h):02d}:{int(m):02d}"


def _check_date(tok: Token) -> str:
    import datetime as _dt

    try:
        _dt.date.fromisoformat(str(tok))
    except ValueError:
        raise _Invalid("E305", f"invalid date '{tok}'", _span(tok), "dates are YYYY-MM-DD") from None
    return str(tok)


_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@v_args(meta=True)
class _ToAst(Transformer[Token, Any]):
    # ------------------------------------------------------------ ruleset
    def start(self, meta: Any, items: list[Any]) -> A.Ruleset:
        header: dict[str, Any] = items[0]
        kw: dict[str, Any] = {"tariffs": [], "discounts": [], "products": [], "policies": [],
                              "groups": [], "partners": [], "series": [], "default_tariff": None}
        for it in items[1:]:
            if isinstance(it, A.Tariff):
                kw["tariffs"].append(it)
            elif isinstance(it, A.Discount):
                kw["discounts"].append(it)
            elif isinstance(it, A.Product):
                kw["products"].append(it)
            elif isinstance(it, A.Policy):
                kw["policies"].append(it)
            elif isinstance(it, tuple) and it[0] == "default":
                kw["default_tariff"] = it[1]
            elif isinstance(it, tuple):
                kw[it[0]].extend(it[1])
        return A.Ruleset(
            name=header["name"], currency=header.get("currency", ""), timezone=header.get("timezone", ""),
            span=header["span"], version=header.get("version", ""), rounding=header.get("rounding", "half_up"),
            holidays=header.get("holidays", ""),
            groups=tuple(kw["groups"]), partners=tuple(kw["partners"]), series=tuple(kw["series"]),
            default_tariff=kw["default_tariff"], tariffs=tuple(kw["tariffs"]), discounts=tuple(kw["discounts"]),
            products=tuple(kw["products"]), policies=tuple(kw["policies"]),
            header_spans=tuple(header["spans"]),
        )

    def header(self, meta: Any, items: list[Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"name": str(items[0]), "span": _span(meta), "spans": [("name", _span(items[0]))]}
        for key, value, span in items[1:]:
            out[key] = value
            out["spans"].append((key, span))
        return out

    def h_currency(self, meta: Any, c: list[Token]) -> tuple[str, str, A.Span]:
        return ("currency", str(c[0]), _span(c[0]))

    def h_timezone(self, meta: Any, c: list[Token]) -> tuple[str, str, A.Span]:
        return ("timezone", str(c[0]), _span(c[0]))

    def h_version(self, meta: Any, c: list[Token]) -> tuple[str, str, A.Span]:
        return ("version", _str(c[0]), _span(c[0]))

    def h_rounding(self, meta: Any, c: list[Token]) -> tuple[str, str, A.Span]:
        return ("rounding", str(c[0]), _span(c[0]))

    def h_holidays(self, meta: Any, c: list[Token]) -> tuple[str, str, A.Span]:
        return ("holidays", str(c[0]), _span(c[0]))

    def groups_decl(self, meta: Any, c: list[Token]) -> tuple[str, list[A.Named]]:
        return ("groups", [A.Named(str(t), _span(t)) for t in c if isinstance(t, Token) and t.type == "NAME"])

    def partners_decl(self, meta: Any, c: list[Token]) -> tuple[str, list[A.Named]]:
        return ("partners", [A.Named(str(t), _span(t)) for t in c if isinstance(t, Token) and t.type == "WORD"])

    def series_decl(self, meta: Any, c: list[Token]) -> tuple[str, list[A.Named]]:
        return ("series", [A.Named(str(c[0]), _span(c[0]))])

    def default_decl(self, meta: Any, c: list[Token]) -> tuple[str, A.Named]:
        return ("default", A.Named(str(c[0]), _span(c[0])))

    # ------------------------------------------------------------ tariffs
    def tariff(self, meta: Any, c: list[Any]) -> A.Tariff:
        name_tok = c[0]
        title = ""
        rest = c[1:]
        if rest and isinstance(rest[0], Token) and rest[0].type == "STRING":
            title = _str(rest[0])
            rest = rest[1:]
        base: list[A.ComponentDef] = []
        rules: list[A.Rule] = []
        vat = None
        min_p = max_p = None
        spans: list[tuple[str, A.Span]] = []
        for it in rest:
            if isinstance(it, A.ComponentDef):
                base.append(it)
            elif isinstance(it, A.Rule):
                rules.append(it)
            elif isinstance(it, tuple):
                key, value, span = it
                spans.append((key, span))
                if key == "vat":
                    vat = value
                elif key == "min_price":
                    min_p = value
                elif key == "max_price":
                    max_p = value
        if base:
            first, last = base[0].span, base[-1].span
            rules.append(A.Rule(None, tuple(base), A.Span(first.line, first.col, last.end_line, last.end_col), "base"))
        return A.Tariff(str(name_tok), title or str(name_tok), tuple(rules), _span(meta), vat, min_p, max_p,
                        name_span=_span(name_tok), opt_spans=tuple(spans))

    def t_vat(self, meta: Any, c: list[Token]) -> tuple[str, Decimal, A.Span]:
        return ("vat", _dec(c[0]), _span(meta))

    def incl(self, meta: Any, c: list[Token]) -> Decimal:
        return _dec(c[0])

    def t_min_price(self, meta: Any, c: list[Any]) -> tuple[str, tuple[Decimal, Decimal | None], A.Span]:
        return ("min_price", (_dec(c[0]), c[1] if len(c) > 1 else None), _span(meta))

    def t_max_price(self, meta: Any, c: list[Any]) -> tuple[str, tuple[Decimal, Decimal | None], A.Span]:
        return ("max_price", (_dec(c[0]), c[1] if len(c) > 1 else None), _span(meta))

    def when_block(self, meta: Any, c: list[Any]) -> A.Rule:
        cond = c[0]
        comps = tuple(x for x in c[1:] if isinstance(x, A.ComponentDef))
        return A.Rule(cond, comps, _span(meta), "when " + _cond_text(cond))

    def _component(self, kind: str, meta: Any, c: list[Any], unit: str | None = None) -> A.ComponentDef:
        price = c[0]
        rest = list(c[1:])
        title = ""
        if unit is None:
            unit = "session"
        elif rest and isinstance(rest[0], Token) and rest[0].type in ("ENERGY_UNIT", "TIME_UNIT", "ANY_UNIT"):
            unit = _norm_unit(str(rest.pop(0)))
        if rest and isinstance(rest[0], Token) and rest[0].type == "STRING":
            title = _str(rest.pop(0))
        opts: dict[str, Any] = {}
        spans: list[tuple[str, A.Span]] = []
        for o in rest:
            if isinstance(o, tuple):
                opts[o[0]] = o[1]
                spans.append((o[0], o[2]))
        return A.ComponentDef(kind=kind, price=price, unit=unit, span=_span(meta), title=title,
                              step=opts.get("step"), after=opts.get("after"), cap=opts.get("cap"),
                              vat=opts.get("vat"), opt_spans=tuple(spans))

    def c_start_fee(self, meta: Any, c: list[Any]) -> A.ComponentDef:
        return self._component("start_fee", meta, c)

    def c_flat(self, meta: Any, c: list[Any]) -> A.ComponentDef:
        return self._component("flat", meta, c)

    def c_energy(self, meta: Any, c: list[Any]) -> A.ComponentDef:
        return self._component("energy", meta, c, unit="")

    def c_time(self, meta: Any, c: list[Any]) -> A.ComponentDef:
        return self._component("time", meta, c, unit="")

    def c_parking(self, meta: Any, c: list[Any]) -> A.ComponentDef:
        return self._component("parking", meta, c, unit="")

    def c_reservation(self, meta: Any, c: list[Any]) -> A.ComponentDef:
        return self._component("reservation", meta, c, unit="")

    def c_reservation_fee(self, meta: Any, c: list[Any]) -> A.ComponentDef:
        return self._component("reservation_fee", meta, c)

    def o_step(self, meta: Any, c: list[Token]) -> tuple[str, tuple[Decimal, str], A.Span]:
        return ("step", (_dec(c[0]), _norm_unit(str(c[1]))), _span(meta))

    def o_after(self, meta: Any, c: list[Token]) -> tuple[str, tuple[Decimal, str, bool], A.Span]:
        return ("after", (_dec(c[0]), _norm_unit(str(c[1])), len(c) > 2), _span(meta))

    def o_cap(self, meta: Any, c: list[Token]) -> tuple[str, Decimal, A.Span]:
        return ("cap", _dec(c[0]), _span(meta))

    def o_vat(self, meta: Any, c: list[Token]) -> tuple[str, Decimal, A.Span]:
        return ("vat", _dec(c[0]), _span(meta))

    # ------------------------------------------------------------ price expressions
    def num(self, meta: Any, c: list[Token]) -> A.Num:
        return A.Num(_dec(c[0]), _span(c[0]))

    def index(self, meta: Any, c: list[Token]) -> A.Index:
        return A.Index(str(c[0]), _span(meta))

    def add(self, meta: Any, c: list[Any]) -> A.BinOp:
        return A.BinOp("+", c[0], c[1], _span(meta))

    def sub(self, meta: Any, c: list[Any]) -> A.BinOp:
        return A.BinOp("-", c[0], c[1], _span(meta))

    def mul(self, meta: Any, c: list[Any]) -> A.BinOp:
        return A.BinOp("*", c[0], c[1], _span(meta))

    def div(self, meta: Any, c: list[Any]) -> A.BinOp:
        return A.BinOp("/", c[0], c[1], _span(meta))

    def neg(self, meta: Any, c: list[Any]) -> A.Neg:
        return A.Neg(c[0], _span(meta))

    # ------------------------------------------------------------ conditions
    def c_or(self, meta: Any, c: list[Any]) -> A.Or:
        items: list[A.Cond] = []
        for x in c:
            items.extend(x.items if isinstance(x, A.Or) else [x])
        return A.Or(tuple(items), _span(meta))

    def c_and(self, meta: Any, c: list[Any]) -> A.And:
        items: list[A.Cond] = []
        for x in c:
            items.extend(x.items if isinstance(x, A.And) else [x])
        return A.And(tuple(items), _span(meta))

    def c_not(self, meta: Any, c: list[Any]) -> A.Not:
        return A.Not(c[0], _span(meta))

    def _atom(self, kind: str, meta: Any, args: tuple[object, ...], names: tuple[A.Named, ...] = ()) -> A.Atom:
        return A.Atom(kind, args, _span(meta), names)

    def a_time(self, meta: Any, c: list[Token]) -> A.Atom:
        return self._atom("time", meta, (_check_time(c[0]), _check_time(c[1])))

    def day_range(self, meta: Any, c: list[Token]) -> tuple[int, ...]:
        a = _DAYS.index(str(c[0]))
        b = _DAYS.index(str(c[1])) if len(c) > 1 else a
        if b < a:  # fri..mon wraps over the weekend
            return tuple(range(a, 7)) + tuple(range(0, b + 1))
        return tuple(range(a, b + 1))

    def a_days(self, meta: Any, c: list[tuple[int, ...]]) -> A.Atom:
        days = sorted({d for r in c for d in r})
        return self._atom("days", meta, tuple(days))

    def a_weekdays(self, meta: Any, c: list[Any]) -> A.Atom:
        return self._atom("days", meta, (0, 1, 2, 3, 4))

    def a_weekend(self, meta: Any, c: list[Any]) -> A.Atom:
        return self._atom("days", meta, (5, 6))

    def a_date(self, meta: Any, c: list[Token]) -> A.Atom:
        start = _check_date(c[0])
        end = _check_date(c[1]) if len(c) > 1 else None
        return self._atom("date", meta, (start, end))

    def a_holiday(self, meta: Any, c: list[Token]) -> A.Atom:
        names = (A.Named(str(c[0]), _span(c[0])),) if c else ()
        return self._atom("holiday", meta, (str(c[0]) if c else "",), names)

    def a_ac(self, meta: Any, c: list[Any]) -> A.Atom:
        return self._atom("ac", meta, ())

    def a_dc(self, meta: Any, c: list[Any]) -> A.Atom:
        return self._atom("dc", meta, ())

    def _cmp(self, kind: str, meta: Any, c: list[Token]) -> A.Atom:
        unit = _norm_unit(str(c[2])) if len(c) > 2 else ""
        return self._atom(kind, meta, (str(c[0]), _dec(c[1]), unit))

    def a_power(self, meta: Any, c: list[Token]) -> A.Atom:
        return self._atom("power", meta, (str(c[0]), _dec(c[1]), "kW"))

    def a_current(self, meta: Any, c: list[Token]) -> A.Atom:
        return self._atom("current", meta, (str(c[0]), _dec(c[1]), "A"))

    def a_energy(self, meta: Any, c: list[Token]) -> A.Atom:
        return self._cmp("energy", meta, c)

    def a_duration(self, meta: Any, c: list[Token]) -> A.Atom:
        return self._cmp("duration", meta, c)

    def _list(self, kind: str, meta: Any, c: list[Token]) -> A.Atom:
        vals = tuple(_str(t) if t.type == "STRING" else str(t) for t in c)
        return self._atom(kind, meta, vals, tuple(A.Named(v, _span(t)) for v, t in zip(vals, c)))

    def a_location(self, meta: Any, c: list[Token]) -> A.Atom:
        return self._list("location", meta, c)

    def a_site(self, meta: Any, c: list[Token]) -> A.Atom:
        return self._list("site", meta, c)

    def a_evse(self, meta: Any, c: list[Token]) -> A.Atom:
        return self._list("evse", meta, c)

    def a_country(self, meta: Any, c: list[Token]) -> A.Atom:
        return self._list("country", meta, c)

    def a_group(self, meta: Any, c: list[Token]) -> A.Atom:
        return self._list("group", meta, c)

    def a_product(self, meta: Any, c: list[Token]) -> A.Atom:
        return self._list("product", meta, c)

    def a_token(self, meta: Any, c: list[Token]) -> A.Atom:
        return self._list("token", meta, c)

    def a_partner(self, meta: Any, c: list[Token]) -> A.Atom:
        return self._list("partner", meta, c)

    def a_roaming(self, meta: Any, c: list[Any]) -> A.Atom:
        return self._atom("roaming", meta, ())

    def a_local(self, meta: Any, c: list[Any]) -> A.Atom:
        return self._atom("local", meta, ())

    def a_reservation(self, meta: Any, c: list[Any]) -> A.Atom:
        return self._atom("reservation", meta, ())

    def a_reservation_expires(self, meta: Any, c: list[Any]) -> A.Atom:
        return self._atom("reservation_expires", meta, ())

    def a_code(self, meta: Any, c: list[Token]) -> A.Atom:
        return self._list("code", meta, c)

    def a_always(self, meta: Any, c: list[Any]) -> A.Atom:
        return self._atom("always", meta, ())

    # ------------------------------------------------------------ discounts
    def discount(self, meta: Any, c: list[Any]) -> A.Discount:
        name_tok = c[0]
        rest = list(c[1:])
        title = ""
        if rest and isinstance(rest[0], Token) and rest[0].type == "STRING":
            title = _str(rest.pop(0))
        kw: dict[str, Any] = {}
        spans: list[tuple[str, A.Span]] = []
        for it in rest:
            if isinstance(it, tuple):
                key, value, span = it
                if key == "amount":
                    kw.update(value)
                else:
                    kw[key] = value
                spans.append((key if key != "amount" else next(iter(value)), span))
        return A.Discount(name=str(name_tok), title=title or str(name_tok), span=_span(meta),
                          name_span=_span(name_tok), clause_spans=tuple(spans), **kw)

    def d_percent(self, meta: Any, c: list[Token]) -> tuple[str, dict[str, Any], A.Span]:
        return ("amount", {"percent": _dec(c[0]), "target": str(c[1])}, _span(meta))

    def d_fixed(self, meta: Any, c: list[Token]) -> tuple[str, dict[str, Any], A.Span]:
        return ("amount", {"fixed": _dec(c[0]), "target": str(c[1])}, _span(meta))

    def d_for(self, meta: Any, c: list[Any]) -> tuple[str, Any, A.Span]:
        return ("condition", c[0], _span(meta))

    def d_valid(self, meta: Any, c: list[Token]) -> tuple[str, dict[str, Any], A.Span]:
        until = _check_date(c[1]) if len(c) > 1 else None
        return ("amount", {"valid_from": _check_date(c[0]), "valid_until": until}, _span(meta))

    def d_once(self, meta: Any, c: list[Token]) -> tuple[str, str, A.Span]:
        return ("once", str(c[0]), _span(meta))

    def d_always(self, meta: Any, c: list[Token]) -> tuple[str, str, A.Span]:
        return ("once", "session", _span(meta))

    def d_exclusive(self, meta: Any, c: list[Token]) -> tuple[str, bool, A.Span]:
        return ("exclusive", True, _span(meta))

    def d_combinable(self, meta: Any, c: list[Token]) -> tuple[str, bool, A.Span]:
        return ("exclusive", False, _span(meta))

    def d_priority(self, meta: Any, c: list[Token]) -> tuple[str, int, A.Span]:
        return ("priority", int(_dec(c[0])), _span(meta))

    def d_code(self, meta: Any, c: list[Token]) -> tuple[str, str, A.Span]:
        return ("code", str(c[0]), _span(meta))

    def d_budget(self, meta: Any, c: list[Token]) -> tuple[str, dict[str, Any], A.Span]:
        return ("amount", {"budget": _dec(c[0]), "budget_uses": len(c) > 1}, _span(meta))

    def d_tariffs(self, meta: Any, c: list[Token]) -> tuple[str, tuple[A.Named, ...], A.Span]:
        return ("tariffs", tuple(A.Named(str(t), _span(t)) for t in c), _span(meta))

    # ------------------------------------------------------------ products
    def product(self, meta: Any, c: list[Any]) -> A.Product:
        name_tok = c[0]
        rest = list(c[1:])
        title = ""
        if rest and isinstance(rest[0], Token) and rest[0].type == "STRING":
            title = _str(rest.pop(0))
        kw: dict[str, Any] = {}
        for it in rest:
            if isinstance(it, tuple):
                kw.update(it[1])
        return A.Product(name=str(name_tok), title=title or str(name_tok), span=_span(meta),
                         name_span=_span(name_tok), **kw)

    def p_tariff(self, meta: Any, c: list[Token]) -> tuple[str, dict[str, Any]]:
        return ("tariff", {"tariff": A.Named(str(c[0]), _span(c[0]))})

    def p_fee(self, meta: Any, c: list[Token]) -> tuple[str, dict[str, Any]]:
        return ("fee", {"fee": (_dec(c[0]), str(c[1]))})

    def p_includes(self, meta: Any, c: list[Token]) -> tuple[str, dict[str, Any]]:
        if str(c[1]) == "kWh":
            return ("includes", {"included_kwh": _dec(c[0])})
        return ("includes", {"included_sessions": int(_dec(c[0]))})

    def tier(self, meta: Any, c: list[Token]) -> A.Tier:
        nums = [t for t in c if t.type == "NUMBER"]
        if len(nums) == 3:
            return A.Tier(_dec(nums[0]), _dec(nums[1]), _dec(nums[2]), _span(meta))
        return A.Tier(_dec(nums[0]), None, _dec(nums[1]), _span(meta))

    def p_tiers(self, meta: Any, c: list[Any]) -> tuple[str, dict[str, Any]]:
        return ("tiers", {"tier_mode": str(c[0]), "tiers": tuple(t for t in c[1:] if isinstance(t, A.Tier))})

    def p_vat(self, meta: Any, c: list[Token]) -> tuple[str, dict[str, Any]]:
        return ("vat", {"vat": _dec(c[0])})

    # ------------------------------------------------------------ policies
    def policy(self, meta: Any, c: list[Any]) -> A.Policy:
        kind, name = str(c[0]), str(c[1])
        rest = list(c[2:])
        title = ""
        if rest and isinstance(rest[0], Token) and rest[0].type == "STRING" and rest[0].line == c[1].line:
            title = _str(rest.pop(0))
        stmts: list[A.PolicyStmt] = []
        cur: list[A.PolicyWord] = []
        last_line = -1

        def flush() -> None:
            if cur:
                first, last = cur[0].span, cur[-1].span
                stmts.append(A.PolicyStmt(tuple(cur), A.Span(first.line, first.col, last.end_line, last.end_col)))
                cur.clear()

        for w in rest:
            if isinstance(w, A.Index):
                pw = A.PolicyWord("index", w.series, w.span)
            else:
                tok: Token = w
                if tok.type == "PSEP" and str(tok) == ";":
                    flush()
                    last_line = tok.line or last_line
                    continue
                pw = A.PolicyWord(_POLICY_KINDS.get(tok.type, "word"),
                                  _str(tok) if tok.type == "STRING" else str(tok), _span(tok))
            # a new line starts a new statement unless the previous line ended with ',' or an operator
            if cur and pw.span.line != last_line and cur[-1].kind not in ("sep", "op"):
                flush()
            cur.append(pw)
            last_line = pw.span.end_line
        flush()
        return A.Policy(kind, name, title or name, tuple(stmts), _span(meta))


_POLICY_KINDS = {"WORD": "word", "NUMBER": "number", "PERCENT": "percent", "DATE": "date", "TIME": "time",
                 "STRING": "string", "CMP": "cmp", "PSEP": "sep", "PLUS": "op", "STAR": "op"}

_UNIT_ALIASES = {"hour": "h", "hours": "h", "minutes": "min", "minute": "min", "seconds": "s",
                 "second": "s", "sec": "s", "day": "days"}


def _norm_unit(u: str) -> str:
    return _UNIT_ALIASES.get(u, u)


def _cond_text(c: A.Cond) -> str:
    """A compact, canonical rendering of a condition (used for rule labels and by the printer)."""
    from dsl.printer import cond_text

    return cond_text(c)

