"""The one place where failures become HTTP: ``application/problem+json`` (RFC 9457) with a stable
snake_case ``code``. Bad input is always a 4xx; a 500 carries no traceback."""

from __future__ import annotations

import logging
from typing import Any
from zoneinfo import ZoneInfoNotFoundError

from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    MethodNotAllowedException,
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
    ValidationException,
)
from pydantic import BaseModel
from sqlalchemy.exc import DataError, IntegrityError, OperationalError

from runtime.accounting.chart import MappingMissing
from store.errors import DomainError

__all__ = ["PROBLEM_MEDIA_TYPE", "Problem", "exception_handlers", "problem"]

PROBLEM_MEDIA_TYPE = "application/problem+json"
log = logging.getLogger("evbill.api")


class Problem(BaseModel):
    type: str
    title: str
    status: int
    code: str
    detail: str = ""
    errors: list[dict[str, Any]] = []


_TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 409: "Conflict", 413: "Payload Too Large",
           415: "Unsupported Media Type", 422: "Unprocessable Content", 429: "Too Many Requests",
           500: "Internal Server Error", 503: "Service Unavailable"}

_HTTP_CODES = {400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 409: "conflict", 413: "payload_too_large",
               415: "unsupported_media_type", 422: "invalid_input", 429: "rate_limited",
               500: "internal_error"}


def problem(status: int, code: str, detail: str = "", errors: list[dict[str, Any]] | None = None,
            headers: dict[str, str] | None = None) -> Response[dict[str, Any]]:
    body = {"type": f"https://evbill.dev/problems/{code}", "title": _TITLES.get(status, "Error"),
            "status": status, "code": code, "detail": detail, "errors": errors or []}
    return Response(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def _clean_errors(extra: Any) -> list[dict[str, Any]]:
    out = []
    for e in extra if isinstance(extra, list) else []:
        if isinstance(e, dict):
            out.append({"key": str(e.get("key", "")), "message": str(e.get("message", "")),
                        "source": str(e.get("source", ""))})
    return out


def _pydantic_errors(exc: BaseException) -> list[dict[str, Any]] | None:
    """The pydantic errors behind a Litestar ``ValidationException`` (it keeps only their messages;
    the error types are on the exception it was raised from)."""
    from pydantic import ValidationError

    seen = exc.__cause__ or exc.__context__
    for _ in range(5):  # Litestar wraps it once or twice; a short walk, never a cycle
        if seen is None or isinstance(seen, ValidationError):
            break
        seen = seen.__cause__ or seen.__context__
    if isinstance(seen, ValidationError):
        return [dict(e) for e in seen.errors(include_url=False, include_input=False)]
    return None


def _master_data(exc: ValidationException) -> Response[Any] | None:
    """422 when the body had the right shape and only master-data checks failed (an unknown time
    zone, an IBAN with bad check digits: ``api.validation``), each field named with its reason."""
    from api.validation import MASTER_DATA_CODES

    found = _pydantic_errors(exc)
    if not found or any(e.get("type") not in MASTER_DATA_CODES for e in found):
        return None
    errors = [{"key": ".".join(str(p) for p in e.get("loc", ())), "message": str(e.get("msg", "")),
               "source": "body", "code": str(e["type"])} for e in found]
    codes = {e["code"] for e in errors}
    code = codes.pop() if len(codes) == 1 else "invalid_master_data"
    return problem(422, code, "; ".join(f"{e['key']}: {e['message']}" for e in errors), errors)


def _validation(_: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    semantic = _master_data(exc)
    if semantic is not None:
        return semantic
    detail = exc.detail or "the request is not valid"
    code = "malformed_body" if "decode" in detail.lower() or "json" in detail.lower() else "validation_failed"
    return problem(400, code, detail, _clean_errors(exc.extra))


def _http(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    code = _HTTP_CODES.get(status, "http_error")
    headers = dict(exc.headers or {})
    if status == 401:
        headers.setdefault("WWW-Authenticate", 'Bearer realm="evbill"')
    if status >= 500:
        return problem(500, "internal_error", "an unexpected error occurred")
    detail = (exc.detail or "").lower()
    if status == 400 and ("json" in detail or "decode" in detail or "malformed" in detail):
        code = "malformed_body"
    return problem(status, code, exc.detail or _TITLES.get(status, ""), _clean_errors(exc.extra), headers)


def _domain(_: Request[Any, Any, Any], exc: DomainError) -> Response[Any]:
    errors = exc.extra.get("errors") if isinstance(exc.extra.get("errors"), list) else []
    return problem(exc.status, exc.code, exc.message, errors)


def _integrity(request: Request[Any, Any, Any], exc: IntegrityError) -> Response[Any]:
    # the client sees no table or column names; the log says which constraint it was
    log.warning("constraint violation on %s %s: %s", request.method, request.url.path,
                str(exc.orig).splitlines()[0] if exc.orig else exc)
    return problem(409, "constraint_violation", "the change violates a database constraint")


def _busy(_: Request[Any, Any, Any], exc: OperationalError) -> Response[Any]:
    # deadlocks, serialisation failures, lock timeouts: the request was fine, retry it
    log.warning("database busy: %s", str(exc.orig).splitlines()[0] if exc.orig else exc)
    return problem(503, "database_busy", "the database is busy; retry the request",
                   headers={"Retry-After": "1"})


def _out_of_range(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    # a number the database cannot hold (e.g. an id beyond 64 bits) is bad input, not a crash
    return problem(400, "value_out_of_range", "a value is out of the range the database can store")


def _stored_zone(_: Request[Any, Any, Any], exc: ZoneInfoNotFoundError) -> Response[Any]:
    # request bodies are checked (api.validation); a zone that reaches zoneinfo unknown was stored
    # before they were: the data needs correcting, the server did not fail
    return problem(422, "unknown_timezone", f"a stored time zone is not in the IANA database ({exc}); "
                                            f"correct the billing account, location or tenant that names it")


def _chart_incomplete(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    # an event whose line the tenant's chart of accounts maps to no account: nothing was booked
    return problem(409, "chart_incomplete", f"the chart of accounts maps no account for {exc}; "
                                            f"add a rule (PUT /accounting/chart) and retry")


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem(500, "internal_error", "an unexpected error occurred")


exception_handlers: dict[Any, Any] = {
    ValidationException: _validation,
    NotAuthorizedException: _http,
    PermissionDeniedException: _http,
    NotFoundException: _http,
    MethodNotAllowedException: _http,
    HTTPException: _http,
    DomainError: _domain,
    IntegrityError: _integrity,
    OperationalError: _busy,
    DataError: _out_of_range,
    OverflowError: _out_of_range,
    ZoneInfoNotFoundError: _stored_zone,
    MappingMissing: _chart_incomplete,
    Exception: _unexpected,
}
