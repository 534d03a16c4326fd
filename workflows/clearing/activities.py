"""The clearing workflow's activities: every database touch, each one transaction and idempotent
(the statement is found again by the workflow id, a dispute by its CDR, the invoice number is
drawn once)."""

from __future__ import annotations

import bisect
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine
from sqlalchemy.orm import Session
from temporalio import activity
from temporalio.exceptions import ApplicationError

from dsl.compiler import compile_ruleset
from runtime import clearing as C
from runtime.rating import RatingContext
from store import clearing as S
from store.audit import Actor, append_audit
from store.prices import load_series
from workflows.clearing.types import (
    BuildInput,
    BuildOutput,
    ClearingResult,
    DisputeRecord,
    InvoiceRequest,
    ResolveRecord,
    SendInput,
)

__all__ = ["ClearingActivities", "cpo_identity", "month_bounds", "version_picker"]

INVOICE_SERIES = ("CLR", "CLR-")
PAYMENT_DAYS = 30


def month_bounds(month: str, tzname: str) -> tuple[datetime, datetime]:
    """The month in the tenant's zone as [start, end) in UTC."""
    y, m = (int(x) for x in month.split("-"))
    tz = ZoneInfo(tzname or "UTC")
    start = datetime(y, m, 1, tzinfo=tz)
    end = datetime(y + (m == 12), m % 12 + 1, 1, tzinfo=tz)
    return start.astimezone(UTC), end.astimezone(UTC)


def cpo_identity(tenant: Any) -> tuple[str, str]:
    """The tenant's OCPI country code and party id (``branding.ocpi``; default its country and
    'EVB')."""
    ocpi = (tenant.branding or {}).get("ocpi") or {}
    return (str(ocpi.get("country_code") or tenant.country or "DE")[:2].upper(),
            str(ocpi.get("party_id") or "EVB")[:3].upper())


def version_picker(conn: Any, tenant_id: str, ruleset_name: str, tariff: str | None) -> Any:
    """``pick(start) -> (compiled ruleset, tariff)``: the version of the named ruleset (empty: any
    of the tenant's) in force at the session start, each version compiled once."""
    versions = S.ruleset_versions(conn, tenant_id, ruleset_name)
    if not versions:
        raise ApplicationError(f"no published ruleset {ruleset_name!r} prices the partner's sessions", type="no_ruleset")
    keys = [v.effective_from for v in versions]
    cache: dict[str, Any] = {}

    def pick(start: datetime) -> tuple[Any, str | None]:
        i = bisect.bisect_right(keys, start)
        v = versions[i - 1] if i else versions[0]
        rs = cache.get(v.id)
        if rs is None:
            res = compile_ruleset(v.source, f"{v.dsl_name or v.id}.evb")
            if not res.ok or res.ruleset is None:
                raise C.ClearingError("ruleset_does_not_compile", f"ruleset version {v.id} does not compile")
            rs = cache[v.id] = res.ruleset
        return rs, tariff

    return pick


def _json_bytes(objs: list[dict[str, Any]]) -> bytes:
    return C.dump_json(objs).encode()


def decimals_as_strings(o: Any) -> Any:
    if isinstance(o, Decimal):
        return format(o, "f")
    if isinstance(o, dict):
        return {k: decimals_as_strings(v) for k, v in o.items()}
    if isinstance(o, list):
        return [decimals_as_strings(v) for v in o]
    return o


def _audit(conn: Any, tenant_id: str, user: str, role: str, action: str, entity_id: str, after: dict[str, Any]) -> None:
    with Session(bind=conn) as db:
        append_audit(db, Actor(tenant_id, user or "system", role), action, "clearing_statement", entity_id, None, after)
        db.flush()


