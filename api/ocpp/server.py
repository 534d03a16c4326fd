"""The WebSocket server chargers connect to: ``ws(s)://HOST:PORT/ocpp/{charge_point_id}``.

The handshake decides everything a connection may do: the path names a registered charger, HTTP
Basic credentials (OCPP security profile 1; profile 2 when a certificate is configured and the
listener speaks TLS) must match its hashed password, and the subprotocol picks the OCPP version.
Anything else is refused before a WebSocket exists: an unknown or inactive charger and bad
credentials answer alike (401, same body, a password hash computed either way), so identities
cannot be enumerated; 400 no OCPP subprotocol.

The gateway runs its own event loop (in ``evbill serve`` a thread of its own), so slow API requests
never delay a charger's answer; the API reaches connected chargers through ``Gateway.command``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import gc
import hashlib
import hmac
import logging
import ssl
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

import ocpp.messages
from sqlalchemy import Engine
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from api.ocpp import service
from api.ocpp.dbworker import DbWorker
from api.ocpp.handlers import HANDLERS, GatewayMixin
from api.ocpp.load import LoadManager

__all__ = [
    "Gateway",
    "GatewaySettings",
    "GatewayStats",
    "NotConnected",
    "current_gateway",
    "hash_password",
    "start_gateway_thread",
]

log = logging.getLogger("evbill.ocpp")

# the package validates every payload in the default thread pool; schema checks take microseconds,
# the thread hop per message costs more than that under load
ocpp.messages.ASYNC_VALIDATION = False

SUBPROTOCOLS = ["ocpp2.0.1", "ocpp1.6"]
PATH_PREFIX = "/ocpp/"


def hash_password(password: str) -> str:
    """Charger passwords are stored like API key secrets: sha256, compared in constant time. OCPP
    passwords are 16-40 random characters set by us, so a slow hash buys nothing here."""
    return hashlib.sha256(password.encode()).hexdigest()


# compared against when there is no charger (or no password) to compare with: the same work either way
_DUMMY_SHA256 = hash_password("evbill: no charge point has this password")


class NotConnected(Exception):
    pass


@dataclass
class GatewaySettings:
    host: str = "127.0.0.1"  # loopback unless told otherwise (evbill serve --ocpp-host, EVBILL_OCPP_HOST)
    port: int = 9000
    certfile: str | None = None  # PEM; with it the listener speaks TLS (security profile 2)
    keyfile: str | None = None
    heartbeat_interval: int = 300
    # seconds between CostUpdated pushes per running 2.0.1 transaction; 0 turns them off
    cost_update_interval_s: float = 60.0
    response_timeout: float = 30.0
    # our answers are built from the package's typed dataclasses; tests turn this on
    validate_responses: bool = False
    # gc.set_threshold for the gateway's process; None leaves Python's defaults
    gc_threshold: tuple[int, int, int] | None = (10_000, 20, 50)
    seen_flush_s: float = 30.0


@dataclass
class GatewayStats:
    messages: int = 0
    errors: int = 0
    connections: int = 0
    refused: int = 0
    latencies: list[float] = field(default_factory=list)

    def observe(self, seconds: float) -> None:
        if len(self.latencies) < 2_000_000:
            self.latencies.append(seconds)


_current: Gateway | None = None


def current_gateway() -> Gateway | None:
    """The gateway running in this process, for the API's remote commands."""
    return _current


