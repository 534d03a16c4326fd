"""The tenant's own profile (legal entity, bank details, branding), its users and API keys."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from litestar import Request, Router
from pydantic import Field

from api.auth import auth_changed
from api.crud import (
    CursorParam,
    IdPath,
    LimitParam,
    ReadModel,
    Ref,
    WriteModel,
    crud_router,
    open_scope,
    page_of,
    route,
)
from api.schemas import Country, Currency, Id, RefId, read_of, update_of
from api.validation import Bic, CreditorId, Email, Iban, Timezone, VatId, bic_of_iban
from store.errors import InvalidInput
from store.models import ApiKey, Partner, Tenant, User
from store.repo import Scope, snapshot
from store.tenants import issue_key
from store.types import utcnow

__all__ = ["router"]

_HIDDEN = ("audit_seq", "audit_head")


class TenantUpdate(WriteModel):
    name: str | None = Field(None, min_length=1, max_length=200)
    legal_name: str | None = Field(None, max_length=200)
    street: str | None = Field(None, max_length=200)
    postal_code: str | None = Field(None, max_length=20)
    city: str | None = Field(None, max_length=100)
    country: Country | None = None
    vat_id: VatId | None = None
    tax_number: str | None = Field(None, max_length=30)
    creditor_id: CreditorId | None = None
    iban: Iban | None = None
    bic: Bic | None = Field(None, description="default: the BIC of the IBAN's bank where it is known")
    email: Email | None = None
    currency: Currency | None = None
    timezone: Timezone | None = None
    branding: dict[str, str] | None = Field(None, max_length=30,
                                               description="logo_url, primary_color, footer ... for documents")


class TenantRead(ReadModel):
    id: str
    name: str
    legal_name: str
    street: str
    postal_code: str
    city: str
    country: str
    vat_id: str
    tax_number: str
    creditor_id: str
    iban: str
    bic: str
    email: str
    currency: str
    timezone: str
    branding: dict[str, Any]
    created_at: datetime


@route("GET", "/tenant", operation_id="get_tenant", roles="read", summary="The caller's tenant")
def get_tenant(request: Request[Any, Any, Any]) -> TenantRead:
    with open_scope(request) as scope:
        return TenantRead.model_validate(scope.db.get(Tenant, scope.tenant_id), from_attributes=True)


@route("PATCH", "/tenant", operation_id="update_tenant", roles="admin", summary="Update the tenant profile")
def update_tenant(request: Request[Any, Any, Any], data: TenantUpdate) -> TenantRead:
    with open_scope(request) as scope:
        tenant = scope.db.get(Tenant, scope.tenant_id)
        assert tenant is not None
        changes = {k: v for k, v in data.model_dump(exclude_unset=True).items() if v is not None}
        if changes.get("iban") and changes["iban"] != tenant.iban and "bic" not in changes:
            # a new bank account: the old BIC would name the old bank; take the new one's where known
            changes["bic"] = bic_of_iban(changes["iban"])
        before = snapshot(tenant, _HIDDEN)
        for k, v in changes.items():
            setattr(tenant, k, v)
        scope.flush()
        after = snapshot(tenant, _HIDDEN)
        if before != after:
            scope.audit("tenant.update", "tenant", tenant.id, before, after)
        scope.commit()
        return TenantRead.model_validate(tenant, from_attributes=True)


class MeRead(ReadModel):
    tenant_id: str
    user_id: str
    role: str
    partner_id: str | None


@route("GET", "/me", operation_id="get_me", roles="self", summary="Who the presented key belongs to")
def get_me(request: Request[Any, Any, Any]) -> MeRead:
    a = request.user
    return MeRead(tenant_id=a.tenant_id, user_id=a.user_id, role=a.role, partner_id=a.partner_id)


class UserCreate(WriteModel):
    email: str = Field(min_length=3, max_length=200, pattern=r"^[^@\s]+@[^@\s]+$")
    name: str = Field("", max_length=200)
    role: Literal["admin", "analyst", "operator", "approver", "auditor", "partner"]
    partner_id: RefId = Field(None, description="required for the partner role")
    active: bool = True


UserUpdate = update_of(UserCreate, "UserUpdate")
UserRead = read_of(UserCreate, "UserRead")


def _check_user(scope: Scope, values: dict[str, Any], _existing: Any) -> None:
    if values.get("role") == "partner" and not values.get("partner_id"):
        raise InvalidInput("partner_required", "a partner user needs partner_id")
    if values.get("role") != "partner" and values.get("partner_id"):
        raise InvalidInput("partner_only_for_partner_role", "partner_id is only for the partner role")


class ApiKeyCreate(WriteModel):
    user_id: Id
    name: str = Field("", max_length=200)


class ApiKeyRead(ReadModel):
    id: str
    user_id: str
    name: str
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyRead):
    key: str = Field(description="the secret key; shown once, store it now")


ApiKeyPage = page_of(ApiKeyRead)


@route("POST", "/api-keys", operation_id="create_api_key", roles="admin", status_code=201,
       summary="Issue an API key for a user (the key is shown once)")
def create_api_key(request: Request[Any, Any, Any], data: ApiKeyCreate) -> ApiKeyCreated:
    with open_scope(request) as scope:
        user = scope.repo(User, "user", "usr").get(data.user_id)
        key, plain = issue_key(scope.db, scope.tenant_id, user.id, data.name)
        scope.flush()
        scope.audit("api_key.create", "api_key", key.id, None, snapshot(key, ("secret_sha256",)))
        scope.commit()
        return ApiKeyCreated(key=plain, **ApiKeyRead.model_validate(key, from_attributes=True).model_dump())


@route("GET", "/api-keys", operation_id="list_api_keys", roles="admin", summary="List API keys")
def list_api_keys(request: Request[Any, Any, Any], limit: LimitParam = 50, cursor: CursorParam = None,
                  user_id: str | None = None) -> ApiKeyPage:  # type: ignore[valid-type]
    with open_scope(request) as scope:
        rows, nxt = scope.repo(ApiKey, "api_key", "key").page(filters={"user_id": user_id}, cursor=cursor, limit=limit)
        return ApiKeyPage(items=[ApiKeyRead.model_validate(r, from_attributes=True) for r in rows], next_cursor=nxt)


@route("DELETE", "/api-keys/{api_key_id:str}", operation_id="revoke_api_key", roles="admin", status_code=204,
       summary="Revoke an API key")
def revoke_api_key(request: Request[Any, Any, Any], api_key_id: IdPath) -> None:
    with open_scope(request) as scope:
        repo = scope.repo(ApiKey, "api_key", "key")
        key = repo.get(api_key_id)
        if key.revoked_at is None:
            repo.update(key, {"revoked_at": utcnow()}, hide=("secret_sha256",))
            auth_changed(request, scope.db)
            scope.commit()


router = Router(path="/", route_handlers=[
    get_tenant, update_tenant, get_me, create_api_key, list_api_keys, revoke_api_key,
    crud_router(path="/users", tag="access", entity="user", plural="users", prefix="usr", model=User,
                create=UserCreate, update=UserUpdate, read=UserRead, read_roles="admin", write_roles="admin",
                filters={"role": str}, search_cols=("email", "name"), refs={"partner_id": Ref(Partner, "partner")},
                clearable=("partner_id",), validate=_check_user, deletable=False,
                # a disabled user or a changed role must not live on in any process's key cache
                on_change=lambda request, scope, _user: auth_changed(request, scope.db)),
], tags=["access"])
