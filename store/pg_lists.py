"""A faster text dump of the plain id lists month-end passes to PostgreSQL as one array parameter
(``= ANY(:ids)``: a group of 25 accounts asks for ~2,500 session ids and as many rating ids).

psycopg's ``ListDumper`` dumps element by element in Python, a regular expression each to decide
whether the element needs quotes (~5 % of a month-end worker's CPU on PostgreSQL). A list whose
elements are all plain ``str`` made only of letters, digits and ``_.:-`` needs no quotes and no
escapes: its text is ``{a,b,c}``, which is what ``ListDumper`` writes for it, made here by one
``join``. Anything else (another type, an empty element, ``NULL`` as a word, a comma, quotes,
spaces, braces, non-ASCII) goes to ``ListDumper`` itself: the server gets the same bytes and the
same (unknown) type either way, so the same plan.
"""

from __future__ import annotations

import re
from typing import Any

from psycopg.types.array import ListDumper

__all__ = ["PlainListDumper", "register_plain_lists"]

_PLAIN = re.compile(r"[A-Za-z0-9_.:\-]+(?:,[A-Za-z0-9_.:\-]+)*")
_NULL = re.compile(r"(?:^|,)null(?:,|$)", re.IGNORECASE)


class PlainListDumper(ListDumper):
    """``ListDumper`` with a fast way for lists of plain ``str`` ids (see the module)."""

    def dump(self, obj: list[Any]) -> Any:
        if obj and self.delimiter == b"," and set(map(type, obj)) == {str}:
            text = ",".join(obj)
            if text.count(",") == len(obj) - 1 and _PLAIN.fullmatch(text) and not _NULL.search(text):
                return b"{" + text.encode() + b"}"
        return super().dump(obj)


def register_plain_lists(dbapi_conn: Any, _record: Any = None) -> None:
    """SQLAlchemy ``connect`` listener: the connection dumps lists with ``PlainListDumper``."""
    dbapi_conn.adapters.register_dumper(list, PlainListDumper)
