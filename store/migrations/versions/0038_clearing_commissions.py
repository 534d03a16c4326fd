"""eMSP clearing commissions (issue 15): a clearing statement keeps the commission lines of the
``charge emsp`` blocks its roaming agreement names (JSON, each line with its rule)

Revision ID: 0038_clearing_commissions
Revises: 0028_dunning_actions
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0038_clearing_commissions"
down_revision = "0028_dunning_actions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clearing_statement") as b:
        b.add_column(sa.Column("commissions", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("clearing_statement") as b:
        b.drop_column("commissions")
