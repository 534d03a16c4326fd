"""The tables. Every business row carries ``tenant_id``; repositories filter on it so no query
can cross tenants by accident.

Amounts are ``ExactDecimal`` (NUMERIC on PostgreSQL, decimal strings on SQLite), times are aware
UTC. Published ruleset versions, ratings, rated lines and audit entries are append-only: nothing
in the code updates them, and ORM events refuse it (see ``store.guards``).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from store.types import ExactDecimal, UTCDateTime, utcnow

__all__ = [
    "ROLES",
    "Agreement",
    "ApiKey",
    "AuditEntry",
    "BillingAccount",
    "ChargePoint",
    "ChargingPeriodRow",
    "ChargingSession",
    "Contract",
    "Customer",
    "CustomerGroup",
    "Evse",
    "Location",
    "Partner",
    "PricePoint",
    "PriceSeries",
    "RatedLineRow",
    "Ruleset",
    "RulesetDraft",
    "RulesetVersion",
    "SessionRating",
    "Tenant",
    "Token",
    "User",
    "metadata",
]

ROLES = ("admin", "analyst", "operator", "approver", "auditor", "partner")

metadata = SQLModel.metadata


def _dec(nullable: bool = True, **kw: Any) -> Any:
    return Field(default=None, sa_type=ExactDecimal, nullable=nullable, **kw)


def _ts(nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_type=UTCDateTime, nullable=nullable, index=index)


def _created() -> Any:
    return Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


def _json(default: Any = None) -> Any:
    if default is None:
        return Field(default=None, sa_column=Column(JSON, nullable=True))
    return Field(default_factory=lambda: type(default)(default), sa_column=Column(JSON, nullable=False))


# --- tenancy and access -------------------------------------------------------------------------

class Tenant(SQLModel, table=True):
    __tablename__ = "tenant"
    id: str = Field(primary_key=True, max_length=40)
    name: str = Field(max_length=200)
    legal_name: str = Field(default="", max_length=200)
    street: str = Field(default="", max_length=200, sa_column_kwargs={"server_default": ""})
    postal_code: str = Field(default="", max_length=20, sa_column_kwargs={"server_default": ""})
    city: str = Field(default="", max_length=100, sa_column_kwargs={"server_default": ""})
    country: str = Field(default="", max_length=2)
    vat_id: str = Field(default="", max_length=30)
    tax_number: str = Field(default="", max_length=30, sa_column_kwargs={"server_default": ""})
    creditor_id: str = Field(default="", max_length=35)  # SEPA creditor identifier
    iban: str = Field(default="", max_length=34)
    bic: str = Field(default="", max_length=11, sa_column_kwargs={"server_default": ""})
    email: str = Field(default="", max_length=200)
    currency: str = Field(default="EUR", max_length=3)
    timezone: str = Field(default="Europe/Berlin", max_length=64)
    # white-label documents: logo, colours, footer lines
    branding: dict[str, Any] = _json({})
    # head of the audit chain, locked while appending so concurrent writers cannot fork it
    audit_seq: int = Field(default=0)
    audit_head: str = Field(default="", max_length=64)
    created_at: datetime = _created()


class User(SQLModel, table=True):
    __tablename__ = "app_user"
    __table_args__ = (UniqueConstraint("tenant_id", "email"),)
    id: str = Field(primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenant.id", index=True, max_length=40)
    email: str = Field(max_length=200)
    name: str = Field(default="", max_length=200)
    role: str = Field(max_length=20)
    # partner users see only what belongs to their partner (its sites' sessions)
    partner_id: str | None = Field(default=None, foreign_key="partner.id", max_length=40)
    active: bool = Field(default=True)
    created_at: datetime = _created()


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_key"
    id: str = Field(primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenant.id", index=True, max_length=40)
    user_id: str = Field(foreign_key="app_user.id", index=True, max_length=40)
    name: str = Field(default="", max_length=200)
    # sha256 of the secret part; the secret itself is shown once at creation and never stored
    secret_sha256: str = Field(max_length=64)
    created_at: datetime = _created()
    revoked_at: datetime | None = _ts()


# --- customers, accounts, contracts, tokens -----------------------------------------------------

class CustomerGroup(SQLModel, table=True):
    __tablename__ = "customer_group"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)
    id: str = Field(primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenant.id", index=True, max_length=40)
    name: str = Field(max_length=100)
    description: str = Field(default="", max_length=500)
    created_at: datetime = _created()


class Customer(SQLModel, table=True):
    __tablename__ = "customer"
    __table_args__ = (Index("ix_customer_tenant_name", "tenant_id", "name"),
                      Index("ux_customer_tenant_number", "tenant_id", "number", unique=True))
    id: str = Field(primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenant.id", index=True, max_length=40)
    # the customer number documents print (``K-10001``): drawn from the tenant's ``CUS`` number
    # series when the customer is created (``store.customers``), never changed
    number: str | None = Field(default=None, max_length=40)
    kind: str = Field(default="private", max_length=20)  # private | business
    name: str = Field(max_length=200)
    company_name: str = Field(default="", max_length=200)
    email: str = Field(default="", max_length=200)
    phone: str = Field(default="", max_length=50, sa_column_kwargs={"server_default": ""})
    language: str = Field(default="de", max_length=10)
    vat_id: str = Field(default="", max_length=30)
    # the last check of ``vat_id`` (api.vies.VatCheck.to_dict: the ID checked, valid / invalid /
    # unchecked, when, VIES's consultation number, name and address, or why it could not tell)
    vat_check: dict[str, Any] | None = _json()
    street: str = Field(default="", max_length=200)
    postal_code: str = Field(default="", max_length=20)
    city: str = Field(default="", max_length=100)
    country: str = Field(default="", max_length=2)
    # names of customer groups; rating matches `when group ...` against them
    groups: list[str] = _json([])
    external_ref: str = Field(default="", max_length=100)
    created_at: datetime = _created()
    updated_at: datetime = _created()


class BillingAccount(SQLModel, table=True):
    __tablename__ = "billing_account"
    # (tenant, customer) rather than the customer alone: without statistics SQLite's planner takes
    # the tenant index for "tenant = ? and customer = ?" and walks every account of the tenant
    __table_args__ = (Index("ix_billing_account_tenant_customer", "tenant_id", "customer_id"),)
    id: str = Field(primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenant.id", index=True, max_length=40)
    customer_id: str = Field(foreign_key="customer.id", index=True, max_length=40)
    name: str = Field(default="", max_length=200)
    currency: str = Field(default="EUR", max_length=3)
    timezone: str = Field(default="Europe/Berlin", max_length=64)
    billing_cycle: str = Field(default="monthly", max_length=20)
    payment_terms: str = Field(default="net 14", max_length=50)
    invoice_email: str = Field(default="", max_length=200)
    # billing address when it differs from the customer's
    street: str = Field(default="", max_length=200)
    postal_code: str = Field(default="", max_length=20)
    city: str = Field(default="", max_length=100)
    country: str = Field(default="", max_length=2)
    status: str = Field(default="active", max_length=20)
    created_at: datetime = _created()


class Contract(SQLModel, table=True):
    __tablename__ = "contract"
    __table_args__ = (Index("ix_contract_tenant_account", "tenant_id", "account_id"),)  # see BillingAccount
    id: str = Field(primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenant.id", index=True, max_length=40)
    account_id: str = Field(foreign_key="billing_account.id", index=True, max_length=40)
    customer_id: str = Field(foreign_key="customer.id", index=True, max_length=40)
    product: str = Field(max_length=100)
    billing_period: str = Field(default="monthly", max_length=20)  # monthly | quarterly | annual
    payment_method: str = Field(default="sepa_direct_debit", max_length=30)
    mandate_reference: str = Field(default="", max_length=35)
    mandate_signed_on: date | None = Field(default=None)
    mandate_sequence: str = Field(default="", max_length=4)  # FRST | RCUR | OOFF | FNAL
    start_date: date
    end_date: date | None = Field(default=None)
    terminated_on: date | None = Field(default=None)
    termination_reason: str = Field(default="", max_length=200)
    status: str = Field(default="active", max_length=20)
    # why the status is what it is when the system set it (a dunning case that suspended it)
    status_reason: str = Field(default="", max_length=200, sa_column_kwargs={"server_default": ""})
    # documents: the e-invoice formats the customer chose (comma-separated, e.g. "xrechnung-ubl,pdf";
    # empty: by customer kind), the Leitweg-ID of a public buyer, the IBAN the mandate debits
    document_formats: str = Field(default="", max_length=120, sa_column_kwargs={"server_default": ""})
    leitweg_id: str = Field(default="", max_length=46, sa_column_kwargs={"server_default": ""})
    debtor_iban: str = Field(default="", max_length=34, sa_column_kwargs={"server_default": ""})
    # the customer's cost centre for sessions charged under the contract (a token's own wins; issue 18)
    cost_centre: str = Field(default="", max_length=40, sa_column_kwargs={"server_default": ""})
    created_at: datetime = _created()


class Token(SQLModel, table=True):
    __tablename__ = "token"
    __table_args__ = (UniqueConstraint("tenant_id", "uid"),)
    id: str = Field(primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenant.id", index=True, max_length=40)
    uid: str = Field(max_length=64)  # RFID UID, app user id or eMAID
    kind: str = Field(default="rfid", max_length=20)  # rfid | app | emaid
    emaid: str = Field(default="", max_length=64)  # OCPI contract_id
    visual_number: str = Field(default="", max_length=64)
    status: str = Field(default="active", max_length=20)  # active | blocked | expired
    contract_id: str | None = Field(default=None, foreign_key="contract.id", index=True, max_length=40)
    issuing_partner_id: str | None = Field(default=None, foreign_key="partner.id", max_length=40)
    # the cost centre its sessions are booked to (a depot's fleet vehicle, a department); wins over
    # the contract's (issue 18)
    cost_centre: str = Field(default="", max_length=40, sa_column_kwargs={"server_default": ""})
    created_at: datetime = _created()


# --- partners, sites ----------------------------------------------------------------------------

class Partner(SQLModel, table=True):
    __tablename__ = "partner"
    id: str = Field(primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenant.id", index=True, max_length=40)
    kind: str = Field(max_length=20)  # site_host | emsp | fleet | subcontractor
    name: str = Field(max_length=200)
    country_code: str = Field(default="", max_length=2)
    party_id: str = Field(default="", max_length=3)  # OCPI party id for eMSPs
    vat_id: str = Field(default="", max_length=30)
    # the billing address (clearing invoices and host credit notes name it; migration 0033)
    street: str = Field(default="", max_length=200, sa_column_kwargs={"server_default": ""})
    postal_code: str = Field(default="", max_length=20, sa_column_kwargs={"server_default": ""})
    city: str = Field(default="", max_length=100, sa_column_kwargs={"server_default": ""})
    iban: str = Field(default="", max_length=34)
    email: str = Field(default="", max_length=200)
    # what a self-billing credit note (issue 15, migration 0032) states of the partner beside its address
    language: str = Field(default="", max_length=2, sa_column_kwargs={"server_default": ""})  # the credit note's language ("": the tenant's)
    phone: str = Field(default="", max_length=40, sa_column_kwargs={"server_default": ""})
    tax_number: str = Field(default="", max_length=30, sa_column_kwargs={"server_default": ""})
    bic: str = Field(default="", max_length=11, sa_column_kwargs={"server_default": ""})
    # registered (VAT added) | small_business (§ 19 UStG: none) | reverse_charge (another EU
    # country) | not_subject (an employee's reimbursement); "": derived from country and VAT id
    vat_status: str = Field(default="", max_length=20, sa_column_kwargs={"server_default": ""})
    created_at: datetime = _created()


class Agreement(SQLModel, table=True):
    __tablename__ = "agreement"
    id: str = Field(primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenant.id", index=True, max_length=40)
    partner_id: str = Field(foreign_key="partner.id", index=True, max_length=40)
    kind: str = Field(max_length=30)  # revenue_share | roaming | fleet | service | subcontract
    reference: str = Field(default="", max_length=100)
    # the ruleset block (revenue_share, commission, ...) that prices this agreement
    ruleset_name: str = Field(default="", max_length=100)
    rule_name: str = Field(default="", max_length=100)
    valid_from: date
    valid_to: date | None = Field(default=None)
    terms: dict[str, Any] = _json({})
    created_at: datetime = _created()


class Location(SQLModel, table=True):
    __tablename__ = "location"
    __table_args__ = (Index("ix_location_tenant_code", "tenant_id", "code"),)
    id: str = Field(primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenant.id", index=True, max_length=40)
    code: str = Field(default="", max_length=64)  # the id chargers/CDRs use (OCPI location id)
    name: str = Field(max_length=200)
    street: str = Field(default="", max_length=200)
    postal_code: str = Field(default="", max_length=20)
    city: str = Field(default="", max_length=100)
    country: str = Field(max_length=2)
    timezone: str = Field(max_length=64)
    latitude: Decimal | None = _dec()
    longitude: Decimal | None = _dec()
    site_host_id: str | None = Field(default=None, foreign_key="partner.id", index=True, max_length=40)
    ruleset_id: str | None = Field(default=None, foreign_key="ruleset.id", max_length=40)
    # the site's grid connection shared by its running sessions (issue 18, load limits; None: no limit)
    capacity_kw: Decimal | None = _dec()
    created_at: datetime = _created()


class ChargePoint(SQLModel, table=True):
    __tablename__ = "charge_point"
    # the OCPP path carries only the identity, so it is unique across tenants
    __table_args__ = (UniqueConstraint("identity"),)
    id: str = Field(primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenant.id", index=True, max_length=40)
    location_id: str = Field(foreign_key="location.id", index=True, max_length=40)
    identity: str = Field(max_length=64)
    ocpp_version: str = Field(default="1.6", max_length=8)
    vendor: str = Field(default="", max_length=100)
    model: str = Field(default="", max_length=100)
    serial_number: str = Field(default="", max_length=100)
    # OCPP security profile 1/2 basic auth password, stored hashed like API keys
    password_sha256: str = Field(default="", max_length=64)
    status: str = Field(default="active", max_length=20)
    created_at: datetime = _created()


class Evse(SQLModel, table=True):
    __tablename__ = "evse"
    __table_args__ = (UniqueConstraint("tenant_id", "evse_uid"),)
    id: str = Field(primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenant.id", index=True, max_length=40)
    location_id: str = Field(foreign_key="location.id", index=True, max_length=40)
    charge_point_id: str | None = Field(default=None, foreign_key="charge_point.id", max_length=40)
    evse_uid: str = Field(max_length=64)  # e.g. DE*ABC*E123*1
    connector_id: int = Field(default=1)
    power_type: str = Field(default="AC", max_length=2)  # AC | DC
    max_power_kw: Decimal = _dec(nullable=False)
    status: str = Field(default="available", max_length=20)
    created_at: datetime = _created()


# --- rulesets and price series ------------------------------------------------------------------

class Ruleset(SQLModel, table=True):
    __tablename__ = "ruleset"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)
    id: str = Field(primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenant.id", index=True, max_length=40)
    name: str = Field(max_length=100)
    description: str = Field(default="", max_length=500)
    created_by: str = Field(max_length=40)
    created_at: datetime = _created()


class RulesetDraft(SQLModel, table=True):
    __tablename__ = "ruleset_draft"
    id: str = Field(primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenant.id", index=True, max_length=40)
    ruleset_id: str = Field(foreign_key="ruleset.id", index=True, max_length=40)
    source: str
    sha256: str = Field(max_length=64)
    ok: bool
    diagnostics: list[dict[str, Any]] = _json([])
    author_id: str = Field(max_length=40)
    created_at: datetime = _created()


class RulesetVersion(SQLModel, table=True):
    """A published version: immutable; ``effective_from`` decides which sessions it rates."""

    __tablename__ = "ruleset_version"
    __table_args__ = (UniqueConstraint("ruleset_id", "version"),
                      Index("ix_ruleset_version_effective", "tenant_id", "effective_from"))
    id: str = Field(primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenant.id", index=True, max_length=40)
    ruleset_id: str = Field(foreign_key="ruleset.id", index=True, max_length=40)
    version: int
    draft_id: str = Field(foreign_key="ruleset_draft.id", max_length=40)
    source: str
    sha256: str = Field(max_length=64)
    dsl_name: str = Field(default="", max_length=100)
    currency: str = Field(default="", max_length=3)
    timezone: str = Field(default="", max_length=64)
    tariff_names: list[str] = _json([])
    effective_from: datetime = Field(sa_type=UTCDateTime, nullable=False)
    author_id: str = Field(max_length=40)
    publisher_id: str = Field(max_length=40)
    published_at: datetime = _created()
    note: str = Field(default="", max_length=500)


class PriceSeries(SQLModel, table=True):
    __tablename__ = "price_series"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)
    id: str = Field(primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenant.id", index=True, max_length=40)
    name: str = Field(max_length=100)  # what `index(NAME)` refers to
    unit: str = Field(default="per kWh", max_length=20)
    currency: str = Field(default="EUR", max_length=3)
    resolution_minutes: int = Field(default=60)
    description: str = Field(default="", max_length=500)
    created_at: datetime = _created()


class PricePoint(SQLModel, table=True):
    __tablename__ = "price_point"
    __table_args__ = (UniqueConstraint("series_id", "start"),)
    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str = Field(foreign_key="tenant.id", index=True, max_length=40)
    series_id: str = Field(foreign_key="price_series.id", index=True, max_length=40)
    start: datetime = Field(sa_type=UTCDateTime, nullable=False)
    value: Decimal = _dec(nullable=False)
    # the end of the interval (exclusive; migration 0027): imported day-ahead files say it, and a
    # moment between one interval's end and the next start has no price. None: until the next start
    ends_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)


# --- sessions and ratings -----------------------------------------------------------------------

class ChargingSession(SQLModel, table=True):
    __tablename__ = "charging_session"
    __table_args__ = (UniqueConstraint("tenant_id", "external_id"),
                      Index("ix_session_tenant_start", "tenant_id", "start"),
                      # the review list (status ``unassigned``) and the sessions a new or changed
                      # token brings in (by uid), without walking the tenant's rated sessions
                      Index("ix_session_tenant_status_token", "tenant_id", "status", "token_uid"))
    id: str = Field(primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenant.id", index=True, max_length=40)
    external_id: str = Field(max_length=100)
    source: str = Field(max_length=20)  # ocpi_cdr | csv | json | ocpp
    payload_sha256: str = Field(max_length=64)
    start: datetime = Field(sa_type=UTCDateTime, nullable=False)
    end: datetime = Field(sa_type=UTCDateTime, nullable=False)
    energy_kwh: Decimal = _dec(nullable=False)
    location_ref: str = Field(default="", max_length=64)
    evse_ref: str = Field(default="", max_length=64)
    token_uid: str = Field(default="", max_length=64)
    location_id: str | None = Field(default=None, foreign_key="location.id", max_length=40)
    site_host_id: str | None = Field(default=None, foreign_key="partner.id", index=True, max_length=40)
    token_id: str | None = Field(default=None, foreign_key="token.id", max_length=40)
    customer_id: str | None = Field(default=None, foreign_key="customer.id", index=True, max_length=40)
    contract_id: str | None = Field(default=None, foreign_key="contract.id", max_length=40)
    tariff: str = Field(default="", max_length=100)
    # the facts rating saw, in the `evbill rate` JSON shape, so re-rating needs nothing else
    facts: dict[str, Any] = _json({})
    # rated | unrated | rating_failed | unassigned (no billing account to bill it to; see
    # ``unassigned_reason``: no invoice takes it until token/contract data resolve it)
    status: str = Field(default="unrated", max_length=20)
    rating_error: str = Field(default="", max_length=1000)
    # why no billing account takes the session (stable code, e.g. ``unknown_token``) and the same
    # for a person; both empty once it is assigned
    unassigned_reason: str = Field(default="", max_length=40, sa_column_kwargs={"server_default": ""})
    unassigned_message: str = Field(default="", max_length=300, sa_column_kwargs={"server_default": ""})
    current_rating_id: str | None = Field(default=None, max_length=40)
    currency: str = Field(default="", max_length=3)
    net_total: Decimal | None = _dec()
    tax_total: Decimal | None = _dec()
    gross_total: Decimal | None = _dec()
    # Eichrecht (``runtime.ocmf``): "" (no signed data, none required), ``verified``, or a hold reason,
    # ``meter_signature_invalid`` / ``meter_mismatch``: the invoice that takes the session is held
    # for a person; the details are in ``facts["signed_meter"]``
    meter_check: str = Field(default="", max_length=40, sa_column_kwargs={"server_default": ""})
    # the cost centre taken when the session was stored: the token's, else its contract's (issue 18);
    # partner statements and the partner portal sum energy and revenue per cost centre
    cost_centre: str = Field(default="", max_length=40, sa_column_kwargs={"server_default": ""})
    created_at: datetime = _created()


class ChargingPeriodRow(SQLModel, table=True):
    __tablename__ = "charging_period"
    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str = Field(foreign_key="tenant.id", max_length=40)
    session_id: str = Field(foreign_key="charging_session.id", index=True, max_length=40)
    seq: int
    start: datetime = Field(sa_type=UTCDateTime, nullable=False)
    end: datetime = Field(sa_type=UTCDateTime, nullable=False)
    energy_kwh: Decimal = _dec(nullable=False)
    time_h: Decimal = _dec(nullable=False)
    parking_h: Decimal = _dec(nullable=False)
    max_power_kw: Decimal | None = _dec()


class SessionRating(SQLModel, table=True):
    """One rating of a session. Re-rating appends a new one; earlier ratings stay as history."""

    __tablename__ = "session_rating"
    __table_args__ = (UniqueConstraint("session_id", "seq"),)
    id: str = Field(primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenant.id", max_length=40)
    session_id: str = Field(foreign_key="charging_session.id", index=True, max_length=40)
    seq: int
    reason: str = Field(default="import", max_length=200)
    ruleset_version_id: str = Field(foreign_key="ruleset_version.id", max_length=40)
    sha256: str = Field(max_length=64)
    tariff: str = Field(default="", max_length=100)
    currency: str = Field(max_length=3)
    net_total: Decimal = _dec(nullable=False)
    tax_total: Decimal = _dec(nullable=False)
    gross_total: Decimal = _dec(nullable=False)
    trace: list[dict[str, Any]] = _json([])
    rated_by: str = Field(default="", max_length=40)
    rated_at: datetime = _created()


class RatedLineRow(SQLModel, table=True):
    __tablename__ = "rated_line"
    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str = Field(foreign_key="tenant.id", max_length=40)
    rating_id: str = Field(foreign_key="session_rating.id", index=True, max_length=40)
    session_id: str = Field(foreign_key="charging_session.id", max_length=40)
    seq: int
    component: str = Field(max_length=30)
    description: str = Field(default="", max_length=300)
    quantity: Decimal = _dec(nullable=False)
    unit: str = Field(default="", max_length=20)
    unit_price: Decimal = _dec(nullable=False)
    net: Decimal = _dec(nullable=False)  # unrounded
    net_rounded: Decimal = _dec(nullable=False)
    tax_rate: Decimal = _dec(nullable=False)
    currency: str = Field(max_length=3)
    rule: str = Field(default="", max_length=500)
    cost_group: str = Field(default="", max_length=20)


# --- audit --------------------------------------------------------------------------------------

class AuditEntry(SQLModel, table=True):
    """Append-only, hash-chained per tenant: ``hash = sha256(canonical content + prev_hash)``."""

    __tablename__ = "audit_entry"
    __table_args__ = (UniqueConstraint("tenant_id", "seq"),)
    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str = Field(foreign_key="tenant.id", index=True, max_length=40)
    seq: int
    at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    actor_id: str = Field(default="", max_length=40)
    actor_role: str = Field(default="", max_length=20)
    action: str = Field(max_length=60)
    entity: str = Field(max_length=40)
    entity_id: str = Field(default="", max_length=100)
    before: dict[str, Any] | None = _json()
    after: dict[str, Any] | None = _json()
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)
