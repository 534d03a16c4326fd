"""What parsing a ruleset gives (``ParseOutcome``), and clean parses kept on disk between processes.

A process that compiles a ruleset it has parsed before -- ``evbill ocpi price`` with the same
tariff, a worker starting on a published ruleset -- reads the syntax tree back instead of importing
Lark and parsing (Lark's import, its parser tables and the contextual lexer's regular expressions
are about 40 % of the instructions ``evbill ocpi price`` spends before it prices the first CDR).

Only clean parses are kept: no diagnostics, no recovery. An entry is found by the sha256 of the
grammar, the modules that shape the tree (``dsl/parser.py``, ``dsl/ast.py``), the Python version
and the source text, so a changed grammar or parser never reads an old tree. Entries are pickles
and a pickle can run code when read, so they live in a folder of this user's own (``EVBILL_CACHE_DIR``,
else ``$XDG_CACHE_HOME/evbill``, else ``~/.cache/evbill``) that is read only while it belongs to
this user and nobody else may write to it; where it cannot be made so, nothing is cached.
This module imports no Lark: ``dsl.parser`` is imported only when a text must be parsed."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pickle
import stat
import sys
import tempfile
from pathlib import Path

from dsl import ast as A
from dsl.diagnostics import Diagnostic

__all__ = ["ParseOutcome", "cache_dir", "parse_cached", "shift_lines"]

_HERE = Path(__file__).resolve().parent
_SHAPERS = (_HERE / "evbill.lark", _HERE / "parser.py", _HERE / "ast.py")


class ParseOutcome:
    """A ruleset and the syntax diagnostics; after recovery both: the blocks that parsed, and the
    names declared by blocks that did not (the checker must not call those unknown)."""

    __slots__ = ("diagnostics", "line_shift", "lost_names", "partial", "ruleset")

    def __init__(self, ruleset: A.Ruleset | None, diagnostics: list[Diagnostic],
                 lost_names: frozenset[str] = frozenset(), partial: frozenset[str] = frozenset(),
                 line_shift: int = 0):
        self.ruleset = ruleset
        self.diagnostics = diagnostics
        self.lost_names = lost_names
        # blocks kept without the statements that did not parse ("tariff:a", "dunning:standard"):
        # the checker must not judge them as a whole (a discount "without an amount", ...)
        self.partial = partial
        # lines the recovered ruleset's spans lie below the file's (a stand-in header on a line of
        # its own when the file has none); diagnostics of it are shifted back (``shift_lines``)
        self.line_shift = line_shift

    @property
    def clean(self) -> bool:
        """Parsed whole, with nothing to report and nothing recovered."""
        return (self.ruleset is not None and not self.diagnostics and not self.lost_names and not self.partial
                and not self.line_shift)


def shift_lines(diags: list[Diagnostic], by: int) -> list[Diagnostic]:
    """Diagnostics moved ``by`` lines (see ``ParseOutcome.line_shift``)."""
    if not by:
        return diags
    return [dataclasses.replace(d, span=A.Span(d.span.line + by, d.span.col, d.span.end_line + by, d.span.end_col))
            for d in diags]


def parse_cached(source: str, filename: str = "<ruleset>") -> ParseOutcome:
    """``dsl.parser.parse``, or the tree a clean parse of this very text by this very parser left."""
    entry = _entry(source)
    if entry is not None:
        tree = _read(entry)
        if tree is not None:
            return ParseOutcome(tree, [])
    from dsl.parser import parse  # Lark, only when a text must be parsed

    outcome = parse(source, filename)
    if entry is not None and outcome.clean:
        assert outcome.ruleset is not None
        _write(entry, outcome.ruleset)
    return outcome


_SALT: list[bytes] = []  # the digest of what shapes a tree, computed once per process


def _salt() -> bytes:
    if not _SALT:
        h = hashlib.sha256(sys.version.encode())
        for path in _SHAPERS:
            h.update(path.read_bytes())
        _SALT.append(h.digest())
    return _SALT[0]


def cache_dir() -> Path | None:
    """This user's folder for the cache, made if missing; None where it is not this user's alone."""
    base = os.environ.get("EVBILL_CACHE_DIR", "").strip()
    if base:
        path = Path(base)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
        path = (Path(xdg) if xdg else Path.home() / ".cache") / "evbill"
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = path.stat()
    except (OSError, RuntimeError):  # no home, a read-only file system
        return None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o022:
        return None
    return path


def _entry(source: str) -> Path | None:
    try:
        folder = cache_dir()
        if folder is None:
            return None
        digest = hashlib.sha256(_salt() + source.encode("utf-8")).hexdigest()
    except (OSError, UnicodeEncodeError):  # a shaping module unreadable; a lone surrogate in the text
        return None
    return folder / f"ast-{digest[:40]}.pickle"


def _read(entry: Path) -> A.Ruleset | None:
    try:
        st = entry.stat()
        if st.st_uid != os.getuid() or st.st_mode & 0o022:
            return None
        tree = pickle.loads(entry.read_bytes())
    except FileNotFoundError:
        return None
    except Exception:  # noqa: BLE001 - a damaged or foreign entry: parse the text instead
        return None
    return tree if isinstance(tree, A.Ruleset) else None


def _write(entry: Path, tree: A.Ruleset) -> None:
    try:
        data = pickle.dumps(tree, protocol=pickle.HIGHEST_PROTOCOL)
        fd, tmp = tempfile.mkstemp(prefix=".ast-", dir=entry.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, entry)  # readers see the old entry or the whole new one
        except BaseException:
            os.unlink(tmp)
            raise
    except (OSError, pickle.PicklingError, RecursionError):  # a full disk, a tree too deep to pickle
        return
