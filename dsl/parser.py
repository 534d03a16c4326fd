"""Source text -> AST, or syntax diagnostics (never an exception for bad input)."""

from __future__ import annotations

import dataclasses
import dataclasses as _dc
import re
from collections.abc import Iterator
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError
from lark.lexer import PatternRE, PatternStr, TerminalDef

from dsl import ast as A
from dsl.diagnostics import Diagnostic, suggest
from dsl.parsed import ParseOutcome, shift_lines

__all__ = ["ParseOutcome", "parse"]

_GRAMMAR = Path(__file__).with_name("evbill.lark")


_POLICY_KINDS = ("tax", "billing", "hold", "dunning", "revenue_share", "commission", "service", "reimbursement",
                 "payments")
_BLOCK_KEYWORDS = frozenset(_POLICY_KINDS + ("tariff", "discount", "product"))
_CONTINUES = frozenset({"{", ";", ",", "+", "-", "*", "/"})


class _PolicyLines:
    """Postlexer: newlines end a statement inside a policy block, and are whitespace elsewhere.

    The lexer reports every line break (``_NL``); this passes one on only directly inside a policy
    block (brace depth 1 under a policy keyword at depth 0) and only when the line does not end
    with ',' or an operator (the statement continues on the next line).
    """

    always_accept = ("_NL",)

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        depth = 0
        policy_pending = in_policy = False
        last = ""
        for tok in stream:
            if tok.type == "_NL":
                if in_policy and depth == 1 and last not in _CONTINUES and last != "_NL":
                    last = "_NL"
                    yield tok
                continue
            value = str(tok)
            if depth == 0 and tok.type not in ("NAME", "WORD", "STRING", "ZONE") and value in _BLOCK_KEYWORDS:
                policy_pending = value in _POLICY_KINDS  # the next '{' opens a policy block or not
            elif value == "{":
                if depth == 0:
                    in_policy, policy_pending = policy_pending, False
                depth += 1
            elif value == "}":
                depth = max(0, depth - 1)
                if depth == 0:
                    in_policy = False
            last = value if tok.type != "STRING" else "STRING"
            yield tok


_WORDLIKE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ALTERNATION = re.compile(r"\(\?:[()?:|A-Za-z0-9_]*\)")  # (?:kWh|MWh|Wh), nested groups too


def _whole_words(t: TerminalDef) -> None:
    """Keywords match whole words only: 'energyy' is one unexpected word, not 'energy' + 'y'.

    Lark matches a keyword as a prefix when no name terminal is acceptable in the parser state; a
    keyword becomes a regular expression that refuses a following name character, tried before
    names (priority 1), which is what Lark's own keyword handling does where a name could follow.
    """
    if isinstance(t.pattern, PatternStr) and _WORDLIKE.fullmatch(t.pattern.value):
        t.pattern = PatternRE(re.escape(t.pattern.value) + r"(?![A-Za-z0-9_])", t.pattern.flags)
        t.priority = max(t.priority, 1)
    elif isinstance(t.pattern, PatternRE) and _ALTERNATION.fullmatch(t.pattern.value):
        t.pattern = PatternRE(t.pattern.value + r"(?![A-Za-z0-9_])", t.pattern.flags)


@lru_cache(maxsize=1)
def _parser() -> Lark:
    import hashlib
    import tempfile

    grammar = _GRAMMAR.read_text(encoding="utf-8")
    # Lark's grammar analysis, cached on disk (a start-up of every evbill command that compiles a
    # ruleset took 0.3 s for it): keyed by the grammar and this module's code, which shapes the
    # terminals (_whole_words) and the post-lexer, so a change to either is never served stale
    key = hashlib.sha256(grammar.encode() + Path(__file__).read_bytes()).hexdigest()[:24]
    cache = Path(tempfile.gettempdir()) / f"evbill-lark-{key}.cache"
    return Lark(grammar, parser="lalr", lexer="contextual", propagate_positions=True, maybe_placeholders=False,
                postlex=_PolicyLines(), edit_terminals=_whole_words, cache=str(cache))


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
    "IDLE": "'idle'", "USES": "'uses'", "_SEP": "';'", "$END": "end of input", "_NL": "end of line",
    "EACH": "'each'", "RATE_KIND": "vat, standard, reduced or zero", "VAT_CLASS": "standard or reduced",
    "SERVICE_ITEM": "a service item (ac_charger, dc_charger, sim, rfid_card, ...)",
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
        "ruleset r currency EUR timezone UTC hold h { hold when jump > 50 }",
        "ruleset r currency EUR timezone UTC service s { vat 19 }",
        "ruleset r currency EUR timezone UTC tax t { country DE vat 19 }",
        "ruleset r currency EUR timezone UTC service s { sim 2 per month vat 19 }",
    ],
    "use a decimal point, not a comma: 0.49": [
        "ruleset r currency EUR timezone UTC tariff t { energy 0,49 per kWh }",
        "ruleset r currency EUR timezone UTC tariff t { start_fee 0,35 }",
        "ruleset r currency EUR timezone UTC tariff t { parking 0,10 per min }",
        "ruleset r currency EUR timezone UTC tariff t { time 0,10 per min }",
        "ruleset r currency EUR timezone UTC tariff t { when dc { energy 0,49 per kWh } }",
        "ruleset r currency EUR timezone UTC tariff t { when dc { parking 0,10 per min } }",
        "ruleset r currency EUR timezone UTC tariff t { when dc { time 0,10 per min } }",
        "ruleset r currency EUR timezone UTC dunning d { stage 1 after 7 days fee 5,00 }",
        "ruleset r currency EUR timezone UTC hold h { hold when total > 5,00 }",
        "ruleset r currency EUR timezone UTC payments p { return charge 3,00 }",
        "ruleset r currency EUR timezone UTC payments p { minimum amount 1,00 }",
    ],
    "a ruleset starts with: ruleset NAME currency EUR timezone Europe/Berlin": [
        "tariff t { }",
        "currency EUR",
    ],
}


