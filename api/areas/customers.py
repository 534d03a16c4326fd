"""Customers, customer groups, billing accounts, contracts and tokens (the CRM).

Writes to tokens, contracts and billing accounts bring in the unassigned sessions they resolve
(``api.session_assignment``), in the same transaction."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, Literal

from litestar import Request, Router
from pydantic import Field

from api.areas.billing import follow_schedules
from api.crud import Ref, WriteModel, crud_router, open_scope, route
from api.schemas import Country, Currency, Id, RefId, read_of, update_of
from api.session_assignment import on_account_write, on_contract_write, on_token_write
from api.validation import Email, Iban, Timezone, VatId
from store.errors import InvalidInput
from store.models import BillingAccount, Contract, Customer, CustomerGroup, Partner, Token
from store.repo import Repo, Scope
from store.types import utcnow

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
    email: Email = ""
    phone: str = Field("", max_length=50)
    language: str = Field("de", pattern=r"^[a-z]{2}(-[A-Z]{2})?$", max_length=5)
    vat_id: VatId = ""
    street: str = Field("", max_length=200)
    postal_code: str = Field("", max_length=20)
    city: str = Field("", max_length=100)
    country: Country = ""
    groups: list[str] = Field(default_factory=list, max_length=20,
                              json_schema_extra={"items": {"type": "string", "maxLength": 100}})
    external_ref: str = Field("", max_length=100)


CustomerUpdate = update_of(CustomerCreate, "CustomerUpdate")
# ``number``: the customer number documents print, drawn at creation from the tenant's series
# (``store.customers``); read-only, so it is not in CustomerCreate/CustomerUpdate
# ``vat_check``: the last check of ``vat_id`` (``api.vies``), read-only: the ID checked, ``outcome``
# valid / invalid / unchecked, ``checked_at``, ``source`` vies / format, VIES's ``consultation``
# number, ``name`` and ``address``, or the ``reason`` it could not tell
CustomerRead = read_of(CustomerCreate, "CustomerRead", number=str | None, updated_at=datetime,
                       vat_check=dict[str, Any] | None)


class BillingAccountCreate(WriteModel):
    customer_id: Id
    name: str = Field("", max_length=200)
    currency: Currency = "EUR"
    timezone: Timezone = "Europe/Berlin"
    billing_cycle: Literal["monthly", "quarterly", "annual", "ad_hoc"] = "monthly"
    payment_terms: str = Field("net 14", max_length=50)
    invoice_email: Email = ""
    street: str = Field("", max_length=200)
    postal_code: str = Field("", max_length=20)
    city: str = Field("", max_length=100)
    country: Country = ""
    status: Literal["active", "closed"] = "active"


BillingAccountUpdate = update_of(BillingAccountCreate, "BillingAccountUpdate")
BillingAccountRead = read_of(BillingAccountCreate, "BillingAccountRead")


# a cost centre as accounting writes it ("4711", "KST-Fuhrpark/Nord"): printable, no surrounding blanks
_COST_CENTRE = r"^([^\s\x00-\x1f\x7f]([^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f])?)?$"


class ContractCreate(WriteModel):
    account_id: Id
    customer_id: Id
    product: str = Field("", max_length=100, description="a product of a published ruleset (its `product` "
                                                         "block); empty: sessions priced by the tariffs alone")
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
    debtor_iban: Iban = Field("", description="the IBAN the SEPA mandate debits (stored compact)")
    cost_centre: str = Field("", max_length=40, pattern=_COST_CENTRE,
                             description="the cost centre sessions under the contract are booked to (a token's "
                                         "own wins); sessions take it when they are stored")


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
    cost_centre: str = Field("", max_length=40, pattern=_COST_CENTRE,
                             description="the cost centre the token's sessions are booked to (wins over the "
                                         "contract's); sessions take it when they are stored")


TokenUpdate = update_of(TokenCreate, "TokenUpdate")
TokenRead = read_of(TokenCreate, "TokenRead")


# --- services -----------------------------------------------------------------------------------

def _field_error(code: str, key: str, message: str) -> InvalidInput:
    """A 422 naming the field it is about, in the shape of the master-data checks' problems."""
    return InvalidInput(code, f"{key}: {message}", errors=[{"key": key, "message": message, "source": "body",
                                                           "code": code}])


