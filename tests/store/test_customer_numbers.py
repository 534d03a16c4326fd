"""Issue 11, defect 8: customers get a human number (``K-10001``, ...) per tenant, drawn when they
are created from the tenant's number series, unique, without gaps from rolled-back creations;
customers that existed before are numbered by the migration in creation order. Both databases."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from store.customers import assign_customer_numbers
from store.models import Customer
from store.repo import Scope
from store.tenants import bootstrap_tenant
from tests.store.conftest import fresh_engine
from tests.store.test_storage import _tenant


def _numbers(engine: Engine, tenant_id: str) -> list[tuple[str, str | None]]:
    with engine.connect() as conn:
        t = Customer.__table__  # type: ignore[attr-defined]
        return [(r.name, r.number) for r in conn.execute(select(t.c.name, t.c.number)
                                                         .where(t.c.tenant_id == tenant_id).order_by(t.c.id))]


def test_customers_are_numbered_per_tenant_at_creation_without_gaps(engine: Engine) -> None:
    _, a = _tenant(engine, "a")
    _, b = _tenant(engine, "b")
    with Session(engine) as db:
        for name in ("Ada", "Ben"):
            Scope(db, a).repo(Customer, "customer", "cus").create({"name": name})
        Scope(db, b).repo(Customer, "customer", "cus").create({"name": "Bea"})
        db.commit()
    with Session(engine) as db:  # a creation that is rolled back spends no number
        Scope(db, a).repo(Customer, "customer", "cus").create({"name": "Never"})
        db.rollback()
    with Session(engine) as db:
        made = Scope(db, a).repo(Customer, "customer", "cus").create({"name": "Cem"})
        assert made.number == "K-10003"
        db.commit()
    with engine.begin() as conn:  # a bulk loader draws a block and the series continues after it
        assert assign_customer_numbers(conn, a.tenant_id, 2) == ["K-10004", "K-10005"]
    with Session(engine) as db:
        Scope(db, a).repo(Customer, "customer", "cus").create({"name": "Dan"})
        db.commit()
    assert _numbers(engine, a.tenant_id) == [("Ada", "K-10001"), ("Ben", "K-10002"), ("Cem", "K-10003"),
                                             ("Dan", "K-10006")]
    assert _numbers(engine, b.tenant_id) == [("Bea", "K-10001")]


def test_the_migration_numbers_existing_customers_in_creation_order(backend: str, tmp_path: Path) -> None:
    from store.db import migrate

    engine, cleanup = fresh_engine(backend, tmp_path, migrated=False)
    try:
        migrate(engine, "0011_manual_hold_consumed")
        with Session(engine) as db:
            tenants = [bootstrap_tenant(db, name)[0].id for name in ("north", "south")]
            db.commit()
        old = sa.table("customer", *(sa.column(c) for c in (
            "id", "tenant_id", "kind", "name", "company_name", "email", "phone", "language", "vat_id", "street",
            "postal_code", "city", "country", "groups", "external_ref", "created_at", "updated_at")))
        blank = {"kind": "private", "company_name": "", "email": "", "phone": "", "language": "de", "vat_id": "",
                 "street": "", "postal_code": "", "city": "", "country": "DE", "groups": "[]", "external_ref": ""}
        # ids do not follow creation order here: the creation time decides
        rows = [("cus_c", tenants[0], "third", 3), ("cus_a", tenants[0], "second", 2), ("cus_b", tenants[0], "first", 1),
                ("cus_d", tenants[1], "only", 5)]
        with engine.begin() as conn:
            for cid, tid, name, day in rows:
                at = datetime(2026, 1, day, tzinfo=UTC)
                at_text = at.isoformat() if backend == "sqlite" else at
                conn.execute(sa.insert(old).values(id=cid, tenant_id=tid, name=name, created_at=at_text,
                                                   updated_at=at_text, **blank))
        migrate(engine)
        with Session(engine) as db:  # the series continues after the migrated numbers
            db.add(Customer(id="cus_e", tenant_id=tenants[0], name="new"))
            db.commit()
        got = {n: num for t in tenants for n, num in _numbers(engine, t)}
        assert got == {"first": "K-10001", "second": "K-10002", "third": "K-10003", "new": "K-10004",
                       "only": "K-10001"}
    finally:
        cleanup()  # type: ignore[operator]