def _readable(term: str) -> str:
    if term in _READABLE:
        return _READABLE[term]
    for t in _parser().terminals:
        if t.name == term:
            if t.pattern.type == "str":
                return f"'{t.pattern.value}'"
            words = _terminal_words(term)
            if len(words) == 1:  # a keyword (made a whole-word pattern by _whole_words)
                return f"'{words[0]}'"
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
    if tok.type == "_NL":
        return "end of line"
    return f"'{tok}'"


def _terminal_words(name: str) -> list[str]:
    """The keywords a terminal stands for ('stage'; SERVICE_ITEM: ac_charger, dc_charger, ...)."""
    for t in _parser().terminals:
        if t.name == name:
            body = t.pattern.value.replace("(?![A-Za-z0-9_])", "")
            words = re.sub(r"[()?:]", "", body).split("|")
            return [w for w in words if _WORDLIKE.fullmatch(w)]
    return []


@lru_cache(maxsize=1)
def _statement_starts() -> dict[frozenset[str], tuple[str, tuple[str, ...]]]:
    """What may start a statement of each policy kind (the parser's own expectations, so they
    cannot drift from the grammar): expected terminals -> (kind, leading keywords)."""
    out: dict[frozenset[str], tuple[str, tuple[str, ...]]] = {}
    for kind in _POLICY_KINDS:
        ip = _parser().parse_interactive(f"ruleset r currency EUR timezone UTC\n{kind} x {{")
        ip.exhaust_lexer()
        accepts = frozenset(ip.accepts())  # type: ignore[no-untyped-call]  # lark leaves it untyped
        words = tuple(sorted({w for t in accepts for w in _terminal_words(t)}))
        out[accepts] = (kind, words)
    return out


def _unknown_statement(tok: Token, expected: set[str] | frozenset[str]) -> tuple[str, str] | None:
    """(message, hint) when ``tok`` is a word where a policy statement should start."""
    found = _statement_starts().get(frozenset(expected))
    if found is None or not _WORDLIKE.fullmatch(str(tok)):
        return None
    kind, words = found
    starts = ", ".join(sorted({_readable(t) for t in expected} - {_readable(t) for t in ("_NL", "_SEP", "RBRACE")}))
    hint = suggest(str(tok), words) or f"a {kind} statement starts with {', '.join(words[:10])}"
    return f"unknown {kind} statement '{tok}', expected {starts}", hint


def _hint_for(text: str, exc: UnexpectedInput) -> str | None:
    try:
        label = exc.match_examples(_parser().parse, _EXAMPLES, use_accepts=True)
    except Exception:  # noqa: BLE001 - a hint is optional; never let it break diagnostics
        return None
    return label if isinstance(label, str) else None


