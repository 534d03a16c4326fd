"""``POST /auth/token``: exchange the presented API key for a short-lived signed token (``api.tokens``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from litestar import Request, Router
from pydantic import Field

from api.crud import ReadModel, WriteModel, route
from api.tokens import issue_token
from store.audit import Actor
from store.errors import Forbidden

__all__ = ["router"]


class AccessTokenRequest(WriteModel):
    expires_in: int = Field(900, ge=60, le=3600, description="lifetime in seconds (default 15 minutes)")


class AccessTokenRead(ReadModel):
    access_token: str = Field(description="send as `Authorization: Bearer <token>`")
    token_type: str = "Bearer"
    expires_in: int
    expires_at: datetime
    tenant_id: str
    user_id: str
    role: str
    key_id: str


@route("POST", "/auth/token", operation_id="issue_access_token", roles="self", status_code=200,
       summary="Exchange the presented API key for a short-lived signed token")
async def issue_access_token(request: Request[Any, Any, Any], data: AccessTokenRequest) -> AccessTokenRead:
    credential = request.auth
    if getattr(credential, "kind", "") != "api_key":
        raise Forbidden("api_key_required", "a token is exchanged for an API key, not for another token")
    actor: Actor = request.user
    token, exp = issue_token(request.app.state.jwt_secret, actor, credential.key_id, data.expires_in)
    return AccessTokenRead(access_token=token, expires_in=data.expires_in, expires_at=datetime.fromtimestamp(exp, UTC),
                     tenant_id=actor.tenant_id, user_id=actor.user_id, role=actor.role, key_id=credential.key_id)


router = Router(path="/", route_handlers=[issue_access_token], tags=["access"])
