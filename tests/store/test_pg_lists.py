"""``store.pg_lists.PlainListDumper`` writes what psycopg's ``ListDumper`` writes, for any list
(plain ids by one join, everything else by ``ListDumper`` itself), and the engines of
``store.db.make_engine`` use it on PostgreSQL."""

from __future__ import annotations

import enum
import os
import random
import string
from typing import Any

import psycopg
import pytest
from psycopg.adapt import PyFormat, Transformer
from psycopg.types.array import ListDumper

from store.pg_lists import PlainListDumper


class Colour(enum.StrEnum):
    RED = "red-ish"


def _dumps(obj: list[Any]) -> tuple[Any, Any]:
    """(PlainListDumper's bytes and oid, ListDumper's), or the error each raised."""
    tx = Transformer()
    tx.adapters.register_dumper(list, ListDumper)
    out = []
    for cls in (PlainListDumper, ListDumper):
        try:
            d = cls(list, tx).upgrade(obj, PyFormat.AUTO)
            assert type(d) is cls
            out.append((bytes(d.dump(obj)), d.oid))
        except (psycopg.DataError, TypeError) as exc:  # the same error from both
            out.append((type(exc), str(exc)))
    return out[0], out[1]


_ODD = ["", "NULL", "null", "Null", "a,b", 'a"b', "a\\b", "a b", "{a}", "é", "a\tb", "nullx", "xnull", "-", "_.:"]


@pytest.mark.parametrize("obj", [
    ["s00000001", "rat_s00000001_1", "acc_bench_000000"],
    ["a"], ["NULL"], [""], ["a", ""], ["a", None], [None], [1, 2], ["a", 1], [["a"], ["b"]], [Colour.RED],
    ["a", "b,c"], ["x:y", "1.5", "-"],
])
def test_the_same_bytes_as_list_dumper(obj: list[Any]) -> None:
    mine, want = _dumps(obj)
    assert mine == want


def test_the_same_bytes_for_random_lists() -> None:
    rnd = random.Random(5)
    alphabet = string.ascii_letters + string.digits + "_.:-" + ' ,"\\{}\t'
    for _ in range(2_000):
        obj = [rnd.choice(_ODD) if rnd.random() < 0.05
               else "".join(rnd.choice(alphabet if rnd.random() < 0.2 else string.ascii_lowercase + "_0123456789")
                            for _ in range(rnd.randint(1, 12)))
               for _ in range(rnd.randint(1, 40))]
        mine, want = _dumps(obj)
        assert mine == want, obj


@pytest.mark.skipif(not os.environ.get("EVBILL_TEST_POSTGRES_URL"), reason="EVBILL_TEST_POSTGRES_URL not set")
def test_make_engine_dumps_lists_with_it() -> None:
    from sqlalchemy import text

    from store.db import make_engine

    engine = make_engine(os.environ["EVBILL_TEST_POSTGRES_URL"], pool_size=1, max_overflow=0)
    try:
        with engine.connect() as conn:
            dbapi = conn.connection.driver_connection
            assert dbapi is not None
            assert type(Transformer(dbapi).get_dumper(["a"], PyFormat.AUTO)) is PlainListDumper
            got = conn.execute(text("select cast(:ids as varchar[])"), {"ids": ["a_1", "NULL", "b c", ""]}).scalar()
            assert got == ["a_1", "NULL", "b c", ""]
    finally:
        engine.dispose()
