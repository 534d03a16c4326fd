"""Depots (issue 18): access rules gain quotas (``effect`` ``limit`` with ``max_sessions``: a
partner at most N running sessions at a location within a time window) and a load-management
class (``session_priority``); tokens and contracts a cost centre, which sessions take when they are
stored; issued partner statements keep their energy and revenue per cost centre and per site
(``partner_statement.breakdown``)

Revision ID: 0043_partner_quotas
Revises: 0042_reservations
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from store.audit import append_only_ddl, drop_append_only_ddl

revision = "0043_partner_quotas"
down_revision = "0042_reservations"
branch_labels = None
depends_on = "0002_ocpp"  # alters ocpp_access_rule (the ocpp branch)


def upgrade() -> None:
    with op.batch_alter_table("ocpp_access_rule") as b:
        b.add_column(sa.Column("max_sessions", sa.Integer(), nullable=True))
        b.add_column(sa.Column("session_priority", sa.Integer(), nullable=True))
    for table in ("token", "contract", "charging_session"):
        with op.batch_alter_table(table) as b:
            b.add_column(sa.Column("cost_centre", sa.String(40), nullable=False, server_default=""))
    # a plain ADD COLUMN (no table copy): issued statements are append-only by triggers a copy would lose
    op.add_column("partner_statement", sa.Column("breakdown", sa.JSON(), nullable=True))


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    # SQLite drops a column by copying the table, which loses its triggers: take them off and back on
    for ddl in drop_append_only_ddl(dialect, "partner_statement"):
        op.execute(ddl)
    with op.batch_alter_table("partner_statement") as b:
        b.drop_column("breakdown")
    for ddl in append_only_ddl(dialect, "partner_statement"):
        op.execute(ddl)
    for table in ("charging_session", "contract", "token"):
        with op.batch_alter_table(table) as b:
            b.drop_column("cost_centre")
    with op.batch_alter_table("ocpp_access_rule") as b:
        b.drop_column("session_priority")
        b.drop_column("max_sessions")