def _syntax_diag(exc: UnexpectedInput, text: str, filename: str) -> Diagnostic:
    hint = _hint_for(text, exc)
    if isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken) and exc.token.type == "$END"):
        # right after the last thing written (recovery blanks the text after a block)
        lines = text.rstrip().splitlines() or [""]
        line = len(lines)
        col = len(lines[-1]) + 1
        # what the parser accepts here (LALR's merged states would list other blocks' keywords too)
        expected = getattr(exc, "accepts", None) or getattr(exc, "expected", None) or set()
        msg = "unexpected end of input"
        if expected:
            msg += f", expected {_expected(expected)}"
        return Diagnostic("E103", "error", msg, A.Span(line, col, line, col + 1), hint or _eof_hint(text), filename)
    if isinstance(exc, UnexpectedToken):
        tok = exc.token
        end_col = (tok.end_column or (tok.column or 1) + len(str(tok)))
        span = A.Span(tok.line or 1, tok.column or 1, tok.end_line or tok.line or 1, end_col)
        if tok.type == "_NL":  # the line break itself: point just past the statement
            span = A.Span(span.line, span.col, span.line, span.col + 1)
        expected = exc.accepts or exc.expected
        unknown = _unknown_statement(tok, expected)
        if unknown is not None:
            return Diagnostic("E212", "error", unknown[0], span, unknown[1], filename)
        msg = f"unexpected {_token_text(tok)}, expected {_expected(expected)}"
        if hint is None and expected & _UNIT_TERMINALS.keys():
            hint = _unit_hint(str(tok), [u for t in expected & _UNIT_TERMINALS.keys() for u in _UNIT_TERMINALS[t]])
        if hint is None and _WORDLIKE.fullmatch(str(tok)):  # a misspelt keyword
            hint = suggest(str(tok), [w for t in expected for w in _terminal_words(t)])
        return Diagnostic("E101", "error", msg, span, hint, filename)
    if isinstance(exc, UnexpectedCharacters):
        pos = exc.pos_in_stream if exc.pos_in_stream is not None else -1
        ch = text[pos] if 0 <= pos < len(text) else "?"
        span = A.Span(exc.line, exc.column, exc.line, exc.column + 1)
        msg = f"unexpected character '{ch}'"
        allowed = set(exc.allowed or ()) - {"_NL"}  # the postlexer's line breaks are always lexed
        if allowed:
            msg += f", expected {_expected(allowed)}"
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
    r"|revenue_share|commission|service|reimbursement|payments)\b(?:[ \t]+(?:tariff[ \t]+)?([A-Za-z_][A-Za-z0-9_]*))?",
    re.MULTILINE)
# Inside a block whose brace is never closed, a line starting in column 1 with a block head (or a
# declaration) starts the next block: an unclosed brace then hides nothing after it.
_HEAD_AT_COLUMN_1 = re.compile(
    r"(?:(?:tariff|discount|product|tax|billing|hold|dunning|revenue_share|commission|service|reimbursement"
    r"|payments)"
    r"[ \t]+[A-Za-z_][A-Za-z0-9_]*[^\n{]*\{|(?:groups|group|partners|series)[ \t]+[A-Za-z_]|default[ \t]+tariff\b)")


def _scan(text: str, start: int, end: int) -> Iterator[tuple[int, str, int]]:
    """(position, character, brace depth before it) of text[start:end], skipping comments and the
    inside of strings (a string yields its opening quote only)."""
    depth, i = 0, start
    while i < end:
        ch = text[i]
        if ch == "#":
            eol = text.find("\n", i, end)
            i = end if eol < 0 else eol
            continue
        yield i, ch, depth
        if ch == '"':
            j = i + 1
            while j < end and text[j] not in '"\n':
                j += 2 if text[j] == "\\" else 1
            i = j + 1
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth = max(0, depth - 1)
        i += 1


def _blocks(text: str) -> list[tuple[int, int, list[str]]]:
    """(start, end, names) of each top-level block, found by braces outside strings and comments."""
    depth = 0
    starts: list[tuple[int, list[str]]] = []
    i, n = 0, len(text)
    candidates = {m.start(): m for m in _BLOCK_START.finditer(text)}
    line_start = True
    while i < n:
        ch = text[i]
        if line_start:
            m = candidates.get(i)
            if m is not None and depth > 0 and _HEAD_AT_COLUMN_1.match(text, i):
                depth = 0  # the previous block is not closed: recover here
            if m is not None and depth == 0:
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


def _braces(text: str, start: int, end: int) -> tuple[int, int | None] | None:
    """The first '{' in text[start:end] and its matching '}' (None: never closed)."""
    opened = None
    for i, ch, depth in _scan(text, start, end):
        if ch == "{" and opened is None:
            opened = i
        elif ch == "}" and opened is not None and depth == 1:
            return opened, i
    return (opened, None) if opened is not None else None


