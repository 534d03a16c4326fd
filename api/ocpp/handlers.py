"""The protocol handlers: one class per OCPP version on top of the ``ocpp`` package's ChargePoint.

They stay thin: parse, hand the work to ``api.ocpp.service`` on the gateway's database threads,
answer. What they add to the package is robustness: every frame gets an answer (a CALLERROR for a
malformed frame, an unknown action or a payload the schema refuses) and nothing a charger sends
can end the connection or the server.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ocpp.charge_point import camel_to_snake_case, remove_nones, serialize_as_dict, snake_to_camel_case
from ocpp.exceptions import (
    FormationViolationError,
    FormatViolationError,
    GenericError,
    InternalError,
    NotImplementedError,
    NotSupportedError,
    OCPPError,
    ProtocolError,
    TypeConstraintViolationError,
)
from ocpp.messages import Call, CallError, MessageType, get_validator, unpack, validate_payload
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v16.enums import Action as Action16
from ocpp.v16.enums import DataTransferStatus, RegistrationStatus
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from ocpp.v201.enums import Action as Action201
from ocpp.v201.enums import RegistrationStatusEnumType

from api.ocpp import reservations, service
from api.ocpp.access import authorize
from api.ocpp.service import CpInfo
from store.ocpp import OcppMeterValue, OcppSignedData

if TYPE_CHECKING:
    from api.ocpp.server import Gateway

__all__ = ["HANDLERS", "Handler16", "Handler201"]

log = logging.getLogger("evbill.ocpp")


_param_cache: dict[Any, frozenset[str]] = {}


def _params(fn: Any) -> frozenset[str]:
    key = getattr(fn, "__func__", fn)
    hit = _param_cache.get(key)
    if hit is None:
        hit = _param_cache[key] = frozenset(inspect.signature(fn).parameters)
    return hit


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def _guess_id(raw: Any) -> str:
    """The unique id of a frame we could not unpack, when there is one to echo back."""
    try:
        msg = json.loads(raw)
        if isinstance(msg, list) and len(msg) > 1 and isinstance(msg[1], (str, int)):
            return str(msg[1])[:36]
    except (ValueError, TypeError):
        pass
    return "-1"


def _plain_details(details: Any) -> dict[str, Any]:
    # the package puts its Call object into details; only the cause goes on the wire
    if isinstance(details, dict) and "cause" in details:
        return {"cause": str(details["cause"])[:500]}
    return {}


# --- the per-message fast path --------------------------------------------------------------------
# The package's generic path converts every key with two regexes, inspects the handler's signature
# and validates request and response with jsonschema: at thousands of messages a second that is
# most of the gateway's CPU. Same rules here, with the key conversions memoized, requests validated
# by schemas compiled to Python (fastjsonschema, when installed), and our own responses (built from
# the package's typed dataclasses) validated only when ``GatewaySettings.validate_responses`` is on.

_snake: dict[str, str] = {}
_camel: dict[str, str] = {}


def to_snake(data: Any) -> Any:
    if isinstance(data, dict):
        out = {}
        for k, v in data.items():
            sk = _snake.get(k) if isinstance(k, str) else None
            if sk is None:
                sk = next(iter(camel_to_snake_case({k: None})))
                if len(_snake) < 5000:
                    _snake[k] = sk
            out[sk] = to_snake(v)
        return out
    if isinstance(data, list):
        return [to_snake(v) for v in data]
    return data


def to_camel(data: Any) -> Any:
    if isinstance(data, dict):
        out = {}
        for k, v in data.items():
            ck = _camel.get(k)
            if ck is None:
                ck = _camel[k] = next(iter(snake_to_camel_case({k: None})))
            out[ck] = to_camel(v)
        return out
    if isinstance(data, list):
        return [to_camel(v) for v in data]
    return data


_validators: dict[tuple[str, str], Any] = {}


def _compiled_validator(version: str, action: str) -> Any:
    key = (version, action)
    fn = _validators.get(key)
    if fn is None:
        schema = get_validator(MessageType.Call, action, version).schema
        try:
            import fastjsonschema

            fn = fastjsonschema.compile(schema)
        except ImportError:
            fn = False
        except Exception:
            log.warning("schema of %s %s not compiled; using jsonschema", version, action, exc_info=True)
            fn = False
        _validators[key] = fn
    return fn


def warm_validators() -> None:
    for cls in (Handler16, Handler201):
        for name in dir(cls):
            action = getattr(getattr(cls, name, None), "_on_action", None)
            if action:
                _compiled_validator(cls.version, str(action))


async def validate_request(version: str, msg: Call) -> None:
    fn = _compiled_validator(version, msg.action)
    if fn is False:
        await validate_payload(msg, version)
        return
    import fastjsonschema

    try:
        fn(msg.payload)
    except fastjsonschema.JsonSchemaValueException as exc:
        # the same mapping as the package's jsonschema path
        cause = {"cause": exc.message}
        if exc.rule in ("type", "maxLength"):
            raise TypeConstraintViolationError(details=cause) from None
        if exc.rule == "required":
            raise ProtocolError(details=cause) from None
        raise FormatViolationError(details=cause) from None


# the after-hooks a connection has running (see GatewayMixin._handle_call)
_FOLLOWUPS: set[asyncio.Future[Any]] = set()


class GatewayMixin:
    """What both versions share: the connection's charger, the gateway, and error answers."""

    version = ""
    known_actions: frozenset[str] = frozenset()
    cp: CpInfo
    gw: Gateway
    _connection: Any

    def bind(self, cp: CpInfo, gw: Gateway) -> None:
        self.cp = cp
        self.gw = gw

    async def _send(self, message: str) -> None:  # the package's, repeated for typing
        await self._connection.send(message)

    def _error(self, exc: OCPPError) -> OCPPError:
        if self.version == "1.6" and isinstance(exc, FormatViolationError):
            # OCPP-J 1.6 spells this error "FormationViolation"
            return FormationViolationError(description=exc.description, details=exc.details)
        if self.version == "2.0.1" and type(exc) is InternalError:
            return GenericError(description=exc.description, details=exc.details)
        return exc

    async def _send_error(self, unique_id: Any, exc: OCPPError) -> None:
        exc = self._error(exc)
        self.gw.stats.errors += 1
        err = CallError(str(unique_id)[:36], exc.code, str(exc.description or "")[:255], _plain_details(exc.details))
        await self._send(err.to_json())

    async def route_message(self, raw_msg: Any) -> None:
        t0 = time.perf_counter()
        self.gw.stats.messages += 1
        try:
            msg = unpack(raw_msg)
        except OCPPError as exc:
            await self._send_error(_guess_id(raw_msg), exc)
            return
        except Exception:  # noqa: BLE001  (e.g. [2] or ["x"]: not an OCPP frame at all)
            await self._send_error(_guess_id(raw_msg), ProtocolError(description="not an OCPP-J frame"))
            return
        if msg.message_type_id != MessageType.Call:
            self._response_queue.put_nowait(msg)  # type: ignore[attr-defined]
            return
        if not isinstance(msg.action, str) or not isinstance(msg.payload, dict) or not isinstance(
                msg.unique_id, str):
            await self._send_error(msg.unique_id, ProtocolError(description="a CALL needs an id, an action and "
                                                                            "a JSON object as payload"))
            return
        if msg.action not in self.route_map:  # type: ignore[attr-defined]
            # OCPP-J: NotImplemented for an action the receiver does not know, NotSupported for
            # one it knows (a valid action of this version) but does not handle
            known = msg.action in self.known_actions
            await self._send_error(msg.unique_id, (NotSupportedError if known else NotImplementedError)(
                description=f"{'unsupported' if known else 'unknown'} action {msg.action[:40]!r}"))
            return
        try:
            await self._handle_call(msg)  # type: ignore[attr-defined]
        except OCPPError as exc:
            await self._send_error(msg.unique_id, exc)
        except Exception:
            log.exception("%s: %s failed", self.cp.identity, msg.action)
            await self._send_error(msg.unique_id, InternalError(description="the message could not be processed"))
        finally:
            self.gw.stats.observe(time.perf_counter() - t0)

    async def _handle_call(self, msg: Call) -> None:
        handlers = self.route_map[msg.action]  # type: ignore[attr-defined]
        await validate_request(self.version, msg)
        handler = handlers["_on_action"]
        if "call_unique_id" in _params(handler):
            response = handler(**to_snake(msg.payload), call_unique_id=msg.unique_id)
        else:
            response = handler(**to_snake(msg.payload))
        if inspect.isawaitable(response):
            response = await response
        # most answers (MeterValues, StatusNotification) are dataclasses without fields: {}
        body = to_camel(remove_nones(serialize_as_dict(response))) if response.__dataclass_fields__ else {}
        if self.gw.settings.validate_responses:
            result = msg.create_call_result(body)
            result.action = msg.action
            await validate_payload(result, self.version)
        await self._send(json.dumps([3, msg.unique_id, body], separators=(",", ":")))
        after_action = handlers.get("_after_action")
        if after_action is not None:
            # what the gateway asks the charger in turn, once its answer is on the wire (a task:
            # our CALL's answer comes through the loop this receive runs on)
            followup = after_action(**to_snake(msg.payload))
            if inspect.isawaitable(followup):
                task = asyncio.ensure_future(followup)
                # held until done: the loop keeps only weak references to tasks
                _FOLLOWUPS.add(task)
                task.add_done_callback(_FOLLOWUPS.discard)

    def _finish(self, tx_id: int) -> None:
        self.gw.schedule_finalize(tx_id)


