"""Issuing partner statements concurrently: numbers stay unique and gapless per tenant, and of two
issuers racing for the same partner and period exactly one wins (SQLite and PostgreSQL)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import date

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from runtime.statements import build_statement, statement_period
from store import statements as S
from store.audit import Actor
from store.errors import Conflict
from store.models import AuditEntry, Partner
from store.tenants import bootstrap_tenant
from store.types import new_id


def _issue(engine: Engine, actor: Actor, partner_id: str, month: str) -> str:
    draft = build_statement(period=statement_period("Europe/Berlin", month=month), sessions=[])
    with Session(engine) as db:
        try:
            row = S.issue_statement(db, actor, S.IssueRequest(partner_id, None, None, "test"), draft)
            db.commit()
        except Conflict as exc:
            return exc.code
        return str(row["number"])


def test_concurrent_issuers_get_distinct_gapless_numbers(engine: Engine) -> None:
    with Session(engine) as db:
        tenant, cred = bootstrap_tenant(db, "acme")
        partners = [Partner(id=new_id("par"), tenant_id=tenant.id, kind="site_host", name=f"host {i}")
                    for i in range(2)]
        db.add_all(partners)
        db.commit()
        actor = Actor(tenant.id, cred.user_id, "operator")
        ids = [p.id for p in partners]
    jobs = [(ids[i % 2], f"2026-{m:02d}") for i, m in enumerate(range(1, 9))]  # 4 months per partner
    jobs += [(ids[0], "2026-01")]  # races the first job for the same partner and month
    with ThreadPoolExecutor(max_workers=6) as pool:
        got = list(pool.map(lambda j: _issue(engine, actor, *j), jobs))
    numbers = sorted(g for g in got if g.startswith("PS-"))
    assert got.count("statement_period_overlaps") == 1
    assert numbers == [f"PS-{n:06d}" for n in range(1, 9)]
    with Session(engine) as db:
        issued = db.execute(select(AuditEntry.entity_id).where(AuditEntry.action == "partner_statement.issue")).all()
        rows = db.execute(select(S.statement.c.partner_id, S.statement.c.local_start)).all()
    assert len(issued) == 8
    assert sorted((p, d) for p, d in rows) == sorted({(p, date(2026, int(m[5:]), 1)) for p, m in jobs})