class Gateway:
    def __init__(self, engine: Engine, settings: GatewaySettings | None = None) -> None:
        self.settings = settings or GatewaySettings()
        self.db = DbWorker(engine)
        self.connections: dict[str, GatewayMixin] = {}
        self.stats = GatewayStats()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.server: Server | None = None
        self._seen: dict[str, datetime] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._pending: dict[str, service.CpInfo] = {}
        self._ready: list[int] = []
        self._finalizer: asyncio.Task[Any] | None = None
        self.load = LoadManager(self)  # load limits: capacity shared by charging profiles (issue 18)
        # charge points holding a sent reservation (accepted or awaiting the answer): a 1.6J start
        # that names none looks for one only there (``reservations.match_start``); None until the
        # gateway's start reads them: every start looks (issue 18)
        self.reserved_cps: set[str] | None = None

    # --- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        global _current
        self.loop = asyncio.get_running_loop()
        pkg_log = logging.getLogger("ocpp")
        if pkg_log.level == logging.NOTSET:
            # the package logs every frame at INFO: at fleet scale that is a flood of id tags
            pkg_log.setLevel(logging.WARNING)
        # warm-ups that would otherwise stall the loop at the first message of their kind: request
        # schemas compiled, the latest published rulesets compiled, then the start-up heap frozen
        # so full garbage collections under load do not walk it again and again
        from api.ocpp.handlers import warm_validators

        warm_validators()
        await self.db.read(service.warm_rulesets)
        gc.collect()
        gc.freeze()
        if self.settings.gc_threshold:
            # thousands of connections are long-lived objects: full collections walk all of them
            # (hundreds of ms); fewer of them under load, at the price of garbage kept a bit longer
            gc.set_threshold(*self.settings.gc_threshold)
        # stops committed before a restart whose session was not stored yet
        for tx_id in await self.db.read(service.pending_finalization):
            self.schedule_finalize(tx_id)
        from api.ocpp.reservations import held_charge_points

        self.reserved_cps = await self.db.read(held_charge_points)  # issue 18; kept by the sweep
        ctx = None
        if self.settings.certfile:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self.settings.certfile, self.settings.keyfile)
        self.server = await serve(
            self._connection, self.settings.host, self.settings.port, subprotocols=SUBPROTOCOLS,  # type: ignore[arg-type]
            process_request=self._handshake, ssl=ctx, compression=None, max_size=1_048_576,
            # chargers send heartbeats; protocol pings on 5,000 idle sockets are load for nothing
            ping_interval=None, open_timeout=30, server_header="evbill-ocpp",
            # thousands of chargers reconnect at once after an outage: a short accept queue drops
            # their SYNs and each retry waits seconds
            backlog=4096)
        self._spawn(self._flush_seen_loop())
        _current = self

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        global _current
        if _current is self:
            _current = None
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        for t in list(self._tasks):
            if not t.done() and t.get_coro().__name__ == "_flush_seen_loop":  # type: ignore[union-attr]
                t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._flush_seen()
        self.db.close()

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def idle(self, timeout: float = 10.0) -> None:
        """Wait until background work (finalizing sessions, cost pushes) is done; for tests."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            busy = [t for t in self._tasks if not t.done()
                    and t.get_coro().__name__ != "_flush_seen_loop"]  # type: ignore[union-attr]
            if not busy:
                return
            await asyncio.wait(busy, timeout=max(0.0, end - time.monotonic()))

    # --- handshake --------------------------------------------------------------------------------

    def _refuse(self, status: HTTPStatus, text: str, challenge: bool = False) -> Response:
        self.stats.refused += 1
        headers = Headers([("Content-Type", "text/plain; charset=utf-8")])
        if challenge:
            headers["WWW-Authenticate"] = 'Basic realm="evbill OCPP", charset="UTF-8"'
        body = (text + "\n").encode()
        headers["Content-Length"] = str(len(body))
        return Response(status.value, status.phrase, headers, body)

    async def _handshake(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if not path.startswith(PATH_PREFIX) or len(path) <= len(PATH_PREFIX):
            return self._refuse(HTTPStatus.NOT_FOUND, "unknown path: use /ocpp/{charge_point_id}")
        identity = unquote(path[len(PATH_PREFIX):]).strip("/")
        if "/" in identity or len(identity) > 64:
            self._credentials_ok(request, None)  # the same work as for a known charger
            return self._refuse_credentials()
        try:
            cp = await self.db.read(lambda db: service.load_charge_point(db, identity))
        except Exception:
            log.exception("charge point lookup failed")
            return self._refuse(HTTPStatus.SERVICE_UNAVAILABLE, "try again later")
        if cp is not None and cp.status != "active":
            cp = None  # an inactive charger is refused like an unknown one
        # with no charger the password is still hashed and compared, against a dummy: the same work
        if not self._credentials_ok(request, cp):
            return self._refuse_credentials()
        self._pending[connection.id.hex] = cp
        return None

    def _refuse_credentials(self) -> Response:
        """One answer for an unknown charger and wrong credentials (the caller has done the same
        work for both: ``_credentials_ok`` compares against a dummy hash when there is no charger)."""
        return self._refuse(HTTPStatus.UNAUTHORIZED, "charge point credentials required", challenge=True)

    @staticmethod
    def _credentials_ok(request: Request, cp: service.CpInfo | None) -> bool:
        """``cp`` None (unknown charger): the password is still hashed and compared, against a
        dummy, so the answer takes as long as for a known charger; the result is always False."""
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic" or not value:
            return False
        try:
            user, sep, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return False
        # the user name is the charge point identity (OCPP security whitepaper, profile 1 and 2)
        identity = cp.identity if cp is not None else ""
        stored = cp.password_sha256 if cp is not None and cp.password_sha256 else _DUMMY_SHA256
        ok_user = hmac.compare_digest(user.encode(), identity.encode())
        ok_pass = hmac.compare_digest(hash_password(password), stored)
        return bool(sep) and ok_user and ok_pass and cp is not None and bool(cp.password_sha256)

    # --- connections ------------------------------------------------------------------------------

    async def _connection(self, connection: ServerConnection) -> None:
        cp = self._pending.pop(connection.id.hex, None)
        cls = HANDLERS.get(connection.subprotocol or "")
        if cp is None or cls is None:
            await connection.close(1002, "OCPP subprotocol required")
            return
        handler = cls(cp.identity, connection, response_timeout=self.settings.response_timeout)  # type: ignore[call-arg]
        handler.bind(cp, self)
        old = self.connections.get(cp.identity)
        self.connections[cp.identity] = handler
        if old is not None:
            # the charger reconnected while we still held its old socket: the new one wins
            self._spawn(old._connection.close(1000, "replaced by a newer connection"))
        self.stats.connections += 1
        try:
            await handler.start()  # type: ignore[attr-defined]
        except ConnectionClosed:
            pass
        except Exception:
            log.exception("%s: connection failed", cp.identity)
        finally:
            self.stats.connections -= 1
            if self.connections.get(cp.identity) is handler:
                del self.connections[cp.identity]

    # --- background work --------------------------------------------------------------------------

    def seen(self, cp_id: str) -> None:
        self._seen[cp_id] = datetime.now(UTC)

    async def _flush_seen(self) -> None:
        if not self._seen:
            return
        seen, self._seen = list(self._seen.items()), {}
        for k in range(0, len(seen), 500):  # in slices, so chargers' messages get their turns between
            part = dict(seen[k:k + 500])
            try:
                await self.db.write(lambda db, part=part: service.touch(db, part))  # type: ignore[misc]
            except Exception:
                log.warning("could not store last-seen times", exc_info=True)

    async def _flush_seen_loop(self) -> None:
        from api.ocpp.reservations import sweep as reservation_sweep

        while True:
            await asyncio.sleep(self.settings.seen_flush_s)
            await self._flush_seen()
            await reservation_sweep(self)  # issue 18: scheduled ReserveNows sent, expired ones billed

    def schedule_finalize(self, tx_id: int) -> None:
        """Store the session of a stopped transaction soon. Stops are collected and stored in
        batches (one import, one audit entry per batch), which is what keeps up with thousands of
        chargers; the stop itself is already committed, so nothing waits for this."""
        self._ready.append(tx_id)
        if self._finalizer is None or self._finalizer.done():
            self._finalizer = self._spawn(self._finalize_loop())

    async def _finalize_loop(self) -> None:
        while self._ready:
            # on SQLite storing runs on the writer thread, so small batches keep chargers' answers
            # quick; with a backlog (a fleet stopping at once) larger ones, as each batch pays for
            # its import's fixed work (ruleset lookups, enrichment, audit entry) once
            size = (10 if len(self._ready) < 100 else 25) if self.db.single_writer else 500
            batch, self._ready = self._ready[:size], self._ready[size:]
            # let chargers' messages through between batches: storing is not urgent, answers are
            await asyncio.sleep(0.002)
            for attempt in range(5):
                try:
                    await self.db.solo(lambda db, batch=batch: service.finalize_many(db, batch))  # type: ignore[misc]
                    break
                except Exception:
                    log.warning("storing %d sessions failed (attempt %d)", len(batch), attempt + 1, exc_info=True)
                    await asyncio.sleep(0.2 * (attempt + 1))

    # --- remote commands --------------------------------------------------------------------------

    async def command(self, identity: str, payload: Any) -> Any:
        """Send a CALL to a connected charger and return its answer (the ``ocpp`` call_result)."""
        handler = self.connections.get(identity)
        if handler is None:
            raise NotConnected(identity)
        return await handler.call(payload, suppress=False)  # type: ignore[attr-defined]

    def command_threadsafe(self, identity: str, payload: Any, timeout: float | None = None) -> Any:
        """``command`` from another thread (the API's); blocks until the charger answers."""
        assert self.loop is not None
        fut = asyncio.run_coroutine_threadsafe(self.command(identity, payload), self.loop)
        return fut.result(timeout or self.settings.response_timeout + 5)

    def version_of(self, identity: str) -> str | None:
        handler = self.connections.get(identity)
        return handler.version if handler is not None else None


def start_gateway_thread(engine: Engine, settings: GatewaySettings | None = None) -> tuple[Gateway, threading.Thread]:
    """Run a gateway on an event loop in a daemon thread; returns once it listens (or raises)."""
    gw = Gateway(engine, settings)
    ready = threading.Event()
    failure: list[BaseException] = []
    stop_event: list[asyncio.Event] = []

    async def main() -> None:
        try:
            await gw.start()
        except BaseException as exc:  # noqa: BLE001
            failure.append(exc)
            ready.set()
            return
        ev = asyncio.Event()
        stop_event.append(ev)
        ready.set()
        await ev.wait()
        await gw.stop()

    def run() -> None:
        try:
            import uvloop

            uvloop.run(main())
        except ImportError:
            asyncio.run(main())

    t = threading.Thread(target=run, name="ocpp-gateway", daemon=True)
    t.start()
    ready.wait(30)
    if failure:
        raise failure[0]

    def shutdown() -> None:
        if stop_event and gw.loop is not None:
            gw.loop.call_soon_threadsafe(stop_event[0].set)
            t.join(15)

    gw.shutdown = shutdown  # type: ignore[attr-defined]
    return gw, t
