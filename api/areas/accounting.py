"""Accounting: the tenant's chart of accounts (as data, from a template or rule by rule), the
journal, posting periods (closing one) and posting batches with their files (DATEV Buchungsstapel
and Debitoren/Kreditoren, generic CSV, JSON lines) to download.

A chart is refused when it leaves a line unmapped for a VAT rate the tenant's published rulesets
use (422 ``chart_incomplete``, every gap listed); the journal itself is written by the events
(``store.accounting``), never through this API.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from litestar import Request, Response, Router
from pydantic import Field
from sqlalchemy import select

from api.auth import ROLE_SETS
from api.crud import ReadModel, WriteModel, open_scope, route
from api.schemas import DecimalOut
from runtime.accounting.chart import TEMPLATES, Chart, ChartError
from runtime.accounting.journal import vat_treatment
from store import accounting as A
from store.errors import InvalidInput
from store.repo import Scope

__all__ = ["router", "vat_treatments", "with_class_rates"]

ROLE_SETS.setdefault("accounting_read", ("admin", "operator", "approver", "auditor"))
ROLE_SETS.setdefault("accounting_write", ("admin", "approver"))


class RuleIO(ReadModel):
    event: str = Field(default="*", description="invoice, credit_note, payment, return, credit_applied or *")
    role: str = Field(description="debtor, customer_credit, revenue, vat, bank, return_charge or payout")
    account: str = Field(description="the account number; 'debtor' (customer credit only): the customer's own")
    revenue_kind: str = Field(default="*", description="charging, subscription, service, discount, other or *")
    vat: str = Field(default="*", description="the VAT rate as the chart names it ('19', '7', '0') or *")
    country: str = "*"
    bu_key: str = ""


class ChartRead(ReadModel):
    configured: bool = Field(description="false: the tenant never set a chart and books on the plain template")
    name: str
    debtors: Literal["personal", "control"]
    account_length: int
    datev_vat: Literal["separate", "automatic"]
    skr: str
    consultant: int
    client: int
    fiscal_year_start: int
    names: dict[str, str]
    rules: list[RuleIO]


class ChartIn(WriteModel):
    template: Literal["plain", "skr03", "skr04"] | None = Field(
        default=None, description="start from a shipped template; the other fields change it")
    name: str | None = Field(default=None, max_length=60)
    debtors: Literal["personal", "control"] | None = None
    account_length: int | None = Field(default=None, ge=4, le=8)
    datev_vat: Literal["separate", "automatic"] | None = None
    consultant: int | None = Field(default=None, ge=1001, le=9999999)
    client: int | None = Field(default=None, ge=1, le=99999)
    fiscal_year_start: int | None = Field(default=None, ge=1, le=12)
    names: dict[str, str] | None = None
    rules: list[RuleIO] | None = Field(default=None, max_length=500,
                                       description="replace the template's rules (extra_rules adds to them)")
    extra_rules: list[RuleIO] = Field(default_factory=list, max_length=500)


class TemplatePage(ReadModel):
    items: list[ChartRead]
    next_cursor: str | None = None


class ClosedPeriodRead(ReadModel):
    period: str
    closed_by: str
    closed_at: datetime


class ClosedPeriodPage(ReadModel):
    items: list[ClosedPeriodRead]
    next_cursor: str | None = None


class JournalLineRead(ReadModel):
    account: str
    side: Literal["debit", "credit"]
    amount: DecimalOut
    currency: str
    role: str
    revenue_kind: str
    vat: str
    bu_key: str
    functional: DecimalOut | None = Field(None, description="the amount in the tenant's currency, on the line's "
                                          "side (foreign-currency entries; an exchange difference has only this)")


class JournalEntryRead(ReadModel):
    id: str
    source_kind: str
    source_id: str
    document: str
    document_date: date
    posting_date: date
    text: str
    corrects: str
    functional_currency: str = Field("", description="a foreign-currency entry: the tenant's currency")
    rate: DecimalOut | None = Field(None, description="the reference rate of the document date: units of the "
                                    "document's currency per unit of the tenant's")
    rate_date: date | None = None
    lines: list[JournalLineRead]


class JournalEntryPage(ReadModel):
    items: list[JournalEntryRead]
    next_cursor: str | None = None


class BatchFileRead(ReadModel):
    format: str
    filename: str
    media_type: str
    sha256: str


class BatchDeliveryRead(ReadModel):
    status: Literal["delivered", "failed"]
    target: str
    files: list[dict[str, str]]
    error: str
    updated_at: datetime


class BatchRead(ReadModel):
    id: str
    number: int
    period: str
    entries: int
    sha256: str
    created_by: str
    created_at: datetime
    files: list[BatchFileRead]
    delivery: BatchDeliveryRead | None = Field(default=None, description="the SFTP delivery, once one was tried")


class SftpTargetIn(WriteModel):
    host: str = Field(min_length=1, max_length=255)
    port: int = Field(default=22, ge=1, le=65535)
    username: str = Field(min_length=1, max_length=100)
    password: str = Field(default="", max_length=200, description="write-only")
    private_key: str = Field(default="", max_length=10000, description="OpenSSH private key text; write-only")
    directory: str = Field(default="", max_length=500)
    host_key: str = Field(min_length=1, max_length=2000,
                          description="the server's public host key, pinned (e.g. 'ssh-ed25519 AAAA...')")


class SftpTargetRead(ReadModel):
    configured: bool
    host: str = ""
    port: int = 22
    username: str = ""
    directory: str = ""
    host_key: str = ""
    has_password: bool = False
    has_private_key: bool = False


class BatchScheduleIO(WriteModel):
    cadence: Literal["off", "daily", "monthly"] = Field(
        description="off: batches by hand only; daily: each past day's entries (the tenant's time zone); monthly: "
                    "each past month's. Scheduled batches are delivered when an SFTP target is set")


class BatchDeliveryStarted(ReadModel):
    workflow_id: str


class BatchPage(ReadModel):
    items: list[BatchRead]
    next_cursor: str | None = None


class BatchIn(WriteModel):
    period: str = Field(description="a month (2026-12) or a day (2026-12-05): the posting dates it takes",
                        pattern=r"^\d{4}-\d{2}(-\d{2})?$")


class ReconciliationRead(ReadModel):
    currencies: dict[str, dict[str, DecimalOut]] = Field(
        description="per currency: receivables in the journal and open items (equal), revenue and VAT payable")
    balanced: bool


class OposItem(ReadModel):
    item_id: str
    kind: str
    number: str
    issue_date: date
    due_date: date
    amount: DecimalOut
    open: DecimalOut = Field(description="open at the end of as_of (a credit balance negative)")
    days_overdue: int


class OposDebtor(ReadModel):
    account: str = Field(description="the personal debtor account, or the control account")
    customer_id: str
    customer_number: str
    name: str
    currency: str
    open: DecimalOut
    overdue: DecimalOut
    items: list[OposItem]


class OposRead(ReadModel):
    as_of: date
    debtors: list[OposDebtor]
    currencies: dict[str, dict[str, DecimalOut]] = Field(
        description="per currency: open_items (the list's total) and receivable_balance (the journal's debtor and "
                    "customer-credit accounts for entries dated up to as_of)")
    reconciled: bool = Field(description="every currency's open items equal its receivable balance")


def _chart_read(chart: Chart, configured: bool) -> ChartRead:
    d = chart.to_dict()
    return ChartRead(configured=configured, **{k: v for k, v in d.items() if k != "rules"},
                     rules=[RuleIO(**r) for r in d["rules"]])


def vat_treatments(scope: Scope) -> set[str]:
    """The VAT treatments the tenant's published rulesets can put on a line (a tariff without a
    rate bills at 0 %)."""
    from api.rating import compiled
    from store.models import RulesetVersion

    rows = scope.db.execute(select(RulesetVersion.sha256, RulesetVersion.source)
                            .where(RulesetVersion.tenant_id == scope.tenant_id)).all()
    out: set[str] = set()
    for sha, source in rows:
        out |= ruleset_vat_treatments(compiled(sha, source).ast)
    return with_class_rates(scope.db.connection(), scope.tenant_id, out)


def with_class_rates(conn: Any, tenant_id: str, treatments: set[str]) -> set[str]:
    """``treatments`` with each rate class (``class:standard``) replaced by its rate in the tenant's
    country today: a rate class bills at the location country's rate of the day, so the chart is
    checked for the tenant's own country (another country's rate the chart does not map is refused
    when an invoice posts it, 409 chart_incomplete)."""
    from runtime.tax import RateUnknown, vat_rate

    classes = {t for t in treatments if t.startswith("class:")}
    out = treatments - classes
    country = A.tenant_country(conn, tenant_id) or "DE" if classes else ""
    for cls in classes:
        try:
            out.add(vat_treatment(vat_rate(country, cls[6:], date.today())))
        except RateUnknown:
            pass
    return out


# the tax policy statements that bill some customers without VAT, and the treatments they can give
_UNTAXED = {"ReverseCharge": ("AE", "O"), "TaxExempt": ("E",)}


def ruleset_vat_treatments(ast: Any) -> set[str]:
    """Every ``vat`` a ruleset's syntax tree names, as chart treatments; 0 where a tariff has none;
    ``class:standard`` / ``class:reduced`` for a rate class; a tax policy's ``reverse_charge`` adds
    AE (a business in another EU member state) and O (a business outside the EU), its ``exempt``
    adds E (``runtime.tax``'s treatments, booked on revenue accounts of their own)."""
    found: set[str] = set()
    seen: set[int] = set()

    def walk(node: Any) -> None:
        if id(node) in seen:
            return
        seen.add(id(node))
        if isinstance(node, (list, tuple)):
            for x in node:
                walk(x)
            return
        if not dataclasses.is_dataclass(node):
            return
        kind = type(node).__name__
        if kind in _UNTAXED:
            found.update(_UNTAXED[kind])
            return
        for f in dataclasses.fields(node):
            v = getattr(node, f.name, None)
            if f.name == "vat_class":
                if v is not None:
                    found.add(f"class:{v}")
                continue
            if f.name == "vat":
                v = getattr(v, "value", v)
                if isinstance(v, Decimal):
                    found.add(vat_treatment(v))
                elif v is None and type(node).__name__ == "Tariff" and getattr(node, "vat_class", None) is None:
                    found.add("0")
                continue
            walk(v)

    walk(ast)
    return found


@route("GET", "/accounting/chart", operation_id="get_chart_of_accounts", roles="accounting_read",
       summary="The tenant's chart of accounts: rules (event, role, revenue kind, VAT, country) -> account")
def get_chart(request: Request[Any, Any, Any]) -> ChartRead:
    with open_scope(request) as scope:
        conn = scope.db.connection()
        configured = conn.execute(select(A.accounting_chart.c.tenant_id).where(
            A.accounting_chart.c.tenant_id == scope.tenant_id)).first() is not None
        return _chart_read(A.chart_of(conn, scope.tenant_id), configured)


@route("GET", "/accounting/chart/templates", operation_id="list_chart_templates", roles="accounting_read",
       summary="The shipped charts: plain, SKR03 and SKR04")
def list_templates(request: Request[Any, Any, Any]) -> TemplatePage:
    return TemplatePage(items=[_chart_read(c, False) for c in TEMPLATES.values()])


@route("PUT", "/accounting/chart", operation_id="set_chart_of_accounts", roles="accounting_write",
       summary="Set the chart of accounts (from a template, changed field by field or rule by rule); refused "
               "with every gap listed when a line an event can post has no account for a VAT rate the "
               "published rulesets use")
def set_chart(request: Request[Any, Any, Any], data: ChartIn) -> ChartRead:
    with open_scope(request) as scope:
        conn = scope.db.connection()
        base = TEMPLATES[data.template].to_dict() if data.template else A.chart_of(conn, scope.tenant_id).to_dict()
        for k in ("name", "debtors", "account_length", "datev_vat", "consultant", "client", "fiscal_year_start",
                  "names"):
            v = getattr(data, k)
            if v is not None:
                base[k] = v
        if data.rules is not None:
            base["rules"] = [r.model_dump() for r in data.rules]
        base["rules"] = [*base["rules"], *(r.model_dump() for r in data.extra_rules)]
        if data.template is None and data.name is None:
            base["name"] = "custom"
        try:
            chart = Chart.from_dict(base)
            before = A.chart_of(conn, scope.tenant_id).to_dict()
            A.set_chart(conn, scope.tenant_id, chart, vat_treatments(scope), scope.actor.user_id)
        except ChartError as e:
            errors = [{"key": "rules", "message": m, "code": "unmapped"} for m in e.missing] or [
                {"key": "chart", "message": str(e), "code": "invalid"}]
            raise InvalidInput("chart_incomplete" if e.missing else "chart_invalid", str(e), errors=errors) from None
        scope.audit("accounting.chart", "accounting_chart", scope.tenant_id, before, chart.to_dict())
        scope.commit()
    return _chart_read(chart, True)


@route("GET", "/accounting/periods", operation_id="list_closed_periods", roles="accounting_read",
       summary="The closed posting periods (months): nothing posts into them")
def list_periods(request: Request[Any, Any, Any]) -> ClosedPeriodPage:
    with open_scope(request) as scope:
        rows = scope.db.connection().execute(select(A.accounting_period).where(
            A.accounting_period.c.tenant_id == scope.tenant_id).order_by(A.accounting_period.c.period)).all()
    return ClosedPeriodPage(items=[ClosedPeriodRead.model_validate(dict(r._mapping)) for r in rows])


class PeriodClose(WriteModel):
    period: str = Field(description="the month to close, YYYY-MM", pattern=r"^\d{4}-\d{2}$")


@route("POST", "/accounting/periods", operation_id="close_period", roles="accounting_write",
       status_code=201, summary="Close a posting period (YYYY-MM) for good: a late event posts into the next open "
                                "month and keeps its document date; 409 period_closed when it is closed already")
def close_period(request: Request[Any, Any, Any], data: PeriodClose) -> ClosedPeriodRead:
    period = data.period
    with open_scope(request) as scope:
        out = A.close_period(scope.db.connection(), scope.tenant_id, period, scope.actor.user_id)
        scope.audit("accounting.period_close", "accounting_period", period, None, {"period": period})
        scope.commit()
    return ClosedPeriodRead.model_validate(out)


@route("GET", "/accounting/journal", operation_id="list_journal_entries", roles="accounting_read",
       summary="Journal entries in posting order, with their lines; period=YYYY-MM or YYYY-MM-DD filters by "
               "posting date")
def list_journal(request: Request[Any, Any, Any], period: str | None = None, cursor: str | None = None,
                 limit: int = 100) -> JournalEntryPage:
    if period is not None and not re.fullmatch(r"\d{4}-\d{2}(-\d{2})?", period):
        raise InvalidInput("bad_period", "period is YYYY-MM or YYYY-MM-DD")
    if not 1 <= limit <= 500:
        raise InvalidInput("bad_limit", "limit is 1 to 500")
    with open_scope(request) as scope:
        try:
            got = A.entries(scope.db.connection(), scope.tenant_id, period=period)
        except ValueError as e:
            raise InvalidInput("bad_period", str(e)) from None
    keyed = [(f"{e.posting_date.isoformat()}|{eid}", eid, e) for eid, e in got]
    if cursor:
        keyed = [k for k in keyed if k[0] > cursor]
    page = keyed[:limit]
    items = [JournalEntryRead(id=eid, source_kind=e.source_kind, source_id=e.source_id, document=e.document,
                       document_date=e.document_date, posting_date=e.posting_date, text=e.text, corrects=e.corrects,
                       functional_currency=e.functional_currency, rate=e.rate, rate_date=e.rate_date,
                       lines=[JournalLineRead(**{f: getattr(ln, f) for f in JournalLineRead.model_fields}) for ln in e.lines])
             for _k, eid, e in page]
    return JournalEntryPage(items=items, next_cursor=page[-1][0] if len(keyed) > limit else None)


@route("GET", "/accounting/reconciliation", operation_id="get_reconciliation", roles="accounting_read",
       summary="The journal against the subledger: receivables = open items; revenue; VAT payable")
def get_reconciliation(request: Request[Any, Any, Any]) -> ReconciliationRead:
    from store import receivables as R

    with open_scope(request) as scope:
        conn = scope.db.connection()
        roles = A.role_balances(conn, scope.tenant_id)
        items = R.item_states(conn, scope.tenant_id)
    out: dict[str, dict[str, Decimal]] = {}
    z = Decimal(0)
    for (role, _vat, cur), v in roles.items():
        d = out.setdefault(cur, {"receivables": z, "open_items": z, "revenue": z, "vat_payable": z})
        if role in ("debtor", "customer_credit"):
            d["receivables"] += v
        elif role == "revenue":
            d["revenue"] -= v
        elif role == "vat":
            d["vat_payable"] -= v
    for s in items:
        out.setdefault(s.currency, {"receivables": z, "open_items": z, "revenue": z, "vat_payable": z})
        out[s.currency]["open_items"] += s.open
    return ReconciliationRead(currencies=out, balanced=all(d["receivables"] == d["open_items"] for d in out.values()))


@route("GET", "/accounting/opos", operation_id="get_open_items_list", roles="accounting_read",
       alternative_media={"text/csv": "format=csv: one row per item, UTF-8, every column named"},
       summary="The open items list (OPOS) per debtor as of a day (default today, UTC), reconciled to the "
               "receivable accounts' balance; format=csv gives one row per item (UTF-8, every column named)")
def get_open_items_list(request: Request[Any, Any, Any], as_of: date | None = None,
                        format: Literal["json", "csv"] = "json") -> Response[OposRead]:
    day = as_of or date.today()
    with open_scope(request) as scope:
        listing = A.open_items_list(scope.db.connection(), scope.tenant_id, day)
    if format == "csv":
        return Response(A.open_items_csv(listing), media_type="text/csv",  # type: ignore[arg-type]
                        headers={"Content-Disposition": f'attachment; filename="opos-{day.isoformat()}.csv"'})
    return Response(OposRead.model_validate(listing))


@route("POST", "/accounting/batches", operation_id="create_posting_batch", roles="accounting_write", status_code=201,
       summary="A posting batch of the period's entries not exported yet: numbered, its files archived with "
               "their sha256; 409 nothing_to_export when there are none")
def create_batch(request: Request[Any, Any, Any], data: BatchIn) -> BatchRead:
    with open_scope(request) as scope:
        out = A.create_batch(scope.db.connection(), scope.tenant_id, data.period, scope.actor.user_id)
        scope.audit("accounting.batch", "posting_batch", out["id"], None,
                    {"number": out["number"], "period": out["period"], "sha256": out["sha256"]})
        scope.commit()
    return BatchRead.model_validate(out)


@route("GET", "/accounting/batches", operation_id="list_posting_batches", roles="accounting_read",
       summary="Posting batches by number")
def list_batches(request: Request[Any, Any, Any]) -> BatchPage:
    with open_scope(request) as scope:
        return BatchPage(items=[BatchRead.model_validate(b) for b in A.batches(scope.db.connection(),
                                                                                 scope.tenant_id)])


@route("GET", "/accounting/batches/{batch_id:str}", operation_id="get_posting_batch", roles="accounting_read",
       summary="A posting batch with its files")
def get_batch(request: Request[Any, Any, Any], batch_id: str) -> BatchRead:
    with open_scope(request) as scope:
        conn = scope.db.connection()
        out = A.batch(conn, scope.tenant_id, batch_id)
        out["delivery"] = A.delivery(conn, scope.tenant_id, batch_id)
        return BatchRead.model_validate(out)


def _sftp_read(t: A.SftpTarget | None) -> SftpTargetRead:
    if t is None:
        return SftpTargetRead(configured=False)
    return SftpTargetRead(configured=True, host=t.host, port=t.port, username=t.username, directory=t.directory,
                          host_key=t.host_key, has_password=bool(t.password), has_private_key=bool(t.private_key))


@route("GET", "/accounting/sftp-target", operation_id="get_sftp_target", roles="accounting_read",
       summary="Where posting batches are delivered over SFTP (without its secrets)")
def get_sftp_target(request: Request[Any, Any, Any]) -> SftpTargetRead:
    with open_scope(request) as scope:
        return _sftp_read(A.sftp_target(scope.db.connection(), scope.tenant_id))


@route("PUT", "/accounting/sftp-target", operation_id="set_sftp_target", roles="admin",
       summary="Set the SFTP target for posting batches: host, port, user, a password or a private key, the "
               "directory, and the server's host key, pinned")
def set_sftp_target(request: Request[Any, Any, Any], data: SftpTargetIn) -> SftpTargetRead:
    import asyncssh

    errors = []
    try:
        asyncssh.import_public_key(data.host_key.strip())
    except (asyncssh.KeyImportError, ValueError) as e:
        errors.append({"key": "host_key", "message": f"not an SSH public key: {e}"})
    if data.private_key:
        try:
            asyncssh.import_private_key(data.private_key)
        except (asyncssh.KeyImportError, ValueError) as e:
            errors.append({"key": "private_key", "message": f"not an unencrypted SSH private key: {e}"})
    if not (data.password or data.private_key):
        errors.append({"key": "password", "message": "give a password or a private key"})
    if errors:
        raise InvalidInput("invalid_sftp_target", errors[0]["message"], errors=errors)
    target = A.SftpTarget(data.host, data.port, data.username, data.password, data.private_key, data.directory,
                          data.host_key.strip())
    with open_scope(request) as scope:
        A.set_sftp_target(scope.db.connection(), scope.tenant_id, target, scope.actor.user_id)
        scope.audit("accounting.sftp_target", "accounting_sftp_target", scope.tenant_id, None,
                    _sftp_read(target).model_dump())
        scope.commit()
    return _sftp_read(target)


@route("POST", "/accounting/batches/{batch_id:str}/deliver", operation_id="deliver_posting_batch",
       roles="accounting_write", status_code=202,
       summary="Deliver a batch's files to the SFTP target (a workflow: retries with backoff, a lasting failure "
               "recorded on the batch)")
async def deliver_batch(request: Request[Any, Any, Any], batch_id: str) -> BatchDeliveryStarted:
    from temporalio.common import WorkflowIDReusePolicy
    from temporalio.exceptions import WorkflowAlreadyStartedError

    from api.areas.billing.common import task_queue, temporal_client
    from api.auth import actor_of
    from workflows.accounting.types import DeliverBatchInput, delivery_workflow_id
    from workflows.accounting.workflows import BatchDeliveryWorkflow

    actor = actor_of(request)
    with request.app.state.read_sessions() as db:
        conn = db.connection()
        A.batch(conn, actor.tenant_id, batch_id)  # 404 for a batch that is not the tenant's
        if A.sftp_target(conn, actor.tenant_id) is None:
            raise InvalidInput("sftp_target_missing", "set the SFTP target first (PUT /accounting/sftp-target)")
        done = A.delivery(conn, actor.tenant_id, batch_id)
    wid = delivery_workflow_id(actor.tenant_id, batch_id)
    client = await temporal_client(request)
    # a delivery that finally failed (recorded, its workflow completed) may be tried again; a
    # delivered one or one under way is never started twice
    again = done is not None and done["status"] == "failed"
    try:
        await client.start_workflow(BatchDeliveryWorkflow.run, DeliverBatchInput(actor.tenant_id, batch_id), id=wid,
                                    task_queue=task_queue(request.app),
                                    id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE if again
                                    else WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY)
    except WorkflowAlreadyStartedError:
        pass  # delivered or under way: its workflow answers
    return BatchDeliveryStarted(workflow_id=wid)


@route("GET", "/accounting/batch-schedule", operation_id="get_batch_schedule", roles="accounting_read",
       summary="How often the schedule cuts (and, with an SFTP target, delivers) the tenant's posting batches")
def get_batch_schedule(request: Request[Any, Any, Any]) -> BatchScheduleIO:
    with open_scope(request) as scope:
        return BatchScheduleIO(cadence=A.batch_cadence(scope.db.connection(), scope.tenant_id))  # type: ignore[arg-type]


@route("PUT", "/accounting/batch-schedule", operation_id="set_batch_schedule", roles="accounting_write",
       summary="Set the batch cadence: off, daily or monthly (the schedule's round, every "
               "EVBILL_ACCOUNTING_BATCH_SWEEP_SECONDS, cuts the past periods' batches and delivers them)")
def set_batch_schedule(request: Request[Any, Any, Any], data: BatchScheduleIO) -> BatchScheduleIO:
    with open_scope(request) as scope:
        conn = scope.db.connection()
        before = A.batch_cadence(conn, scope.tenant_id)
        A.set_batch_cadence(conn, scope.tenant_id, data.cadence, scope.actor.user_id)
        scope.audit("accounting.batch_schedule", "accounting_batch_schedule", scope.tenant_id,
                    {"cadence": before}, {"cadence": data.cadence})
        scope.commit()
    return data


@route("GET", "/accounting/batches/{batch_id:str}/files/{fmt:str}", operation_id="download_posting_batch_file",
       roles="accounting_read", summary="A batch's file as archived: datev, datev_debtors, csv or jsonl",
       responses={})
def download_batch_file(request: Request[Any, Any, Any], batch_id: str, fmt: str) -> Response[bytes]:
    with open_scope(request) as scope:
        f = A.batch_file(scope.db.connection(), scope.tenant_id, batch_id, fmt)
    return Response(f.content, media_type=f.media_type,
                    headers={"ETag": f'"{f.sha256}"', "Content-Disposition": f'attachment; filename="{f.filename}"'})


router = Router(path="/", route_handlers=[get_chart, list_templates, set_chart, list_periods, close_period,
                                          list_journal, get_reconciliation, get_open_items_list, create_batch, list_batches, get_batch,
                                          download_batch_file, get_sftp_target, set_sftp_target, deliver_batch,
                                          get_batch_schedule, set_batch_schedule],
                tags=["accounting"])
