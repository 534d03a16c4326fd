"""An account's service items (a ruleset service by name, or an explicit price) and period
discounts: create, list, change, end; each write audited in its transaction."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from litestar import Request
from litestar.params import Parameter
from pydantic import Field

from api.areas.billing.common import account_of, db_sessions
from api.auth import actor_of
from api.crud import CursorParam, LimitParam, ReadModel, WriteModel, route
from api.schemas import Currency, DecimalOut, update_of
from dsl.diagnostics import suggest
from store import billing as B
from store import finance as F
from store.errors import Conflict, InvalidInput, NotFound
from store.types import new_id

__all__ = ["handlers"]


Amount = Annotated[str, Field(pattern=r"^[0-9]{1,12}(\.[0-9]{1,12})?$", max_length=25, examples=["9.00"])]
Rate = Annotated[str, Field(pattern=r"^[0-9]{1,3}(\.[0-9]{1,4})?$", max_length=8, examples=["19"],
                            description="percent")]
Per = Literal["month", "quarter", "year", "each"]
ServiceName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$", max_length=100,
                                   examples=["supervision.ac_charger"])]


class ServiceItemCreate(WriteModel):
    """Either ``service`` (a ruleset's ``<block>.<item>``, priced by the ruleset version each cycle
    uses) or an explicit ``unit_price`` with ``per`` and ``tax_rate``."""

    service: ServiceName | None = Field(None, description="a ruleset service, '<block>.<item>'")
    description: str = Field("", max_length=300, description="invoice text; default: the ruleset's")
    quantity: Amount = "1"
    unit_price: Amount | None = Field(None, description="net, in the account's currency, per 'per'")
    per: Per | None = Field(None, description="what unit_price covers; 'each' is a one-off charge")
    tax_rate: Rate | None = None
    currency: Currency | None = Field(None, description="if given, must be the account's currency")
    valid_from: date
    valid_to: date | None = Field(None, description="exclusive; none: until ended")


ServiceItemUpdate = update_of(ServiceItemCreate, "ServiceItemUpdate")


class ServiceItemRead(ReadModel):
    id: str
    account_id: str
    service: str | None
    description: str
    quantity: DecimalOut
    unit_price: DecimalOut | None
    per: str | None
    tax_rate: DecimalOut | None
    currency: str
    valid_from: date
    valid_to: date | None


class ServiceItemPage(ReadModel):
    items: list[ServiceItemRead]
    next_cursor: str | None = None


class DiscountCreate(WriteModel):
    """A discount on every invoice of its validity: ``percent`` of each VAT group's subtotal, or a
    fixed ``amount`` off the group of ``tax_rate`` (default: the largest group)."""

    description: str = Field(min_length=1, max_length=300)
    percent: Rate | None = None
    amount: Amount | None = Field(None, description="net, in the account's currency")
    tax_rate: Rate | None = Field(None, description="for a fixed amount: the VAT group it reduces")
    currency: Currency | None = Field(None, description="if given, must be the account's currency")
    valid_from: date
    valid_to: date | None = Field(None, description="exclusive; none: until ended")


class DiscountRead(ReadModel):
    id: str
    account_id: str
    description: str
    percent: DecimalOut | None
    amount: DecimalOut | None
    tax_rate: DecimalOut | None
    currency: str
    valid_from: date
    valid_to: date | None


class DiscountPage(ReadModel):
    items: list[DiscountRead]
    next_cursor: str | None = None


class End(WriteModel):
    valid_to: date | None = Field(None, description="the first day it no longer applies; default: today "
                                                    "in the account's time zone")


def _check_currency(acct: Any, currency: str | None) -> None:
    if currency is not None and currency != acct.currency:
        raise InvalidInput("currency_mismatch", f"the billing account is billed in {acct.currency}, not {currency}")


def _check_validity(valid_from: date, valid_to: date | None) -> None:
    if valid_to is not None and valid_to <= valid_from:
        raise InvalidInput("end_before_start", "valid_to must be after valid_from")


def _ruleset_services(db: Any, tenant_id: str, on: date) -> dict[str, Any]:
    """The services of the tenant's ruleset version in force on ``on`` and of every later one."""
    from dsl.compiler import compile_ruleset

    rows = F.ruleset_versions(db.connection(), tenant_id)
    cut = datetime.combine(min(on, date(9999, 12, 30)), datetime.min.time(), tzinfo=UTC)
    first = F.effective_index(rows, cut)
    out: dict[str, Any] = {}
    for r in rows[first:]:
        res = compile_ruleset(r.source, f"{r.dsl_name or r.id}.evb")
        if res.ruleset is not None:
            out.update(res.ruleset.policies.services)
    return out


