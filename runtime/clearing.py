"""eMSP clearing: the CDRs of one eMSP partner's tokens in one month, priced through the DSL
(``CompiledRuleset.rate``, the one rating path) with the tariff the roaming agreement names, as a
statement (XLSX and OCPI 2.2.1 CDR JSON), the D-7 dispute window and the clearing invoice.

Pure: no clock, no database. Amounts stay ``Decimal``; a CDR's net is the sum of its rated lines
each rounded to the currency's minor unit (as invoices bill sessions), the OCPI cost groups are the
unrounded group sums printed to 4 places (as ``evbill ocpi price`` prints them).

The window: a statement sent at ``t`` takes disputes until ``t + 7 days`` (exclusive); after it,
finance resolves each dispute (``accept`` the partner's proposed amount, ``keep`` ours, or
``adjust`` to a third amount) and the invoice bills every CDR at its resolved amount.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Protocol

from runtime.money import ZERO, minor_unit, quantize
from runtime.rated import RatingResult
from runtime.rating import RatingContext
from runtime.sessions import SessionFacts
from runtime.settlements import CommissionTerms, commission_days

__all__ = [
    "COST_GROUPS",
    "DISPUTE_WINDOW",
    "RESOLUTIONS",
    "ClearingCdr",
    "ClearingError",
    "CommissionLine",
    "Dispute",
    "StatementTotals",
    "cdr_json",
    "commission_lines",
    "final_net",
    "price_cdr",
    "revise_commissions",
    "statement_totals",
    "window_open",
    "with_commissions",
    "write_xlsx",
]

DISPUTE_WINDOW = timedelta(days=7)
RESOLUTIONS = ("accept", "keep", "adjust")
# OCPI CDR cost fields and the rating group each sums (as dsl.ocpi.COST_FIELDS; runtime may not
# import dsl)
COST_GROUPS = (("total_energy_cost", "energy"), ("total_time_cost", "time"), ("total_parking_cost", "parking"),
               ("total_fixed_cost", "fixed"), ("total_reservation_cost", "reservation"))
_FOUR = Decimal("0.0001")
_TOKEN_TYPES = {"rfid": "RFID", "app": "APP_USER", "adhoc": "AD_HOC_USER"}


class ClearingError(ValueError):
    """A clearing step refused; ``code`` is stable for callers."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Rater(Protocol):
    def rate(self, session: SessionFacts, ctx: RatingContext | None = None,
             tariff: str | None = None) -> RatingResult: ...


@dataclass(frozen=True, slots=True)
class ClearingCdr:
    """One priced CDR of a statement. ``late``: the session started before the statement's month
    (it arrived after its own month's statement) and joins this one as a correction."""

    session_id: str
    cdr_id: str
    start: datetime
    end: datetime
    location_id: str
    evse_uid: str
    country: str
    power_type: str
    token_uid: str
    token_type: str
    contract_id: str
    tariff: str
    currency: str
    energy_kwh: Decimal
    time_h: Decimal
    parking_h: Decimal
    costs: tuple[tuple[Decimal, Decimal], ...]  # (excl, incl) per COST_GROUPS entry, unrounded
    total_excl: Decimal  # unrounded, as the OCPI total_cost
    total_incl: Decimal
    net: Decimal  # the sum of rounded lines: what the invoice bills
    tax: Decimal
    tax_rate: Decimal  # the rate of the largest line (a roaming CDR has one)
    late: bool = False

    @property
    def gross(self) -> Decimal:
        return self.net + self.tax


def price_cdr(ruleset: Rater, facts: SessionFacts, ctx: RatingContext | None, *, tariff: str | None,
              contract_id: str = "", late: bool = False) -> ClearingCdr:
    """Rate ``facts`` as a roaming session through the ruleset (``tariff``: the agreement's; None:
    the ruleset's own choice) and keep what the statement shows."""
    result = ruleset.rate(facts, ctx, tariff=tariff)
    return cdr_of(result, facts, contract_id=contract_id, late=late)


