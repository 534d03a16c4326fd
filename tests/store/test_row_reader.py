"""store.db.RowReader: the lookup path's one-row reads return what a Session reads, scoped by the
statement's own conditions, and always see the latest commit; store.db.ReadBatcher: reads made
together go out as one query and each gets its own row."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, bindparam, select, update
from sqlalchemy.orm import Session

from store.db import ReadBatcher, RowReader
from store.models import Customer, PricePoint, PriceSeries
from store.tenants import bootstrap_tenant
from store.types import new_id, utcnow
from tests.store.conftest import BACKENDS


def _customer(engine: Engine) -> tuple[str, str]:
    with Session(engine) as db:
        tenant, _ = bootstrap_tenant(db, "rr")
        cid = new_id("cus")
        db.add(Customer(id=cid, tenant_id=tenant.id, name="Ada", groups=["employees", "vip"], country="DE"))
        db.commit()
        return tenant.id, cid


def _stmt(*cols: str) -> object:
    t = Customer.__table__  # type: ignore[attr-defined]
    return select(*(t.c[c] for c in cols)).where(t.c.tenant_id == bindparam("tenant_id"), t.c.id == bindparam("id"))


def test_reads_what_the_orm_reads(engine: Engine) -> None:
    tenant_id, cid = _customer(engine)
    cols = ("id", "name", "groups", "country", "created_at", "updated_at")
    reader = RowReader(engine)
    row = reader.first(_stmt(*cols), {"tenant_id": tenant_id, "id": cid})  # type: ignore[arg-type]
    with Session(engine) as db:
        obj = db.get(Customer, cid)
        assert obj is not None
        assert row == {c: getattr(obj, c) for c in cols}
    assert row is not None and row["groups"] == ["employees", "vip"] and row["created_at"].tzinfo is not None
    reader.close()


def test_other_tenant_and_missing_ids_read_nothing(engine: Engine) -> None:
    tenant_id, cid = _customer(engine)
    reader = RowReader(engine)
    stmt = _stmt("id")
    assert reader.first(stmt, {"tenant_id": "ten_other", "id": cid}) is None  # type: ignore[arg-type]
    assert reader.first(stmt, {"tenant_id": tenant_id, "id": "cus_missing"}) is None  # type: ignore[arg-type]
    reader.close()


def test_sees_each_new_commit(engine: Engine) -> None:
    tenant_id, cid = _customer(engine)
    reader = RowReader(engine)
    stmt = _stmt("name")
    args = {"tenant_id": tenant_id, "id": cid}
    for name in ("Grace", "Linus", "Barbara"):
        with engine.begin() as conn:
            conn.execute(update(Customer).where(Customer.id == cid).values(name=name, updated_at=utcnow()))
        assert reader.first(stmt, args) == {"name": name}  # type: ignore[arg-type]
    reader.close()


def test_decimals_stay_exact(engine: Engine) -> None:
    with Session(engine) as db:
        tenant, _ = bootstrap_tenant(db, "rr-dec")
        sid = new_id("ser")
        db.add(PriceSeries(id=sid, tenant_id=tenant.id, name="spot"))
        db.flush()
        db.add(PricePoint(tenant_id=tenant.id, series_id=sid, start=utcnow().replace(microsecond=0),
                          value=Decimal("0.123456789")))
        db.commit()
    t = PricePoint.__table__  # type: ignore[attr-defined]
    reader = RowReader(engine)
    row = reader.first(select(t.c.value).where(t.c.series_id == bindparam("sid")), {"sid": sid})
    assert row == {"value": Decimal("0.123456789")}
    reader.close()


# ReadBatcher's "= ANY(:ids)" statement is PostgreSQL's: the test runs where that server is set
@pytest.mark.parametrize("backend", [b for b in BACKENDS if b == "postgresql"])
def test_concurrent_reads_go_out_as_one_query_each_answered_with_its_own_row(engine: Engine, backend: str) -> None:
    from api.areas.customers import CustomerRead
    from api.crud import item_select

    tenant_id, cid = _customer(engine)
    other_tenant, other_cid = _customer(engine)
    with Session(engine) as db:
        more = [new_id("cus") for _ in range(3)]
        db.add_all(Customer(id=i, tenant_id=tenant_id, name=f"C{n}") for n, i in enumerate(more))
        db.commit()
    stmts = item_select(Customer, CustomerRead)
    assert stmts is not None and stmts.many is not None
    reader = RowReader(engine)
    batcher = ReadBatcher(reader)
    ran = []
    real_run = reader._run

    def counting(stmt: Any, params: Any) -> Any:
        ran.append(dict(params))
        return real_run(stmt, params)

    reader._run = counting  # type: ignore[method-assign]

    async def main() -> list[Any]:
        asked = [cid, *more, "cus_missing", other_cid, cid]
        return await asyncio.gather(*(batcher.first(stmts.one, stmts.many, tenant_id, i) for i in asked))

    rows = asyncio.run(main())
    assert [r and r["id"] for r in rows] == [cid, *more, None, None, cid]
    assert rows[1]["name"] == "C0" and rows[0]["name"] == "Ada"
    assert len(ran) == 1 and ran[0]["tenant_id"] == tenant_id  # one round trip, the caller's tenant only
    assert sorted(ran[0]["ids"]) == sorted({cid, *more, "cus_missing", other_cid})

    async def alone() -> Any:
        return await batcher.first(stmts.one, stmts.many, other_tenant, other_cid)

    assert asyncio.run(alone())["id"] == other_cid and "id" in ran[1]  # a single read: the one-row statement
    reader.close()