def _check_service_item(db: Any, tenant_id: str, acct: Any, v: dict[str, Any]) -> None:
    """The rules a service item keeps, on the values it will have after the write."""
    _check_currency(acct, v.get("currency"))
    _check_validity(v["valid_from"], v.get("valid_to"))
    if Decimal(v["quantity"]) <= 0:
        raise InvalidInput("invalid_quantity", "quantity must be positive")
    own = [k for k in ("unit_price", "per", "tax_rate") if v.get(k) is not None]
    if v.get("service"):
        if own:
            raise InvalidInput("service_item_priced_twice",
                               f"an item priced by the ruleset service '{v['service']}' cannot carry {', '.join(own)}")
        known = _ruleset_services(db, tenant_id, v["valid_from"])
        if v["service"] not in known:
            hint = suggest(v["service"], known) or (f"services: {', '.join(sorted(known)[:8])}" if known
                                                     else "no published ruleset version has a service block")
            raise InvalidInput("unknown_service", f"no ruleset version in force from {v['valid_from']} on has "
                                                  f"the service '{v['service']}'; {hint}")
    else:
        missing = [k for k in ("unit_price", "per", "tax_rate") if v.get(k) is None]
        if missing:
            raise InvalidInput("service_item_price_missing",
                               f"an item without a ruleset service needs {', '.join(missing)}")
        if not v.get("description"):
            raise InvalidInput("service_item_description_missing", "an explicitly priced item needs a description")
    if v.get("tax_rate") is not None and Decimal(v["tax_rate"]) > 100:
        raise InvalidInput("invalid_tax_rate", "tax_rate is a percentage between 0 and 100")


def _service_values(v: dict[str, Any]) -> dict[str, Any]:
    return dict(product=v.get("service") or "", description=v.get("description") or "",
                quantity=Decimal(v["quantity"]), unit_price=_dec(v.get("unit_price")), tax_rate=_dec(v.get("tax_rate")),
                unit=v.get("per") or "", valid_from=v["valid_from"], valid_to=v.get("valid_to"))


def _service_read(row: Any, currency: str) -> ServiceItemRead:
    return ServiceItemRead(id=row.id, account_id=row.account_id, service=row.product or None,
                           description=row.description, quantity=row.quantity, unit_price=row.unit_price,
                           per=row.unit or None, tax_rate=row.tax_rate, currency=currency,
                           valid_from=row.valid_from, valid_to=row.valid_to)


def _as_input(row: Any) -> dict[str, Any]:
    """A stored service item in the shape of ``ServiceItemCreate`` (for checks of an update)."""
    def s(x: Decimal | None) -> str | None:
        return None if x is None else format(x, "f")

    return dict(service=row.product or None, description=row.description, quantity=s(row.quantity),
                unit_price=s(row.unit_price), per=row.unit or None, tax_rate=s(row.tax_rate),
                valid_from=row.valid_from, valid_to=row.valid_to)


def _discount_read(row: Any, currency: str) -> DiscountRead:
    return DiscountRead(id=row.id, account_id=row.account_id, description=row.description, percent=row.percent,
                        amount=row.amount, tax_rate=row.tax_rate, currency=currency, valid_from=row.valid_from,
                        valid_to=row.valid_to)


def _check_discount(acct: Any, d: DiscountCreate) -> None:
    _check_currency(acct, d.currency)
    _check_validity(d.valid_from, d.valid_to)
    if (d.percent is None) == (d.amount is None):
        raise InvalidInput("discount_kind", "a discount is either a percent or a fixed amount (exactly one of them)")
    if d.percent is not None:
        if not 0 < Decimal(d.percent) <= 100:
            raise InvalidInput("invalid_percent", "percent must be above 0 and at most 100")
        if d.tax_rate is not None:
            raise InvalidInput("discount_tax_rate_with_percent",
                               "a percent discount reduces every VAT group; tax_rate is for fixed amounts")
    elif Decimal(d.amount or 0) <= 0:
        raise InvalidInput("invalid_amount", "amount must be positive")
    if d.tax_rate is not None and Decimal(d.tax_rate) > 100:
        raise InvalidInput("invalid_tax_rate", "tax_rate is a percentage between 0 and 100")