def cdr_of(result: RatingResult, facts: SessionFacts, *, contract_id: str = "", late: bool = False) -> ClearingCdr:
    groups = result.group_totals()
    costs = tuple(groups.get(g, (ZERO, ZERO)) for _, g in COST_GROUPS)
    total = groups.get("total", (ZERO, ZERO))
    places = minor_unit(result.currency)
    net = ZERO
    biggest = (ZERO, ZERO)
    for ln in result.lines:
        r = quantize(ln.net, places)
        net += r
        if abs(r) >= biggest[0]:
            biggest = (abs(r), ln.tax_rate)
    tax = result.tax_total
    return ClearingCdr(
        session_id=result.session_id or facts.id, cdr_id=facts.id, start=facts.start, end=facts.end,
        location_id=facts.location_id, evse_uid=facts.evse_id, country=facts.country, power_type=facts.power_type,
        token_uid=facts.token_uid, token_type=facts.token_type, contract_id=contract_id, tariff=result.tariff,
        currency=result.currency, energy_kwh=result.energy_kwh, time_h=_hours(facts), parking_h=result.parking_h,
        costs=costs, total_excl=total[0], total_incl=total[1], net=net, tax=tax, tax_rate=biggest[1], late=late)


def _hours(s: SessionFacts) -> Decimal:
    d = s.end - s.start
    micro = (d.days * 86400 + d.seconds) * 1_000_000 + d.microseconds
    return Decimal(micro) / Decimal(3_600_000_000)


def _four(d: Decimal) -> Decimal:
    return d.quantize(_FOUR, rounding=ROUND_HALF_UP)


def _price(excl: Decimal, incl: Decimal) -> dict[str, Decimal]:
    return {"excl_vat": _four(excl), "incl_vat": _four(incl)}


def cdr_json(c: ClearingCdr, *, cpo_country: str, cpo_party: str, emsp_country: str, emsp_party: str,
             last_updated: datetime) -> dict[str, Any]:
    """The CDR as an OCPI 2.2.1 ``CDR`` object (numbers as ``Decimal``: encode them as JSON
    numbers, never through a float)."""
    out: dict[str, Any] = {
        "country_code": cpo_country, "party_id": cpo_party, "id": c.cdr_id[:39],
        "start_date_time": _utc(c.start), "end_date_time": _utc(c.end),
        "cdr_token": {"country_code": emsp_country, "party_id": emsp_party, "uid": c.token_uid[:36],
                      "type": _TOKEN_TYPES.get(c.token_type, "RFID"),
                      "contract_id": (c.contract_id or c.token_uid)[:36]},
        "auth_method": "WHITELIST",
        "cdr_location": {"id": (c.location_id or "unknown")[:36], "name": None, "address": "", "city": "",
                         "postal_code": None, "state": None, "country": _alpha3(c.country),
                         "coordinates": {"latitude": "0.000000", "longitude": "0.000000"},
                         "evse_uid": (c.evse_uid or "unknown")[:36], "evse_id": (c.evse_uid or "unknown")[:48],
                         "connector_id": "1", "connector_standard": "IEC_62196_T2",
                         "connector_format": "SOCKET" if c.power_type == "AC" else "CABLE",
                         "connector_power_type": "AC_3_PHASE" if c.power_type == "AC" else "DC"},
        "currency": c.currency,
        "tariffs": None,
        "charging_periods": [{"start_date_time": _utc(c.start), "dimensions": [
            {"type": "ENERGY", "volume": _four(c.energy_kwh)},
            {"type": "TIME", "volume": _four(max(ZERO, c.time_h - c.parking_h))},
            *([{"type": "PARKING_TIME", "volume": _four(c.parking_h)}] if c.parking_h else [])]}],
        "total_cost": _price(c.total_excl, c.total_incl),
        "total_energy": _four(c.energy_kwh),
        "total_time": _four(c.time_h),
        "total_parking_time": _four(c.parking_h),
        "remark": "correction: a late CDR of an earlier month" if c.late else None,
        "credit": False,
        "last_updated": _utc(last_updated),
    }
    for (key, _), (excl, incl) in zip(COST_GROUPS, c.costs, strict=True):
        out[key] = _price(excl, incl) if (excl or incl or key == "total_energy_cost") else None
    # OCPI leaves out what it does not know rather than sending null
    out["cdr_location"] = {k: v for k, v in out["cdr_location"].items() if v is not None}
    return {k: v for k, v in out.items() if v is not None}


