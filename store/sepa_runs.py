"""The shape both SEPA approval runs share: a collection run (pain.008, ``store.collections``) and a
payout run (pain.001, ``store.payables``) are each one row found again by its workflow id, decided
once by an approver, and, when approved, one archived file.

What differs stays with each run: the column that explains what the run left out or who asked for
it (``skipped`` / ``requested_by``), its items and how a file is built from them. This module holds
the two tables' common columns and the reads and writes that are the same for both, so the
workflows' one approval run (``workflows.approval_run``) has one store shape beneath it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    insert,
    select,
    update,
)

from store.types import ExactDecimal, UTCDateTime, new_id

__all__ = ["RunTables", "run_tables"]


@dataclass(frozen=True, slots=True)
class RunTables:
    """A run table and its file table, with the statements both kinds of run run alike."""

    run: Table
    file: Table
    file_prefix: str  # of the archived file's id: ``cfl`` / ``pfl``

    def by_workflow(self, conn: Connection, tenant_id: str, workflow_id: str) -> Any:
        r = self.run.c
        return conn.execute(select(self.run).where(r.tenant_id == tenant_id, r.workflow_id == workflow_id)).first()

    def row(self, conn: Connection, tenant_id: str, run_id: str) -> Any:
        """The run, or None when the tenant has none of that id."""
        r = self.run.c
        return conn.execute(select(self.run).where(r.tenant_id == tenant_id, r.id == run_id)).first()

    def one(self, conn: Connection, tenant_id: str, run_id: str) -> Any:
        """The run, which must exist (a workflow's own run)."""
        r = self.run.c
        return conn.execute(select(self.run).where(r.id == run_id, r.tenant_id == tenant_id)).one()

    def page(self, conn: Connection, tenant_id: str, *, status: str | None = None, workflow_id: str | None = None,
             before_id: str | None = None, limit: int = 100) -> list[Any]:
        """Runs newest first (ids sort in creation order), before ``before_id`` (a page cursor)."""
        r = self.run.c
        stmt = select(self.run).where(r.tenant_id == tenant_id)
        if status:
            stmt = stmt.where(r.status == status)
        if workflow_id:
            stmt = stmt.where(r.workflow_id == workflow_id)
        if before_id:
            stmt = stmt.where(r.id < before_id)
        return list(conn.execute(stmt.order_by(r.id.desc()).limit(limit)).all())

    def decide(self, conn: Connection, tenant_id: str, run_id: str, status: str, **values: Any) -> Any:
        """Set the run's outcome (with who decided, why and when in ``values``) and read it back."""
        conn.execute(update(self.run).where(self.run.c.id == run_id).values(status=status, **values))
        return self.one(conn, tenant_id, run_id)

    def archive(self, conn: Connection, tenant_id: str, run: Any, data: bytes, now: datetime) -> str:
        """Keep the approved run's file as it went out (name, bytes and their sha256); its id."""
        fid = new_id(self.file_prefix)
        conn.execute(insert(self.file).values(
            id=fid, tenant_id=tenant_id, run_id=run.id, name=f"{run.message_id}.{run.pain_version}.xml",
            media_type="application/xml", pain_version=run.pain_version, content=data,
            sha256=hashlib.sha256(data).hexdigest(), size=len(data), created_at=now))
        return fid

    def file_row(self, conn: Connection, tenant_id: str, file_id: str) -> Any:
        f = self.file.c
        return conn.execute(select(self.file).where(f.tenant_id == tenant_id, f.id == file_id)).first()

    def file_sha256(self, conn: Connection, file_id: str) -> str:
        return str(conn.execute(select(self.file.c.sha256).where(self.file.c.id == file_id)).scalar_one())


def run_tables(metadata: MetaData, kind: str, reason: Column[Any], file_prefix: str) -> RunTables:
    """``{kind}_run`` and ``{kind}_file``: the run's common columns with ``reason`` (what the run
    left out, or who asked for what it pays) after its total, and the archived file, one per run."""
    run = Table(
        f"{kind}_run", metadata,
        Column("id", String(40), primary_key=True),
        Column("tenant_id", String(40), ForeignKey("tenant.id"), nullable=False),
        Column("creditor_account_id", String(40), ForeignKey("sepa_creditor_account.id"), nullable=False),
        Column("workflow_id", String(200), nullable=False),
        # building | awaiting_approval | submitted | rejected | empty
        Column("status", String(20), nullable=False),
        Column("as_of", Date(), nullable=False),
        Column("pain_version", String(20), nullable=False),
        Column("message_id", String(35), nullable=False),
        Column("items", Integer(), nullable=False),
        Column("total", ExactDecimal(), nullable=False),
        Column("currency", String(3), nullable=False),
        reason,
        Column("file_id", String(40), nullable=True),
        Column("started_by", String(40), nullable=False),
        Column("decided_by", String(40), nullable=False),
        Column("decision_reason", String(1000), nullable=False),
        Column("created_at", UTCDateTime(), nullable=False),
        Column("decided_at", UTCDateTime(), nullable=True),
        UniqueConstraint("tenant_id", "workflow_id", name=f"uq_{kind}_run_workflow"),
        Index(f"ix_{kind}_run_status", "tenant_id", "status"),
    )
    file = Table(
        f"{kind}_file", metadata,
        Column("id", String(40), primary_key=True),
        Column("tenant_id", String(40), ForeignKey("tenant.id"), nullable=False),
        Column("run_id", String(40), ForeignKey(f"{kind}_run.id"), nullable=False),
        Column("name", String(200), nullable=False),
        Column("media_type", String(60), nullable=False),
        Column("pain_version", String(20), nullable=False),
        Column("content", LargeBinary(), nullable=False),
        Column("sha256", String(64), nullable=False),
        Column("size", Integer(), nullable=False),
        Column("created_at", UTCDateTime(), nullable=False),
        UniqueConstraint("run_id", name=f"uq_{kind}_file_run"),
    )
    return RunTables(run, file, file_prefix)
