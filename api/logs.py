"""The one logging set-up of the long-running commands (``evbill serve``, ``evbill demo``, the worker).

Our own loggers (``evbill.*``) write one line per request, job or decision they handle, at INFO;
third-party libraries stay at WARNING, because at INFO they narrate their internals: fontTools
and WeasyPrint write about 95 lines for every rendered invoice, Alembic prints each migration's
docstring at start, temporalio and the HTTP clients report every connection.

``EVBILL_LOG_FORMAT=json`` writes one JSON object per line (``time``, ``level``, ``logger``,
``message``, the ``extra`` fields of the call and ``exception`` when there is one) for a log
collector; anything else gives plain text. ``EVBILL_LOG_LEVEL`` (DEBUG, INFO, WARNING, ERROR;
default INFO) sets the level of our own loggers; third-party loggers follow it only when it is
stricter than WARNING, so DEBUG for evbill does not flood the log with fontTools again.
``EVBILL_ACCESS_LOG=0`` leaves out the per-request line of the API (``AccessLogMiddleware``).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import IO, Any

__all__ = ["OWN", "THIRD_PARTY", "AccessLogMiddleware", "JsonFormatter", "access_log_enabled", "setup_logging"]

OWN = "evbill"
# named explicitly because some of them set their own level or handlers when imported or started
# (uvicorn's dictConfig, alembic's fileConfig); the root logger's WARNING covers everything else
THIRD_PARTY = ("fontTools", "weasyprint", "alembic", "temporalio", "uvicorn", "uvicorn.error", "uvicorn.access",
               "uvicorn.asgi", "httpx", "httpcore", "websockets", "ocpp", "litestar", "asyncio", "sqlalchemy",
               "PIL", "pydyf", "multipart", "urllib3", "aiosqlite")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_HANDLER_NAME = "evbill"
# the attributes every LogRecord has: anything else on a record came in through ``extra=``
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exception"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        # default=str: a Decimal, datetime or id object in ``extra`` becomes its text, never a crash
        return json.dumps(out, ensure_ascii=False, default=str)


def _level(name: str | None) -> int:
    if not name:
        return logging.INFO
    value = logging.getLevelName(name.strip().upper())
    if not isinstance(value, int):
        raise ValueError(f"EVBILL_LOG_LEVEL={name!r}: use DEBUG, INFO, WARNING or ERROR")
    return value


def setup_logging(*, level: str | None = None, fmt: str | None = None, stream: IO[str] | None = None) -> None:
    """Configure the root logger once per process (calling it again replaces our handler, so
    tests and re-entrant commands do not double every line). ``level``/``fmt`` default to
    ``EVBILL_LOG_LEVEL``/``EVBILL_LOG_FORMAT``."""
    own = _level(level if level is not None else os.environ.get("EVBILL_LOG_LEVEL"))
    fmt = (fmt if fmt is not None else os.environ.get("EVBILL_LOG_FORMAT", "")).strip().lower()
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        if old.get_name() == _HANDLER_NAME:
            root.removeHandler(old)
    root.addHandler(handler)
    third = max(logging.WARNING, own)
    root.setLevel(third)
    logging.getLogger(OWN).setLevel(own)
    for name in THIRD_PARTY:
        lg = logging.getLogger(name)
        lg.setLevel(third)
        # their own handlers (uvicorn's) would print a second, differently formatted copy
        for h in list(lg.handlers):
            lg.removeHandler(h)
        lg.propagate = True
    logging.captureWarnings(True)


class AccessLogMiddleware:
    """One INFO line per API request of our own (``evbill.api.access``): method, path, status,
    milliseconds. ``/health`` (load balancer probes) is left out. Costs one logger-level check
    per request when INFO is off; ``EVBILL_ACCESS_LOG=0`` leaves the middleware out entirely."""

    log = logging.getLogger("evbill.api.access")

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] == "/health" or not self.log.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        import time

        started = time.perf_counter()
        status = 500  # what the client gets if the handler dies before answering

        async def send_and_note(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        except Exception as exc:
            # refused before a handler answered (the auth middleware's 401, a 429): Litestar's
            # exception handling further out turns it into the response with this status
            status = int(getattr(exc, "status_code", 500))
            raise
        finally:
            ms = (time.perf_counter() - started) * 1000
            self.log.info("%s %s %d %.1f ms", scope["method"], scope["path"], status, ms,
                          extra={"method": scope["method"], "path": scope["path"], "status": status,
                                 "duration_ms": round(ms, 1)})


def access_log_enabled() -> bool:
    return os.environ.get("EVBILL_ACCESS_LOG", "1").strip().lower() not in ("0", "false", "no", "off")