def _utc(d: datetime) -> str:
    from datetime import UTC

    return d.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_ALPHA3 = {"DE": "DEU", "AT": "AUT", "CH": "CHE", "FR": "FRA", "NL": "NLD", "BE": "BEL", "LU": "LUX",
           "DK": "DNK", "PL": "POL", "CZ": "CZE", "IT": "ITA", "ES": "ESP", "GB": "GBR", "SE": "SWE",
           "NO": "NOR", "FI": "FIN", "PT": "PRT", "IE": "IRL"}


def _alpha3(country: str) -> str:
    return _ALPHA3.get(country.upper(), country.upper()[:3] or "DEU") if len(country) == 2 else (country or "DEU")


# --------------------------------------------------------------------------------- totals
@dataclass(frozen=True, slots=True)
class StatementTotals:
    currency: str
    cdrs: int
    late: int
    energy_kwh: Decimal
    net: Decimal
    tax: Decimal
    gross: Decimal
    costs: tuple[Decimal, ...]  # excl VAT per COST_GROUPS entry, unrounded sums
    commissions: tuple[CommissionLine, ...] = ()  # in net, tax and gross

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"currency": self.currency, "cdrs": self.cdrs, "late": self.late,
                               "energy_kwh": format(self.energy_kwh, "f"), "net": format(self.net, "f"),
                               "tax": format(self.tax, "f"), "gross": format(self.gross, "f")}
        if self.commissions:
            out["commissions"] = [c.to_dict() for c in self.commissions]
        return out


def statement_totals(cdrs: Iterable[ClearingCdr], currency: str) -> StatementTotals:
    n = late = 0
    energy = net = tax = ZERO
    costs = [ZERO] * len(COST_GROUPS)
    for c in cdrs:
        if c.currency != currency:
            raise ClearingError("currency_mismatch", f"CDR {c.cdr_id} is in {c.currency}, the statement in {currency}")
        n += 1
        late += c.late
        energy += c.energy_kwh
        net += c.net
        tax += c.tax
        for i, (excl, _) in enumerate(c.costs):
            costs[i] += excl
    return StatementTotals(currency, n, late, energy, net, tax, net + tax, tuple(costs))


# ----------------------------------------------------------------------------- commissions
@dataclass(frozen=True, slots=True)
class CommissionLine:
    """One rule of a ``charge emsp`` commission block on a clearing statement: what the eMSP pays
    the CPO on top of the CDRs (negative for ``pay emsp``), rounded to the minor unit; ``rule``
    traces it ("commission booking, line 12: 0.30 per session")."""

    name: str
    rule: str
    kind: str  # per_session | per_kwh | percent | monthly
    quantity: Decimal  # sessions, kWh, the net a percentage is taken of, or days of a month
    unit: str
    unit_price: Decimal
    exact: Decimal
    net: Decimal
    tax_rate: Decimal
    cdrs: tuple[str, ...] = ()
    month: str = ""  # a monthly fee's month
    # a percentage line a dispute resolution re-took: the net the statement stated (None: as stated)
    stated: Decimal | None = None

    def text(self, language: str = "de") -> str:
        de = language == "de"

        def num(d: Decimal) -> str:
            return format(d, "f").replace(".", ",") if de else format(d, "f")

        cur = self.unit.split(" ")[0]
        what = {"per_session": f"{self.quantity} CDR" if de else f"{self.quantity} CDRs",
                "per_kwh": f"{num(self.quantity)} kWh",
                "percent": (f"von {num(self.quantity)} {cur} netto" if de else f"of {self.quantity} {cur} net"),
                "monthly": self.month + (f" ({self.quantity} {self.unit})" if self.unit else "")}[self.kind]
        text = f"{'Provision' if de else 'Commission'} {self.name}: {what} [{self.rule}]"
        if self.stated is not None:
            cur = self.unit.split(" ")[0]
            text += (f" (nach Klärung der Einwände neu berechnet; in der Aufstellung: {num(self.stated)} {cur})" if de
                     else f" (recomputed after the disputes were resolved; stated: {self.stated} {cur})")
        return text

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "rule": self.rule, "kind": self.kind, "quantity": format(self.quantity, "f"),
                "unit": self.unit, "unit_price": format(self.unit_price, "f"), "exact": format(self.exact, "f"),
                "net": format(self.net, "f"), "tax_rate": format(self.tax_rate, "f"), "cdrs": list(self.cdrs),
                "month": self.month, **({"stated": format(self.stated, "f")} if self.stated is not None else {})}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CommissionLine:
        return cls(d["name"], d["rule"], d["kind"], Decimal(d["quantity"]), d["unit"], Decimal(d["unit_price"]),
                   Decimal(d["exact"]), Decimal(d["net"]), Decimal(d["tax_rate"]), tuple(d.get("cdrs") or ()),
                   d.get("month", ""), Decimal(d["stated"]) if d.get("stated") is not None else None)


