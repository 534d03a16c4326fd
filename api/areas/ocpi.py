"""OCPI 2.2.1 for eMSP partners, evbill as the CPO: versions, credentials (the token handshake),
``cdrs`` and ``tariffs`` (Sender interfaces, pulled by the partner).

The handshake: an admin issues token A for an eMSP partner (``POST /partners/{id}/ocpi-token``,
shown once); the partner calls ``GET /ocpi/versions`` and ``/ocpi/2.2.1`` with it, then
``POST /ocpi/2.2.1/credentials`` with its own credentials (its token B, its versions URL, its
roles). We store those and answer ours with a new token C; token A stops working. From then on the
partner pulls with token C (``Authorization: Token <base64(token)>``; a plain token is accepted
too, as OCPI 2.1.1 clients send it). ``PUT`` rotates token C, ``DELETE`` unregisters.

``cdrs``: the partner's CDRs as its clearing statements stated them (``store.clearing``), by
``last_updated``; ``tariffs``: the tariff its roaming agreement names, exported from the ruleset
version in force (``dsl.ocpi_export``). Both page as the spec says: ``offset``, ``limit``,
``date_from`` (inclusive), ``date_to`` (exclusive), headers ``X-Total-Count``, ``X-Limit`` and a
``Link`` to the next page. These routes speak OCPI, not the operator API: they are outside the
OpenAPI document and the API-key middleware, and answer OCPI's envelope
(``data``, ``status_code``, ``status_message``, ``timestamp``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from litestar import Request, Response, Router, delete, get, post, put
from pydantic import Field

from api.auth import ROLE_SETS
from api.crud import ReadModel, open_scope, route
from runtime.clearing import dump_json
from store import clearing as S
from store.errors import NotFound

__all__ = ["admin_router", "ocpi_router"]

VERSION = "2.2.1"
MAX_LIMIT = 500
ROLE_SETS.setdefault("ocpi_admin", ("admin",))


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _envelope(data: Any, status: int = 200, code: int = 1000, message: str = "Success",
              headers: dict[str, str] | None = None) -> Response[bytes]:
    body = {"data": data, "status_code": code, "status_message": message, "timestamp": _now()}
    if data is None:
        del body["data"]
    return Response(dump_json(body).encode(), status_code=status, media_type="application/json",
                    headers=headers or {})


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class _Refused(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _presented(request: Request[Any, Any, Any]) -> str:
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() != "token" or not value.strip():
        raise _Refused(401, 2000, "Authorization: Token <base64 token> required")
    value = value.strip()
    try:
        decoded = base64.b64decode(value, validate=True).decode()
        if decoded and decoded.isprintable():
            return decoded
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    return value  # OCPI 2.1.1 clients send the token as it is


def _credential(request: Request[Any, Any, Any], *, registered: bool | None = True) -> Any:
    """The stored credentials the presented token opens; ``registered`` True: token C only, False:
    token A only, None: either."""
    token = _presented(request)
    with request.app.state.read_sessions() as db:
        row = S.credentials_by_token(db.connection(), _sha(token))
    if row is None:
        raise _Refused(401, 2000, "unknown token")
    if registered is True and row.status != "registered":
        raise _Refused(401, 2000, "the credentials handshake is not done: POST /ocpi/2.2.1/credentials first")
    if registered is False and row.status != "registration":
        raise _Refused(405, 2000, "already registered: use PUT to update or DELETE to unregister")
    return row


def _ocpi(fn: Any) -> Any:
    """Turns refusals into OCPI's envelope."""
    import functools

    @functools.wraps(fn)
    def wrapper(request: Request[Any, Any, Any], **kw: Any) -> Response[bytes]:
        try:
            return fn(request, **kw)  # type: ignore[no-any-return]
        except _Refused as exc:
            return _envelope(None, exc.status, exc.code, exc.message)

    return wrapper


def _base(request: Request[Any, Any, Any]) -> str:
    return str(request.base_url).rstrip("/") + "/ocpi"


def _our_credentials(request: Request[Any, Any, Any], tenant_id: str, token: str) -> dict[str, Any]:
    from workflows.clearing.activities import cpo_identity

    with request.app.state.read_sessions() as db:
        t = S.tenant_row(db.connection(), tenant_id)
    cc, pid = cpo_identity(t)
    return {"token": token, "url": f"{_base(request)}/versions",
            "roles": [{"role": "CPO", "party_id": pid, "country_code": cc,
                       "business_details": {"name": t.legal_name or t.name}}]}


@get("/ocpi/versions", include_in_schema=False, sync_to_thread=True)
@_ocpi
def versions(request: Request[Any, Any, Any]) -> Response[bytes]:
    _credential(request, registered=None)
    return _envelope([{"version": VERSION, "url": f"{_base(request)}/{VERSION}"}])