def _check_contract(scope: Scope, values: dict[str, Any], existing: Any) -> None:
    if values.get("end_date") and values["end_date"] < values["start_date"]:
        raise InvalidInput("contract_end_before_start", "end_date is before start_date")
    if values.get("payment_method") == "sepa_direct_debit" and values.get("status") == "active":
        _check_mandate(values)
    acc = scope.repo(BillingAccount, "billing_account", "acc").get(values["account_id"])
    if acc.customer_id != values["customer_id"]:
        raise InvalidInput("account_customer_mismatch", "the billing account belongs to another customer")
    # the product is checked when it is set: a product a later ruleset version no longer sells
    # must not stop its old contracts from being terminated or suspended
    if values.get("product") and (existing is None or values["product"] != existing.product):
        _check_product(scope, values["product"])


def _check_mandate(values: dict[str, Any]) -> None:
    """An active direct-debit contract can be debited: it names its mandate, the day the debtor
    signed it and an IBAN with valid check digits (a PATCH is checked as the merged contract)."""
    from api.validation import check_iban
    from runtime.bank.identifiers import iban_in_sepa_zone

    missing = [k for k in ("mandate_reference", "mandate_signed_on", "debtor_iban") if not values.get(k)]
    if missing:
        message = "sepa_direct_debit needs a SEPA mandate: set " + ", ".join(missing)
        raise InvalidInput("sepa_mandate_missing", message, errors=[
            {"key": k, "message": "required for payment_method sepa_direct_debit", "source": "body",
             "code": "sepa_mandate_missing"} for k in missing])
    try:
        iban = check_iban(values["debtor_iban"])  # stored before IBANs were checked
    except ValueError as exc:
        raise _field_error("invalid_iban", "debtor_iban", str(exc).splitlines()[0]) from None
    if not iban_in_sepa_zone(iban):
        raise _field_error("iban_outside_sepa", "debtor_iban",
                           f"{iban[:2]!r} accounts are outside the SEPA zone: they cannot be debited by SEPA direct debit")
    signed = values["mandate_signed_on"]
    if signed > utcnow().date() + timedelta(days=1):  # a day's grace: the debtor may be a zone ahead
        raise _field_error("mandate_signed_in_future", "mandate_signed_on",
                           f"a mandate is signed before it is used; {signed.isoformat()} is in the future")


def _check_product(scope: Scope, product: str) -> None:
    """A contract's product is one a published ruleset sells (a ``product`` block of a version in
    force now or to come): an unknown name would silently bill the default tariff."""
    import difflib

    from api.rating import dsl_available, products_known

    if not dsl_available():
        return
    known = products_known(scope, utcnow())
    if product in known:
        return
    if not known:
        raise _field_error("unknown_product", "product",
                           f"unknown product {product!r}: no published ruleset defines products "
                           f"(publish one with a product block, or leave product empty)")
    near = difflib.get_close_matches(product, list(known), n=1)
    hint = f"did you mean {near[0]!r}? " if near else ""
    raise _field_error("unknown_product", "product",
                       f"unknown product {product!r}: {hint}the published rulesets sell "
                       f"{', '.join(repr(p) for p in sorted(known))}")


def _check_account(scope: Scope, values: dict[str, Any], existing: Any) -> None:
    """An account bills in its ruleset's currency: billing prices with the tenant's version in
    force (and the versions to come), so each of them must be in the account's currency."""
    if existing is not None and values.get("currency") == existing.currency:
        return
    from api.rating import versions_billing_uses

    other = [v for v in versions_billing_uses(scope, utcnow()) if v.currency and v.currency != values["currency"]]
    if other:
        v = other[0]
        raise _field_error("currency_mismatch", "currency",
                           f"the account's currency {values['currency']!r} is not the currency of ruleset "
                           f"{v.dsl_name!r} (version {v.version}, {v.currency!r}), which prices its invoices")