def commission_lines(blocks: Sequence[CommissionTerms], cdrs: Sequence[ClearingCdr],
                     facts: Mapping[str, SessionFacts], first: date, end: date, currency: str) -> list[CommissionLine]:
    """The commission lines of a clearing statement: each rule of each block over the statement's
    CDRs (``runtime.settlements``' evaluation, as partner statements apply it: per session, per kWh,
    % of the CDR's net, monthly pro rata over ``[first, end)`` and the block's validity), one line
    per rule; the amount the eMSP owes is the partner statement's signed amount turned round
    (``charge emsp``: positive). Taxed at the CDRs' rate (the largest CDR's; a statement's CDRs
    share one tariff)."""
    from runtime.statements import _months

    places = minor_unit(currency)
    rate = max(cdrs, key=lambda c: abs(c.net)).tax_rate if cdrs else ZERO
    out: list[CommissionLine] = []
    for ct in blocks:
        tz = _zone(ct.timezone)
        hits: dict[int, list[tuple[str, Decimal, Decimal]]] = {}
        for c in cdrs:
            day = c.start.astimezone(tz).date() if tz is not None else c.start.date()
            for k, qty, amount in ct.session_amounts(c.cdr_id, day, c.energy_kwh, c.net, facts.get(c.cdr_id)):
                hits.setdefault(k, []).append((c.cdr_id, qty, -amount))
        for k, rule in enumerate(ct.rules):
            price = -ct.sign * (rule.amount / 100 if rule.kind == "percent" else rule.amount)
            trace = f"{rule.label}: {rule.text}"
            if rule.kind == "monthly":
                days = commission_days(ct, first, end)
                for month, n_days, dim in _months(*days) if days else ():
                    exact = price * n_days / dim
                    out.append(CommissionLine(ct.name, trace, "monthly", Decimal(n_days),
                                              "" if n_days == dim else f"days of {dim}", price, exact,
                                              quantize(exact, places), rate, (), f"{month:%Y-%m}"))
                continue
            mine = hits.get(k)
            if not mine:
                continue
            qty = sum((q for _, q, _ in mine), ZERO)
            exact = sum((a for _, _, a in mine), ZERO)
            unit = {"per_session": "CDR", "per_kwh": "kWh"}.get(rule.kind, f"{currency} net")
            out.append(CommissionLine(ct.name, trace, rule.kind, qty, unit, price, exact, quantize(exact, places),
                                      rate, tuple(i for i, _, _ in mine)))
    return out


def _zone(name: str) -> Any:
    from zoneinfo import ZoneInfo

    try:
        return ZoneInfo(name) if name else None
    except (KeyError, ValueError, OSError):
        return None


def revise_commissions(lines: Sequence[CommissionLine], nets: Mapping[str, Decimal],
                       currency: str) -> list[CommissionLine]:
    """The statement's commission lines as the invoice bills them once its disputes are resolved:
    a percentage line is taken again of the nets its CDRs are invoiced at (``nets``: each CDR's
    resolved net, or the stated one), exactly (the unit price times the new sum), then rounded; a
    line whose amount changes keeps the stated net in ``stated`` (the invoice line says so). Per
    CDR, per kWh and monthly lines do not depend on an amount and stay as stated."""
    places = minor_unit(currency)
    out: list[CommissionLine] = []
    for c in lines:
        if c.kind != "percent" or not c.cdrs:
            out.append(c)
            continue
        try:
            qty = sum((nets[i] for i in c.cdrs), ZERO)
        except KeyError as exc:
            raise ClearingError("cdr_not_found", f"commission {c.name}: CDR {exc.args[0]} is not on the statement") \
                from None
        if qty == c.quantity:
            out.append(c)
            continue
        exact = c.unit_price * qty
        net = quantize(exact, places)
        out.append(replace(c, quantity=qty, exact=exact, net=net,
                           stated=c.net if c.stated is None else c.stated))
    return out