class ClearingActivities:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def all(self) -> list[Any]:
        return [self.build, self.send, self.dispute, self.close_window, self.resolve, self.invoice]

    @activity.defn(name="clearing.build")
    def build(self, inp: BuildInput) -> BuildOutput:
        with self.engine.begin() as conn:
            found = S.statement_by_workflow(conn, inp.tenant_id, inp.workflow_id)
            if found is not None:
                return BuildOutput(found.id, "empty" if found.cdrs == 0 else found.status, found.cdrs,
                                   format(found.net_total, "f"), found.currency)
            partner = S.emsp_partner(conn, inp.tenant_id, inp.partner_id)
            if partner is None:
                raise ApplicationError(f"eMSP partner {inp.partner_id} not found", type="partner_not_found")
            tenant = S.tenant_row(conn, inp.tenant_id)
            start, end = month_bounds(inp.month, tenant.timezone)
            agreement = S.roaming_agreement(conn, inp.tenant_id, inp.partner_id, end.date())
            pick = version_picker(conn, inp.tenant_id, agreement.ruleset_name if agreement else "",
                                  (agreement.rule_name or None) if agreement else None)
            rows = S.roaming_sessions(conn, inp.tenant_id, inp.partner_id, end)
            first = min((r.start for r in rows), default=start)
            with Session(bind=conn) as db:
                ctx = RatingContext(series=dict(load_series(db, inp.tenant_id, first, end)))
            facts: dict[str, Any] = {}
            try:
                cdrs = C.price_sessions((C.Roaming(r.facts or {}, r.emaid or "", r.start < start) for r in rows),
                                        pick, ctx, party_id=partner.party_id, facts_out=facts)
            except C.ClearingError as exc:
                raise ApplicationError(str(exc), type=exc.code) from None
            currency = cdrs[0].currency if cdrs else tenant.currency
            try:
                totals = C.statement_totals(cdrs, currency)
            except C.ClearingError as exc:
                raise ApplicationError(str(exc), type=exc.code) from None
            names = commission_names(agreement.terms if agreement else None)
            if names and cdrs:
                blocks = emsp_blocks(pick, end, names, f"{partner.country_code}*{partner.party_id}")
                days = _month_days(inp.month)
                totals = C.with_commissions(totals, C.commission_lines(
                    blocks, cdrs, facts, days[0], days[1] + timedelta(days=1), currency))
            cc, pid = cpo_identity(tenant)
            now = datetime.now(UTC).replace(microsecond=0)
            objs = [C.cdr_json(c, cpo_country=cc, cpo_party=pid, emsp_country=partner.country_code,
                               emsp_party=partner.party_id, last_updated=now) for c in cdrs]
            header = C.XlsxHeader(inp.month, partner.name, f"{partner.country_code}*{partner.party_id}", inp.month,
                                  now.date())
            xlsx = C.write_xlsx(header, cdrs, totals)
            reverse = C.reverse_charge(tenant.country or "DE", partner.country_code, partner.vat_id)
            by_session = {r.external_id: r.id for r in rows}
            cdr_rows = [{"session_id": by_session.get(c.cdr_id, c.session_id), "cdr_id": c.cdr_id, "start": c.start,
                         "late": c.late, "currency": c.currency, "net": c.net, "tax": c.tax, "tax_rate": c.tax_rate,
                         "energy_kwh": c.energy_kwh, "ocpi": decimals_as_strings(o)} for c, o in zip(cdrs, objs, strict=True)]
            sid = S.create_statement(conn, inp.tenant_id, partner_id=inp.partner_id, month=inp.month,
                                     period_start=start, period_end=end, workflow_id=inp.workflow_id,
                                     currency=currency, totals=totals, xlsx=xlsx, cdr_json=_json_bytes(objs),
                                     cdr_rows=cdr_rows, reverse_charge=reverse, started_by=inp.started_by)
            _audit(conn, inp.tenant_id, inp.started_by, "operator", "clearing.build", sid, totals.to_dict())
        return BuildOutput(sid, "empty" if not cdrs else "draft", len(cdrs), format(totals.net, "f"), currency)

    @activity.defn(name="clearing.send")
    def send(self, inp: SendInput) -> None:
        with self.engine.begin() as conn:
            S.mark_sent(conn, inp.tenant_id, inp.statement_id, datetime.fromisoformat(inp.sent_at),
                        datetime.fromisoformat(inp.window_ends_at))

    @activity.defn(name="clearing.dispute")
    def dispute(self, inp: DisputeRecord) -> str:
        d = inp.request
        with self.engine.begin() as conn:
            cdr = S.statement_cdr(conn, inp.statement_id, d.cdr_id)
            if cdr is None:
                raise ApplicationError(f"CDR {d.cdr_id} is not on the statement", type="cdr_not_found",
                                       non_retryable=True)
            row, created = S.add_dispute(conn, inp.tenant_id, inp.statement_id, cdr_id=d.cdr_id, reason=d.reason,
                                         ours=cdr.net, proposed=Decimal(d.proposed), raised_by=d.user_id,
                                         raised_role=d.role, raised_at=datetime.fromisoformat(inp.raised_at))
            if created:
                _audit(conn, inp.tenant_id, d.user_id, d.role, "clearing.dispute", inp.statement_id,
                       {"dispute_id": row.id, "cdr_id": d.cdr_id, "reason": d.reason, "proposed": d.proposed,
                        "ours": format(cdr.net, "f")})
        return str(row.id)

    @activity.defn(name="clearing.close_window")
    def close_window(self, inp: InvoiceRequest) -> None:
        with self.engine.begin() as conn:
            S.set_status(conn, inp.tenant_id, inp.statement_id, "resolving")

    @activity.defn(name="clearing.resolve")
    def resolve(self, inp: ResolveRecord) -> None:
        r = inp.request
        with self.engine.begin() as conn:
            row = S.get_dispute(conn, inp.tenant_id, r.dispute_id)
            if row is None:
                raise ApplicationError(f"dispute {r.dispute_id} not found", type="not_open", non_retryable=True)
            d = C.Dispute(row.cdr_id, row.ours, row.proposed, r.resolution, Decimal(r.amount) if r.amount else None)
            net = C.final_net(d)
            if S.resolve_dispute(conn, inp.tenant_id, r.dispute_id, resolution=r.resolution, net=net, by=r.user_id,
                                 at=datetime.fromisoformat(inp.resolved_at), note=r.note):
                _audit(conn, inp.tenant_id, r.user_id, r.role, "clearing.resolve", inp.statement_id,
                       {"dispute_id": r.dispute_id, "resolution": r.resolution, "net": format(net, "f")})

    @activity.defn(name="clearing.invoice")
    def invoice(self, inp: InvoiceRequest) -> ClearingResult:
        from store.billing import draw_numbers, ensure_series
        from store.documents import issue_documents, tenant_branding, tenant_seller

        issue_date = date.fromisoformat(inp.issue_date)
        with self.engine.begin() as conn:
            st = S.get_statement(conn, inp.tenant_id, inp.statement_id)
            number = st.invoice_number
            if not number:
                ensure_series(conn, inp.tenant_id, INVOICE_SERIES[0], INVOICE_SERIES[1])
                number = draw_numbers(conn, inp.tenant_id, INVOICE_SERIES[0])[0]
                S.set_status(conn, inp.tenant_id, inp.statement_id, "invoicing", invoice_number=number)
            tenant = S.tenant_row(conn, inp.tenant_id)
            partner = S.emsp_partner(conn, inp.tenant_id, st.partner_id)
            resolved = {d.cdr_id: d for d in S.disputes_of(conn, inp.tenant_id, inp.statement_id)}
            stated = [C.CommissionLine.from_dict(c) for c in st.commissions or ()]
            cdrs = []
            for c in S.statement_cdrs(conn, inp.statement_id):
                d = resolved.get(c.cdr_id)
                if d is not None and d.resolution in ("accept", "adjust") and d.resolved_net != c.net:
                    cdrs.append(C.InvoicedCdr(c.cdr_id, d.resolved_net, c.tax_rate, c.late, d.resolution))
                else:
                    cdrs.append(C.InvoicedCdr(c.cdr_id, c.net, c.tax_rate, c.late))
            # a percentage commission is taken of the amounts the invoice bills, not those stated
            try:
                commissions = C.revise_commissions(stated, {c.cdr_id: c.net for c in cdrs}, st.currency)
            except C.ClearingError as exc:
                raise ApplicationError(str(exc), type=exc.code, non_retryable=True) from None
            if commissions != stated:
                S.set_commissions(conn, inp.tenant_id, inp.statement_id, [c.to_dict() for c in commissions])
        doc = C.clearing_document(
            number=number, issue_date=issue_date, due_date=issue_date + timedelta(days=PAYMENT_DAYS),
            seller=tenant_seller(tenant), buyer=_buyer(partner), cdrs=cdrs, month=st.month,
            period=_month_days(st.month), currency=st.currency,
            reverse=st.reverse_charge, language="de" if partner.country_code in ("DE", "AT", "CH") else "en",
            branding=tenant_branding(tenant.branding), statement=st.month, commissions=commissions)
        formats = ["pdf", "xrechnung-ubl"]
        issue_documents(self.engine, inp.tenant_id, doc, formats, email=partner.email or "",
                        requested_by="clearing")
        totals = doc.totals
        with self.engine.begin() as conn:
            S.book_invoice(conn, inp.tenant_id, inp.statement_id, partner, number=number, currency=st.currency,
                           gross=totals.gross, vat_groups=[(g.rate, g.taxable, g.tax) for g in totals.vat_groups],
                           issue_date=doc.issue_date, due_date=issue_date + timedelta(days=PAYMENT_DAYS),
                           treatment="AE" if st.reverse_charge else "")
            S.set_status(conn, inp.tenant_id, inp.statement_id, "invoiced", invoice_net=totals.net,
                         invoice_gross=totals.gross)
            _audit(conn, inp.tenant_id, "system", "operator", "clearing.invoice", inp.statement_id,
                   {"number": number, "net": format(totals.net, "f"), "gross": format(totals.gross, "f")})
        return ClearingResult(inp.statement_id, "invoiced", number, format(totals.net, "f"), format(totals.gross, "f"),
                              len(resolved))


