"""billing cycles: invoices and lines, gapless number series, billed sessions, finance tasks,
manual holds and flags, manual postings, service items, account discounts

Revision ID: 0003_billing
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import store.types

revision = "0003_billing"
# the initial revision's id is "0001" (its file is 0001_initial.py)
down_revision = "0001"
branch_labels = ("billing",)
depends_on = None


def upgrade() -> None:
    op.create_table('billing_number_series',
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('series', sa.String(length=20), nullable=False),
    sa.Column('prefix', sa.String(length=20), nullable=False),
    sa.Column('next_value', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], ),
    sa.PrimaryKeyConstraint('tenant_id', 'series')
    )
    op.create_table('billing_discount',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('description', sa.String(length=300), nullable=False),
    sa.Column('percent', store.types.ExactDecimal(length=64), nullable=True),
    sa.Column('amount', store.types.ExactDecimal(length=64), nullable=True),
    sa.Column('tax_rate', store.types.ExactDecimal(length=64), nullable=True),
    sa.Column('valid_from', sa.Date(), nullable=False),
    sa.Column('valid_to', sa.Date(), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['billing_account.id'], ),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_billing_discount_account', 'billing_discount', ['tenant_id', 'account_id'], unique=False)
    op.create_table('billing_hold',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=False),
    sa.Column('placed_by', sa.String(length=40), nullable=False),
    sa.Column('placed_at', store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('released_by', sa.String(length=40), nullable=True),
    sa.Column('released_at', store.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['billing_account.id'], ),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_billing_hold_account', 'billing_hold', ['tenant_id', 'account_id'], unique=False)
    op.create_table('billing_invoice',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('customer_id', sa.String(length=40), nullable=False),
    sa.Column('cycle_key', sa.String(length=120), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('period_start', store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('period_end', store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('local_start', sa.Date(), nullable=False),
    sa.Column('local_end', sa.Date(), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('issue_date', sa.Date(), nullable=False),
    sa.Column('due_date', sa.Date(), nullable=False),
    sa.Column('payment_terms', sa.String(length=50), nullable=False),
    sa.Column('net_total', store.types.ExactDecimal(length=64), nullable=False),
    sa.Column('tax_total', store.types.ExactDecimal(length=64), nullable=False),
    sa.Column('gross_total', store.types.ExactDecimal(length=64), nullable=False),
    sa.Column('tax_groups', sa.JSON(), nullable=False),
    sa.Column('sessions', sa.Integer(), nullable=False),
    sa.Column('energy_kwh', store.types.ExactDecimal(length=64), nullable=False),
    sa.Column('hold_reasons', sa.JSON(), nullable=False),
    sa.Column('comparison', sa.JSON(), nullable=False),
    sa.Column('corrects', sa.JSON(), nullable=False),
    sa.Column('series', sa.String(length=20), nullable=True),
    sa.Column('number', sa.String(length=40), nullable=True),
    sa.Column('number_seq', sa.Integer(), nullable=True),
    sa.Column('workflow_id', sa.String(length=200), nullable=False),
    sa.Column('ruleset_version_id', sa.String(length=40), nullable=True),
    sa.Column('rejected_reason', sa.String(length=1000), nullable=False),
    sa.Column('decided_by', sa.String(length=40), nullable=False),
    sa.Column('created_at', store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finalized_at', store.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['billing_account.id'], ),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('tenant_id', 'account_id', 'cycle_key', name='uq_billing_invoice_cycle'),
    sa.UniqueConstraint('tenant_id', 'series', 'number_seq', name='uq_billing_invoice_number')
    )
    op.create_index('ix_billing_invoice_account_end', 'billing_invoice', ['tenant_id', 'account_id', 'period_end'], unique=False)
    op.create_index('ix_billing_invoice_tenant_status', 'billing_invoice', ['tenant_id', 'status'], unique=False)
    op.create_table('billing_service_item',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('product', sa.String(length=100), nullable=False),
    sa.Column('description', sa.String(length=300), nullable=False),
    sa.Column('quantity', store.types.ExactDecimal(length=64), nullable=False),
    sa.Column('unit_price', store.types.ExactDecimal(length=64), nullable=False),
    sa.Column('tax_rate', store.types.ExactDecimal(length=64), nullable=False),
    sa.Column('unit', sa.String(length=20), nullable=False),
    sa.Column('valid_from', sa.Date(), nullable=False),
    sa.Column('valid_to', sa.Date(), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['billing_account.id'], ),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_billing_service_item_account', 'billing_service_item', ['tenant_id', 'account_id'], unique=False)
    op.create_table('billing_finance_task',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('invoice_id', sa.String(length=40), nullable=False),
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('workflow_id', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=30), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('reasons', sa.JSON(), nullable=False),
    sa.Column('comparison', sa.JSON(), nullable=False),
    sa.Column('escalation_level', sa.Integer(), nullable=False),
    sa.Column('escalated_at', store.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('decided_by', sa.String(length=40), nullable=False),
    sa.Column('decision_reason', sa.String(length=1000), nullable=False),
    sa.Column('created_at', store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('closed_at', store.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['invoice_id'], ['billing_invoice.id'], ),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('invoice_id', 'kind', name='uq_billing_task_invoice')
    )
    op.create_index('ix_billing_task_tenant_status', 'billing_finance_task', ['tenant_id', 'status'], unique=False)
    op.create_table('billing_invoice_line',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('invoice_id', sa.String(length=40), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('component', sa.String(length=30), nullable=False),
    sa.Column('description', sa.String(length=300), nullable=False),
    sa.Column('quantity', store.types.ExactDecimal(length=64), nullable=False),
    sa.Column('unit', sa.String(length=20), nullable=False),
    sa.Column('unit_price', store.types.ExactDecimal(length=64), nullable=False),
    sa.Column('net', store.types.ExactDecimal(length=64), nullable=False),
    sa.Column('net_unrounded', store.types.ExactDecimal(length=64), nullable=False),
    sa.Column('tax_rate', store.types.ExactDecimal(length=64), nullable=False),
    sa.Column('session_id', sa.String(length=40), nullable=False),
    sa.Column('rating_id', sa.String(length=40), nullable=False),
    sa.Column('rule', sa.String(length=500), nullable=False),
    sa.Column('corrects', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['invoice_id'], ['billing_invoice.id'], ),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_billing_invoice_line_invoice', 'billing_invoice_line', ['invoice_id'], unique=False)
    op.create_index('ix_billing_invoice_line_session', 'billing_invoice_line', ['tenant_id', 'session_id'], unique=False)
    op.create_table('billing_posting',
    sa.Column('id', sa.String(length=60), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('invoice_id', sa.String(length=40), nullable=False),
    sa.Column('description', sa.String(length=300), nullable=False),
    sa.Column('amount', store.types.ExactDecimal(length=64), nullable=False),
    sa.Column('tax_rate', store.types.ExactDecimal(length=64), nullable=False),
    sa.Column('author_id', sa.String(length=40), nullable=False),
    sa.Column('created_at', store.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['invoice_id'], ['billing_invoice.id'], ),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_billing_posting_invoice', 'billing_posting', ['invoice_id'], unique=False)
    op.create_table('billing_session',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('session_id', sa.String(length=40), nullable=False),
    sa.Column('rating_id', sa.String(length=40), nullable=False),
    sa.Column('invoice_id', sa.String(length=40), nullable=False),
    sa.ForeignKeyConstraint(['invoice_id'], ['billing_invoice.id'], ),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('tenant_id', 'session_id', 'rating_id', name='uq_billing_session_rating')
    )


def downgrade() -> None:
    op.drop_table('billing_session')
    op.drop_index('ix_billing_posting_invoice', table_name='billing_posting')
    op.drop_table('billing_posting')
    op.drop_index('ix_billing_invoice_line_session', table_name='billing_invoice_line')
    op.drop_index('ix_billing_invoice_line_invoice', table_name='billing_invoice_line')
    op.drop_table('billing_invoice_line')
    op.drop_index('ix_billing_task_tenant_status', table_name='billing_finance_task')
    op.drop_table('billing_finance_task')
    op.drop_index('ix_billing_service_item_account', table_name='billing_service_item')
    op.drop_table('billing_service_item')
    op.drop_index('ix_billing_invoice_tenant_status', table_name='billing_invoice')
    op.drop_index('ix_billing_invoice_account_end', table_name='billing_invoice')
    op.drop_table('billing_invoice')
    op.drop_index('ix_billing_hold_account', table_name='billing_hold')
    op.drop_table('billing_hold')
    op.drop_index('ix_billing_discount_account', table_name='billing_discount')
    op.drop_table('billing_discount')
    op.drop_table('billing_number_series')