def with_commissions(totals: StatementTotals, lines: Sequence[CommissionLine]) -> StatementTotals:
    """The statement's totals with its commission lines added to net, tax and gross (each line's
    tax rounded on its own, as a CDR's)."""
    if not lines:
        return totals
    places = minor_unit(totals.currency)
    net = sum((c.net for c in lines), ZERO)
    tax = sum((quantize(c.net * c.tax_rate / 100, places) for c in lines), ZERO)
    return StatementTotals(totals.currency, totals.cdrs, totals.late, totals.energy_kwh, totals.net + net,
                           totals.tax + tax, totals.gross + net + tax, totals.costs, tuple(lines))


# -------------------------------------------------------------------------------- disputes
@dataclass(frozen=True, slots=True)
class Dispute:
    cdr_id: str
    ours: Decimal  # the CDR's net as stated
    proposed: Decimal  # the partner's (or finance's) proposed net
    resolution: str = ""  # "" (open) | accept | keep | adjust
    adjusted: Decimal | None = None


def window_open(sent_at: datetime, now: datetime) -> bool:
    """A dispute raised at ``now`` is taken: the statement was sent less than 7 days before."""
    return sent_at <= now < sent_at + DISPUTE_WINDOW


def final_net(d: Dispute) -> Decimal:
    """The net the invoice bills for a disputed CDR once it is resolved."""
    if d.resolution == "accept":
        return d.proposed
    if d.resolution == "keep":
        return d.ours
    if d.resolution == "adjust":
        if d.adjusted is None:
            raise ClearingError("amount_required", f"adjusting CDR {d.cdr_id} needs an amount")
        return d.adjusted
    raise ClearingError("dispute_open", f"the dispute on CDR {d.cdr_id} is not resolved")


# ------------------------------------------------------------------------------------ XLSX
_COLUMNS = ("cdr_id", "start_date_time", "end_date_time", "location_id", "evse_uid", "country",
            "token_uid", "contract_id", "token_type", "tariff", "currency", "total_energy", "total_time",
            "total_parking_time", *(k for k, _ in COST_GROUPS), "total_cost_excl_vat", "total_cost_incl_vat",
            "net", "vat", "gross", "correction")


@dataclass(frozen=True, slots=True)
class XlsxHeader:
    statement: str  # number or id
    partner: str  # name
    party: str  # "DE*ABC"
    month: str
    issued: date
    extra: Mapping[str, str] = field(default_factory=dict)


def write_xlsx(header: XlsxHeader, cdrs: Iterable[ClearingCdr], totals: StatementTotals) -> bytes:
    """The statement as an XLSX workbook (Office Open XML, SpreadsheetML): sheet ``CDRs`` one row
    per CDR with the OCPI fields, sheet ``Totals``. Rows are streamed as XML text into the zip:
    amounts are written as their exact decimal digits (a cell's ``<v>``), never through a float,
    with a number format; strings are inline. (xlsxwriter, the first writer here, spent 4-6 us per
    cell: 22-33 s of CPU for 200,000 CDRs x 26 columns, beyond the 60 s target on this machine.)"""
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        for name, text in _XLSX_PARTS.items():
            z.writestr(_zinfo(name), text.replace("{title}", _esc(f"Clearing statement {header.statement}"))
                       .replace("{created}", f"{header.issued.isoformat()}T00:00:00Z"))
        with z.open(_zinfo("xl/worksheets/sheet1.xml"), "w", force_zip64=True) as f:
            write = f.write
            write(_SHEET_HEAD)
            write(("<row>" + "".join(f'<c t="inlineStr" s="1"><is><t>{c}</t></is></c>' for c in _COLUMNS)
                   + "</row>").encode())
            chunk: list[str] = []
            for c in cdrs:
                chunk.append(_xlsx_row(c))
                if len(chunk) == 2000:
                    write("".join(chunk).encode())
                    chunk = []
            write("".join(chunk).encode())
            write(_SHEET_TAIL)
        rows: list[tuple[str, str | Decimal | int, int]] = [
            ("statement", header.statement, 0), ("partner", header.partner, 0), ("party", header.party, 0),
            ("month", header.month, 0), ("issued", header.issued.isoformat(), 0), ("currency", totals.currency, 0),
            ("cdrs", totals.cdrs, 0), ("corrections (late CDRs)", totals.late, 0),
            ("total_energy (kWh)", _four(totals.energy_kwh), 3),
            *((k, _four(v), 3) for (k, _), v in zip(COST_GROUPS, totals.costs, strict=True)),
            *((f"commission {c.name}{' ' + c.month if c.month else ''} [{c.rule}]", c.net, 2)
              for c in totals.commissions),
            ("net", totals.net, 2), ("vat", totals.tax, 2), ("gross", totals.gross, 2),
            *((k, v, 0) for k, v in header.extra.items()),
        ]
        body = "".join(f'<row><c t="inlineStr" s="1"><is><t>{_esc(k)}</t></is></c>{_cell(v, style)}</row>'
                       for k, v, style in rows)
        z.writestr(_zinfo("xl/worksheets/sheet2.xml"),
                   _SHEET_HEAD.decode().replace("<sheetData>", '<cols><col min="1" max="1" width="26" customWidth="1"/></cols>'
                                                                 "<sheetData>")
                   + body + _SHEET_TAIL.decode())
    return buf.getvalue()


