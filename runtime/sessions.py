"""Session facts: everything rating may look at, as plain immutable data.

A session arrives from OCPP, an OCPI CDR, a CSV import or a simulation; whatever the source, it is
turned into one ``SessionFacts`` before rating. Timestamps are timezone-aware UTC; energy is kWh,
times are hours (as in OCPI CDR dimensions), power kW, current A.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from runtime.money import ZERO, to_decimal

__all__ = ["ChargingPeriod", "MeterValue", "SessionFacts", "SessionInputError", "parse_datetime"]


class SessionInputError(ValueError):
    """Session input that cannot be rated; the message says which field and why."""


def parse_datetime(value: object, field_name: str = "timestamp") -> datetime:
    """Parse an ISO 8601 timestamp with an offset (``Z`` allowed) into aware UTC."""
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            raise SessionInputError(f"{field_name}: not an ISO 8601 timestamp: {value!r}") from None
    else:
        raise SessionInputError(f"{field_name}: expected an ISO 8601 string, found {type(value).__name__}")
    if dt.tzinfo is None:
        raise SessionInputError(f"{field_name}: timestamp {value!r} has no UTC offset")
    return dt.astimezone(UTC)


def _dec(d: Mapping[str, Any], key: str, default: Decimal | None = ZERO) -> Decimal | None:
    v = d.get(key)
    if v is None:
        return default
    try:
        return to_decimal(str(v) if isinstance(v, float) else v)
    except (TypeError, ValueError):
        raise SessionInputError(f"{key}: not a number: {v!r}") from None


@dataclass(frozen=True, slots=True)
class ChargingPeriod:
    """One stretch of a session with its measured volumes (the OCPI CDR dimensions).

    A period ends where the next begins (the last one at the session end).
    """

    start: datetime
    end: datetime
    energy_kwh: Decimal = ZERO
    time_h: Decimal = ZERO
    parking_h: Decimal = ZERO
    reservation_h: Decimal = ZERO
    min_power_kw: Decimal | None = None
    max_power_kw: Decimal | None = None
    min_current_a: Decimal | None = None
    max_current_a: Decimal | None = None


@dataclass(frozen=True, slots=True)
class MeterValue:
    """A cumulative energy register reading (Wh) at a moment, as chargers report it."""

    at: datetime
    energy_wh: Decimal
    power_w: Decimal | None = None


@dataclass(frozen=True, slots=True)
class SessionFacts:
    """A charging session as the rating engine sees it.

    Volumes come from ``periods`` when given (OCPI CDRs); else from ``meter_values``; else from
    ``energy_kwh`` spread pro rata over the charging time ``start..charging_end`` with the rest of
    the session (``charging_end..end``) counted as parking.
    """

    id: str
    start: datetime
    end: datetime
    energy_kwh: Decimal = ZERO
    charging_end: datetime | None = None
    periods: tuple[ChargingPeriod, ...] | None = None
    meter_values: tuple[MeterValue, ...] | None = None
    # where
    location_id: str = ""
    site_id: str = ""
    evse_id: str = ""
    country: str = ""
    timezone: str = ""  # IANA zone of the location; "" = the ruleset's zone
    power_type: str = "AC"  # AC or DC
    max_power_kw: Decimal | None = None
    # who
    customer_id: str = ""
    customer_groups: frozenset[str] = field(default_factory=frozenset)
    product: str = ""
    token_uid: str = ""
    token_type: str = ""  # rfid, app, emaid, adhoc, ...
    partner: str = ""  # issuing partner (eMSP party id) of the token
    roaming: bool = False
    # OCPI reservation pricing: "RESERVATION" or "RESERVATION_EXPIRES"
    reservation: str | None = None
    promo_codes: frozenset[str] = field(default_factory=frozenset)
    # Eichrecht: the energy between the signed start and end readings, when the session's signed
    # meter data verified (``facts["signed_meter"]``, see ``runtime.ocmf.check_session``)
    signed_kwh: Decimal | None = None
    # a reservation this session was started with (issue 18): the EVSE was held for it from this
    # moment until ``start``; rating prices that stretch with the tariff's reservation components
    reserved_from: datetime | None = None

    def signed_only(self) -> SessionFacts:
        """The session as a legal-for-trade tariff bills it: the signed energy, spread pro rata;
        unsigned readings in between do not count. Without verified signed data it stays as it
        is (its invoice is held for review instead)."""
        if self.signed_kwh is None:
            return self
        return replace(self, energy_kwh=self.signed_kwh, meter_values=None)

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise SessionInputError(f"session {self.id!r}: end {self.end.isoformat()} is before start")
        if self.energy_kwh < 0:
            raise SessionInputError(f"session {self.id!r}: negative energy {self.energy_kwh}")
        if self.power_type not in ("AC", "DC"):
            raise SessionInputError(f"session {self.id!r}: power_type must be AC or DC, found {self.power_type!r}")
        if self.reserved_from is not None and self.reserved_from > self.start:
            raise SessionInputError(f"session {self.id!r}: reserved_from {self.reserved_from.isoformat()} is after "
                                    "the start")

    @property
    def duration_h(self) -> Decimal:
        return Decimal((self.end - self.start).total_seconds()) / 3600

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SessionFacts:
        """Build from the JSON shape used by ``evbill rate`` (see README); errors name the field."""
        if not isinstance(d, Mapping):
            raise SessionInputError(f"a session must be a JSON object, found {type(d).__name__}")
        sid = str(d.get("id", ""))
        if not sid:
            raise SessionInputError("id: missing")
        if "start" not in d or "end" not in d:
            raise SessionInputError(f"session {sid!r}: 'start' and 'end' are required")
        start = parse_datetime(d["start"], "start")
        end = parse_datetime(d["end"], "end")
        periods = None
        if d.get("periods") is not None:
            raw = d["periods"]
            if not isinstance(raw, list):
                raise SessionInputError("periods: expected a list")
            ps = []
            for i, p in enumerate(raw):
                pstart = parse_datetime(p.get("start"), f"periods[{i}].start")
                nxt = raw[i + 1].get("start") if i + 1 < len(raw) else None
                pend = parse_datetime(nxt, f"periods[{i + 1}].start") if nxt else end
                ps.append(ChargingPeriod(
                    start=pstart, end=pend,
                    energy_kwh=_dec(p, "energy_kwh") or ZERO,
                    time_h=_dec(p, "time_h") or ZERO,
                    parking_h=_dec(p, "parking_h") or ZERO,
                    reservation_h=_dec(p, "reservation_h") or ZERO,
                    min_power_kw=_dec(p, "min_power_kw", None),
                    max_power_kw=_dec(p, "max_power_kw", None),
                    min_current_a=_dec(p, "min_current_a", None),
                    max_current_a=_dec(p, "max_current_a", None),
                ))
            periods = tuple(ps)
        meter_values = None
        if d.get("meter_values") is not None:
            raw_mv = d["meter_values"]
            if not isinstance(raw_mv, list):
                raise SessionInputError("meter_values: expected a list")
            mvs = []
            for i, m in enumerate(raw_mv):
                if not isinstance(m, Mapping):
                    raise SessionInputError(f"meter_values[{i}]: expected an object")
                e = _dec(m, "energy_wh", None)
                if e is None:
                    raise SessionInputError(f"meter_values[{i}].energy_wh: missing")
                mvs.append(MeterValue(parse_datetime(m.get("at"), f"meter_values[{i}].at"), e,
                                      _dec(m, "power_w", None)))
            meter_values = tuple(sorted(mvs, key=lambda m: m.at))
        groups = d.get("customer_groups") or d.get("groups") or ()
        if isinstance(groups, str):
            groups = (groups,)
        codes = d.get("promo_codes") or ()
        if isinstance(codes, str):
            codes = (codes,)
        ce = d.get("charging_end")
        rf = d.get("reserved_from")
        sm = d.get("signed_meter")
        signed = _dec(sm, "signed_kwh", None) if isinstance(sm, Mapping) and sm.get("check") == "verified" else None
        return cls(
            id=sid, start=start, end=end,
            energy_kwh=_dec(d, "energy_kwh") or ZERO,
            charging_end=parse_datetime(ce, "charging_end") if ce else None,
            periods=periods, meter_values=meter_values,
            location_id=str(d.get("location_id", d.get("location", ""))),
            site_id=str(d.get("site_id", d.get("site", ""))),
            evse_id=str(d.get("evse_id", d.get("evse", ""))),
            country=str(d.get("country", "")),
            timezone=str(d.get("timezone", "")),
            power_type=str(d.get("power_type", "AC")).upper(),
            max_power_kw=_dec(d, "max_power_kw", None),
            customer_id=str(d.get("customer_id", "")),
            customer_groups=frozenset(str(g) for g in groups),
            product=str(d.get("product", "") or ""),
            token_uid=str(d.get("token_uid", "")),
            token_type=str(d.get("token_type", "")).lower(),
            partner=str(d.get("partner", "")),
            roaming=bool(d.get("roaming", False)),
            reservation=d.get("reservation"),
            promo_codes=frozenset(str(c) for c in codes),
            signed_kwh=signed,
            reserved_from=parse_datetime(rf, "reserved_from") if rf else None,
        )