def _statements(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """The statements of a block body text[start:end]: split at ';' and at line ends outside nested
    braces, unless a line ends with ',' or an operator (the statement goes on)."""
    out: list[tuple[int, int]] = []
    first: int | None = None
    last = -1  # the last character that belongs to the current statement

    def close() -> None:
        nonlocal first
        if first is not None:
            out.append((first, last + 1))
        first = None

    for i, ch, depth in _scan(text, start, end):
        if depth == 0 and ch == ";":
            close()
        elif depth == 0 and ch == "\n":
            if first is not None and text[last] not in _CONTINUES:
                close()
        elif not ch.isspace():
            if first is None:
                first = i
            if ch == '"':  # a string: its closing quote ends it
                j = text.find('"', i + 1, end)
                last = j if j >= 0 else i
            else:
                last = i
    close()
    return out


class _Recovery:
    """Parses what it can of a ruleset with errors: the header, each top-level block, and within a
    block that does not parse each statement (nested blocks too), every piece at the file's own
    lines and columns. Each statement that does not parse gives its own diagnostic; the
    block is kept without it, so the checker still sees its names."""

    def __init__(self, text: str, header: str, head_end: int, filename: str):
        self.text, self.header, self.head_end, self.filename = text, header, head_end, filename

    def piece(self, ranges: list[tuple[int, int]], closer: str = "") -> tuple[str, int]:
        """The header, then the given ranges of the text at their own line and column (only line
        breaks and indentation in between, nothing after), then ``closer``. Returns the text and
        the position of the closer. Pieces stay about as small as what they hold, so reading a
        large file block by block is not quadratic."""
        out = [self.header]
        pos = self.head_end
        for a, b in sorted(ranges):
            breaks = self.text.count("\n", pos, a)
            line_start = self.text.rfind("\n", 0, a) + 1
            if breaks:
                out.append("\n" * breaks + " " * (a - line_start))
            else:
                out.append(" " * (a - pos))
            out.append(self.text[a:b])
            pos = b
        at = sum(len(x) for x in out)
        out.append(closer)
        return "".join(out), at

    def parse(self, ranges: list[tuple[int, int]], closer: str = "") -> tuple[A.Ruleset | None, list[Diagnostic]]:
        """Parse a piece. A ``closer`` (closing braces) goes on a line of its own after the last
        range, so that a policy statement still ends at its line break; an error at the closer means
        the statement ended too early, and is reported where it ends."""
        text, at = self.piece(ranges, "\n " + closer if closer else "")
        rs, diags = _parse_one(text, self.filename)
        if closer and diags:
            line = text.count("\n", 0, at) + 1
            col = at - (text.rfind("\n", 0, at) + 1) + 1
            end = max(b for _, b in ranges)
            eol = self.text.find("\n", end)
            rest = self.text[end:eol if eol >= 0 else len(self.text)].split("#")[0]
            what = "end of line" if not rest.strip() else "end of statement"
            diags = [dataclasses.replace(d, message=d.message.replace("unexpected '}'", f"unexpected {what}")
                                         .replace("unexpected end of line", f"unexpected {what}"),
                                         span=A.Span(line, col, line, col + 1))
                     if (d.span.line, d.span.col) == (line, col) or d.span.line == line + 1 else d for d in diags]
        return rs, diags

    def block(self, start: int, end: int) -> tuple[A.Ruleset | None, list[Diagnostic]]:
        rs, diags = self.parse([(start, end)])
        if rs is not None:
            return rs, []
        braces = _braces(self.text, start, end)
        if braces is None:  # a declaration: one statement
            return None, diags
        opened, closed = braces
        body_end = closed if closed is not None else end
        good, errors = self.body([(start, opened + 1)], _statements(self.text, opened + 1, body_end), 1)
        at = (diags[0].span.line, diags[0].span.col) if diags else None
        head_line = self.text.count("\n", 0, opened) + 1
        if closed is None or not errors or (at is not None and at[0] <= head_line and
                                             not any((e.span.line, e.span.col) == at for e in errors)):
            errors = diags + errors  # an unclosed brace, or an error in the block's head
        tail = [(closed, end)] if closed is not None else []
        kept, _ = self.parse([(start, opened + 1)] + good + tail, "" if closed is not None else "}")
        return kept, errors

    def body(self, prefix: list[tuple[int, int]], stmts: list[tuple[int, int]],
             depth: int) -> tuple[list[tuple[int, int]], list[Diagnostic]]:
        """The statements that parse, and the diagnostics of those that do not."""
        good: list[tuple[int, int]] = []
        errors: list[Diagnostic] = []
        closer = "}" * depth
        prev_ok = False
        for a, b in stmts:
            rs, diags = self.parse(prefix + [(a, b)], closer)
            if rs is not None:
                good.append((a, b))
                prev_ok = True
                continue
            first_line = self.text.count("\n", 0, a) + 1
            first_col = a - (self.text.rfind("\n", 0, a) + 1) + 1
            if prev_ok and diags and (diags[0].span.line, diags[0].span.col) == (first_line, first_col):
                # the line may go on the statement before it (tariff options on their own line)
                merged = (good[-1][0], b)
                rs, _ = self.parse(prefix + [merged], closer)
                if rs is not None:
                    good[-1] = merged
                    continue
            prev_ok = False
            inner = _braces(self.text, a, b)
            err_pos = (diags[0].span.line, diags[0].span.col) if diags else (0, 0)
            if inner is not None and err_pos > self._line_col(inner[0]):
                opened, closed = inner
                _, nested = self.body(prefix + [(a, opened + 1)],
                                      _statements(self.text, opened + 1, closed if closed is not None else b),
                                      depth + 1)
                if nested:
                    errors.extend(nested)
                    continue
                if closed is None and all(d.code == "E103" for d in diags):
                    continue  # the enclosing block is unclosed too: it reports the missing brace
            errors.extend(diags)
        return good, errors

    def _line_col(self, pos: int) -> tuple[int, int]:
        return self.text.count("\n", 0, pos) + 1, pos - (self.text.rfind("\n", 0, pos) + 1) + 1


_RECOVERY_HEADER = "ruleset recovered currency EUR timezone UTC"


def parse(text: str, filename: str = "<ruleset>") -> ParseOutcome:
    rs, diags = _parse_one(text, filename)
    if rs is not None:
        return ParseOutcome(rs, [])
    # Recover: parse the header alone, then each top-level block at its own lines and columns
    # under the header (``_Recovery``), and keep what parsed for the checker.
    blocks = _blocks(text)
    if not blocks:
        return ParseOutcome(None, diags)
    head_end = blocks[0][0]
    header_text = text[:head_end]
    head, found = _parse_one(header_text, filename)
    shift = 0
    if head is None:
        # A broken header: report it and read the blocks under a stand-in header of the same
        # number of lines (its own diagnostics are not the file's).
        if not header_text.strip():
            found = diags[:1]  # no header at all: the whole parse said what was expected first
        nl = header_text.find("\n")
        if nl >= 0:
            header_text = _RECOVERY_HEADER + _blank(header_text[nl:])
        else:  # the file starts with a block: the stand-in header takes a line of its own
            header_text, shift = _RECOVERY_HEADER + "\n", 1
        head, _ = _parse_one(header_text, filename)
        if head is None:
            return ParseOutcome(None, diags)
    recovery = _Recovery(text, header_text, head_end, filename)
    n_head = len(found)  # the header's diagnostics are the file's own positions
    parts: list[A.Ruleset] = []
    lost: set[str] = set()
    partial: set[str] = set()
    for start, end, names in blocks:
        part, part_diags = recovery.block(start, end)
        found.extend(part_diags)
        if part is None:
            lost.update(names)
        else:
            parts.append(part)
            if part_diags:
                partial.update(f"tariff:{x.name}" for x in part.tariffs)
                partial.update(f"discount:{x.name}" for x in part.discounts)
                partial.update(f"product:{x.name}" for x in part.products)
                partial.update(f"{x.kind}:{x.name}" for x in part.policies)
    if not found:  # the blocks parse alone but not together: keep the whole-file diagnostic
        return ParseOutcome(None, diags)
    seen: set[tuple[str, int, int]] = set()
    unique = []
    for d in found:
        if (d.code, d.span.line, d.span.col) not in seen:
            seen.add((d.code, d.span.line, d.span.col))
            unique.append(d)
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
    unique = unique[:n_head] + shift_lines(unique[n_head:], -shift)
    return ParseOutcome(merged, unique, frozenset(lost), frozenset(partial), shift)


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
        vat = vat_class = None
        min_p = max_p = None
        legal = False
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
                elif key == "vat_class":
                    vat_class = value
                elif key == "min_price":
                    min_p = value
                elif key == "max_price":
                    max_p = value
                elif key == "legal_for_trade":
                    legal = True
        if base:
            first, last = base[0].span, base[-1].span
            rules.append(A.Rule(None, tuple(base), A.Span(first.line, first.col, last.end_line, last.end_col), "base"))
        return A.Tariff(str(name_tok), title or str(name_tok), tuple(rules), _span(meta), vat, min_p, max_p,
                        name_span=_span(name_tok), opt_spans=tuple(spans), vat_class=vat_class,
                        legal_for_trade=legal)

    def t_vat(self, meta: Any, c: list[Token]) -> tuple[str, Decimal, A.Span]:
        return ("vat", _dec(c[0]), _span(meta))

    def t_vat_class(self, meta: Any, c: list[Token]) -> tuple[str, str, A.Span]:
        return ("vat_class", str(c[0]), _span(meta))

    def incl(self, meta: Any, c: list[Token]) -> Decimal:
        return _dec(c[0])

    def t_min_price(self, meta: Any, c: list[Any]) -> tuple[str, tuple[Decimal, Decimal | None], A.Span]:
        return ("min_price", (_dec(c[0]), c[1] if len(c) > 1 else None), _span(meta))

    def t_legal_for_trade(self, meta: Any, c: list[Any]) -> tuple[str, bool, A.Span]:
        return ("legal_for_trade", True, _span(meta))

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
                              vat=opts.get("vat"), opt_spans=tuple(spans), vat_class=opts.get("vat_class"))

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

    def o_vat_class(self, meta: Any, c: list[Token]) -> tuple[str, str, A.Span]:
        return ("vat_class", str(c[0]), _span(meta))

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
            return tuple(range(a, 7)) + tuple(range(b + 1))
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
    def _policy(self, kind: str, meta: Any, c: list[Any]) -> A.Policy:
        name_tok = c[0]
        rest = list(c[1:])
        title = ""
        if rest and isinstance(rest[0], Token) and rest[0].type == "STRING":
            title = _str(rest.pop(0))
        return A.Policy(kind, str(name_tok), title or str(name_tok), tuple(rest), _span(meta), _span(name_tok))

    def billing(self, meta: Any, c: list[Any]) -> A.Policy:
        return self._policy("billing", meta, c)

    def hold(self, meta: Any, c: list[Any]) -> A.Policy:
        return self._policy("hold", meta, c)

    def dunning(self, meta: Any, c: list[Any]) -> A.Policy:
        return self._policy("dunning", meta, c)

    def tax(self, meta: Any, c: list[Any]) -> A.Policy:
        return self._policy("tax", meta, c)

    def revenue_share(self, meta: Any, c: list[Any]) -> A.Policy:
        return self._policy("revenue_share", meta, c)

    def commission(self, meta: Any, c: list[Any]) -> A.Policy:
        return self._policy("commission", meta, c)

    def service(self, meta: Any, c: list[Any]) -> A.Policy:
        return self._policy("service", meta, c)

    def reimbursement(self, meta: Any, c: list[Any]) -> A.Policy:
        return self._policy("reimbursement", meta, c)

    def payments(self, meta: Any, c: list[Any]) -> A.Policy:
        return self._policy("payments", meta, c)

    # billing
    def b_cycle(self, meta: Any, c: list[Token]) -> A.BillingCycle:
        return A.BillingCycle(_named(c[0]), _span(meta))

    def b_cut_off(self, meta: Any, c: list[Token]) -> A.CutOff:
        return A.CutOff(_num(c[-1]), _span(meta))

    def b_timezone(self, meta: Any, c: list[Token]) -> A.BillingZone:
        return A.BillingZone(_named(c[0]), _span(meta))

    def b_terms(self, meta: Any, c: list[Any]) -> A.Terms:
        kind, days = c[0]
        return A.Terms(kind, days, _span(meta))

    def terms_net(self, meta: Any, c: list[Token]) -> tuple[str, A.Num]:
        return ("net", _num(c[0]))

    def terms_eom(self, meta: Any, c: list[Token]) -> tuple[str, A.Num | None]:
        return ("end_of_month", _num(c[0]) if c else None)

    # hold
    def h_total(self, meta: Any, c: list[Token]) -> A.HoldWhen:
        return A.HoldWhen("total", _span(meta), op=str(c[0]), amount=_num(c[1]))

    def h_jump(self, meta: Any, c: list[Token]) -> A.HoldWhen:
        return A.HoldWhen("jump", _span(meta), op=str(c[0]), percent=_num(c[1]))

    def h_flag(self, meta: Any, c: list[Token]) -> A.HoldWhen:
        return A.HoldWhen("flag", _span(meta), flag=_named(c[0]))

    def approval(self, meta: Any, c: list[Any]) -> A.Approval:
        return A.Approval(_span(meta))

    def h_auto_release(self, meta: Any, c: list[Any]) -> A.AutoRelease:
        return A.AutoRelease(c[0], _span(meta))

    def escalate(self, meta: Any, c: list[Any]) -> A.Escalate:
        return A.Escalate(c[0], _span(meta))

    def duration(self, meta: Any, c: list[Token]) -> A.Duration:
        return A.Duration(_num(c[0]), _named(c[1]), _span(meta))

    # dunning
    def d_stage(self, meta: Any, c: list[Any]) -> A.Stage:
        number, after = _num(c[0]), c[1]
        kw: dict[str, Any] = {}
        spans: list[tuple[str, A.Span]] = []
        for it in c[2:]:
            if isinstance(it, Token):  # from NAME
                kw["anchor"] = _named(it)
                spans.append(("from", _span(it)))
            elif isinstance(it, A.Approval):
                kw["approval"] = True
                spans.append(("approval", it.span))
            else:
                key, value, span = it
                kw.update(value)
                spans.append((key, span))
        return A.Stage(number, after, _span(meta), opt_spans=tuple(spans), **kw)

    def s_reminder(self, meta: Any, c: list[Any]) -> tuple[str, dict[str, Any], A.Span]:
        return ("reminder", {"reminder": True}, _span(meta))

    def s_fee(self, meta: Any, c: list[Any]) -> tuple[str, dict[str, Any], A.Span]:
        out: dict[str, Any] = {"fee": _num(c[0])}
        if len(c) > 1:
            out.update(c[1])
        return ("fee", out, _span(meta))

    def fee_vat(self, meta: Any, c: list[Token]) -> dict[str, Any]:
        return {"fee_vat": _num(c[0])}

    def fee_untaxed(self, meta: Any, c: list[Token]) -> dict[str, Any]:
        return {"fee_untaxed": True}

    def s_then(self, meta: Any, c: list[Token]) -> tuple[str, dict[str, Any], A.Span]:
        return ("then", {"actions": tuple(_named(t) for t in c)}, _span(meta))

    def d_minimum(self, meta: Any, c: list[Token]) -> A.MinimumAmount:
        return A.MinimumAmount(_num(c[0]), _span(meta))

    def d_grace(self, meta: Any, c: list[Any]) -> A.Grace:
        return A.Grace(c[0], _span(meta))

    def d_interest(self, meta: Any, c: list[Token]) -> A.Interest:
        return A.Interest(_num(c[0]), _span(meta), _named(c[1]) if len(c) > 1 else None)

    def d_flat_fee(self, meta: Any, c: list[Token]) -> A.FlatFee:
        return A.FlatFee(_num(c[0]), _span(meta), _named(c[1]) if len(c) > 1 else None)

    def d_base_rate(self, meta: Any, c: list[Any]) -> A.BaseRate:
        start, end = c[1]
        return A.BaseRate(c[0], _span(meta), start, end)

    def pct_positive(self, meta: Any, c: list[Token]) -> A.Num:
        return _num(c[0])

    def pct_negative(self, meta: Any, c: list[Token]) -> A.Num:
        n = _num(c[0])
        return A.Num(-n.value, _span(meta))

    def for_groups(self, meta: Any, c: list[Token]) -> A.ForGroups:
        return A.ForGroups(tuple(_named(t) for t in c), _span(meta))

    def d_pause(self, meta: Any, c: list[Any]) -> A.PauseOnDispute:
        return A.PauseOnDispute(_span(meta))

    # tax
    def tx_rate(self, meta: Any, c: list[Any]) -> A.VatRate:
        category = str(c[1]) if str(c[1]) != "vat" else "standard"
        valid: tuple[str | None, str | None] = c[3] if len(c) > 3 else (None, None)
        return A.VatRate(_named(c[0]), category, _num(c[2]), _span(meta), valid[0], valid[1])

    def validity(self, meta: Any, c: list[Token]) -> tuple[str, str | None]:
        return (_check_date(c[0]), _check_date(c[1]) if len(c) > 1 else None)

    def tax_scope(self, meta: Any, c: list[Token]) -> tuple[A.Named, ...]:
        return tuple(_named(t) for t in c)

    def _tax_scoped(self, c: list[Any]) -> dict[str, Any]:
        kw: dict[str, Any] = {}
        for it in c:
            if isinstance(it, tuple):
                kw["groups"] = it
            elif isinstance(it, Token) and it.type == "VATEX":
                kw["code"] = str(it)
            else:
                kw["note"] = _str(it)
        return kw

    def tx_reverse_charge(self, meta: Any, c: list[Any]) -> A.ReverseCharge:
        return A.ReverseCharge(_span(meta), **self._tax_scoped(c))

    def tx_exempt(self, meta: Any, c: list[Any]) -> A.TaxExempt:
        return A.TaxExempt(_span(meta), **self._tax_scoped(c))

    # payments
    def pm_method(self, meta: Any, c: list[Token]) -> A.PaymentMethod:
        return A.PaymentMethod(_named(c[0]), _span(meta))

    def pm_pre_notification(self, meta: Any, c: list[Any]) -> A.PaymentWindow:
        return A.PaymentWindow("pre_notification", c[0], _span(meta))

    def pm_lead_time(self, meta: Any, c: list[Any]) -> A.PaymentWindow:
        return A.PaymentWindow("lead_time", c[0], _span(meta))

    def pm_minimum(self, meta: Any, c: list[Token]) -> A.CollectionMinimum:
        return A.CollectionMinimum(_num(c[0]), _span(meta))

    def rc_amount(self, meta: Any, c: list[Token]) -> dict[str, Any]:
        return {"amount": _num(c[0])}

    def rc_named(self, meta: Any, c: list[Token]) -> dict[str, Any]:
        return {"named": _named(c[0])}

    def pm_return_charge(self, meta: Any, c: list[Any]) -> A.ReturnCharge:
        return A.ReturnCharge(_span(meta), reasons=tuple(_named(t) for t in c[1:]), **c[0])

    # revenue share, reimbursement, commission
    def sites(self, meta: Any, c: list[Token]) -> A.Sites:
        return A.Sites(tuple(A.Named(_str(t) if t.type == "STRING" else str(t), _span(t)) for t in c), _span(meta))

    def rs_percent(self, meta: Any, c: list[Any]) -> A.HostShare:
        return A.HostShare(_span(meta), percent=_num(c[0]))

    def rs_amount(self, meta: Any, c: list[Token]) -> A.HostShare:
        return A.HostShare(_span(meta), amount=_num(c[0]), per=_named(c[1]))

    def base_net(self, meta: Any, c: list[Any]) -> str:
        return "net"

    def energy_price(self, meta: Any, c: list[Any]) -> A.EnergyPrice:
        return A.EnergyPrice(c[0], str(c[1]), _span(meta), c[2] if len(c) > 2 else None)

    def rs_reimburse(self, meta: Any, c: list[Any]) -> A.EnergyPrice:
        price: A.EnergyPrice = c[0]
        return _dc.replace(price, span=_span(meta))  # the statement's span, 'reimburse' included

    def rb_energy(self, meta: Any, c: list[Any]) -> A.EnergyPrice:
        price: A.EnergyPrice = c[0]
        return _dc.replace(price, span=_span(meta))

    def rs_partner(self, meta: Any, c: list[Token]) -> A.PartnerRef:
        return A.PartnerRef(_named(c[0]), _span(meta))

    def rs_commission(self, meta: Any, c: list[Token]) -> A.CommissionRef:
        return A.CommissionRef(tuple(_named(t) for t in c), _span(meta))

    def cm_amount(self, meta: Any, c: list[Any]) -> A.Commission:
        return A.Commission(_span(meta), amount=_num(c[0]), per=_named(c[1]), condition=c[2] if len(c) > 2 else None)

    def cm_percent(self, meta: Any, c: list[Any]) -> A.Commission:
        cond = c[2] if len(c) > 2 else None
        return A.Commission(_span(meta), percent=_num(c[0]), condition=cond)

    def cm_charge(self, meta: Any, c: list[Token]) -> A.Party:
        return A.Party("charge", _named(c[0]), _span(meta), _named(c[1]) if len(c) > 1 else None)

    def cm_pay(self, meta: Any, c: list[Token]) -> A.Party:
        return A.Party("pay", _named(c[0]), _span(meta), _named(c[1]) if len(c) > 1 else None)

    def cm_valid(self, meta: Any, c: list[Token]) -> A.Validity:
        return A.Validity(_check_date(c[0]), _check_date(c[1]) if len(c) > 1 else None, _span(meta))

    def rb_valid(self, meta: Any, c: list[Token]) -> A.Validity:
        return self.cm_valid(meta, c)

    # service
    def sv_vat(self, meta: Any, c: list[Token]) -> A.ServiceVat:
        return A.ServiceVat(_num(c[0]), _span(meta))

    def sv_prorate(self, meta: Any, c: list[Token]) -> A.Prorate:
        return A.Prorate(_named(c[0]), _span(meta))

    def sv_item(self, meta: Any, c: list[Any]) -> A.ServiceItem:
        name: Token = c[0]
        price, per, kw, spans = c[1]
        return A.ServiceItem(_named(name), price, per, _span(meta), named_item=name.type == "NAME",
                             opt_spans=spans, **kw)

    def service_price(self, meta: Any, c: list[Any]) -> tuple[A.Num, A.Named, dict[str, Any],
                                                            tuple[tuple[str, A.Span], ...]]:
        price: A.Num = c[0]
        rest = list(c[1:])
        per = _named(rest.pop(0))  # each, or the NAME after 'per'
        kw: dict[str, Any] = {}
        spans: list[tuple[str, A.Span]] = []
        if rest and isinstance(rest[0], Token) and rest[0].type == "STRING":
            kw["description"] = _str(rest.pop(0))
        for key, value, span in rest:
            spans.append((key, span))
            kw.setdefault(key, value)  # a repeated option is the checker's to report (opt_spans)
        return price, per, kw, tuple(spans)

    def svc_positive(self, meta: Any, c: list[Token]) -> A.Num:
        return _num(c[0])

    def svc_negative(self, meta: Any, c: list[Token]) -> A.Num:
        return A.Num(-_dec(c[0]), _span(meta))

    def so_vat(self, meta: Any, c: list[Token]) -> tuple[str, A.Num, A.Span]:
        return ("vat", _num(c[0]), _span(meta))

    def so_prorate(self, meta: Any, c: list[Token]) -> tuple[str, A.Named, A.Span]:
        return ("prorate", _named(c[0]), _span(meta))


def _num(tok: Token) -> A.Num:
    return A.Num(_dec(tok), _span(tok))


def _named(tok: Token) -> A.Named:
    return A.Named(str(tok), _span(tok))


_UNIT_ALIASES = {"hour": "h", "hours": "h", "minutes": "min", "minute": "min", "seconds": "s",
                 "second": "s", "sec": "s", "day": "days"}


def _norm_unit(u: str) -> str:
    return _UNIT_ALIASES.get(u, u)


def _cond_text(c: A.Cond) -> str:
    """A compact, canonical rendering of a condition (used for rule labels and by the printer)."""
    from dsl.printer import cond_text

    return cond_text(c)