def _zinfo(name: str) -> Any:
    import zipfile

    # a fixed time: the same statement gives the same bytes
    zi = zipfile.ZipInfo(name, date_time=(2000, 1, 1, 0, 0, 0))
    zi.compress_type = zipfile.ZIP_DEFLATED
    return zi


def _esc(text: str) -> str:
    if "&" in text or "<" in text or ">" in text:
        text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text


def _cell(v: str | Decimal | int, style: int) -> str:
    if isinstance(v, str):
        return f'<c t="inlineStr"><is><t>{_esc(v)}</t></is></c>'
    return f'<c s="{style}"><v>{format(v, "f") if isinstance(v, Decimal) else v}</v></c>'


def _xlsx_row(c: ClearingCdr) -> str:
    s = "".join(f'<c t="inlineStr"><is><t>{_esc(x)}</t></is></c>' if x else "<c/>" for x in (
        c.cdr_id, _utc(c.start), _utc(c.end), c.location_id, c.evse_uid, c.country, c.token_uid, c.contract_id,
        c.token_type, c.tariff, c.currency))
    four = (c.energy_kwh, c.time_h, c.parking_h, *(e for e, _ in c.costs), c.total_excl, c.total_incl)
    s += "".join(f'<c s="3"><v>{_four(x)}</v></c>' for x in four)
    s += f'<c s="2"><v>{c.net}</v></c><c s="2"><v>{c.tax}</v></c><c s="2"><v>{c.net + c.tax}</v></c>'
    s += '<c t="inlineStr"><is><t>late</t></is></c>' if c.late else "<c/>"
    return f"<row>{s}</row>"


_NS = "http://schemas.openxmlformats.org"
_SHEET_HEAD = (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<worksheet xmlns="{_NS}/spreadsheetml/2006/main">'
               '<sheetViews><sheetView workbookViewId="0"><pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" '
               'state="frozen"/></sheetView></sheetViews><sheetData>').encode()
