"""Partners (site hosts, eMSPs, fleets, sub-contractors), the agreements that price them, and the
partner statements (``api.areas.statements``) that this router carries."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from litestar import Router
from pydantic import Field

from api.areas.host_credits import handlers as credit_note_handlers
from api.areas.statements import TERM_KEYS, check_share_terms
from api.areas.statements import handlers as statement_handlers
from api.crud import Ref, WriteModel, crud_router
from api.schemas import Country, Id, read_of, update_of
from api.validation import Bic, Email, Iban, VatId
from store.errors import InvalidInput
from store.models import Agreement, Partner
from store.repo import Scope

__all__ = ["router"]


class PartnerCreate(WriteModel):
    kind: Literal["site_host", "emsp", "fleet", "subcontractor", "employee", "sales_partner"]
    name: str = Field(min_length=1, max_length=200)
    country_code: Country = ""
    party_id: str = Field("", pattern=r"^([A-Z0-9]{3})?$", description="OCPI party id")
    vat_id: VatId = ""
    iban: Iban = ""
    email: Email = ""
    # the billing address (clearing invoices, self-billing credit notes) and what its credit notes state
    street: str = Field("", max_length=200)
    postal_code: str = Field("", max_length=20)
    city: str = Field("", max_length=100)
    language: Literal["", "de", "en", "fr", "nl"] = Field("", description="the credit note's language; "
                                                                           "empty: the tenant's country's")
    phone: str = Field("", max_length=40, description="XRechnung needs the seller's phone (BR-DE-6)")
    tax_number: str = Field("", max_length=30, description="Steuernummer, where the host has no VAT id")
    bic: Bic = ""
    vat_status: Literal["", "registered", "small_business", "reverse_charge", "not_subject"] = Field(
        "", description="registered: VAT added; small_business (§ 19 UStG): none, with the exemption text; "
                        "reverse_charge: a host in another EU country; not_subject: an employee's "
                        "reimbursement; empty: from the kind, country, VAT id and tax number")


PartnerUpdate = update_of(PartnerCreate, "PartnerUpdate")
PartnerRead = read_of(PartnerCreate, "PartnerRead")


class AgreementCreate(WriteModel):
    partner_id: Id
    kind: Literal["revenue_share", "roaming", "fleet", "service", "subcontract", "reimbursement", "commission"]
    reference: str = Field("", max_length=100)
    ruleset_name: str = Field("", max_length=100)
    rule_name: str = Field("", max_length=100, description="e.g. the revenue_share block in the ruleset")
    valid_from: date
    valid_to: date | None = None
    terms: dict[str, str] = Field(default_factory=dict, max_length=50,
                                  description="revenue_share: share_percent, per_kwh, per_session, monthly_fee, "
                                              "reimburse_per_kwh (decimal strings), currency, sites "
                                              "(location codes, space-separated); any kind: netting ('true': "
                                              "what the partner owes from credit note corrections is deducted "
                                              "from its next credit notes' payouts)")


AgreementUpdate = update_of(AgreementCreate, "AgreementUpdate")
AgreementRead = read_of(AgreementCreate, "AgreementRead")


def _check_agreement(_scope: Scope, values: dict[str, Any], _existing: Any) -> None:
    if values.get("valid_to") and values["valid_to"] < values["valid_from"]:
        raise InvalidInput("agreement_ends_before_start", "valid_to is before valid_from")
    if values.get("kind") in ("reimbursement", "commission") and not (values.get("ruleset_name")
                                                                       and values.get("rule_name")):
        raise InvalidInput("agreement_rule_required", f"a {values['kind']} agreement names its ruleset (ruleset_name) "
                                                      f"and the {values['kind']} block that prices it (rule_name)")
    if values.get("kind") == "revenue_share":
        # statements read these terms: a typo must fail here, not at month-end
        terms = values.get("terms") or {}
        unknown = sorted(set(terms) - {*TERM_KEYS, "currency", "sites", "netting"})
        if unknown:
            raise InvalidInput("agreement_terms_invalid", f"unknown revenue-share terms {unknown}: "
                                                          f"use {', '.join(TERM_KEYS)}, currency, sites, netting")
        check_share_terms(terms, "EUR")
    if (values.get("terms") or {}).get("netting", "false") not in ("true", "false"):
        raise InvalidInput("agreement_terms_invalid", "term 'netting' is 'true' (what the partner owes from earlier "
                                                      "credit note corrections is deducted from its payouts) or 'false'")


router = Router(path="/", route_handlers=[
    crud_router(path="/partners", tag="partners", entity="partner", plural="partners", prefix="par",
                model=Partner, create=PartnerCreate, update=PartnerUpdate, read=PartnerRead,
                filters={"kind": str, "country_code": str, "party_id": str}, search_cols=("name", "email", "vat_id")),
    crud_router(path="/agreements", tag="partners", entity="agreement", plural="agreements", prefix="agr",
                model=Agreement, create=AgreementCreate, update=AgreementUpdate, read=AgreementRead,
                filters={"partner_id": str, "kind": str}, search_cols=("reference", "ruleset_name"),
                refs={"partner_id": Ref(Partner, "partner")}, clearable=("valid_to",), validate=_check_agreement),
    Router(path="/", route_handlers=statement_handlers, tags=["partner statements"]),
    Router(path="/", route_handlers=credit_note_handlers, tags=["host credit notes"]),
])
