"""The group reads' ids passed as one parameter (``store.cycle``: a PostgreSQL array, a SQLite JSON
array) find exactly the rows an ``IN`` list finds, whatever the ids contain."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text

from store.cycle import billed_of

IDS = ["ses_a", 'quote"d', "back\\slash", "comma,id", "{braces}", " spaced ", "NULL", "ümlaut"]


@pytest.mark.parametrize("n", [0, 1, 2500])
def test_billed_of_finds_the_rows_of_the_ids_it_is_given(engine: Engine, n: int) -> None:
    wanted = IDS + [f"ses_{i:05d}" for i in range(n)]
    with engine.begin() as conn:
        for i, s in enumerate(wanted + ["other", "ses_x"]):
            conn.execute(text("insert into billing_session (tenant_id, session_id, rating_id, invoice_id) "
                              "values ('t', :s, :r, 'inv')"), {"s": s, "r": f"rat_{i}"})
        conn.execute(text("insert into billing_session (tenant_id, session_id, rating_id, invoice_id) "
                          "values ('u', 'ses_a', 'rat_u', 'inv')"))
        got = billed_of(conn, "t", wanted)
        assert billed_of(conn, "t", []) == []
    assert [b.session_id for b in got] == wanted  # in insertion (id) order, this tenant's only