_SHEET_TAIL = b"</sheetData></worksheet>"
_XLSX_PARTS = {
    "[Content_Types].xml": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<Types xmlns="{_NS}/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
        '<Override PartName="/xl/worksheets/sheet1.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
        '<Override PartName="/xl/worksheets/sheet2.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
        '<Override PartName="/xl/styles.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
        '<Override PartName="/docProps/core.xml" '
        'ContentType="application/vnd.openxmlformats-package.core-properties+xml"/></Types>'),
    "_rels/.rels": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<Relationships xmlns="{_NS}/package/2006/relationships">'
        f'<Relationship Id="rId1" Type="{_NS}/officeDocument/2006/relationships/officeDocument" '
        'Target="xl/workbook.xml"/>'
        f'<Relationship Id="rId2" Type="{_NS}/package/2006/relationships/metadata/core-properties" '
        'Target="docProps/core.xml"/></Relationships>'),
    "docProps/core.xml": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<cp:coreProperties xmlns:cp="{_NS}/package/2006/metadata/core-properties" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:dcterms="http://purl.org/dc/terms/" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><dc:title>{title}</dc:title>'
        '<dcterms:created xsi:type="dcterms:W3CDTF">{created}</dcterms:created></cp:coreProperties>'),
    "xl/workbook.xml": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<workbook xmlns="{_NS}/spreadsheetml/2006/main" xmlns:r="{_NS}/officeDocument/2006/relationships">'
        '<sheets><sheet name="CDRs" sheetId="1" r:id="rId1"/><sheet name="Totals" sheetId="2" r:id="rId2"/>'
        '</sheets></workbook>'),
    "xl/_rels/workbook.xml.rels": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<Relationships xmlns="{_NS}/package/2006/relationships">'
        f'<Relationship Id="rId1" Type="{_NS}/officeDocument/2006/relationships/worksheet" '
        'Target="worksheets/sheet1.xml"/>'
        f'<Relationship Id="rId2" Type="{_NS}/officeDocument/2006/relationships/worksheet" '
        'Target="worksheets/sheet2.xml"/>'
        f'<Relationship Id="rId3" Type="{_NS}/officeDocument/2006/relationships/styles" Target="styles.xml"/>'
        '</Relationships>'),
    # cell styles: 0 plain, 1 bold (headers), 2 money 0.00, 3 four places 0.0000
    "xl/styles.xml": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<styleSheet xmlns="{_NS}/spreadsheetml/2006/main">'
        '<numFmts count="1"><numFmt numFmtId="164" formatCode="0.0000"/></numFmts>'
        '<fonts count="2"><font><sz val="11"/><name val="Calibri"/></font>'
        '<font><b/><sz val="11"/><name val="Calibri"/></font></fonts>'
        '<fills count="2"><fill><patternFill patternType="none"/></fill>'
        '<fill><patternFill patternType="gray125"/></fill></fills>'
        '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
        '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
        '<cellXfs count="4"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
        '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/>'
        '<xf numFmtId="2" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
        '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/></cellXfs>'
        '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles></styleSheet>'),
}


def cdrs_by_id(cdrs: Sequence[ClearingCdr]) -> dict[str, ClearingCdr]:
    return {c.cdr_id: c for c in cdrs}


# --------------------------------------------------------------------------------- invoice
@dataclass(frozen=True, slots=True)
class InvoicedCdr:
    """A CDR as the clearing invoice bills it: its stated net, or the resolved one of a dispute."""

    cdr_id: str
    net: Decimal
    tax_rate: Decimal
    late: bool = False
    resolution: str = ""  # "" (not disputed, or kept) | accept | adjust


def reverse_charge(tenant_country: str, partner_country: str, partner_vat_id: str) -> bool:
    """A clearing invoice to a business partner established in another country: the partner
    accounts for the VAT (EU reverse charge, a B2B service taxed where the buyer is)."""
    return bool(partner_vat_id) and bool(partner_country) and partner_country.upper() != tenant_country.upper()