def _page(rows: list[Any], limit: int) -> tuple[list[Any], str | None]:
    from store.repo import encode_cursor

    if len(rows) > limit:
        rows = rows[:limit]
        return rows, encode_cursor(rows[-1].id)
    return rows, None


def _account_page(request: Request[Any, Any, Any], table: Any, account_id: str, limit: int, cursor: str | None,
                  active_on: date | None) -> tuple[Any, list[Any], str | None]:
    from store.repo import decode_cursor

    actor = actor_of(request)
    after = decode_cursor(cursor) if cursor else None
    with db_sessions(request) as db:
        acct = account_of(db, actor.tenant_id, account_id)
        rows = B.account_rows(db.connection(), table, actor.tenant_id, account_id, after_id=after, limit=limit + 1,
                              active_on=active_on)
    return (acct, *_page(rows, limit))


def _owned(db: Any, tenant_id: str, table: Any, row_id: str, what: str) -> tuple[Any, Any]:
    row = B.tenant_row(db.connection(), table, tenant_id, row_id)
    if row is None:
        raise NotFound(f"{what}_not_found", f"{what.replace('_', ' ')} {row_id!r} not found")
    return row, account_of(db, tenant_id, row.account_id)


def _dec(x: str | None) -> Decimal | None:
    return None if x is None else Decimal(x)


def _add(request: Request[Any, Any, Any], table: Any, account_id: str, what: str, data: WriteModel,
         check: Callable[[Any, Any], dict[str, Any]]) -> tuple[Any, Any]:
    """Insert a service item or discount of the account (``check`` validates and gives the row's
    values), audit-logged in the same transaction."""
    from store.audit import append_audit

    actor = actor_of(request)
    with request.app.state.sessions() as db:
        acct = account_of(db, actor.tenant_id, account_id)
        values = check(db, acct)
        rid = new_id("svc" if what == "service_item" else "dsc")
        F.insert_account_row(db.connection(), table, actor.tenant_id, account_id, rid, values)
        append_audit(db, actor, f"{what}.create", table.name, rid, None, data.model_dump())
        db.commit()
        return B.tenant_row(db.connection(), table, actor.tenant_id, rid), acct


def _end(request: Request[Any, Any, Any], table: Any, row_id: str, what: str, data: End) -> tuple[Any, Any]:
    """Set ``valid_to`` of a service item or discount (once), audit-logged."""
    from store.audit import append_audit

    actor = actor_of(request)
    with request.app.state.sessions() as db:
        row, acct = _owned(db, actor.tenant_id, table, row_id, what)
        if row.valid_to is not None:
            raise Conflict("already_ended", f"the {what.replace('_', ' ')} already ends on {row.valid_to}")
        end = data.valid_to or _today(acct.timezone)
        _check_validity(row.valid_from, end)
        F.end_account_row(db.connection(), table, actor.tenant_id, row_id, end)
        append_audit(db, actor, f"{what}.end", table.name, row_id, {"valid_to": None}, {"valid_to": end})
        db.commit()
        return B.tenant_row(db.connection(), table, actor.tenant_id, row_id), acct


def _today(tzname: str) -> date:
    from zoneinfo import ZoneInfo

    try:
        return datetime.now(ZoneInfo(tzname)).date()
    except Exception:  # noqa: BLE001 - an account with an unusable zone ends on the UTC day
        return datetime.now(UTC).date()


ActiveOn = Annotated[date | None, Parameter(description="only what is valid on this day")]


@route("POST", "/billing/accounts/{account_id:str}/service-items", operation_id="create_service_item",
       roles="billing_write", status_code=201,
       summary="Add a service product to a billing account (a ruleset service by name, or an explicit price)")
def create_service_item(request: Request[Any, Any, Any], account_id: str, data: ServiceItemCreate) -> ServiceItemRead:
    def check(db: Any, acct: Any) -> dict[str, Any]:
        _check_service_item(db, acct.tenant_id, acct, data.model_dump())
        return _service_values(data.model_dump())

    row, acct = _add(request, B.service_item, account_id, "service_item", data, check)
    return _service_read(row, acct.currency)


