"""Sessions in: the JSON shape of ``evbill rate``, OCPI 2.2.1 CDRs and CSV, all turned into the
same facts dict, enriched from the tenant's data (location time zone, token -> contract ->
customer groups and product), rated with the version in force at the session start, and stored
idempotently by external id.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import JSON, insert, or_, select, update

from api.crud import ReadModel, WriteModel
from api.rating import VersionIndex, compiled, rating_context
from api.schemas import DecimalStr
from runtime.sessions import SessionFacts, SessionInputError, parse_datetime
from store.adhoc import is_adhoc_tag
from store.errors import InvalidInput
from store.models import (
    BillingAccount,
    ChargingPeriodRow,
    ChargingSession,
    Contract,
    Customer,
    Location,
    Partner,
    RatedLineRow,
    RulesetVersion,
    SessionRating,
    Token,
)
from store.repo import Scope
from store.types import new_id, utcnow

__all__ = [
    "MAX_BATCH",
    "UNASSIGNED_REASONS",
    "CdrIn",
    "ImportResult",
    "SessionIn",
    "Unassigned",
    "assignment_of",
    "bulk_insert",
    "cdr_to_facts",
    "contract_covers",
    "import_sessions",
    "parse_csv",
    "rate_facts",
    "rate_stored",
    "rating_rows",
    "rerate",
]

MAX_BATCH = 5000


# --- input shapes -------------------------------------------------------------------------------

class PeriodIn(WriteModel):
    start: AwareDatetime
    energy_kwh: DecimalStr = "0"
    time_h: DecimalStr = "0"
    parking_h: DecimalStr = "0"
    reservation_h: DecimalStr = "0"
    max_power_kw: DecimalStr | None = None


class MeterValueIn(WriteModel):
    at: AwareDatetime
    energy_wh: DecimalStr
    power_w: DecimalStr | None = None


class SessionIn(WriteModel):
    """A session in the ``evbill rate`` JSON shape; ``id`` is the external id (idempotency key)."""

    id: str = Field(min_length=1, max_length=100)
    start: AwareDatetime
    end: AwareDatetime
    charging_end: AwareDatetime | None = None
    energy_kwh: DecimalStr = "0"
    location_id: str = Field("", max_length=64, description="location code (or evbill id)")
    evse_id: str = Field("", max_length=64)
    country: str = Field("", max_length=2)
    timezone: str = Field("", max_length=64)
    power_type: Literal["AC", "DC"] = "AC"
    max_power_kw: DecimalStr | None = None
    token_uid: str = Field("", max_length=64)
    token_type: str = Field("", max_length=20)
    customer_groups: list[str] = Field(default_factory=list, max_length=20)
    product: str = Field("", max_length=100)
    partner: str = Field("", max_length=64)
    roaming: bool = False
    promo_codes: list[str] = Field(default_factory=list, max_length=20)
    tariff: str | None = Field(None, max_length=100)
    periods: list[PeriodIn] | None = Field(None, max_length=500)
    meter_values: list[MeterValueIn] | None = Field(None, max_length=5000)

    def to_facts_dict(self) -> dict[str, Any]:
        d = self.model_dump(mode="json", exclude_none=True)
        d.pop("tariff", None)
        return d


class CdrDimension(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: str = Field(max_length=30)
    volume: Decimal


class CdrChargingPeriod(BaseModel):
    model_config = ConfigDict(extra="ignore")
    start_date_time: AwareDatetime
    dimensions: list[CdrDimension] = Field(min_length=1, max_length=20)
    tariff_id: str | None = Field(None, max_length=36)


class CdrToken(BaseModel):
    model_config = ConfigDict(extra="ignore")
    uid: str = Field(max_length=36)
    type: str = Field("RFID", max_length=20)
    contract_id: str = Field("", max_length=36)
    country_code: str = Field("", max_length=2)
    party_id: str = Field("", max_length=3)


class CdrLocation(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str = Field(max_length=36)
    country: str = Field("", max_length=3)
    evse_uid: str = Field("", max_length=36)
    evse_id: str = Field("", max_length=48)
    connector_power_type: str = Field("AC_3_PHASE", max_length=20)


class CdrIn(BaseModel):
    """The parts of an OCPI 2.2.1 CDR that rating needs (other fields are accepted and ignored)."""

    model_config = ConfigDict(extra="ignore")
    id: str = Field(min_length=1, max_length=39)
    start_date_time: AwareDatetime
    end_date_time: AwareDatetime
    cdr_token: CdrToken
    cdr_location: CdrLocation
    currency: str = Field("EUR", max_length=3)
    charging_periods: list[CdrChargingPeriod] = Field(min_length=1, max_length=500)
    total_energy: Decimal
    total_time: Decimal
    total_parking_time: Decimal | None = None


_DIMENSIONS = {"ENERGY": "energy_kwh", "TIME": "time_h", "PARKING_TIME": "parking_h",
               "RESERVATION_TIME": "reservation_h", "MAX_POWER": "max_power_kw", "MIN_POWER": "min_power_kw",
               "MAX_CURRENT": "max_current_a", "MIN_CURRENT": "min_current_a"}
_TOKEN_TYPES = {"RFID": "rfid", "APP_USER": "app", "AD_HOC_USER": "adhoc", "OTHER": "other"}


def cdr_to_facts(cdr: CdrIn) -> dict[str, Any]:
    periods = []
    for p in sorted(cdr.charging_periods, key=lambda p: p.start_date_time):
        row: dict[str, Any] = {"start": p.start_date_time.isoformat()}
        for dim in p.dimensions:
            key = _DIMENSIONS.get(dim.type.upper())
            if key:
                row[key] = format(dim.volume, "f")
        periods.append(row)
    return {
        "id": cdr.id, "start": cdr.start_date_time.isoformat(), "end": cdr.end_date_time.isoformat(),
        "energy_kwh": format(cdr.total_energy, "f"), "periods": periods,
        "location_id": cdr.cdr_location.id, "evse_id": cdr.cdr_location.evse_uid or cdr.cdr_location.evse_id,
        "country": cdr.cdr_location.country[:2] if len(cdr.cdr_location.country) == 2 else "",
        "power_type": "DC" if cdr.cdr_location.connector_power_type.upper() == "DC" else "AC",
        "token_uid": cdr.cdr_token.uid, "token_type": _TOKEN_TYPES.get(cdr.cdr_token.type.upper(), "other"),
        "partner": cdr.cdr_token.party_id,
    }


_CSV_LIST_FIELDS = ("customer_groups", "promo_codes")


def parse_csv(text: str) -> list[tuple[str, dict[str, Any] | None, str]]:
    """Rows of a CSV export -> (external id, facts dict or None, error). Unknown columns are
    ignored (exports carry extra columns); list columns split on ``|``."""
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or not {"id", "start", "end"} <= {f.strip() for f in reader.fieldnames if f}:
        raise InvalidInput("csv_header_missing", "the CSV needs a header with at least id, start, end")
    known = set(SessionIn.model_fields) - {"periods", "meter_values"}
    out: list[tuple[str, dict[str, Any] | None, str]] = []
    for row in reader:
        clean: dict[str, Any] = {}
        for k, v in row.items():
            if k is None or v is None:
                continue
            k = k.strip()
            if k not in known or v.strip() == "":
                continue
            v = v.strip()
            if k in _CSV_LIST_FIELDS:
                clean[k] = [x for x in v.split("|") if x]
            elif k == "roaming":
                clean[k] = v.lower() in ("1", "true", "yes")
            else:
                clean[k] = v
        ext = str(clean.get("id", ""))
        try:
            s = SessionIn.model_validate(clean)
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(x) for x in first.get("loc", ()))
            out.append((ext, None, f"{loc}: {first.get('msg', 'invalid')}"))
            continue
        facts = s.to_facts_dict()
        if s.tariff:
            facts["tariff"] = s.tariff
        out.append((s.id, facts, ""))
    return out


# --- rating -------------------------------------------------------------------------------------

def rate_facts(scope: Scope, rs: Any, facts_dict: dict[str, Any], tariff: str | None,
               ctx: Any = None) -> tuple[bool, dict[str, Any] | None, str | None, str | None]:
    """Rate one facts dict (simulation: nothing stored)."""
    try:
        facts = SessionFacts.from_dict(facts_dict)
    except (SessionInputError, TypeError, ValueError, AttributeError) as exc:
        return False, None, "invalid_session", str(exc)
    if ctx is None:
        ctx = rating_context(scope, rs, facts.start, facts.end)
    try:
        result = rs.rate(facts, ctx, tariff=tariff)
    except Exception as exc:  # noqa: BLE001  (a rating failure is reported per session, never a 500)
        return False, None, "rating_failed", str(exc) or type(exc).__name__
    return True, result.to_dict(), None, None


# --- import -------------------------------------------------------------------------------------

class ImportItem(ReadModel):
    index: int
    external_id: str
    status: Literal["created", "unchanged", "failed"]
    session_id: str | None = None
    rating_status: str | None = None
    code: str | None = None
    message: str | None = None
    # status ``unassigned``: why no billing account takes the session (see GET /sessions?status=unassigned)
    unassigned_reason: str | None = None
    unassigned_message: str | None = None


class ImportResult(ReadModel):
    created: int
    unchanged: int
    failed: int
    items: list[ImportItem]


@dataclass
class Incoming:
    external_id: str
    source: str
    facts: dict[str, Any] | None
    error: str = ""
    tariff: str | None = None


def _payload_sha(facts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(facts, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


# Why no billing account takes a session (``ChargingSession.unassigned_reason``), in the order the
# chain token -> contract -> billing account is walked. A session without any token is not one of
# them: it is an ad-hoc session (paid at the charger, or free), billed by nobody here, as is a
# session of a roaming partner's token (the partner is billed through clearing, not a customer).
# An unknown location does not stop billing either: the tenant's rulesets in force price it (an
# eMSP's customers charge at other operators' locations all the time).
UNASSIGNED_REASONS = ("unknown_token", "token_without_customer", "no_billing_account", "no_active_contract",
                      "not_checked")


@dataclass(frozen=True, slots=True)
class Unassigned:
    reason: str
    message: str


def contract_covers(con: Contract, day: date) -> bool:
    """The contract was in force on ``day`` (its local start date): between its start and end
    dates, before its termination. Its status is not asked: it says what the contract is today,
    and a contract terminated since still owes the sessions of its time (a suspended one too)."""
    if con.start_date > day or (con.end_date is not None and con.end_date < day):
        return False
    return not (con.terminated_on is not None and con.terminated_on <= day)


def assignment_of(uid: str, hit: tuple[Token, Contract | None, Customer | None, Partner | None,
                                         BillingAccount | None] | None,
                  start: datetime | None, location_tz: str | None) -> Unassigned | None:
    """None when the session can be billed (or is billed by nobody here: no token, a roaming
    partner's token); else the reason no billing account takes it."""
    if not uid:
        return None
    if hit is None:
        if is_adhoc_tag(uid):
            return None  # paid by card on the ad-hoc page (issue 16): billed by its receipt, never invoiced
        return Unassigned("unknown_token", f"token '{uid}' is not registered")
    _tok, con, cus, par, acc = hit
    if con is None or cus is None:
        if par is not None and par.kind == "emsp":
            return None
        return Unassigned("token_without_customer", f"token '{uid}' belongs to no contract, so to no customer")
    if acc is None or acc.status != "active":
        state = "does not exist" if acc is None else f"is {acc.status}"
        return Unassigned("no_billing_account", f"the billing account {con.account_id} of contract {con.id} {state}")
    if start is not None:
        try:
            day = start.astimezone(ZoneInfo(location_tz or acc.timezone or "UTC")).date()
        except (ZoneInfoNotFoundError, ValueError):
            day = start.date()
        if not contract_covers(con, day):
            until = con.terminated_on or con.end_date
            span = f"{con.start_date.isoformat()}..{until.isoformat() if until else ''}"
            return Unassigned("no_active_contract",
                              f"contract {con.id} of token '{uid}' ({span}) was not in force on {day.isoformat()}")
    return None


def _start_of(f: dict[str, Any]) -> datetime | None:
    try:
        return parse_datetime(f.get("start"), "start")
    except SessionInputError:
        return None  # the session itself is refused by SessionFacts.from_dict


def _enrich(scope: Scope, batch: Sequence[Incoming]) -> dict[str, dict[str, Any]]:
    """Look up locations and tokens of the whole batch in a few queries; returns per external id
    the columns that link the session to the tenant's objects, and why no billing account takes
    it (``unassigned_reason``, ``unassigned_message``; empty when one does).

    Fills the facts rating reads from the tenant's data where the session did not say them
    itself. The customer's facts (product, groups) only for a session that is assigned: the
    facts of an unassigned session hold only what it brought and its location's, so assigning it
    later fills them from whatever contract then resolves it (``api.session_assignment``)."""
    refs = {i.facts.get("location_id", "") for i in batch if i.facts} - {""}
    uids = {i.facts.get("token_uid", "") for i in batch if i.facts} - {""}
    locs: dict[str, Location] = {}
    if refs:
        for loc in scope.db.execute(select(Location).where(
                Location.tenant_id == scope.tenant_id,
                or_(Location.code.in_(refs), Location.id.in_(refs)))).scalars():  # type: ignore[attr-defined]
            locs[loc.id] = loc
            if loc.code:
                locs[loc.code] = loc
    toks: dict[str, tuple[Token, Contract | None, Customer | None, Partner | None, BillingAccount | None]] = {}
    if uids:
        rows = scope.db.execute(
            select(Token, Contract, Customer, Partner, BillingAccount)
            .outerjoin(Contract, Contract.id == Token.contract_id)
            .outerjoin(Customer, Customer.id == Contract.customer_id)
            .outerjoin(BillingAccount, BillingAccount.id == Contract.account_id)
            .outerjoin(Partner, Partner.id == Token.issuing_partner_id)
            .where(Token.tenant_id == scope.tenant_id, Token.uid.in_(uids))).all()  # type: ignore[attr-defined]
        for tok, con, cus, par, acc in rows:
            toks[tok.uid] = (tok, con, cus, par, acc)
    links: dict[str, dict[str, Any]] = {}
    for item in batch:
        f = item.facts
        if f is None:
            continue
        link: dict[str, Any] = {"location_id": None, "site_host_id": None, "token_id": None,
                                "customer_id": None, "contract_id": None, "ruleset_id": None,
                                "unassigned_reason": "", "unassigned_message": "", "cost_centre": ""}
        loc = locs.get(f.get("location_id", ""))
        if loc is not None:
            link["location_id"], link["site_host_id"] = loc.id, loc.site_host_id
            link["ruleset_id"] = loc.ruleset_id
            f.setdefault("timezone", loc.timezone)
            f.setdefault("country", loc.country)
            if not f.get("timezone"):
                f["timezone"] = loc.timezone
            if not f.get("country"):
                f["country"] = loc.country
            f.setdefault("site_id", loc.code or loc.id)
        uid = f.get("token_uid", "") or ""
        hit = toks.get(uid)
        why = assignment_of(uid, hit, _start_of(f), loc.timezone if loc is not None else f.get("timezone"))
        if why is not None:
            link["unassigned_reason"], link["unassigned_message"] = why.reason, why.message
        if hit is not None:
            tok, con, cus, par, _acc = hit
            link["token_id"] = tok.id
            # the token's cost centre, else its contract's (a pool card of a department on a fleet
            # contract), as they are now: the session keeps it (issue 18)
            link["cost_centre"] = tok.cost_centre or (con.cost_centre if con is not None else "")
            if not f.get("token_type"):
                f["token_type"] = tok.kind
            if par is not None and not f.get("partner"):
                f["partner"] = par.party_id or par.id
            if why is None and con is not None:
                link["contract_id"] = con.id
                if not f.get("product"):
                    f["product"] = con.product
            if why is None and cus is not None:
                link["customer_id"] = cus.id
                f["customer_id"] = cus.id
                if not f.get("customer_groups"):
                    f["customer_groups"] = list(cus.groups or [])
        links[item.external_id] = link
    return links


def _rating_rows(scope: Scope, session_id: str, seq: int, version: RulesetVersion, result: Any,
                 reason: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    rating_id = new_id("rat")
    rating = {
        "id": rating_id, "tenant_id": scope.tenant_id, "session_id": session_id, "seq": seq, "reason": reason,
        "ruleset_version_id": version.id, "sha256": version.sha256, "tariff": str(result.tariff or ""),
        "currency": result.currency, "net_total": result.net_total, "tax_total": result.tax_total,
        "gross_total": result.gross_total, "trace": [t.to_dict() for t in result.trace],
        "rated_by": scope.actor.user_id, "rated_at": utcnow(),
    }
    lines = [{
        "tenant_id": scope.tenant_id, "rating_id": rating_id, "session_id": session_id, "seq": i,
        "component": ln.component, "description": ln.description[:300], "quantity": ln.quantity,
        "unit": ln.unit, "unit_price": ln.unit_price, "net": ln.net, "net_rounded": ln.net_rounded(),
        "tax_rate": ln.tax_rate, "currency": ln.currency, "rule": ln.rule[:500], "cost_group": ln.group,
    } for i, ln in enumerate(result.lines, 1)]
    return rating, lines


# checks of signed meter data that hold the invoice taking the session (runtime.ocmf.METER_CHECKS)
METER_HOLDS = ("meter_signature_invalid", "meter_mismatch")


def meter_check_of(facts: dict[str, Any], legal_for_trade: bool) -> str:
    """``ChargingSession.meter_check``: the check of the session's signed meter data, and a
    legal-for-trade tariff's demand for it (without verified data such a session is held)."""
    sm = facts.get("signed_meter")
    check = str(sm.get("check") or "") if isinstance(sm, dict) else ""
    if check in METER_HOLDS:
        return check
    if legal_for_trade and check != "verified":
        return "meter_signature_invalid"
    return check


def import_sessions(scope: Scope, batch: Sequence[Incoming]) -> ImportResult:
    """Store and rate a batch; same external id with the same content is 'unchanged', with other
    content a failure (``external_id_conflict``): a stored session is never overwritten by import."""
    items: list[ImportItem] = []
    todo: list[tuple[int, Incoming]] = []
    seen: dict[str, str] = {}
    shas: dict[str, str] = {}
    for idx, inc in enumerate(batch):
        if inc.facts is None:
            items.append(ImportItem(index=idx, external_id=inc.external_id, status="failed",
                                    code="invalid_session", message=inc.error))
            continue
        shas[inc.external_id] = sha = _payload_sha(inc.facts)
        if inc.external_id in seen:
            same = seen[inc.external_id] == sha
            items.append(ImportItem(index=idx, external_id=inc.external_id, status="unchanged" if same else "failed",
                                    code=None if same else "external_id_conflict",
                                    message=None if same else "the batch holds this external id twice"))
            continue
        seen[inc.external_id] = sha
        todo.append((idx, inc))
    existing: dict[str, tuple[str, str]] = {}
    ext_ids = [inc.external_id for _, inc in todo]
    for chunk in range(0, len(ext_ids), 900):
        for sid, ext, sha in scope.db.execute(select(
                ChargingSession.id, ChargingSession.external_id, ChargingSession.payload_sha256).where(
                ChargingSession.tenant_id == scope.tenant_id,
                ChargingSession.external_id.in_(ext_ids[chunk:chunk + 900]))):  # type: ignore[attr-defined]
            existing[ext] = (sid, sha)
    fresh: list[tuple[int, Incoming]] = []
    for idx, inc in todo:
        if inc.external_id in existing:
            sid, sha = existing[inc.external_id]
            same = sha == shas[inc.external_id]
            items.append(ImportItem(index=idx, external_id=inc.external_id, session_id=sid,
                                    status="unchanged" if same else "failed",
                                    code=None if same else "external_id_conflict",
                                    message=None if same else "a session with this external id exists with other data"))
        else:
            fresh.append((idx, inc))
    links = _enrich(scope, [inc for _, inc in fresh])
    versions = VersionIndex.load(scope)
    parsed: list[tuple[int, Incoming, SessionFacts]] = []
    for idx, inc in fresh:
        assert inc.facts is not None
        try:
            parsed.append((idx, inc, SessionFacts.from_dict(inc.facts)))
        except (SessionInputError, TypeError, ValueError, AttributeError) as exc:
            items.append(ImportItem(index=idx, external_id=inc.external_id, status="failed",
                                    code="invalid_session", message=str(exc)))
    ctx_by_version: dict[str, Any] = {}
    if parsed:
        lo = min(f.start for _, _, f in parsed)
        hi = max(f.end for _, _, f in parsed)
    session_rows, rating_rows, line_rows, period_rows = [], [], [], []
    now = utcnow()
    for idx, inc, facts in parsed:
        link = links.get(inc.external_id, {})
        sid = new_id("ses")
        version = versions.in_force(facts.start, link.get("ruleset_id"))
        status, error, rating_id, totals = "unrated", "", None, (None, None, None, "")
        legal = False
        energy = facts.energy_kwh
        if facts.periods:
            energy = sum((p.energy_kwh for p in facts.periods), Decimal(0))
        if version is None:
            error = f"no_ruleset_in_force: no published ruleset version in force at {facts.start.isoformat()}"
        else:
            try:
                rs = compiled(version.sha256, version.source)
                if version.id not in ctx_by_version:
                    ctx_by_version[version.id] = rating_context(scope, rs, lo, hi, _label(version))
                result = rs.rate(facts, ctx_by_version[version.id], tariff=inc.tariff)
            except Exception as exc:  # noqa: BLE001  (stored as rating_failed; the import goes on)
                status, error = "rating_failed", f"rating_failed: {exc}"[:1000]
            else:
                rating, lines = _rating_rows(scope, sid, 1, version, result, "import")
                rating_rows.append(rating)
                line_rows.extend(lines)
                status, rating_id = "rated", rating["id"]
                totals = (result.net_total, result.tax_total, result.gross_total, result.currency)
                legal = result.legal_for_trade
        why = link.get("unassigned_reason") or ""
        if why:
            # priced where a tariff could (so the amount is known), but no invoice takes it
            status = "unassigned"
        session_rows.append({
            "id": sid, "tenant_id": scope.tenant_id, "external_id": inc.external_id, "source": inc.source,
            "payload_sha256": shas[inc.external_id], "start": facts.start, "end": facts.end, "energy_kwh": energy,
            "location_ref": facts.location_id[:64], "evse_ref": facts.evse_id[:64], "token_uid": facts.token_uid[:64],
            "location_id": link.get("location_id"), "site_host_id": link.get("site_host_id"),
            "token_id": link.get("token_id"), "customer_id": link.get("customer_id"),
            "contract_id": link.get("contract_id"), "tariff": inc.tariff or "", "facts": inc.facts,
            "status": status, "rating_error": error, "current_rating_id": rating_id, "currency": totals[3],
            "unassigned_reason": why, "unassigned_message": link.get("unassigned_message") or "",
            "meter_check": meter_check_of(inc.facts, legal), "cost_centre": link.get("cost_centre") or "",
            "net_total": totals[0], "tax_total": totals[1], "gross_total": totals[2], "created_at": now,
        })
        for i, p in enumerate(facts.periods or (), 1):
            period_rows.append({"tenant_id": scope.tenant_id, "session_id": sid, "seq": i, "start": p.start,
                                "end": p.end, "energy_kwh": p.energy_kwh, "time_h": p.time_h,
                                "parking_h": p.parking_h, "max_power_kw": p.max_power_kw})
        items.append(ImportItem(index=idx, external_id=inc.external_id, status="created", session_id=sid,
                                rating_status=status, code=error.split(":")[0] if error else None,
                                message=error or None, unassigned_reason=why or None,
                                unassigned_message=link.get("unassigned_message") or None))
    if session_rows:
        for model, rows in ((ChargingSession, session_rows), (SessionRating, rating_rows),
                            (RatedLineRow, line_rows), (ChargingPeriodRow, period_rows)):
            _bulk_insert(scope, model, rows)
        scope.audit("session.import", "charging_session", "", None, {
            "count": len(session_rows), "source": batch[0].source if batch else "",
            "sessions": [{"id": r["id"], "external_id": r["external_id"], "payload_sha256": r["payload_sha256"],
                          "status": r["status"], **({"unassigned_reason": r["unassigned_reason"]}
                                                    if r["unassigned_reason"] else {})}
                         for r in session_rows]})
    scope.commit()
    items.sort(key=lambda i: i.index)
    return ImportResult(created=sum(i.status == "created" for i in items),
                        unchanged=sum(i.status == "unchanged" for i in items),
                        failed=sum(i.status == "failed" for i in items), items=items)


def _bulk_insert(scope: Scope, model: Any, rows: list[dict[str, Any]]) -> None:
    """Many rows at once: COPY on PostgreSQL (several times faster than an INSERT per row),
    executemany elsewhere."""
    if not rows:
        return
    conn = scope.db.connection()
    if conn.dialect.name != "postgresql":
        scope.db.execute(insert(model), rows)
        return
    table = model.__table__
    cols = list(rows[0])
    jsons = {c for c in cols if isinstance(table.c[c].type, JSON)}
    raw = conn.connection.driver_connection
    with raw.cursor() as cur:
        names = ", ".join(f'"{c}"' for c in cols)
        with cur.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
            for r in rows:
                copy.write_row([json.dumps(r[c]) if c in jsons and r[c] is not None else r[c] for c in cols])


def _label(version: RulesetVersion) -> str:
    return f"{version.dsl_name or version.ruleset_id} v{version.version}"


def _location_ruleset(scope: Scope, location_id: str) -> str | None:
    return scope.db.execute(select(Location.ruleset_id).where(Location.id == location_id)).scalar()


def rate_stored(scope: Scope, session: Any, facts_dict: dict[str, Any], version_id: str | None = None,
                location_id: str | None = None, *, versions: VersionIndex | None = None,
                contexts: dict[str, Any] | None = None,
                window: tuple[datetime, datetime] | None = None) -> tuple[RulesetVersion, Any]:
    """Rate ``facts_dict`` of the stored ``session`` (a row will do: its start, location and
    tariff are read) with the version in force at the session start (taken from the ruleset of
    ``location_id``, default the session's location, when it has one) or with ``version_id``;
    nothing is written. -> (version, result). Raises ``InvalidInput`` (``no_ruleset_in_force``,
    ``invalid_session``, ``rating_failed``) when there is no rating.

    Rating many sessions, pass ``versions`` (loaded once), ``contexts`` (an empty dict the
    contexts are kept in, per version) and ``window`` (the earliest start and the latest end of
    them all: the price series the contexts load), as the import does."""
    if version_id:
        version = scope.repo(RulesetVersion, "ruleset_version", "rsv").get(version_id)
    else:
        start = session.start
        loc = location_id or session.location_id
        loc_rs = _location_ruleset(scope, loc) if loc else None
        found = (versions or VersionIndex.load(scope)).in_force(start, loc_rs)
        if found is None:
            raise InvalidInput("no_ruleset_in_force", f"no published ruleset version in force at {start.isoformat()}")
        version = found
    try:
        facts = SessionFacts.from_dict(facts_dict)
    except (SessionInputError, TypeError, ValueError) as exc:
        raise InvalidInput("invalid_session", str(exc)) from None
    rs = compiled(version.sha256, version.source)
    try:
        if contexts is not None and window is not None:
            ctx = contexts.get(version.id)
            if ctx is None:
                ctx = contexts[version.id] = rating_context(scope, rs, window[0], window[1], _label(version))
        else:
            ctx = rating_context(scope, rs, facts.start, facts.end, _label(version))
        result = rs.rate(facts, ctx, tariff=session.tariff or None)
    except Exception as exc:  # noqa: BLE001
        raise InvalidInput("rating_failed", str(exc) or type(exc).__name__) from None
    return version, result


def rating_rows(scope: Scope, session_id: str, seq: int, version: RulesetVersion, result: Any,
                reason: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The rating row and rated line rows of ``result`` (``bulk_insert`` writes many at once)."""
    return _rating_rows(scope, session_id, seq, version, result, reason)


def bulk_insert(scope: Scope, model: Any, rows: list[dict[str, Any]]) -> None:
    _bulk_insert(scope, model, rows)


def rerate(scope: Scope, session: ChargingSession, reason: str, version_id: str | None = None) -> SessionRating:
    """Rate again and append the result; earlier ratings stay as history. An unassigned session
    stays unassigned (re-rating prices it; assigning it is ``api.session_assignment``'s)."""
    version, result = rate_stored(scope, session, session.facts, version_id)
    seq = (scope.db.execute(select(SessionRating.seq).where(SessionRating.session_id == session.id)
                            .order_by(SessionRating.seq.desc()).limit(1)).scalar() or 0) + 1  # type: ignore[attr-defined]
    rating, lines = _rating_rows(scope, session.id, seq, version, result, reason)
    scope.db.execute(insert(SessionRating), [rating])
    if lines:
        scope.db.execute(insert(RatedLineRow), lines)
    status = "unassigned" if session.status == "unassigned" else "rated"
    before = {"current_rating_id": session.current_rating_id, "gross_total": session.gross_total,
              "status": session.status}
    scope.db.execute(update(ChargingSession).where(ChargingSession.id == session.id).values(
        current_rating_id=rating["id"], status=status, rating_error="", currency=result.currency,
        net_total=result.net_total, tax_total=result.tax_total, gross_total=result.gross_total,
        # a version whose tariff is now legal for trade demands the signed data, one that is no
        # longer does not
        meter_check=meter_check_of(session.facts or {}, result.legal_for_trade)))
    scope.audit("session.rerate", "charging_session", session.id, before,
                {"current_rating_id": rating["id"], "gross_total": result.gross_total, "status": status,
                 "ruleset_version_id": version.id, "reason": reason})
    scope.commit()
    got = scope.db.get(SessionRating, rating["id"])
    assert got is not None
    return got


_ = (datetime,)