def invoice_lines(cdrs: Sequence[InvoicedCdr], month: str, language: str = "de") -> list[tuple[str, Decimal, Decimal]]:
    """(text, net, tax rate) per invoice line: the month's CDRs per VAT rate, the late CDRs of
    earlier months per rate, and one line per CDR whose dispute changed its amount."""
    de = language == "de"
    plain: dict[tuple[bool, Decimal], list[Decimal]] = {}
    own: list[tuple[str, Decimal, Decimal]] = []
    for c in cdrs:
        if c.resolution in ("accept", "adjust"):
            what = ("Einwand angenommen" if de else "dispute accepted") if c.resolution == "accept" \
                else ("angepasst" if de else "adjusted")
            own.append((f"CDR {c.cdr_id} ({what})", c.net, c.tax_rate))
        else:
            plain.setdefault((c.late, c.tax_rate), []).append(c.net)
    out: list[tuple[str, Decimal, Decimal]] = []
    for (late, rate), nets in sorted(plain.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        n = len(nets)
        if late:
            text = f"Nachträge: {n} CDR früherer Monate" if de else f"Corrections: {n} late CDRs of earlier months"
        else:
            text = f"Roaming-Ladevorgänge {month}: {n} CDR" if de else f"Roaming charging sessions {month}: {n} CDRs"
        out.append((text, sum(nets, ZERO), rate))
    return out + own


def clearing_document(*, number: str, issue_date: date, due_date: date, seller: Any, buyer: Any,
                      cdrs: Sequence[InvoicedCdr], month: str, period: tuple[date, date], currency: str,
                      reverse: bool, language: str = "de", branding: Any = None, statement: str = "",
                      commissions: Sequence[CommissionLine] = ()) -> Any:
    """The clearing invoice as a ``runtime.documents.Document``: the tenant (CPO) bills the eMSP
    for its customers' roaming sessions, paid by transfer to the tenant's account. ``reverse``:
    reverse charge (category AE, no VAT, the exemption text on the document). ``commissions``: the
    statement's commission lines, one invoice line each with its rule in the text, taxed as the
    CDRs."""
    from runtime.documents.model import (
        Branding,
        Document,
        DocumentKind,
        Line,
        PaymentMeans,
        Period,
        VatCategory,
    )

    lines = []
    billed = [*invoice_lines(cdrs, month, language), *((c.text(language), c.net, c.tax_rate) for c in commissions)]
    for i, (text, net, rate) in enumerate(billed, 1):
        cat, r = (VatCategory.REVERSE_CHARGE, ZERO) if reverse else (
            (VatCategory.STANDARD, rate) if rate > 0 else (VatCategory.ZERO_RATED, ZERO))
        qty = Decimal(1) if net >= 0 else Decimal(-1)
        lines.append(Line(str(i), text, qty, "C62", abs(net), cat, r))
    if not lines:
        raise ClearingError("nothing_to_invoice", "the statement has no CDRs to invoice")
    de = language == "de"
    note = (f"Roaming-Abrechnung {month} (Clearing-Aufstellung {statement})" if de
            else f"Roaming clearing {month} (clearing statement {statement})")
    return Document(
        kind=DocumentKind.INVOICE, number=number, issue_date=issue_date, currency=currency, seller=seller,
        buyer=buyer, lines=tuple(lines), due_date=due_date,
        payment=PaymentMeans("58", iban=getattr(seller, "iban", None), bic=getattr(seller, "bic", None),
                             account_name=getattr(seller, "legal_name", None), remittance=number),
        period=Period(*period), language=language, branding=branding or Branding(), note=note)


@dataclass(frozen=True, slots=True)
class Roaming:
    """One roaming session to price: its stored facts (the ``evbill rate`` JSON shape)."""

    facts: Mapping[str, Any]
    contract_id: str = ""
    late: bool = False


def price_sessions(sessions: Iterable[Roaming], pick: Any, ctx: RatingContext | None, *,
                   party_id: str, facts_out: dict[str, SessionFacts] | None = None) -> list[ClearingCdr]:
    """Price each session as a roaming session of the eMSP ``party_id``: ``pick(start)`` answers
    (compiled ruleset, tariff name or None) in force at the session's start. Raises
    ``ClearingError`` naming the session a ruleset refuses. ``facts_out`` collects each session's
    facts by id (commissions select CDRs by them)."""
    out: list[ClearingCdr] = []
    append = out.append
    for r in sessions:
        d = dict(r.facts)
        d["roaming"] = True
        if not d.get("partner"):
            d["partner"] = party_id
        try:
            facts = SessionFacts.from_dict(d)
            ruleset, tariff = pick(facts.start)
            append(price_cdr(ruleset, facts, ctx, tariff=tariff, contract_id=r.contract_id, late=r.late))
            if facts_out is not None:
                facts_out[facts.id] = facts
        except ClearingError:
            raise
        except Exception as exc:  # noqa: BLE001  (any rating failure names its session)
            raise ClearingError("rating_failed", f"session {d.get('id', '?')}: {exc}") from None
    return out


def dump_json(o: Any) -> str:
    """JSON text with every ``Decimal`` as a JSON number, digit for digit (``json.dumps`` would
    need a float on the way; msgspec writes the decimal's own digits)."""
    return str(_ENCODER.encode(o).decode())


def _encoder() -> Any:
    import msgspec

    return msgspec.json.Encoder(decimal_format="number")


_ENCODER = _encoder()