@route("GET", "/billing/accounts/{account_id:str}/service-items", operation_id="list_service_items",
       roles="billing_read", summary="A billing account's service items, oldest first")
def list_service_items(request: Request[Any, Any, Any], account_id: str, limit: LimitParam = 50,
                       cursor: CursorParam = None, active_on: ActiveOn = None) -> ServiceItemPage:
    acct, rows, nxt = _account_page(request, B.service_item, account_id, limit, cursor, active_on)
    return ServiceItemPage(items=[_service_read(r, acct.currency) for r in rows], next_cursor=nxt)


@route("PATCH", "/billing/service-items/{service_item_id:str}", operation_id="update_service_item",
       roles="billing_write", summary="Change a service item (invoices already finalized stay as they are)")
def update_service_item(request: Request[Any, Any, Any], service_item_id: str,
                        data: ServiceItemUpdate) -> ServiceItemRead:  # type: ignore[valid-type]
    from store.audit import append_audit

    actor = actor_of(request)
    changes = data.model_dump(exclude_unset=True)  # type: ignore[attr-defined]
    with request.app.state.sessions() as db:
        row, acct = _owned(db, actor.tenant_id, B.service_item, service_item_id, "service_item")
        before = _as_input(row)
        after = {**before, **changes}
        if changes.get("service"):  # naming a ruleset service drops the item's own price
            after.update({k: changes.get(k) for k in ("unit_price", "per", "tax_rate")})
        for k in ("quantity", "valid_from", "description"):
            if after.get(k) is None:
                after[k] = before[k]
        _check_service_item(db, actor.tenant_id, acct, after)
        F.update_account_row(db.connection(), B.service_item, actor.tenant_id, service_item_id,
                             _service_values(after))
        append_audit(db, actor, "service_item.update", "billing_service_item", service_item_id, before, after)
        db.commit()
        row = B.tenant_row(db.connection(), B.service_item, actor.tenant_id, service_item_id)
    return _service_read(row, acct.currency)


@route("POST", "/billing/service-items/{service_item_id:str}/end", operation_id="end_service_item",
       roles="billing_write", summary="End a service item: it is not billed for periods from valid_to on")
def end_service_item(request: Request[Any, Any, Any], service_item_id: str, data: End) -> ServiceItemRead:
    row, acct = _end(request, B.service_item, service_item_id, "service_item", data)
    return _service_read(row, acct.currency)


@route("POST", "/billing/accounts/{account_id:str}/discounts", operation_id="create_discount",
       roles="billing_write", status_code=201,
       summary="Give a billing account a discount on each invoice of a validity (percent or a fixed amount)")
def create_discount(request: Request[Any, Any, Any], account_id: str, data: DiscountCreate) -> DiscountRead:
    def check(_db: Any, acct: Any) -> dict[str, Any]:
        _check_discount(acct, data)
        return dict(description=data.description, percent=_dec(data.percent), amount=_dec(data.amount),
                    tax_rate=_dec(data.tax_rate), valid_from=data.valid_from, valid_to=data.valid_to)

    row, acct = _add(request, B.account_discount, account_id, "discount", data, check)
    return _discount_read(row, acct.currency)


@route("GET", "/billing/accounts/{account_id:str}/discounts", operation_id="list_discounts",
       roles="billing_read", summary="A billing account's period discounts, oldest first")
def list_discounts(request: Request[Any, Any, Any], account_id: str, limit: LimitParam = 50,
                   cursor: CursorParam = None, active_on: ActiveOn = None) -> DiscountPage:
    acct, rows, nxt = _account_page(request, B.account_discount, account_id, limit, cursor, active_on)
    return DiscountPage(items=[_discount_read(r, acct.currency) for r in rows], next_cursor=nxt)


@route("POST", "/billing/discounts/{discount_id:str}/end", operation_id="end_discount",
       roles="billing_write", summary="End a discount: invoices of periods from valid_to on no longer get it")
def end_discount(request: Request[Any, Any, Any], discount_id: str, data: End) -> DiscountRead:
    row, acct = _end(request, B.account_discount, discount_id, "discount", data)
    return _discount_read(row, acct.currency)


handlers = [create_service_item, list_service_items, update_service_item, end_service_item,
            create_discount, list_discounts, end_discount]
