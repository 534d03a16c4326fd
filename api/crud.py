"""Shared route plumbing: the route decorators every area uses (operation ids, guards, documented
problem responses), cursor pages, and a factory for the plain CRUD resources.

Plain resources (customers, tokens, locations, ...) differ only in their schemas, filters and
references, so their controllers are generated here instead of being copied nine times; areas with
behaviour of their own (rulesets, sessions) write their handlers by hand with the same decorators.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from litestar import HttpMethod, MediaType, Request, Response, Router
from litestar.connection import ASGIConnection
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter
from litestar.types import ASGIApp
from pydantic import BaseModel, ConfigDict, create_model
from sqlalchemy import Select, String, any_, bindparam, select
from sqlmodel import SQLModel

from api.auth import actor_of, allow
from api.errors import PROBLEM_MEDIA_TYPE, Problem
from store.errors import NotFound
from store.repo import Repo, Scope

__all__ = [
    "CursorParam",
    "IdPath",
    "JsonBody",
    "LimitParam",
    "ReadModel",
    "Ref",
    "SearchParam",
    "WriteModel",
    "crud_router",
    "open_scope",
    "page_of",
    "route",
]

LimitParam = Annotated[int, Parameter(ge=1, le=200, description="page size")]
CursorParam = Annotated[str | None, Parameter(max_length=200, description="next_cursor of the previous page")]
SearchParam = Annotated[str | None, Parameter(max_length=100, description="case-insensitive search")]
# evbill ids are "<prefix>_<hex>"; saying so keeps ids with "/" or "%" out of the path entirely
IdPath = Annotated[str, Parameter(pattern=r"^[A-Za-z0-9_-]{1,40}$", description="evbill id")]


class ReadModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class WriteModel(BaseModel):
    # unknown fields are an error, not silently dropped: typos in field names must be visible
    model_config = ConfigDict(extra="forbid")


def _problems(*statuses: int) -> dict[int, ResponseSpec]:
    return {s: ResponseSpec(data_container=Problem, media_type=PROBLEM_MEDIA_TYPE,
                            description=f"problem ({s})") for s in statuses}


class JsonBody(bytes):
    """A handler's answer already encoded as the JSON of its documented return type (by pydantic's
    own serializer, the same bytes Litestar would produce): the route sends it as it is."""


_JSON_HEADERS = (b"content-type", b"application/json")


def _send_json(body: bytes) -> ASGIApp:
    async def respond(_scope: Any, _receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [_JSON_HEADERS, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    return respond


class _RouteHandler(HTTPRouteHandler):
    """Litestar hands every guard a fresh ``copy(handler)`` (some 70 attributes) so that a guard
    cannot change the route; our guards (``api.auth.allow``) only read, and that copy was a fifth
    of the CPU of a lookup. A ``JsonBody`` answer skips Litestar's Response object, its header
    bookkeeping and a second encoding pass (no route of ours sets response headers, cookies or
    after-request hooks, which that path would lose: with any of them it goes the usual way)."""

    async def authorize_connection(self, connection: ASGIConnection[Any, Any, Any, Any]) -> None:
        for guard in self.resolve_guards():
            await guard(connection, self)  # type: ignore[arg-type]

    async def to_response(self, app: Any, data: Any, request: Request[Any, Any, Any]) -> ASGIApp:
        if type(data) is JsonBody and self.status_code == 200 and self._plain_response():
            return _send_json(data)
        return await super().to_response(app, data, request)

    _plain: bool | None = None  # set on first use: the layers are only complete once registered

    def _plain_response(self) -> bool:
        plain = self._plain
        if plain is None:
            plain = self._plain = not (
                any(layer.after_request for layer in self.ownership_layers) or self.resolve_response_headers()
                or self.resolve_response_cookies() or self.background or self.resolve_return_dto()
                or self.resolve_response_class() is not Response or self.media_type != MediaType.JSON)
        return plain


def route(method: str, path: str, *, operation_id: str, roles: str, summary: str = "",
          status_code: int | None = None, extra_problems: Sequence[int] = (), **kw: Any) -> Callable[..., Any]:
    """A route with its operation id, role guard and every problem it can answer documented."""
    problems = [400, 401, 403, 404, 409, 422, 429, *extra_problems]
    if method in ("POST", "PUT", "PATCH"):
        problems.append(413)  # a body above the app's request_max_body_size
    opts: dict[str, Any] = {
        "operation_id": operation_id, "guards": [allow(roles)], "opt": {"roles": roles},
        "responses": _problems(*sorted(set(problems))), "summary": summary or None,
        # reads are one short indexed query: running them on the event loop beats a thread hop
        # (and the GIL convoy of many threads) under load; writes may wait for locks, so they
        # go to the thread pool
        "sync_to_thread": method != "GET",
    }
    if status_code is not None:
        opts["status_code"] = status_code
    # responses a route documents besides its problems (another success code) join them
    opts["responses"] = {**opts["responses"], **kw.pop("responses", {})}
    # other media types its success answers in (``format=csv``): added to the document by
    # ``api.openapi.document_alternative_media``
    alternative = kw.pop("alternative_media", None)
    if alternative:
        opts["opt"]["alternative_media"] = dict(alternative)
    opts.update(kw)

    def decorate(fn: Callable[..., Any]) -> Any:
        if inspect.iscoroutinefunction(fn):
            opts.pop("sync_to_thread", None)
        return _RouteHandler(path, http_method=HttpMethod(method), **opts)(fn)

    return decorate


@contextmanager
def open_scope(request: Request[Any, Any, Any]) -> Iterator[Scope]:
    factory = request.app.state.read_sessions if request.method == "GET" else request.app.state.sessions
    with factory() as db:
        yield Scope(db, actor_of(request))


_pages: dict[type[BaseModel], type[BaseModel]] = {}


def page_of(read: type[BaseModel]) -> type[BaseModel]:
    if read not in _pages:
        name = read.__name__.removesuffix("Read") + "Page"
        _pages[read] = create_model(name, __base__=ReadModel, items=(list[read], ...), next_cursor=(str | None, None))  # type: ignore[valid-type]
    return _pages[read]


@dataclass(frozen=True)
class ItemSelect:
    """Core statements built once for a hot GET-by-id path (they skip ORM identity maps, per-call
    statement building and its cache-key walk: a statement object memoises its key): ``one`` row of
    the caller's tenant by ``id``, and ``many`` by a list of ``ids`` (PostgreSQL's ``= ANY``, for
    ``store.db.ReadBatcher``; None where the ids are not strings)."""

    one: Select[Any]
    many: Select[Any] | None


def item_select(model: type[SQLModel], read: type[BaseModel]) -> ItemSelect | None:
    """Only the columns ``read`` shows; None when ``read`` needs more than columns."""
    table = model.__table__  # type: ignore[attr-defined]
    if not set(read.model_fields) <= set(table.c.keys()):
        return None
    columns = [table.c[name] for name in read.model_fields]
    one = select(*columns).where(table.c.tenant_id == bindparam("tenant_id"), table.c.id == bindparam("id"))
    many = None
    if isinstance(getattr(table.c.id.type, "impl_instance", table.c.id.type), String):
        many = select(*columns).where(table.c.tenant_id == bindparam("tenant_id"),
                                      table.c.id == any_(bindparam("ids")))  # a list: psycopg sends an array
    return ItemSelect(one, many)


async def read_one(request: Request[Any, Any, Any], stmts: ItemSelect, entity: str, obj_id: str) -> dict[str, Any]:
    """Run an ``item_select`` for the caller's tenant: batched with the reads of other requests
    on PostgreSQL (``store.db.ReadBatcher``), on the spot elsewhere (``store.db.RowReader``)."""
    tenant_id = actor_of(request).tenant_id
    batcher = request.app.state.read_batcher
    if batcher is not None and stmts.many is not None:
        row = await batcher.first(stmts.one, stmts.many, tenant_id, obj_id)
    else:
        row = request.app.state.row_reader.first(stmts.one, {"tenant_id": tenant_id, "id": obj_id})
    if row is None:
        raise NotFound(f"{entity}_not_found", f"{entity.replace('_', ' ')} {obj_id!r} not found")
    return row


class Ref:
    """A field that names another object of the same tenant."""

    def __init__(self, model: type[SQLModel], entity: str) -> None:
        self.model = model
        self.entity = entity

    def check(self, scope: Scope, value: str | None) -> None:
        Repo(scope, self.model, self.entity, "").exists(value)


def crud_router(
    *, path: str, tag: str, entity: str, plural: str, prefix: str, model: type[SQLModel],
    create: type[BaseModel], update: type[BaseModel], read: type[BaseModel],
    read_roles: str = "read", write_roles: str = "write", filters: dict[str, Any] | None = None,
    json_filters: dict[str, str] | None = None, search_cols: Sequence[str] = (),
    refs: dict[str, Ref] | None = None, hide: Sequence[str] = (), clearable: Sequence[str] = (),
    validate: Callable[[Scope, dict[str, Any], Any], None] | None = None,
    deletable: bool = True, on_change: Callable[[Request[Any, Any, Any], Scope, Any], None] | None = None,
    on_write: Callable[[Scope, Any], None] | None = None,
) -> Router:
    """List/create/get/update/delete for one tenant-scoped table.

    ``filters`` maps query parameter names (equal to column names) to their types;
    ``json_filters`` maps a query parameter to a JSON-list column it must contain;
    ``validate(scope, values, existing)`` checks cross-field rules before writing;
    ``on_change(request, scope, obj)`` runs in the transaction of an update or delete, just before
    it commits (e.g. to have caches dropped once it has: ``api.auth.auth_changed``);
    ``on_write(scope, obj)`` runs in the transaction of a create or an update, before it commits
    (what the new data changes elsewhere: ``api.session_assignment``).
    """
    filters = filters or {}
    json_filters = json_filters or {}
    refs = refs or {}
    page = page_of(read)
    id_name = f"{entity}_id"
    item = f"{path}/{{{id_name}:str}}"

    def _repo(scope: Scope) -> Repo[Any]:
        return scope.repo(model, entity, prefix)

    def _to_read(obj: Any) -> BaseModel:
        return read.model_validate(obj, from_attributes=True)

    def list_items(request: Request[Any, Any, Any], limit: int = 50, cursor: str | None = None,
                   q: str | None = None, **kw: Any) -> Any:
        with open_scope(request) as scope:
            rows, nxt = _repo(scope).page(
                filters={k: kw.get(k) for k in filters}, json_contains={c: kw.get(p) for p, c in json_filters.items()},
                search=q, search_cols=search_cols, cursor=cursor, limit=limit)
            return page(items=[_to_read(r) for r in rows], next_cursor=nxt)

    params = [
        inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD),
        inspect.Parameter("limit", inspect.Parameter.KEYWORD_ONLY, default=50),
        inspect.Parameter("cursor", inspect.Parameter.KEYWORD_ONLY, default=None),
    ]
    ann: dict[str, Any] = {"request": Request, "limit": LimitParam, "cursor": CursorParam, "return": page}
    if search_cols:
        params.append(inspect.Parameter("q", inspect.Parameter.KEYWORD_ONLY, default=None))
        ann["q"] = SearchParam
    for name, typ in {**filters, **dict.fromkeys(json_filters, str)}.items():
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None))
        ann[name] = Annotated[typ | None, Parameter(description=f"only {plural} with this {name}")]

    def list_handler(**kw: Any) -> Any:
        return list_items(**kw)

    list_handler.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    list_handler.__annotations__ = ann
    list_handler.__name__ = f"list_{plural}"

    def check_refs(scope: Scope, values: dict[str, Any]) -> None:
        for field, ref in refs.items():
            if values.get(field) is not None:
                ref.check(scope, values[field])

    def create_handler(request: Request[Any, Any, Any], data: Any) -> Any:
        with open_scope(request) as scope:
            values = data.model_dump()
            check_refs(scope, values)
            if validate:
                validate(scope, values, None)
            obj = _repo(scope).create(values, hide=hide)
            if on_write:
                on_write(scope, obj)
            scope.commit()
            return _to_read(obj)

    create_handler.__annotations__ = {"request": Request, "data": create, "return": read}
    create_handler.__name__ = f"create_{entity}"

    one = item_select(model, read)

    async def get_handler(request: Request[Any, Any, Any], **kw: Any) -> Any:
        if one is not None:
            row = await read_one(request, one, entity, kw[id_name])
            return JsonBody(read.__pydantic_serializer__.to_json(read.model_validate(row)))
        with open_scope(request) as scope:  # one short indexed query: on the loop, as sync GETs are
            return _to_read(_repo(scope).get(kw[id_name]))

    id_param = [inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD),
                inspect.Parameter(id_name, inspect.Parameter.KEYWORD_ONLY)]
    get_handler.__signature__ = inspect.Signature(id_param)  # type: ignore[attr-defined]
    get_handler.__annotations__ = {"request": Request, id_name: IdPath, "return": read}
    get_handler.__name__ = f"get_{entity}"

    def update_handler(request: Request[Any, Any, Any], data: Any, **kw: Any) -> Any:
        with open_scope(request) as scope:
            repo = _repo(scope)
            obj = repo.get(kw[id_name])
            changes = {k: v for k, v in data.model_dump(exclude_unset=True).items()
                       if v is not None or k in clearable}
            check_refs(scope, changes)
            if validate:
                validate(scope, {**obj.model_dump(), **changes}, obj)
            repo.update(obj, changes, hide=hide)
            if on_write:
                on_write(scope, obj)
            if on_change:
                on_change(request, scope, obj)
            scope.commit()
            return _to_read(obj)

    update_handler.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [*id_param, inspect.Parameter("data", inspect.Parameter.KEYWORD_ONLY)])
    update_handler.__annotations__ = {"request": Request, id_name: IdPath, "data": update, "return": read}
    update_handler.__name__ = f"update_{entity}"

    def delete_handler(request: Request[Any, Any, Any], **kw: Any) -> None:
        with open_scope(request) as scope:
            repo = _repo(scope)
            obj = repo.get(kw[id_name])
            repo.delete(obj, hide=hide)
            if on_change:
                on_change(request, scope, obj)
            scope.commit()

    delete_handler.__signature__ = inspect.Signature(id_param)  # type: ignore[attr-defined]
    delete_handler.__annotations__ = {"request": Request, id_name: IdPath, "return": None}
    delete_handler.__name__ = f"delete_{entity}"

    handlers = [
        route("GET", path, operation_id=f"list_{plural}", roles=read_roles, summary=f"List {plural}")(list_handler),
        route("POST", path, operation_id=f"create_{entity}", roles=write_roles, status_code=201,
              summary=f"Create a {entity}")(create_handler),
        route("GET", item, operation_id=f"get_{entity}", roles=read_roles, summary=f"Get a {entity}")(get_handler),
        route("PATCH", item, operation_id=f"update_{entity}", roles=write_roles,
              summary=f"Update a {entity}")(update_handler),
    ]
    if deletable:
        handlers.append(route("DELETE", item, operation_id=f"delete_{entity}", roles=write_roles,
                              status_code=204, summary=f"Delete a {entity}")(delete_handler))
    return Router(path="/", route_handlers=handlers, tags=[tag])