class Handler16(GatewayMixin, ChargePoint16):
    version = "1.6"
    known_actions = frozenset(a.value for a in Action16)

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._own_tx: set[int] = set()

    @on(Action16.boot_notification)
    async def on_boot(self, charge_point_vendor: str, charge_point_model: str, **kw: Any) -> Any:
        # the meter's serial, for a key the charger sends without one (setMeterConfiguration)
        self._meter_serial = str(kw.get("meter_serial_number") or "")
        await self.gw.db.write(lambda db: service.record_boot(
            db, self.cp, "1.6", charge_point_vendor, charge_point_model,
            kw.get("charge_point_serial_number") or "", kw.get("firmware_version") or "", self._meter_serial))
        self.gw.load.booted(self.cp.location_id, self.cp.id)  # issue 18: its TxDefaultProfile, after this answer
        return result16.BootNotification(current_time=_iso(_now()), interval=self.gw.settings.heartbeat_interval,
                                         status=RegistrationStatus.accepted)

    @after(Action16.boot_notification)
    async def after_boot(self, **kw: Any) -> None:
        """A charger that names its legal-for-trade meter is asked for the meter's public keys
        (the configuration keys ``MeterPublicKey[<connector>]`` and ``MeterPublicKeys`` that
        chargers following the OCA note on signed meter values in 1.6 expose, EVerest among them)."""
        serial = getattr(self, "_meter_serial", "")
        if not serial:
            return
        names = ["MeterPublicKeys", *(f"MeterPublicKey[{c}]" for c in sorted(self.cp.evses) if c)]
        try:
            res = await self.call(call16.GetConfiguration(key=names))
        except Exception:  # a charger without these keys, or busy: the DataTransfer may come
            log.info("%s: GetConfiguration of the meter keys failed", self.cp.identity, exc_info=True)
            return
        if res is None:  # a CALLERROR (NotImplemented, NotSupported...): the charger has no such keys
            log.info("%s: the charger answered GetConfiguration of the meter keys with an error", self.cp.identity)
            return
        found = [(str(k.get("key") or ""), str(k.get("value") or "")) for k in (res.configuration_key or [])
                 if isinstance(k, dict) and k.get("value")]
        if found:
            await self.gw.db.write(lambda db: service.meter_keys_from_configuration(db, self.cp, serial, found))

    @on(Action16.heartbeat)
    async def on_heartbeat(self) -> Any:
        self.gw.seen(self.cp.id)
        return result16.Heartbeat(current_time=_iso(_now()))

    @on(Action16.status_notification)
    async def on_status(self, connector_id: int, error_code: str, status: str, timestamp: str | None = None,
                        **kw: Any) -> Any:
        at = service.parse_time(timestamp) if timestamp else _now()
        await self.gw.db.write(lambda db: service.record_status(db, self.cp, connector_id, status, error_code, at))
        return result16.StatusNotification()

    @on(Action16.authorize)
    async def on_authorize(self, id_tag: str) -> Any:
        evse = self.cp.evse(None)
        d = await self.gw.db.write(lambda db: authorize(
            db, tenant_id=self.cp.tenant_id, charge_point_id=self.cp.id, location_id=self.cp.location_id,
            evse_uid=evse.uid, id_tag=id_tag, at=_now(), tz=self.cp.timezone, context="Authorize"))
        return result16.Authorize(id_tag_info={"status": d.status})

    @on(Action16.start_transaction)
    async def on_start(self, connector_id: int, id_tag: str, meter_start: int, timestamp: str, **kw: Any) -> Any:
        reservation_id = kw.get("reservation_id")

        def start(db: Any) -> tuple[int, str]:
            tx_id, status = service.start_transaction_16(db, self.cp, connector_id, id_tag, meter_start, timestamp)
            # issue 18: the reservation this start uses, named or (many chargers omit it) found by
            # connector, window and id tag; in the start's own transaction
            if reservation_id is not None:
                reservations.link_start(db, self.cp, tx_id, reservation_id, service.parse_time(timestamp))
            elif status == "Accepted" and (self.gw.reserved_cps is None or self.cp.id in self.gw.reserved_cps):
                reservations.match_start(db, self.cp, tx_id, connector_id, id_tag, service.parse_time(timestamp))
            return tx_id, status

        tx_id, status = await self.gw.db.write(start)
        self._own_tx.add(tx_id)
        self.gw.load.started(self.cp.location_id, tx_id)  # recomputed after this answer, off the hot path
        return result16.StartTransaction(transaction_id=tx_id, id_tag_info={"status": status})

    @on(Action16.meter_values)
    async def on_meter_values(self, connector_id: int, meter_value: list[dict[str, Any]],
                              transaction_id: int | None = None, **kw: Any) -> Any:
        readings = service.parse_meter_values_16(meter_value)
        if transaction_id is not None and transaction_id in self._own_tx:
            # a transaction this connection started or already checked: rows straight to the batch
            rows, signed = service.meter_rows(self.cp.tenant_id, transaction_id, readings)
            await self.gw.db.insert_rows(OcppMeterValue.__table__, service.METER_KEYS, rows)
            await self.gw.db.insert_rows(OcppSignedData.__table__, service.SIGNED_KEYS, signed)
            return result16.MeterValues()
        own = await self.gw.db.write(lambda db: service.meter_values_16(db, self.cp, transaction_id, readings))
        if own and transaction_id is not None:
            self._own_tx.add(transaction_id)
        return result16.MeterValues()

    @on(Action16.stop_transaction)
    async def on_stop(self, meter_stop: int, timestamp: str, transaction_id: int, reason: str | None = None,
                      id_tag: str | None = None, transaction_data: list[dict[str, Any]] | None = None,
                      **kw: Any) -> Any:
        readings = service.parse_meter_values_16(transaction_data)
        tx_id, ready = await self.gw.db.write(lambda db: service.stop_transaction_16(
            db, self.cp, transaction_id, meter_stop, timestamp, reason, id_tag, readings))
        self._own_tx.discard(transaction_id)
        self.gw.load.stopped(self.cp.location_id, tx_id)
        if ready:
            self._finish(tx_id)
        # the stop is accepted whatever the token: the energy was delivered and is billed
        return result16.StopTransaction(id_tag_info={"status": "Accepted"} if id_tag else None)

    @on(Action16.data_transfer)
    async def on_data_transfer(self, vendor_id: str, message_id: str | None = None, data: str | None = None) -> Any:
        log.info("%s: DataTransfer vendor=%r message=%r (%d bytes)", self.cp.identity, vendor_id, message_id,
                 len(data or ""))
        if vendor_id == "generalConfiguration" and message_id == "setMeterConfiguration":
            # the OCA application note on signed meter values in 1.6: the meters' public keys
            serial = getattr(self, "_meter_serial", "")
            n = await self.gw.db.write(lambda db: service.meter_configuration_16(db, self.cp, data, serial))
            return result16.DataTransfer(status=DataTransferStatus.accepted if n else DataTransferStatus.rejected)
        return result16.DataTransfer(status=DataTransferStatus.unknown_vendor_id)