@get(f"/ocpi/{VERSION}", include_in_schema=False, sync_to_thread=True)
@_ocpi
def version_details(request: Request[Any, Any, Any]) -> Response[bytes]:
    _credential(request, registered=None)
    base = f"{_base(request)}/{VERSION}"
    return _envelope({"version": VERSION, "endpoints": [
        {"identifier": "credentials", "role": "SENDER", "url": f"{base}/credentials"},
        {"identifier": "cdrs", "role": "SENDER", "url": f"{base}/cdrs"},
        {"identifier": "tariffs", "role": "SENDER", "url": f"{base}/tariffs"},
    ]})


def _their_credentials(request: Request[Any, Any, Any], body: Any) -> tuple[str, str, list[Any]]:
    if not isinstance(body, dict) or not isinstance(body.get("token"), str) or not body["token"] \
            or not isinstance(body.get("url"), str) or not isinstance(body.get("roles"), list) or not body["roles"]:
        raise _Refused(400, 2001, "credentials need token, url and roles")
    return body["token"][:64], body["url"][:255], list(body["roles"])


@get(f"/ocpi/{VERSION}/credentials", include_in_schema=False, sync_to_thread=True)
@_ocpi
def get_credentials(request: Request[Any, Any, Any]) -> Response[bytes]:
    row = _credential(request, registered=None)
    return _envelope(_our_credentials(request, row.tenant_id, _presented(request)))


async def _body(request: Request[Any, Any, Any]) -> Any:
    import json

    try:
        return json.loads(await request.body() or b"null")
    except ValueError:
        return None


def _register(request: Request[Any, Any, Any], body: Any, *, registered: bool) -> Response[bytes]:
    row = _credential(request, registered=registered)
    token, url, roles = _their_credentials(request, body)
    new = secrets.token_urlsafe(32)
    with request.app.state.sessions() as db:
        S.register_credentials(db.connection(), row.id, new_token_sha256=_sha(new), their_token=token,
                               their_url=url, their_roles=roles)
        from store.audit import Actor, append_audit

        append_audit(db, Actor(row.tenant_id, f"ocpi:{row.partner_id}", "partner", row.partner_id),
                     "ocpi.credentials", "partner", row.partner_id, None, {"url": url, "roles": roles})
        db.commit()
    return _envelope(_our_credentials(request, row.tenant_id, new))


@post(f"/ocpi/{VERSION}/credentials", include_in_schema=False, status_code=200)
async def post_credentials(request: Request[Any, Any, Any]) -> Response[bytes]:
    body = await _body(request)
    return await _threaded(_register, request, body, registered=False)


@put(f"/ocpi/{VERSION}/credentials", include_in_schema=False)
async def put_credentials(request: Request[Any, Any, Any]) -> Response[bytes]:
    body = await _body(request)
    return await _threaded(_register, request, body, registered=True)


async def _threaded(fn: Any, *args: Any, **kw: Any) -> Response[bytes]:
    import functools

    import anyio.to_thread

    def run() -> Response[bytes]:
        try:
            return fn(*args, **kw)  # type: ignore[no-any-return]
        except _Refused as exc:
            return _envelope(None, exc.status, exc.code, exc.message)

    return await anyio.to_thread.run_sync(functools.partial(run))


@delete(f"/ocpi/{VERSION}/credentials", include_in_schema=False, status_code=200, sync_to_thread=True)
@_ocpi
def delete_credentials(request: Request[Any, Any, Any]) -> Response[bytes]:
    row = _credential(request, registered=True)
    with request.app.state.sessions() as db:
        S.delete_credentials(db.connection(), row.id)
        db.commit()
    return _envelope(None)


def _paging(request: Request[Any, Any, Any]) -> tuple[int, int, datetime | None, datetime | None]:
    q = request.query_params
    try:
        offset = int(q.get("offset", "0"))
        limit = min(int(q.get("limit", str(MAX_LIMIT))), MAX_LIMIT)
        dates = []
        for key in ("date_from", "date_to"):
            v = q.get(key)
            d = datetime.fromisoformat(v) if v else None
            dates.append(d.replace(tzinfo=UTC) if d is not None and d.tzinfo is None else d)
    except ValueError:
        raise _Refused(400, 2001, "offset and limit are integers, date_from and date_to ISO 8601 times") from None
    if offset < 0 or limit < 1:
        raise _Refused(400, 2001, "offset >= 0 and limit >= 1")
    return offset, limit, dates[0], dates[1]


