"""Migrations, exact decimals and times, tenant scoping, immutability, audit chain tampering."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from store.audit import Actor, append_audit, verify_chain
from store.errors import NotFound
from store.models import (
    AuditEntry,
    ChargingSession,
    Customer,
    PricePoint,
    PriceSeries,
    Ruleset,
    RulesetDraft,
    RulesetVersion,
    Tenant,
    metadata,
)
from store.repo import Scope
from store.tenants import bootstrap_tenant
from store.types import new_id
from tests.store.append_only import triggers_dropped
from tests.store.conftest import fresh_engine

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def _tenant(engine: Engine, name: str = "acme") -> tuple[str, Actor]:
    with Session(engine) as db:
        tenant, cred = bootstrap_tenant(db, name)
        return tenant.id, Actor(tenant.id, cred.user_id, "admin")


def test_migrations_upgrade_an_empty_database_to_head(backend: str, tmp_path: Path) -> None:
    engine, cleanup = fresh_engine(backend, tmp_path, migrated=False)
    try:
        assert "customer" not in inspect(engine).get_table_names()
        from store.db import migrate

        migrate(engine)
        names = set(inspect(engine).get_table_names())
        assert set(metadata.tables) <= names
        assert "alembic_version" in names
        # the migrations describe exactly the models (of every store module, including the ones
        # other areas add): autogenerate finds nothing left to do
        import importlib
        import pkgutil

        import store

        for mod in pkgutil.iter_modules(store.__path__):
            if mod.name != "migrations":
                importlib.import_module(f"store.{mod.name}")
        with engine.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}), metadata)
        assert diffs == []
        migrate(engine)  # idempotent
    finally:
        cleanup()  # type: ignore[operator]


def test_decimals_and_times_round_trip_exactly(engine: Engine) -> None:
    tid, _ = _tenant(engine)
    exact = Decimal("0.123456789012345678901234")
    with Session(engine) as db:
        s = PriceSeries(id=new_id("ps"), tenant_id=tid, name="spot_de")
        db.add(s)
        db.flush()
        db.add(PricePoint(tenant_id=tid, series_id=s.id, start=T0, value=exact))
        db.commit()
    with Session(engine) as db:
        p = db.execute(select(PricePoint)).scalar_one()
        assert p.value == exact and str(p.value) == str(exact)
        assert p.start == T0 and p.start.tzinfo is not None


def test_floats_and_naive_times_are_refused(engine: Engine) -> None:
    tid, _ = _tenant(engine)
    with Session(engine) as db:
        s = PriceSeries(id=new_id("ps"), tenant_id=tid, name="spot")
        db.add(s)
        db.flush()
        db.add(PricePoint(tenant_id=tid, series_id=s.id, start=T0, value=0.1))  # type: ignore[arg-type]
        with pytest.raises(Exception, match="float"):
            db.flush()
        db.rollback()
        db.add(PricePoint(tenant_id=tid, series_id=s.id, start=datetime(2026, 1, 1), value=Decimal(1)))
        with pytest.raises(Exception, match="naive"):
            db.flush()


def test_repositories_never_cross_tenants(engine: Engine) -> None:
    _, a = _tenant(engine, "a")
    _, b = _tenant(engine, "b")
    with Session(engine) as db:
        cus = Scope(db, b).repo(Customer, "customer", "cus").create({"name": "Bea"})
        db.commit()
        repo_a = Scope(db, a).repo(Customer, "customer", "cus")
        with pytest.raises(NotFound) as err:
            repo_a.get(cus.id)
        assert err.value.code == "customer_not_found"
        assert repo_a.page()[0] == []
        assert [c.id for c in Scope(db, b).repo(Customer, "customer", "cus").page()[0]] == [cus.id]


def test_external_id_is_unique_per_tenant_only(engine: Engine) -> None:
    ta, _ = _tenant(engine, "a")
    tb, _ = _tenant(engine, "b")

    def row(tid: str) -> ChargingSession:
        return ChargingSession(id=new_id("ses"), tenant_id=tid, external_id="CDR-1", source="json",
                               payload_sha256="0" * 64, start=T0, end=T0 + timedelta(hours=1),
                               energy_kwh=Decimal("10.5"))

    with Session(engine) as db:
        db.add_all([row(ta), row(tb)])
        db.commit()
        db.add(row(ta))
        with pytest.raises(IntegrityError):
            db.commit()


def test_published_versions_are_immutable(engine: Engine) -> None:
    tid, actor = _tenant(engine)
    with Session(engine) as db:
        rs = Ruleset(id=new_id("rs"), tenant_id=tid, name="demo", created_by=actor.user_id)
        db.add(rs)
        db.flush()
        d = RulesetDraft(id=new_id("rsd"), tenant_id=tid, ruleset_id=rs.id, source="x", sha256="a" * 64, ok=True,
                         author_id=actor.user_id)
        db.add(d)
        db.flush()
        v = RulesetVersion(id=new_id("rsv"), tenant_id=tid, ruleset_id=rs.id, version=1, draft_id=d.id,
                           source="x", sha256="a" * 64, effective_from=T0, author_id=actor.user_id,
                           publisher_id="someone-else")
        db.add(v)
        db.commit()
        v.source = "changed"
        with pytest.raises(PermissionError):
            db.flush()


def test_audit_chain_verifies_and_detects_tampering(engine: Engine) -> None:
    tid, actor = _tenant(engine)
    with Session(engine) as db:
        for i in range(5):
            append_audit(db, actor, "customer.update", "customer", f"cus_{i}", {"name": "old"},
                         {"name": f"new {i}", "amount": Decimal("1.10")})
        db.commit()

    def check() -> list[str]:
        with Session(engine) as db:
            head = db.execute(select(Tenant.audit_head).where(Tenant.id == tid)).scalar_one()
            entries = list(db.execute(select(AuditEntry).where(AuditEntry.tenant_id == tid)
                                      .order_by(AuditEntry.seq)).scalars())
            return [b.reason for b in verify_chain(entries, head)]

    assert check() == []
    with Session(engine) as db:
        # the ORM refuses edits outright
        e = db.execute(select(AuditEntry).where(AuditEntry.seq == 3)).scalar_one()
        e.action = "customer.delete"
        with pytest.raises(PermissionError):
            db.flush()
    with engine.begin() as conn, pytest.raises(IntegrityError):
        # the database refuses a raw UPDATE (migration 0008's triggers) ...
        conn.execute(update(AuditEntry.__table__).where(AuditEntry.__table__.c.seq == 3)  # type: ignore[attr-defined]
                     .values(entity_id="cus_forged"))
    assert check() == []
    with engine.begin() as conn, triggers_dropped(conn):
        # ... so someone with DDL rights drops the triggers and rewrites history
        conn.execute(update(AuditEntry.__table__).where(AuditEntry.__table__.c.seq == 3)  # type: ignore[attr-defined]
                     .values(entity_id="cus_forged"))
    assert check() == ["content does not match its hash"]
    with engine.begin() as conn, triggers_dropped(conn):
        # ... or recomputes that entry's hash: the next link breaks instead
        from store.audit import entry_hash

        with Session(bind=conn) as db:
            forged = db.execute(select(AuditEntry).where(AuditEntry.tenant_id == tid, AuditEntry.seq == 3)).scalar_one()
            new_hash = entry_hash(forged)
        conn.execute(update(AuditEntry.__table__).where(AuditEntry.__table__.c.seq == 3)  # type: ignore[attr-defined]
                     .values(hash=new_hash))
    assert "prev_hash does not match the previous entry" in check()
    with engine.begin() as conn, triggers_dropped(conn):
        # truncating the newest entry leaves an intact-looking chain; the tenant head catches it
        conn.execute(text("DELETE FROM audit_entry WHERE seq = 6"))
    assert "chain head does not match the last entry" in check()
