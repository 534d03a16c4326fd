"""Customers, customer groups, billing accounts, contracts and tokens (the CRM).

Writes to tokens, contracts and billing accounts bring in the unassigned sessions they resolve
(``api.session_assignment``), in the same transaction."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from litestar import Router
from pydantic import Field

from api.areas.billing import follow_schedules
from api.crud import Ref, WriteModel, crud_router
from api.schemas import Country, Currency, Id, RefId, read_of, update_of
from api.session_assignment import on_account_write, on_contract_write, on_token_write
from store.errors import InvalidInput
from store.models import BillingAccount, Contract, Customer, CustomerGroup, Partner, Token
from store.repo import Scope

__all__ = ["router"]

Name = Field(min_length=1, max_length=200)


# --- schemas ------------------------------------------------------------------------------------

class CustomerGroupCreate(WriteModel):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[a-z0-9_]+$",
                      description="the name rulesets match with `when group NAME`")
    description: str = Field("", max_length=500)


CustomerGroupUpdate = update_of(CustomerGroupCreate, "CustomerGroupUpdate")
CustomerGroupRead = read_of(CustomerGroupCreate, "CustomerGroupRead")


class CustomerCreate(WriteModel):
    kind: Literal["private", "business"] = "private"
    name: str = Name
    company_name: str = Field("", max_length=200)
    email: str = Field("", max_length=200)
    phone: str = Field("", max_length=50)
    language: str = Field("de", pattern=r"^[a-z]{2}(-[A-Z]{2})?$", max_length=5)
    vat_id: str = Field("", max_length=30, pattern=r"^([A-Z]{2}[0-9A-Za-z+*.]{2,13})?$")
    street: str = Field("", max_length=200)
    postal_code: str = Field("", max_length=20)
    city: str = Field("", max_length=100)
    country: Country = ""
    groups: list[str] = Field(default_factory=list, max_length=20,
                              json_schema_extra={"items": {"type": "string", "maxLength": 100}})
    external_ref: str = Field("", max_length=100)


CustomerUpdate = update_of(CustomerCreate, "CustomerUpdate")
CustomerRead = read_of(CustomerCreate, "CustomerRead", updated_at=datetime)


class BillingAccountCreate(WriteModel):
    customer_id: Id
    name: str = Field("", max_length=200)
    currency: Currency = "EUR"
    timezone: str = Field("Europe/Berlin", min_length=1, max_length=64)
    billing_cycle: Literal["monthly", "quarterly", "annual", "ad_hoc"] = "monthly"
    payment_terms: str = Field("net 14", max_length=50)
    invoice_email: str = Field("", max_length=200)
    street: str = Field("", max_length=200)
    postal_code: str = Field("", max_length=20)
    city: str = Field("", max_length=100)
    country: Country = ""
    status: Literal["active", "closed"] = "active"


BillingAccountUpdate = update_of(BillingAccountCreate, "BillingAccountUpdate")
BillingAccountRead = read_of(BillingAccountCreate, "BillingAccountRead")


class ContractCreate(WriteModel):
    account_id: Id
    customer_id: Id
    product: str = Field(min_length=1, max_length=100)
    billing_period: Literal["monthly", "quarterly", "annual"] = "monthly"
    payment_method: Literal["sepa_direct_debit", "card", "bank_transfer", "invoice"] = "sepa_direct_debit"
    mandate_reference: str = Field("", max_length=35)
    mandate_signed_on: date | None = None
    mandate_sequence: Literal["", "FRST", "RCUR", "OOFF", "FNAL"] = ""
    start_date: date
    end_date: date | None = None
    terminated_on: date | None = None
    termination_reason: str = Field("", max_length=200)
    status: Literal["active", "terminated", "suspended"] = "active"
    document_formats: str = Field(
        "", max_length=120,
        pattern=r"^((pdf|facturx-pdf|xrechnung-ubl|xrechnung-cii|peppol-ubl)(,(pdf|facturx-pdf|xrechnung-ubl"
                r"|xrechnung-cii|peppol-ubl))*)?$",
        description="the invoice formats the customer chose, comma-separated; empty: by customer kind")
    leitweg_id: str = Field("", max_length=46, pattern=r"^([0-9]{2,12}(-[0-9A-Za-z]{1,30})?-[0-9]{2})?$",
                            description="Leitweg-ID of a German public buyer (XRechnung buyer reference)")
    debtor_iban: str = Field("", max_length=34, pattern=r"^([A-Z]{2}[0-9]{2}[A-Z0-9]{1,30})?$",
                             description="the IBAN the SEPA mandate debits")


ContractUpdate = update_of(ContractCreate, "ContractUpdate")
ContractRead = read_of(ContractCreate, "ContractRead")


class TokenCreate(WriteModel):
    uid: str = Field(min_length=1, max_length=64)
    kind: Literal["rfid", "app", "emaid"] = "rfid"
    emaid: str = Field("", max_length=64)
    visual_number: str = Field("", max_length=64)
    status: Literal["active", "blocked", "expired"] = "active"
    contract_id: RefId = None
    issuing_partner_id: RefId = None


TokenUpdate = update_of(TokenCreate, "TokenUpdate")
TokenRead = read_of(TokenCreate, "TokenRead")


# --- services -----------------------------------------------------------------------------------

def _check_contract(scope: Scope, values: dict[str, Any], _existing: Any) -> None:
    if values.get("end_date") and values["end_date"] < values["start_date"]:
        raise InvalidInput("contract_end_before_start", "end_date is before start_date")
    if values.get("payment_method") == "sepa_direct_debit" and values.get("mandate_reference") \
            and not values.get("mandate_signed_on"):
        raise InvalidInput("mandate_date_missing", "a SEPA mandate reference needs mandate_signed_on")
    acc = scope.repo(BillingAccount, "billing_account", "acc").get(values["account_id"])
    if acc.customer_id != values["customer_id"]:
        raise InvalidInput("account_customer_mismatch", "the billing account belongs to another customer")


def _check_customer(scope: Scope, values: dict[str, Any], _existing: Any) -> None:
    if values.get("kind") == "business" and not values.get("company_name"):
        raise InvalidInput("company_name_required", "a business customer needs a company_name")


# --- controllers --------------------------------------------------------------------------------

router = Router(path="/", route_handlers=[
    crud_router(path="/customer-groups", tag="customers", entity="customer_group", plural="customer_groups",
                prefix="grp", model=CustomerGroup, create=CustomerGroupCreate, update=CustomerGroupUpdate,
                read=CustomerGroupRead, search_cols=("name", "description")),
    crud_router(path="/customers", tag="customers", entity="customer", plural="customers", prefix="cus",
                model=Customer, create=CustomerCreate, update=CustomerUpdate, read=CustomerRead,
                filters={"kind": str, "country": str, "language": str, "external_ref": str},
                json_filters={"group": "groups"},
                search_cols=("name", "company_name", "email", "city", "vat_id", "external_ref"),
                validate=_check_customer),
    # the account's Temporal Schedule follows its writes (a no-op without Temporal)
    Router(path="/", middleware=[follow_schedules], route_handlers=[
        crud_router(path="/billing-accounts", tag="customers", entity="billing_account", plural="billing_accounts",
                    prefix="acc", model=BillingAccount, create=BillingAccountCreate, update=BillingAccountUpdate,
                    read=BillingAccountRead, filters={"customer_id": str, "status": str},
                    search_cols=("name", "invoice_email"), refs={"customer_id": Ref(Customer, "customer")},
                    on_write=on_account_write)]),
    crud_router(path="/contracts", tag="customers", entity="contract", plural="contracts", prefix="con",
                model=Contract, create=ContractCreate, update=ContractUpdate, read=ContractRead,
                filters={"customer_id": str, "account_id": str, "product": str, "status": str},
                search_cols=("product", "mandate_reference"),
                refs={"account_id": Ref(BillingAccount, "billing_account"), "customer_id": Ref(Customer, "customer")},
                clearable=("mandate_signed_on", "end_date", "terminated_on"), validate=_check_contract,
                on_write=on_contract_write),
    crud_router(path="/tokens", tag="customers", entity="token", plural="tokens", prefix="tok", model=Token,
                create=TokenCreate, update=TokenUpdate, read=TokenRead,
                filters={"status": str, "kind": str, "contract_id": str, "uid": str},
                search_cols=("uid", "emaid", "visual_number"),
                refs={"contract_id": Ref(Contract, "contract"), "issuing_partner_id": Ref(Partner, "partner")},
                clearable=("contract_id", "issuing_partner_id"), on_write=on_token_write),
])