def _paged(request: Request[Any, Any, Any], items: list[Any], total: int, offset: int, limit: int) -> Response[bytes]:
    headers = {"X-Total-Count": str(total), "X-Limit": str(MAX_LIMIT)}
    if offset + len(items) < total:
        params = {k: v for k, v in request.query_params.items() if k not in ("offset", "limit")}
        params.update(offset=str(offset + len(items)), limit=str(limit))
        url = str(request.url).split("?")[0]
        headers["Link"] = f'<{url}?{urlencode(params)}>; rel="next"'
    return _envelope(items, headers=headers)


@get(f"/ocpi/{VERSION}/cdrs", include_in_schema=False, sync_to_thread=True)
@_ocpi
def cdrs(request: Request[Any, Any, Any]) -> Response[bytes]:
    row = _credential(request)
    offset, limit, date_from, date_to = _paging(request)
    with request.app.state.read_sessions() as db:
        total, rows = S.cdr_page(db.connection(), row.tenant_id, row.partner_id, date_from=date_from,
                                 date_to=date_to, offset=offset, limit=limit)
    return _paged(request, [_numbers(r.ocpi) for r in rows], total, offset, limit)


_NUMBERS = frozenset({"excl_vat", "incl_vat", "volume", "total_energy", "total_time", "total_parking_time"})


def _numbers(o: Any, key: str = "") -> Any:
    """The stored CDR (decimal strings) with OCPI's numbers as JSON numbers again, digit for digit."""
    from decimal import Decimal

    if isinstance(o, dict):
        return {k: _numbers(v, k) for k, v in o.items()}
    if isinstance(o, list):
        return [_numbers(v, key) for v in o]
    if key in _NUMBERS and isinstance(o, str):
        return Decimal(o)
    return o


@get(f"/ocpi/{VERSION}/tariffs", include_in_schema=False, sync_to_thread=True)
@_ocpi
def tariffs(request: Request[Any, Any, Any]) -> Response[bytes]:
    row = _credential(request)
    offset, limit, date_from, date_to = _paging(request)
    items = _partner_tariffs(request, row.tenant_id, row.partner_id)
    items = [t for t in items if (date_from is None or t[0] >= date_from) and (date_to is None or t[0] < date_to)]
    return _paged(request, [t[1] for t in items[offset:offset + limit]], len(items), offset, limit)


def _partner_tariffs(request: Request[Any, Any, Any], tenant_id: str, partner_id: str) -> list[tuple[datetime, Any]]:
    from dsl.ocpi_export import export_tariffs
    from workflows.clearing.activities import cpo_identity, version_picker

    now = datetime.now(UTC)
    with request.app.state.read_sessions() as db:
        conn = db.connection()
        t = S.tenant_row(conn, tenant_id)
        p = S.partner_row(conn, tenant_id, partner_id)
        ag = S.roaming_agreement(conn, tenant_id, partner_id)
        if ag is None:
            return []
        try:
            pick = version_picker(conn, tenant_id, ag.ruleset_name, ag.rule_name or None)
        except Exception:  # noqa: BLE001  (no published ruleset: nothing to offer)
            return []
        rs, tariff = pick(now)
    cc, pid = cpo_identity(t)
    stamp = max(ag.created_at, now.replace(hour=0, minute=0, second=0, microsecond=0))
    out = export_tariffs(rs.ast, {tariff: tariff} if tariff else None, country_code=cc, party_id=pid,
                         last_updated=stamp.strftime("%Y-%m-%dT%H:%M:%SZ"), partner_party=p.party_id)
    return [(stamp, o) for o in out]


ocpi_router = Router(path="/", route_handlers=[versions, version_details, get_credentials, post_credentials,
                                               put_credentials, delete_credentials, cdrs, tariffs])


# ------------------------------------------------------------------- the operator's side
class OcpiTokenIssued(ReadModel):
    token: str = Field(description="token A, shown once: the partner calls versions_url with it, then POSTs its "
                                   "credentials")
    versions_url: str


@route("POST", "/partners/{partner_id:str}/ocpi-token", operation_id="issue_ocpi_token", roles="ocpi_admin",
       status_code=201, summary="Issue OCPI token A for an eMSP partner (shown once) to start the OCPI 2.2.1 "
                                "credentials handshake")
def issue_ocpi_token(request: Request[Any, Any, Any], partner_id: str) -> OcpiTokenIssued:
    token = secrets.token_urlsafe(32)
    with open_scope(request) as scope:
        if S.emsp_partner(scope.db.connection(), scope.tenant_id, partner_id) is None:
            raise NotFound("partner_not_found", f"eMSP partner {partner_id!r} not found")
        S.add_credentials(scope.db.connection(), scope.tenant_id, partner_id, _sha(token))
        scope.audit("ocpi.token_a", "partner", partner_id, None, {"partner_id": partner_id})
        scope.commit()
    return OcpiTokenIssued(token=token, versions_url=f"{_base(request)}/versions")


admin_router = Router(path="/", route_handlers=[issue_ocpi_token], tags=["ocpi"])
