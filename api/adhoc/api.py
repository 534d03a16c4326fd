"""The operator's side of ad-hoc charging (API keys, tenant-scoped): a charge as stored, a refund
through the payment provider, and the printable QR sheet of a site."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from litestar import Request, Response, Router
from litestar.openapi import ResponseSpec
from litestar.params import Parameter
from pydantic import Field
from sqlalchemy import select

from api.adhoc import service
from api.auth import ROLE_SETS
from api.crud import ReadModel, WriteModel, open_scope, route
from api.schemas import DecimalOut, DecimalStr
from runtime.payments_provider import PaymentProvider
from store import adhoc as store
from store.errors import Conflict, InvalidInput, NotFound
from store.models import Evse, Location, Tenant

__all__ = ["refund_charge", "router"]

ROLE_SETS.setdefault("receivables_read", ("admin", "operator", "approver", "auditor"))
ROLE_SETS.setdefault("receivables_write", ("admin", "operator", "approver"))


class AdhocChargeRead(ReadModel):
    id: str
    status: str
    evse_id: str
    evse_uid: str
    currency: str
    preauth_amount: DecimalOut
    provider: str
    payment_ref: str
    decline_code: str
    message: str
    transaction_id: int | None
    session_id: str | None
    energy_kwh: DecimalOut | None
    net: DecimalOut | None
    tax: DecimalOut | None
    gross: DecimalOut | None
    captured: DecimalOut | None
    released: DecimalOut | None
    refunded: DecimalOut
    receipt_number: str
    item_id: str | None
    email: str
    started_at: datetime | None
    stopped_at: datetime | None
    created_at: datetime


class RefundCreate(WriteModel):
    amount: DecimalStr = Field(description="at most what was captured and not refunded, e.g. \"5.00\"")
    reason: str = Field("", max_length=300)


def _read(charge: store.AdhocCharge) -> AdhocChargeRead:
    return AdhocChargeRead(**{k: getattr(charge, k) for k in AdhocChargeRead.model_fields})


def _charge(scope: Any, charge_id: str) -> store.AdhocCharge:
    charge = store.by_id(scope.db.connection(), scope.tenant_id, charge_id[:40])
    if charge is None:
        raise NotFound("adhoc_charge_not_found", f"ad-hoc charge {charge_id!r} not found")
    return charge


@route("GET", "/adhoc-charges/{charge_id:str}", operation_id="get_adhoc_charge", roles="receivables_read",
       summary="An ad-hoc charge paid by card: its payment, session, amounts and receipt number")
def get_adhoc_charge(request: Request[Any, Any, Any], charge_id: str) -> AdhocChargeRead:
    with open_scope(request) as scope:
        return _read(_charge(scope, charge_id))


@route("POST", "/adhoc-charges/{charge_id:str}/refund", operation_id="refund_adhoc_charge", roles="receivables_write",
       status_code=200, extra_problems=(502,),
       summary="Refund part or all of a captured ad-hoc charge through the payment provider; booked on the "
               "charge's open item (card_refund and return)")
def refund_adhoc_charge(request: Request[Any, Any, Any], charge_id: str, data: RefundCreate) -> AdhocChargeRead:
    from api.adhoc.pages import provider_of

    provider = provider_of(request)
    with open_scope(request) as scope:
        return _read(refund_charge(scope, provider, charge_id, Decimal(data.amount), data.reason))


def refund_charge(scope: Any, provider: PaymentProvider | None, charge_id: str, amount: Decimal | None,
                  reason: str) -> store.AdhocCharge:
    """A refund through the provider as ``POST /adhoc-charges/{id}/refund`` makes it (the console's
    form too): ``amount`` None is all that is left. Refusals are the API's problems."""
    charge = _charge(scope, charge_id)
    if provider is None or provider.name != charge.provider:
        raise Conflict("payments_not_configured", f"the payment provider {charge.provider!r} is not configured")
    if amount is None:
        amount = (charge.captured or Decimal(0)) - charge.refunded
    try:
        return service.refund(scope.db, provider, charge, amount, reason[:300], scope.actor.user_id)
    except service.AdhocError as exc:
        if exc.status == 422:
            raise InvalidInput(exc.code, exc.message) from None
        raise Conflict(exc.code, exc.message) from None


@route("GET", "/locations/{location_id:str}/adhoc-qr-sheet", operation_id="get_adhoc_qr_sheet", roles="read",
       responses={200: ResponseSpec(data_container=bytes, media_type="application/pdf",
                                    description="the sheet, one QR code per EVSE")},
       sync_to_thread=True, summary="A printable PDF of the site's ad-hoc QR codes, one per EVSE (each opens "
                                    "/charge/{evse_id})")
def get_adhoc_qr_sheet(request: Request[Any, Any, Any], location_id: str,
                       lang: Annotated[Literal["de", "en"], Parameter(description="the sheet's language")] = "de",
                       ) -> Response[bytes]:
    from api.adhoc.pages import _public_base
    from api.adhoc.qr import qr_sheet_pdf

    with open_scope(request) as scope:
        loc = scope.repo(Location, "location", "loc").get(location_id)
        evses = list(scope.db.execute(select(Evse).where(Evse.tenant_id == scope.tenant_id,
                                                         Evse.location_id == loc.id,
                                                         Evse.charge_point_id.is_not(None))  # type: ignore[union-attr]
                                      .order_by(Evse.evse_uid)).scalars())
        tenant = scope.db.get(Tenant, scope.tenant_id)
        pdf = qr_sheet_pdf(tenant, loc, evses, _public_base(request), lang)
    return Response(pdf, media_type="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="qr-{loc.code or loc.id}.pdf"'})


router = Router(path="/", route_handlers=[get_adhoc_charge, refund_adhoc_charge, get_adhoc_qr_sheet],
                tags=["adhoc"])
