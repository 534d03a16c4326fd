"""store.db.RowReader: the lookup path's one-row reads return what a Session reads, scoped by the
statement's own conditions, and always see the latest commit."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import Engine, bindparam, select, update
from sqlalchemy.orm import Session

from store.db import RowReader
from store.models import Customer, PricePoint, PriceSeries
from store.tenants import bootstrap_tenant
from store.types import new_id, utcnow


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