def commission_names(terms: Any) -> list[str]:
    """The commission blocks a roaming agreement names: ``terms.commissions``, "a, b" (as
    ``commission a, b`` in a revenue share) or a list."""
    raw = (terms or {}).get("commissions") or ""
    items = raw.split(",") if isinstance(raw, str) else [str(x) for x in raw]
    return [n.strip() for n in items if n.strip()]


def emsp_blocks(pick: Any, end: datetime, names: list[str], party: str) -> list[Any]:
    """The named ``charge emsp`` blocks of the ruleset version in force at the month's last instant;
    a missing block, one not for the eMSP or one naming another eMSP fails the build (no retry)."""
    from dsl.revenue_share import emsp_commissions

    rs, _ = pick(end - timedelta(microseconds=1))
    blocks, errors = emsp_commissions(rs.ast, names, party, f"ruleset {rs.name}")
    if errors:
        raise ApplicationError("; ".join(errors), type="commission_invalid", non_retryable=True)
    return blocks


def _buyer(p: Any) -> Any:
    from runtime.documents.model import Address, Buyer, ElectronicAddress

    return Buyer(name=p.name, address=Address(p.street, p.city, p.postal_code, p.country_code or "DE"),
                 electronic_address=ElectronicAddress(p.email or "billing@invalid", "EM"), is_business=True,
                 vat_id=p.vat_id or None, buyer_reference=f"{p.country_code}*{p.party_id}")


def _month_days(month: str) -> tuple[date, date]:
    """The statement month's first and last day: the invoice's service period (the statement's
    bounds are instants, and the month's first instant is the previous day in UTC)."""
    y, m = (int(x) for x in month.split("-"))
    return date(y, m, 1), date(y + m // 12, m % 12 + 1, 1) - timedelta(days=1)
