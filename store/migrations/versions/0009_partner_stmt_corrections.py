"""partner statement corrections: which session and rating each statement stated, and at what
exact share (``partner_statement_session``, append-only like the statements), so that a later
statement settles re-rated and late sessions by difference; share lines name their agreement and,
for corrections and late sessions, the session and the statement they settle for; statements keep
their per-agreement subtotals. Statements issued before this revision recorded no sessions
(``states_sessions`` false): later statements do not settle sessions of their periods.

Revision ID: 0009_partner_stmt_corrections
Revises: 0006_partner_statements
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import store.types
from store.audit import append_only_ddl, drop_append_only_ddl

revision = "0009_partner_stmt_corrections"
down_revision = "0006_partner_statements"
branch_labels = None
depends_on = None

_TABLE = "partner_statement_session"


def upgrade() -> None:
    for name in ("agreement_id", "session_id", "refers_to"):
        op.add_column("partner_statement_line", sa.Column(name, sa.String(length=40), nullable=True))
    op.add_column("partner_statement", sa.Column("agreements", sa.JSON(), nullable=True))
    op.add_column("partner_statement", sa.Column("states_sessions", sa.Boolean(), nullable=False,
                                                 server_default=sa.false()))
    op.create_table(
        _TABLE,
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("statement_id", sa.String(length=40), nullable=False),
        sa.Column("session_id", sa.String(length=40), nullable=False),
        sa.Column("rating_id", sa.String(length=40), nullable=False),
        sa.Column("agreement_id", sa.String(length=40), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("share", store.types.ExactDecimal(), nullable=False),
        sa.Column("refers_to", sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.ForeignKeyConstraint(["statement_id"], ["partner_statement.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_partner_statement_session_session", _TABLE, ["tenant_id", "session_id", "rating_id"])
    op.create_index("ix_partner_statement_session_statement", _TABLE, ["statement_id"])
    for ddl in append_only_ddl(op.get_bind().dialect.name, _TABLE):
        op.execute(ddl)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for ddl in drop_append_only_ddl(dialect, _TABLE):
        op.execute(ddl)
    op.drop_index("ix_partner_statement_session_statement", table_name=_TABLE)
    op.drop_index("ix_partner_statement_session_session", table_name=_TABLE)
    op.drop_table(_TABLE)
    # SQLite drops a column by copying the table, which loses its triggers: take them off and back on
    for table, columns in (("partner_statement", ("states_sessions", "agreements")),
                           ("partner_statement_line", ("refers_to", "session_id", "agreement_id"))):
        for ddl in drop_append_only_ddl(dialect, table):
            op.execute(ddl)
        with op.batch_alter_table(table) as batch:
            for name in columns:
                batch.drop_column(name)
        for ddl in append_only_ddl(dialect, table):
            op.execute(ddl)