class Handler201(GatewayMixin, ChargePoint201):
    version = "2.0.1"
    known_actions = frozenset(a.value for a in Action201)
    _last_cost_push: dict[str, float]

    @on(Action201.boot_notification)
    async def on_boot(self, charging_station: dict[str, Any], reason: str, **kw: Any) -> Any:
        await self.gw.db.write(lambda db: service.record_boot(
            db, self.cp, "2.0.1", charging_station.get("vendor_name") or "", charging_station.get("model") or "",
            charging_station.get("serial_number") or "", charging_station.get("firmware_version") or ""))
        self.gw.load.booted(self.cp.location_id, self.cp.id)  # issue 18: its TxDefaultProfile, after this answer
        return result201.BootNotification(current_time=_iso(_now()), interval=self.gw.settings.heartbeat_interval,
                                          status=RegistrationStatusEnumType.accepted)

    @on(Action201.heartbeat)
    async def on_heartbeat(self, **kw: Any) -> Any:
        self.gw.seen(self.cp.id)
        return result201.Heartbeat(current_time=_iso(_now()))

    @on(Action201.status_notification)
    async def on_status(self, timestamp: str, connector_status: str, evse_id: int, connector_id: int,
                        **kw: Any) -> Any:
        at = service.parse_time(timestamp)
        await self.gw.db.write(lambda db: service.record_status(db, self.cp, evse_id, connector_status, "", at))
        return result201.StatusNotification()

    @on(Action201.authorize)
    async def on_authorize(self, id_token: dict[str, Any], **kw: Any) -> Any:
        evse = self.cp.evse(None)
        d = await self.gw.db.write(lambda db: authorize(
            db, tenant_id=self.cp.tenant_id, charge_point_id=self.cp.id, location_id=self.cp.location_id,
            evse_uid=evse.uid, id_tag=str(id_token.get("id_token", "")), at=_now(), tz=self.cp.timezone,
            context="Authorize"))
        return result201.Authorize(id_token_info={"status": d.status})

    @on(Action201.transaction_event)
    async def on_transaction_event(self, event_type: str, timestamp: str, trigger_reason: str, seq_no: int,
                                   transaction_info: dict[str, Any], meter_value: list[dict[str, Any]] | None = None,
                                   offline: bool | None = None, evse: dict[str, Any] | None = None,
                                   id_token: dict[str, Any] | None = None, **kw: Any) -> Any:
        readings = service.parse_meter_values_201(meter_value)
        reservation_id = kw.get("reservation_id")

        def event(db: Any) -> Any:
            out = service.transaction_event_201(
                db, self.cp, event_type=event_type, timestamp=timestamp, trigger_reason=trigger_reason,
                seq_no=seq_no, transaction_info=transaction_info, offline=offline, evse=evse, id_token=id_token,
                readings=readings)
            if out.duplicate:
                return out
            # issue 18: the reservation this transaction uses, named or (chargers may leave
            # ``reservationId`` out) found by EVSE, window and id token once the event that starts it
            # or carries its token arrives; in the event's own transaction
            if reservation_id is not None:
                reservations.link_start(db, self.cp, out.tx_id, reservation_id, service.parse_time(timestamp))
            elif (event_type == "Started" or id_token) and event_type != "Ended" \
                    and (self.gw.reserved_cps is None or self.cp.id in self.gw.reserved_cps):
                reservations.match_transaction(db, self.cp, out.tx_id)
            return out

        out = await self.gw.db.write(event)
        if not out.duplicate and event_type in ("Started", "Ended"):
            (self.gw.load.started if event_type == "Started" else self.gw.load.stopped)(self.cp.location_id, out.tx_id)
        if out.ready:
            self._finish(out.tx_id)
        elif event_type == "Updated" and not out.duplicate and not offline:
            self._maybe_push_cost(out.tx_id, str(transaction_info["transaction_id"]), service.parse_time(timestamp))
        info = {"status": out.auth_status} if out.auth_status else None
        return result201.TransactionEvent(id_token_info=info)

    @on(Action201.reservation_status_update)
    async def on_reservation_status_update(self, reservation_id: int, reservation_update_status: str,
                                           **kw: Any) -> Any:
        """Issue 18: the charger ended a reservation (Expired: billed as expired; Removed: not billed)."""
        done = await self.gw.db.write(lambda db: reservations.status_update(
            db, self.cp, reservation_id, reservation_update_status, _now()))
        if done and reservation_update_status == "Expired":
            self.gw._spawn(self.gw.db.solo(lambda db: reservations.bill_expired(db, self.cp.tenant_id)))
        return result201.ReservationStatusUpdate()

    @on(Action201.meter_values)
    async def on_meter_values(self, evse_id: int, meter_value: list[dict[str, Any]], **kw: Any) -> Any:
        # 2.0.1 sends a transaction's readings in TransactionEvents; these are station readings
        return result201.MeterValues()

    def _maybe_push_cost(self, tx_id: int, ref: str, as_of: datetime) -> None:
        every = self.gw.settings.cost_update_interval_s
        if every <= 0:
            return
        if not hasattr(self, "_last_cost_push"):
            self._last_cost_push = {}
        now = time.monotonic()
        if now - self._last_cost_push.get(ref, -1e9) < every:
            return
        self._last_cost_push[ref] = now
        # a task, not an await: our CALL's answer arrives through the very loop this handler blocks
        asyncio.get_running_loop().create_task(self._push_cost(tx_id, ref, as_of))

    async def _push_cost(self, tx_id: int, ref: str, as_of: datetime) -> None:
        try:
            cost = await self.gw.db.read(lambda db: service.cost_so_far(db, tx_id, as_of=as_of))
            if not cost or cost.get("gross_total") is None:
                return
            # CostUpdated carries a JSON number: the display value for the charger's screen;
            # the amount billed is the stored rating, never this float
            await self.call(call201.CostUpdated(total_cost=float(cost["gross_total"]), transaction_id=ref))
        except Exception:
            log.warning("%s: CostUpdated for %s failed", self.cp.identity, ref, exc_info=True)


HANDLERS: dict[str, type[GatewayMixin]] = {"ocpp1.6": Handler16, "ocpp2.0.1": Handler201}
