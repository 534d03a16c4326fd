"""the database refuses UPDATE and DELETE (and, on PostgreSQL, TRUNCATE) of audit entries: the
hash chain detects tampering, the triggers stop it from happening by accident or through a
stray SQL session

Revision ID: 0008_audit_append_only
Revises: 0001
"""

from __future__ import annotations

from alembic import op

from store.audit import append_only_ddl, drop_append_only_ddl

revision = "0008_audit_append_only"
down_revision = "0001"
branch_labels = ("audit_append_only",)
depends_on = None


def upgrade() -> None:
    for ddl in append_only_ddl(op.get_bind().dialect.name, "audit_entry"):
        op.execute(ddl)


def downgrade() -> None:
    for ddl in drop_append_only_ddl(op.get_bind().dialect.name, "audit_entry"):
        op.execute(ddl)
