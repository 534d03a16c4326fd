"""Migration 0012_session_assignment: sessions stored as ``rated`` without a customer although they
named a token (issue 11, defect 5: billed by nobody, and nobody told) become ``unassigned`` with the
reason ``not_checked``; tokenless and assigned sessions keep their status. Downgrading restores the
old statuses. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from alembic import command
from sqlalchemy import text

from store.db import alembic_config, migrate
from tests.store.conftest import fresh_engine

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def test_legacy_sessions_without_customer_are_marked_for_review(backend: str, tmp_path: Path) -> None:
    engine, cleanup = fresh_engine(backend, tmp_path, migrated=False)
    try:
        migrate(engine, "0011_manual_hold_consumed")
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO tenant (id, name, legal_name, street, postal_code, city, country, vat_id, "
                              "tax_number, creditor_id, iban, bic, email, currency, timezone, branding, audit_seq, "
                              "audit_head, created_at) VALUES ('ten_m', 'm', '', '', '', '', 'DE', '', '', '', '', "
                              "'', '', 'EUR', 'Europe/Berlin', '{}', 0, '', :t)"), {"t": T0})
            conn.execute(text("INSERT INTO customer (id, tenant_id, kind, name, company_name, email, phone, language, "
                              "vat_id, street, postal_code, city, country, groups, external_ref, created_at, "
                              "updated_at) VALUES ('cus_m', 'ten_m', 'private', 'c', '', '', '', 'de', '', '', '', "
                              "'', 'DE', '[]', '', :t, :t)"), {"t": T0})
            for sid, token, customer, status in (("ses_lost", "UNKNOWN", None, "rated"),
                                                 ("ses_adhoc", "", None, "rated"),
                                                 ("ses_billed", "KNOWN", "cus_m", "rated"),
                                                 ("ses_unrated", "UNKNOWN", None, "unrated")):
                conn.execute(text(
                    "INSERT INTO charging_session (id, tenant_id, external_id, source, payload_sha256, start, "
                    "\"end\", energy_kwh, location_ref, evse_ref, token_uid, customer_id, tariff, facts, status, "
                    "rating_error, currency, created_at) VALUES (:id, 'ten_m', :id, 'json', '', :t, :t, :kwh, '', "
                    "'', :tok, :cus, '', '{}', :st, '', 'EUR', :t)"),
                    {"id": sid, "t": T0, "kwh": str(Decimal(1)), "tok": token, "cus": customer, "st": status})
        migrate(engine)
        with engine.connect() as conn:
            rows = {r.id: (r.status, r.unassigned_reason) for r in conn.execute(text(
                "SELECT id, status, unassigned_reason FROM charging_session"))}
        assert rows == {"ses_lost": ("unassigned", "not_checked"), "ses_adhoc": ("rated", ""),
                        "ses_billed": ("rated", ""), "ses_unrated": ("unrated", "")}
        with engine.begin() as conn:
            cfg = alembic_config(engine)
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0011_manual_hold_consumed")
        with engine.connect() as conn:
            statuses = {r.id: r.status for r in conn.execute(text("SELECT id, status FROM charging_session"))}
        assert statuses["ses_lost"] == "unrated"  # no rating stored for it here: unrated, not rated
    finally:
        cleanup()  # type: ignore[operator]