def _check_customer(scope: Scope, values: dict[str, Any], _existing: Any) -> None:
    if values.get("kind") == "business" and not values.get("company_name"):
        raise InvalidInput("company_name_required", "a business customer needs a company_name")


def _check_vat_id(scope: Scope, customer: Any, again: bool = False) -> None:
    """A customer's VAT ID set or changed (or last checked while VIES could not tell; or ``again``,
    asked for): checked online where ``EVBILL_VIES_URL`` turns that on (``api.vies``), with the
    tenant's VAT ID as the requester, and the outcome stored with the customer; a removed VAT ID
    drops the record. VIES off or unreachable records ``unchecked`` and never refuses the write."""
    from api.vies import check_vat_id, vies_from_env
    from store.models import Tenant

    last = customer.vat_check or {}
    if not customer.vat_id:
        if last:
            customer.vat_check = None
        return
    client = vies_from_env()
    if not again and last.get("vat_id") == customer.vat_id and (last.get("outcome") != "unchecked" or client is None):
        return
    tenant = scope.db.get(Tenant, scope.tenant_id)
    customer.vat_check = check_vat_id(customer.vat_id, tenant.vat_id if tenant is not None else "", client).to_dict()
    scope.db.add(customer)
    scope.db.flush()


# --- controllers --------------------------------------------------------------------------------

def recheck_vat_id(request: Request[Any, Any, Any], customer_id: str) -> Any:
    """A VAT ID can be withdrawn after it was checked: the operator asks again (e.g. before a
    large reverse-charge invoice). 422 ``no_vat_id`` for a customer without one."""
    with open_scope(request) as scope:
        customer = Repo(scope, Customer, "customer", "cus").get(customer_id)
        if not customer.vat_id:
            raise InvalidInput("no_vat_id", f"customer {customer_id!r} has no VAT ID to check")
        _check_vat_id(scope, customer, again=True)
        scope.commit()
        return CustomerRead.model_validate(customer, from_attributes=True)


recheck_vat_id.__annotations__["return"] = CustomerRead  # the generated model, for the OpenAPI document
recheck_vat_id = route(
    "POST", "/customers/{customer_id:str}/vat-check", operation_id="check_customer_vat_id", roles="write",
    summary="Check the customer's VAT ID again (VIES where EVBILL_VIES_URL is set) and store the outcome",
    status_code=200)(recheck_vat_id)


router = Router(path="/", route_handlers=[
    recheck_vat_id,
    crud_router(path="/customer-groups", tag="customers", entity="customer_group", plural="customer_groups",
                prefix="grp", model=CustomerGroup, create=CustomerGroupCreate, update=CustomerGroupUpdate,
                read=CustomerGroupRead, search_cols=("name", "description")),
    crud_router(path="/customers", tag="customers", entity="customer", plural="customers", prefix="cus",
                model=Customer, create=CustomerCreate, update=CustomerUpdate, read=CustomerRead,
                filters={"number": str, "kind": str, "country": str, "language": str, "external_ref": str},
                json_filters={"group": "groups"},
                search_cols=("number", "name", "company_name", "email", "city", "vat_id", "external_ref"),
                validate=_check_customer, on_write=_check_vat_id),
    # the account's Temporal Schedule follows its writes (a no-op without Temporal)
    Router(path="/", middleware=[follow_schedules], route_handlers=[
        crud_router(path="/billing-accounts", tag="customers", entity="billing_account", plural="billing_accounts",
                    prefix="acc", model=BillingAccount, create=BillingAccountCreate, update=BillingAccountUpdate,
                    read=BillingAccountRead, filters={"customer_id": str, "status": str},
                    search_cols=("name", "invoice_email"), refs={"customer_id": Ref(Customer, "customer")},
                    validate=_check_account, on_write=on_account_write)]),
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
