"""The console's pages: sign-in, dashboard, finance inbox, invoices (with a PDF preview) and
customers. Server-rendered (Jinja2 through Litestar's template engine); forms post back and
redirect, so every page works with the keyboard and without script; htmx (vendored) only boosts
links and forms.

Decisions go through the code the API's routes run: a held invoice is approved or rejected by
``api.areas.billing.tasks.approve_task``/``reject_task`` (the cycle workflow's Update and its
validator: approver role, four eyes), a bank entry is matched by ``api.areas.bank.match_entry``.
"""

from __future__ import annotations

import hmac
from datetime import date, timedelta
from decimal import Decimal
from typing import Annotated, Any
from urllib.parse import quote, urlparse
from zoneinfo import ZoneInfo

from litestar import Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Template

from api.auth import ROLE_SETS
from api.console.charts import bar_chart, scale_top
from api.console.i18n import LANGUAGES, Texts, add_texts, negotiate
from api.console.session import (
    RoleRefused,
    SignInRequired,
    check_csrf,
    console_allow,
    new_token,
    secure,
    session_cookie,
    session_of,
    signin_cookie,
    signin_cookie_name,
    throttle_of,
)
from store.errors import DomainError

__all__ = ["handlers", "public_handlers"]

ROLE_SETS.setdefault("console_finance", ("admin", "operator", "approver", "auditor"))
ROLE_SETS.setdefault("billing_read", ("admin", "operator", "approver", "auditor", "analyst"))
ROLE_SETS.setdefault("billing_decide", ("approver", "admin"))
ROLE_SETS.setdefault("billing_adjust", ("approver", "operator", "admin"))  # as api.areas.billing.common
ROLE_SETS.setdefault("bank_write", ("admin", "operator", "approver"))
ROLE_SETS.setdefault("bank_read", ("admin", "operator", "approver", "auditor"))
ROLE_SETS.setdefault("collections_decide", ("approver", "admin"))
ROLE_SETS.setdefault("payouts_decide", ("approver", "admin"))
ROLE_SETS.setdefault("dunning_decide", ("approver", "admin"))
ROLE_SETS.setdefault("portal", ("partner",))

# (path, text key, role set): the navigation shows a person the pages their role may open
NAV = (("/console/dashboard", "dashboard", "read"), ("/console/inbox", "inbox", "console_finance"),
       ("/console/invoices", "invoices", "billing_read"), ("/console/documents", "documents", "billing_read"),
       ("/console/customers", "customers", "read"),
       ("/console/sessions", "sessions", "read"), ("/console/unassigned", "unassigned", "read"), ("/console/meter-keys", "meter_keys", "read"),
       ("/console/rulesets", "rulesets", "read"), ("/console/adhoc", "adhoc", "receivables_read"),
       ("/console/reservations", "reservations", "read"), ("/console/load", "load", "read"),
       # the partner portal (api.console.portal)
       ("/console/portal", "portal", "portal"), ("/console/portal/sessions", "sessions", "portal"),
       ("/console/portal/statements", "statements", "portal"), ("/console/portal/payouts", "payouts", "portal"))

PUBLIC = {"exclude_from_auth": True}

add_texts({
    "kpis": ("Kennzahlen", "Key figures"),
    "utilisation": ("Auslastung", "Utilisation"),
    "utilisation_help": ("Belegte Stunden der Ladepunkte durch verfügbare Stunden im Monat (Standorte mit "
                         "registrierten Ladepunkten).",
                         "Occupied hours of the EVSEs over the hours available in the month (sites with "
                         "registered EVSEs)."),
    "dso": ("Forderungslaufzeit (DSO)", "Days sales outstanding"),
    "dso_help": ("Offene Forderungen durch den Umsatz der festgeschriebenen Rechnungen der letzten 90 Tage, mal 90.",
                 "Open receivables over the finalized invoices of the last 90 days, times 90."),
    "days_n": ("{n} Tage", "{n} days"),
    "not_known": ("–", "–"),
    "dunning_by_stage": ("Mahnfälle nach Stufe", "Dunning cases by stage"),
    "dunning_stage": ("Stufe", "Stage"),
    "dunning_stage_0": ("begonnen, noch keine Stufe", "started, no stage yet"),
    "dunning_stage_n": ("Stufe {n}", "Stage {n}"),
    "cases": ("Fälle", "Cases"),
    "of_them_awaiting": ("davon warten auf Freigabe", "of them awaiting approval"),
    "no_dunning_cases": ("Keine offenen Mahnfälle.", "No open dunning cases."),
    # adjusting a held invoice (a manual posting through the cycle workflow)
    "adjust": ("Anpassen", "Adjust"),
    "adjust_title": ("Rechnung anpassen (manuelle Buchung)", "Adjust the invoice (manual posting)"),
    "adjust_description": ("Text der Position", "Line text"),
    "adjust_net": ("Betrag netto (negativ für eine Gutschrift)", "Net amount (negative for a credit)"),
    "adjust_rate": ("USt.-Satz in %", "VAT rate in %"),
    "adjust_hint": ("Wer anpasst, gibt die Rechnung danach nicht selbst frei.",
                    "Whoever adjusts the invoice does not approve it afterwards."),
    "adjustments": ("Anpassungen", "Adjustments"),
    "adjusted_by": ("von {who}", "by {who}"),
    "you_adjusted": ("Sie haben diese Rechnung angepasst: jemand anderes gibt sie frei.",
                     "You adjusted this invoice: someone else approves it."),
    "msg_adjusted": ("Die Rechnung ist angepasst; sie wartet auf die Freigabe durch eine andere Person.",
                     "The invoice is adjusted; it waits for someone else to approve it."),
    "err_description_required": ("Bitte einen Text für die Position angeben.", "Please give the line a text."),
    "err_adjust_numbers": ("Betrag (nicht null) und USt.-Satz (0 bis 100) als Zahlen angeben, z. B. -10,00 und 19.",
                           "Give the amount (not zero) and the VAT rate (0 to 100) as numbers, e.g. -10.00 and 19."),
    "err_invalid_amount_adjust": ("Der Betrag darf nicht null sein und der USt.-Satz muss zwischen 0 und 100 liegen.",
                                  "The amount must not be zero and the VAT rate must lie within 0 to 100."),
    "err_forbidden_adjust": ("Ihre Rolle darf Rechnungen nicht anpassen.", "Your role may not adjust invoices."),
    # dunning approvals left open too long (store.dunning.escalate_stage)
    "escalated": ("Eskaliert", "Escalated"),
    "escalated_to": ("Eskaliert am {date} an: {role}", "Escalated on {date} to: {role}"),
    "n_escalated": ("davon eskaliert: {n}", "escalated: {n}"),
})
Form = Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)]


def _tenant(request: Request[Any, Any, Any], tenant_id: str | None) -> Any:
    from store.models import Tenant

    with request.app.state.read_sessions() as db:
        if tenant_id:
            return db.get(Tenant, tenant_id)
        from sqlalchemy import select

        rows = db.execute(select(Tenant).limit(2)).scalars().all()
        return rows[0] if len(rows) == 1 else None


def _page(request: Request[Any, Any, Any], name: str, status_code: int = 200, **ctx: Any) -> Template:
    from api.console.branding import theme_of

    sess = request.scope.get("auth")
    lang = _language(request)
    tenant = ctx.pop("tenant", None)
    if tenant is None and sess is not None:
        tenant = _tenant(request, sess.tenant_id)
    role = getattr(sess, "role", None)
    nav = [(path, key) for path, key, roles in NAV if role in ROLE_SETS[roles]]
    here = request.url.path
    # the entry the page belongs to: the longest one its address starts with
    current = max((p for p, _ in nav if here == p or here.startswith(p + "/")), key=len, default=None)
    ctx.update(t=Texts(lang), lang=lang, languages=LANGUAGES, theme=theme_of(tenant),
               tenant_id=getattr(tenant, "id", ""), me=sess, nav=nav, here=here, current=current,
               csrf=getattr(sess, "csrf", ""))
    headers = {"Cache-Control": "no-store"}
    if request.method == "POST" and status_code >= 400 and ctx.get("page_url"):
        # a refused form shows its page again: htmx puts that page's address in the location bar
        # (not the form's, which a reload would GET)
        headers["HX-Replace-Url"] = ctx["page_url"]
    return Template(template_name=name, context=ctx, status_code=status_code, headers=headers)


def _may(request: Request[Any, Any, Any], role_set: str) -> bool:
    return getattr(request.user, "role", None) in ROLE_SETS[role_set]


def _safe_next(target: str | None) -> str:
    # only our own console pages: an open redirect would send a fresh session anywhere
    if not target or not target.startswith("/console") or target.startswith("//") or urlparse(target).netloc:
        return "/console"
    return target


# ------------------------------------------------------------------------------ sign-in

@get("/console/sign-in", opt=PUBLIC, include_in_schema=False, name="console_sign_in")
async def sign_in_form(request: Request[Any, Any, Any], next: str | None = None, tenant: str | None = None,
                       signed_out: bool = False) -> Template:
    token = new_token()
    page = _page(request, "sign_in.html", tenant=_tenant(request, tenant), form_token=token,
                 next=_safe_next(next), error=None, email="", choices=None,
                 info="signed_out" if signed_out else None)
    page.cookies.append(signin_cookie(request, token))
    return page


@post("/console/sign-in", opt=PUBLIC, include_in_schema=False, status_code=303)
async def sign_in(request: Request[Any, Any, Any], data: Form) -> Response[Any]:
    import anyio

    from store.console import open_session
    from store.console import sign_in as check

    email, password = data.get("email", "").strip(), data.get("password", "")
    tenant_id = data.get("tenant") or None
    nxt = _safe_next(data.get("next"))
    presented, expected = data.get("form_token", ""), request.cookies.get(signin_cookie_name(request), "")
    token = new_token()

    def again(error: str, status: int, choices: Any = None) -> Template:
        page = _page(request, "sign_in.html", status_code=status, tenant=_tenant(request, tenant_id),
                     form_token=token, next=nxt, error=error, email=email, choices=choices, info=None)
        page.cookies.append(signin_cookie(request, token))
        return page

    if not expected or not hmac.compare_digest(presented.encode(), expected.encode()):
        return again("expired_form", 403)
    if not email or not password or len(email) > 200 or len(password) > 1000:
        return again("bad_credentials", 401)
    throttle = throttle_of(request)
    who_where = (email.lower(), request.client.host if request.client else "")
    wait = throttle.wait_s(who_where)
    if wait > 0:
        page = again("too_many_attempts", 429)
        page.headers["Retry-After"] = str(int(wait) + 1)
        return page

    def run() -> Any:
        with request.app.state.sessions() as db:
            found = check(db, email, password, tenant_id)
            if len(found) != 1:
                return found
            who = found[0]
            cookie = open_session(db, who.tenant_id, who.user_id, negotiate(request.headers.get("accept-language")))
            from store.audit import Actor, append_audit

            append_audit(db, Actor(who.tenant_id, who.user_id, who.role), "console.sign_in", "app_user",
                         who.user_id, None, {"email": email})
            db.commit()
            return cookie

    out = await anyio.to_thread.run_sync(run)
    if isinstance(out, list):
        if not out:
            throttle.failed(who_where)
            return again("bad_credentials", 401)
        return again("choose_tenant", 409, choices=[(c.tenant_id, c.tenant_name) for c in out])
    throttle.succeeded(who_where)
    resp = Redirect(nxt, status_code=303)
    resp.cookies.append(session_cookie(request, out))
    resp.cookies.append(Cookie(key=signin_cookie_name(request), value="", path="/", max_age=0, httponly=True,
                               samesite="strict", secure=secure(request)))
    return resp


@post("/console/sign-out", include_in_schema=False, status_code=303)
async def sign_out(request: Request[Any, Any, Any], data: Form) -> Response[Any]:
    from store.console import revoke_session

    sess = session_of(request)
    check_csrf(request, sess.csrf, data.get("_csrf"))
    with request.app.state.sessions() as db:
        revoke_session(db, sess.id)
        db.commit()
    resp = Redirect("/console/sign-in?signed_out=true", status_code=303)
    resp.cookies.append(session_cookie(request, "", clear=True))
    return resp


@post("/console/language", include_in_schema=False, status_code=303)
async def set_language(request: Request[Any, Any, Any], data: Form) -> Response[Any]:
    from store.console import set_language as store_language

    sess = session_of(request)
    check_csrf(request, sess.csrf, data.get("_csrf"))
    lang = data.get("language", "")
    if lang in LANGUAGES:
        with request.app.state.sessions() as db:
            store_language(db, sess.id, lang)
            db.commit()
    return Redirect(_safe_next(data.get("next")), status_code=303)


@get("/console", include_in_schema=False)
async def home(request: Request[Any, Any, Any]) -> Response[Any]:
    role = getattr(request.user, "role", None)
    for path, _key, roles in NAV:
        if role in ROLE_SETS[roles]:
            return Redirect(path, status_code=303)
    return _page(request, "nothing.html")


# ------------------------------------------------------------------------------ branding

@get("/console/theme.css", opt=PUBLIC, include_in_schema=False, media_type="text/css")
async def theme_css(request: Request[Any, Any, Any], t: str | None = None) -> Response[str]:
    from api.console.branding import theme_css as css
    from api.console.branding import theme_of

    return Response(css(theme_of(_tenant(request, t))), media_type="text/css",
                    headers={"Cache-Control": "no-cache"})


@get("/console/logo", opt=PUBLIC, include_in_schema=False)
async def logo(request: Request[Any, Any, Any], t: str) -> Response[bytes]:
    from store.documents import tenant_branding

    tenant = _tenant(request, t)
    b = tenant_branding(getattr(tenant, "branding", None)) if tenant else None
    if b is None or b.logo is None or b.logo_mime not in ("image/png", "image/jpeg", "image/svg+xml", "image/gif"):
        return Response(b"", status_code=404)
    # an SVG logo is shown through <img>, where its scripts never run; sandboxed if opened alone
    return Response(b.logo, media_type=b.logo_mime, headers={"Cache-Control": "no-cache",
                                                             "Content-Security-Policy": "sandbox"})


# ------------------------------------------------------------------------------ dashboard

@get("/console/dashboard", guards=[console_allow("read")], include_in_schema=False)
async def dashboard(request: Request[Any, Any, Any], month: str | None = None, site: str | None = None) -> Template:
    import anyio

    return await anyio.to_thread.run_sync(_dashboard, request, month, (site or "")[:100] or None)


def _dashboard(request: Request[Any, Any, Any], month: str | None, site: str | None) -> Template:
    from zoneinfo import ZoneInfo

    from store.console import dashboard as figures
    from store.console import latest_session_day
    from store.models import Tenant
    from store.types import utcnow

    actor = request.user
    with request.app.state.read_sessions() as db:
        tenant = db.get(Tenant, actor.tenant_id)
        tz = ZoneInfo(tenant.timezone)
        today = utcnow().astimezone(tz).date()
        first = None
        if month:
            try:
                y, m = (int(x) for x in month.split("-"))
                first = date(y, m, 1) if 1970 <= y <= 2200 else None
            except ValueError:
                first = None
        if first is None:
            newest = latest_session_day(db.connection(), actor.tenant_id)
            at = newest.astimezone(tz).date() if newest else today
            first = at.replace(day=1)
        end = (first + timedelta(days=32)).replace(day=1)
        d = figures(db, actor.tenant_id, tenant.timezone, first, end, today, site)
        if site is not None and site not in d.by_site:
            site = None  # a site without sessions this month: every site's days
            d = figures(db, actor.tenant_id, tenant.timezone, first, end, today)
        from store.console import days_sales_outstanding, dunning_by_stage, utilisation

        conn = db.connection()
        util = utilisation(conn, actor.tenant_id, tenant.timezone, first, end, site)
        finance = _may(request, "console_finance")
        dso = days_sales_outstanding(conn, actor.tenant_id, d.open_receivables, today) if finance else {}
        if finance and not dso:
            dso = {tenant.currency: None}  # nothing open, nothing invoiced: said, not left out
        dunning = dunning_by_stage(conn, actor.tenant_id) if finance else []
    t = Texts(session_of(request).language)
    cur = tenant.currency
    days = d.days
    rev = [d.by_day[x].revenue.get(cur, Decimal(0)) for x in days]
    kwh = [d.by_day[x].energy_kwh for x in days]
    ses = [Decimal(d.by_day[x].sessions) for x in days]
    use = [util.by_day.get(x) or Decimal(0) for x in days]
    labels = [str(x.day) for x in days]
    span = {"start": t.date(first), "end": t.date(end - timedelta(days=1)) + (f", {site}" if site else "")}
    charts = [
        ("revenue", bar_chart(rev, labels, [f"{t.date(x)}: {t.money(v, cur)}" for x, v in zip(days, rev)],
                              label=t("chart_of", what=t("revenue"), **span),
                              axis=(t.money(Decimal(0), cur), t.money(scale_top(rev), cur)))),
        ("energy", bar_chart(kwh, labels, [f"{t.date(x)}: {t.kwh(v)}" for x, v in zip(days, kwh)],
                             label=t("chart_of", what=t("energy"), **span),
                             axis=("0 kWh", t.kwh(scale_top(kwh))))),
        ("sessions", bar_chart(ses, labels, [f"{t.date(x)}: {t.number(v)}" for x, v in zip(days, ses)],
                               label=t("chart_of", what=t("sessions"), **span),
                               axis=("0", t.number(scale_top(ses))))),
        ("utilisation", bar_chart(use, labels, [f"{t.date(x)}: {t.rate(v)}" for x, v in zip(days, use)],
                                  label=t("chart_of", what=t("utilisation"), **span),
                                  axis=("0 %", t.rate(scale_top(use))))),
    ]
    prev_month = (first - timedelta(days=1)).replace(day=1)
    return _page(request, "dashboard.html", tenant=tenant, d=d, currency=cur, charts=charts, first=first,
                 month_value=f"{first:%Y-%m}", prev_month=f"{prev_month:%Y-%m}", next_month=f"{end:%Y-%m}", site=site,
                 totals=_totals(d, cur), finance=finance, util=util, dso=dso, dunning=dunning)


def _totals(d: Any, cur: str) -> dict[str, Any]:
    return {"sessions": sum(a.sessions for a in d.by_site.values()),
            "energy": sum((a.energy_kwh for a in d.by_site.values()), Decimal(0)),
            "revenue": sum((a.revenue.get(cur, Decimal(0)) for a in d.by_site.values()), Decimal(0))}


# ------------------------------------------------------------------------------ finance inbox

@get("/console/inbox", guards=[console_allow("console_finance")], include_in_schema=False)
async def inbox(request: Request[Any, Any, Any], msg: str | None = None) -> Template:
    return _inbox(request, msg=msg if msg in _MESSAGES else None)


_MESSAGES = ("approved", "rejected", "adjusted", "matched", "run_approved", "run_rejected", "stage_approved", "stage_rejected",
             "dispute_resolved")


def _inbox(request: Request[Any, Any, Any], *, msg: str | None = None, error: str | None = None,
           error_for: str | None = None, status_code: int = 200,
           adjust_form: dict[str, str] | None = None) -> Template:
    from store import bank as BK
    from store import finance as F
    from store.clearing import disputes_to_resolve
    from store.console import account_labels, approvals, billing_accounts
    from store.records import adjustments

    actor = request.user
    with request.app.state.read_sessions() as db:
        conn = db.connection()
        tasks = F.finance_tasks(conn, actor.tenant_id, status="open", after_id=None, limit=200,
                                kind="invoice_hold")
        batch_tasks = F.finance_tasks(conn, actor.tenant_id, status="open", after_id=None, limit=200,
                                      kind="batch_delivery")
        entries = BK.list_entries(conn, actor.tenant_id, status="unmatched", limit=200)
        labels = account_labels(conn, actor.tenant_id, [x.account_id for x in tasks])
        choices = {cur: billing_accounts(conn, actor.tenant_id, cur) for cur in {e.currency for e in entries}}
        waiting = approvals(conn, actor.tenant_id)
        disputes = disputes_to_resolve(conn, actor.tenant_id)
        adjusted = adjustments(conn, actor.tenant_id, [x.invoice_id for x in tasks])
        tenant = _tenant(request, actor.tenant_id)
    runs = [(kind, a) for kind in ("collection_run", "payout_run") for a in waiting[kind]]
    return _page(request, "inbox.html", status_code=status_code, page_url="/console/inbox", tasks=tasks,
                 entries=entries, labels=labels, choices=choices, msg=msg, error=error, error_for=error_for,
                 runs=runs, stages=waiting["dunning_stage"], batch_tasks=batch_tasks, disputes=disputes,
                 adjusted=adjusted, me_id=actor.user_id, adjust_form=adjust_form or {}, tenant=tenant,
                 tz=ZoneInfo(getattr(tenant, "timezone", None) or "UTC"),
                 may_decide=_may(request, "billing_decide"), may_match=_may(request, "bank_write"),
                 may_adjust=_may(request, "billing_adjust"),
                 may_resolve=_may(request, "clearing_resolve"),
                 may_decide_kind={k: _may(request, f"{area}_decide") for k, area in _DECIDERS.items()})


def _problem_text(t: Texts, exc: DomainError) -> str:
    key = f"err_{exc.code}"
    translated = t(key)
    return translated if translated != key else exc.message


@post("/console/inbox/tasks/{task_id:str}/approve", guards=[console_allow("billing_decide")],
      include_in_schema=False, status_code=303)
async def approve(request: Request[Any, Any, Any], task_id: str, data: Form) -> Response[Any]:
    from api.areas.billing.tasks import approve_task

    sess = session_of(request)
    check_csrf(request, sess.csrf, data.get("_csrf"))
    try:
        await approve_task(request, task_id, data.get("note", "")[:500])
    except DomainError as exc:
        return _inbox(request, error=_problem_text(Texts(sess.language), exc), error_for=task_id,
                      status_code=exc.status)
    return Redirect("/console/inbox?msg=approved", status_code=303)


@post("/console/inbox/tasks/{task_id:str}/reject", guards=[console_allow("billing_decide")],
      include_in_schema=False, status_code=303)
async def reject(request: Request[Any, Any, Any], task_id: str, data: Form) -> Response[Any]:
    from api.areas.billing.tasks import reject_task

    sess = session_of(request)
    check_csrf(request, sess.csrf, data.get("_csrf"))
    t = Texts(sess.language)
    reason = data.get("reason", "").strip()[:1000]
    if not reason:
        return _inbox(request, error=t("err_reason_required"), error_for=task_id, status_code=422)
    try:
        await reject_task(request, task_id, reason)
    except DomainError as exc:
        return _inbox(request, error=_problem_text(t, exc), error_for=task_id,
                      status_code=exc.status)
    return Redirect("/console/inbox?msg=rejected", status_code=303)


@post("/console/inbox/tasks/{task_id:str}/adjust", guards=[console_allow("billing_adjust")],
      include_in_schema=False, status_code=303)
async def adjust(request: Request[Any, Any, Any], task_id: str, data: Form) -> Response[Any]:
    """A manual posting (net amount, negative for a credit, with its VAT rate) on a held draft
    through the API's own ``adjust_task`` (the cycle workflow's Update: adjuster roles; whoever
    adjusted may not approve it afterwards)."""
    from pydantic import ValidationError

    from api.areas.billing.tasks import Adjust, adjust_task

    sess = session_of(request)
    check_csrf(request, sess.csrf, data.get("_csrf"))
    t = Texts(sess.language)
    form = {k: data.get(k, "").strip()[:300] for k in ("description", "amount", "tax_rate")}
    from store import finance as F
    from store.errors import NotFound

    with request.app.state.read_sessions() as db:
        if F.finance_task_of(db.connection(), request.user.tenant_id, task_id) is None:
            raise NotFound("finance_task_not_found", f"finance task {task_id!r} not found")

    def again(error: str, status: int) -> Template:
        return _inbox(request, error=error, error_for=task_id, status_code=status, adjust_form={task_id: form})

    if not form["description"]:
        return again(t("err_description_required"), 422)
    amount, rate = (_decimal_text(form[k]) for k in ("amount", "tax_rate"))
    if amount is None or rate is None or amount == 0:  # zero: the workflow's validator refuses it too
        return again(t("err_adjust_numbers"), 422)
    try:
        body = Adjust(description=form["description"], amount=amount, tax_rate=rate)
        await adjust_task(request, task_id, body)
    except ValidationError:
        return again(t("err_adjust_numbers"), 422)
    except DomainError as exc:
        special = t(f"err_{exc.code}_adjust")
        return again(special if special != f"err_{exc.code}_adjust" else _problem_text(t, exc), exc.status)
    return Redirect("/console/inbox?msg=adjusted", status_code=303)


def _decimal_text(text: str) -> Decimal | None:
    """A decimal as people type it in either language: ``-10.50``, ``-10,50``, ``−10,50`` (a typographic
    minus), ``1.234,50`` and ``1,234.50``; None for anything else."""
    from decimal import InvalidOperation

    s = text.replace("\u2212", "-").replace(" ", "").replace("\xa0", "").replace("€", "")
    if "," in s and "." in s:
        # the later separator is the decimal one
        s = s.replace(".", "").replace(",", ".") if s.rfind(",") > s.rfind(".") else s.replace(",", "")
    else:
        s = s.replace(",", ".")
    import re

    # plain digits only: no exponents, NaN or Infinity, which Decimal would read
    if len(s) > 20 or not re.fullmatch(r"[+-]?\d+(\.\d+)?", s):
        return None
    try:
        return Decimal(s)
    except InvalidOperation:
        return None


@post("/console/inbox/bank-entries/{entry_id:str}/match", guards=[console_allow("bank_write")],
      include_in_schema=False, status_code=303)
async def match(request: Request[Any, Any, Any], entry_id: str, data: Form) -> Response[Any]:
    import anyio
    from litestar.background_tasks import BackgroundTask
    from pydantic import ValidationError

    from api.areas.bank import ManualMatch, match_entry
    from api.areas.dunning import tell_paid_cases
    from api.auth import actor_of
    from store.types import utcnow

    sess = session_of(request)
    check_csrf(request, sess.csrf, data.get("_csrf"))
    t = Texts(sess.language)
    account_id = data.get("account_id", "").strip()
    if not account_id:
        return _inbox(request, error=t("err_account_required"), error_for=entry_id, status_code=422)
    numbers = [n.strip() for n in data.get("invoice_numbers", "").split(",") if n.strip()]
    try:
        body = ManualMatch(account_id=account_id, invoice_numbers=numbers, learn=data.get("learn") == "on")
        since = utcnow()
        await anyio.to_thread.run_sync(match_entry, request, entry_id, body)
    except ValidationError as exc:
        return _inbox(request, error=exc.errors()[0]["msg"], error_for=entry_id, status_code=422)
    except DomainError as exc:
        return _inbox(request, error=_problem_text(t, exc), error_for=entry_id,
                      status_code=exc.status)
    # the customer's open dunning case re-reads at once (after the answer is sent)
    return Redirect("/console/inbox?msg=matched", status_code=303, background=BackgroundTask(
        tell_paid_cases, request.app, actor_of(request).tenant_id, since, "bank entry matched"))


# collection runs, payout runs and dunning stages: decided through the same functions as the
# API's routes (the workflow's Update and its validator: approver role, four eyes)
_DECIDERS = {"collection_run": "collections", "payout_run": "payouts", "dunning_stage": "dunning"}


async def _decide_approval(request: Request[Any, Any, Any], kind: str, object_id: str, name: str,
                           data: dict[str, str]) -> Response[Any]:
    sess = session_of(request)
    check_csrf(request, sess.csrf, data.get("_csrf"))
    t = Texts(sess.language)
    reason = data.get("reason" if name == "reject" else "note", "").strip()[:1000]
    if name == "reject" and not reason:
        return _inbox(request, error=t("err_reason_required"), error_for=object_id, status_code=422)
    if kind == "collection_run":
        from api.areas.collections import decide_collection_run as decide
    elif kind == "payout_run":
        from api.areas.payouts import decide_payout_run as decide
    else:
        from api.areas.dunning import decide_dunning_stage as decide
    try:
        await decide(request, object_id, name, reason)
    except DomainError as exc:
        special = t(f"err_{exc.code}_{kind}")
        text = special if special != f"err_{exc.code}_{kind}" else _problem_text(t, exc)
        return _inbox(request, error=text, error_for=object_id, status_code=exc.status)
    done = "stage" if kind == "dunning_stage" else "run"
    return Redirect(f"/console/inbox?msg={done}_{name}d", status_code=303)


@post("/console/inbox/collection-runs/{collection_run_id:str}/approve",
      guards=[console_allow("collections_decide")],
      include_in_schema=False, status_code=303)
async def approve_collection(request: Request[Any, Any, Any], collection_run_id: str, data: Form) -> Response[Any]:
    return await _decide_approval(request, "collection_run", collection_run_id, "approve", data)


@post("/console/inbox/collection-runs/{collection_run_id:str}/reject",
      guards=[console_allow("collections_decide")],
      include_in_schema=False, status_code=303)
async def reject_collection(request: Request[Any, Any, Any], collection_run_id: str, data: Form) -> Response[Any]:
    return await _decide_approval(request, "collection_run", collection_run_id, "reject", data)


@post("/console/inbox/payout-runs/{payout_run_id:str}/approve", guards=[console_allow("payouts_decide")],
      include_in_schema=False, status_code=303)
async def approve_payout(request: Request[Any, Any, Any], payout_run_id: str, data: Form) -> Response[Any]:
    return await _decide_approval(request, "payout_run", payout_run_id, "approve", data)


@post("/console/inbox/payout-runs/{payout_run_id:str}/reject", guards=[console_allow("payouts_decide")],
      include_in_schema=False, status_code=303)
async def reject_payout(request: Request[Any, Any, Any], payout_run_id: str, data: Form) -> Response[Any]:
    return await _decide_approval(request, "payout_run", payout_run_id, "reject", data)


@post("/console/inbox/dunning-cases/{case_id:str}/approve", guards=[console_allow("dunning_decide")],
      include_in_schema=False, status_code=303)
async def approve_dunning(request: Request[Any, Any, Any], case_id: str, data: Form) -> Response[Any]:
    return await _decide_approval(request, "dunning_stage", case_id, "approve", data)


@post("/console/inbox/dunning-cases/{case_id:str}/reject", guards=[console_allow("dunning_decide")],
      include_in_schema=False, status_code=303)
async def reject_dunning(request: Request[Any, Any, Any], case_id: str, data: Form) -> Response[Any]:
    return await _decide_approval(request, "dunning_stage", case_id, "reject", data)


@post("/console/inbox/clearing-disputes/{dispute_id:str}/resolve", guards=[console_allow("clearing_resolve")],
      include_in_schema=False, status_code=303)
async def resolve_dispute(request: Request[Any, Any, Any], dispute_id: str, data: Form) -> Response[Any]:
    """A disputed CDR after the window: accept the partner's amount, keep ours or adjust, through
    the API's own ``resolve_dispute`` (the clearing workflow's Update: approver or admin)."""
    from pydantic import ValidationError

    from api.areas.clearing import ResolveCreate
    from api.areas.clearing import resolve_dispute as resolve
    from store.clearing import get_dispute
    from store.errors import NotFound

    sess = session_of(request)
    check_csrf(request, sess.csrf, data.get("_csrf"))
    with request.app.state.read_sessions() as db:
        if get_dispute(db.connection(), request.user.tenant_id, dispute_id) is None:
            raise NotFound("clearing_dispute_not_found", f"dispute {dispute_id!r} not found")
    t = Texts(sess.language)
    resolution = data.get("resolution", "")
    amount = data.get("amount", "").strip().replace(",", ".") or None
    if resolution == "adjust" and amount is None:
        return _inbox(request, error=t("err_amount_required"), error_for=dispute_id, status_code=422)
    try:
        body = ResolveCreate(resolution=resolution, amount=amount if resolution == "adjust" else None,  # type: ignore[arg-type]
                             note=data.get("note", "").strip()[:1000])
        await resolve(request, dispute_id, body)
    except ValidationError as exc:
        return _inbox(request, error=exc.errors()[0]["msg"], error_for=dispute_id, status_code=422)
    except DomainError as exc:
        return _inbox(request, error=_problem_text(t, exc), error_for=dispute_id, status_code=exc.status)
    return Redirect("/console/inbox?msg=dispute_resolved", status_code=303)


# ------------------------------------------------------------------------------ invoices

@get("/console/invoices", guards=[console_allow("billing_read")], include_in_schema=False)
async def invoices(request: Request[Any, Any, Any], status: str | None = None, cursor: str | None = None) -> Template:
    from store.console import customer_names
    from store.invoices import InvoiceFilter, list_invoices
    from store.repo import decode_cursor, encode_cursor

    actor = request.user
    status = status if status in ("draft", "held", "finalized", "rejected") else None
    try:
        after = decode_cursor(cursor) if cursor else None
    except (ValueError, DomainError):
        after = None
    limit = 50
    with request.app.state.read_sessions() as db:
        rows = list_invoices(db, actor.tenant_id, InvoiceFilter(status=status), after_id=after, limit=limit)
        names = customer_names(db.connection(), actor.tenant_id, [r.customer_id for r in rows])
    nxt = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return _page(request, "invoices.html", rows=rows[:limit], names=names, status=status, next_cursor=nxt,
                 statuses=("draft", "held", "finalized", "rejected"))


@get("/console/invoices/{invoice_id:str}", guards=[console_allow("billing_read")], include_in_schema=False)
async def invoice(request: Request[Any, Any, Any], invoice_id: str) -> Template:
    from store import finance as F
    from store.console import customer_names
    from store.documents import documents_by_number

    actor = request.user
    with request.app.state.read_sessions() as db:
        conn = db.connection()
        found = F.invoice_with_lines(conn, actor.tenant_id, invoice_id)
        if found is None:
            raise _NotFound
        row, lines = found
        docs = [d for d, _ in documents_by_number(conn, actor.tenant_id, row.number)] if row.number else []
        names = customer_names(conn, actor.tenant_id, [row.customer_id])
        rows = _document_rows(conn, actor.tenant_id, invoice_id, _language(request))
    pdf = next((d for d in docs if d.media_type == "application/pdf" and d.source_invoice_id == invoice_id), None)
    pdf = pdf or next((d for d in docs if d.media_type == "application/pdf"), None)
    return _page(request, "invoice.html", inv=row, lines=lines, rows=rows, pdf=pdf,
                 customer=names.get(row.customer_id, ""))


def _document_rows(conn: Any, tenant_id: str, invoice_id: str, language: str) -> tuple[Any, ...] | None:
    """The invoice's lines as its document prints them (grouped per component and price, unit
    labels and texts in the page's language), also for a held draft; ``None`` where no document
    can be made of it (then the page lists the stored lines)."""
    import dataclasses

    from runtime.documents.from_invoice import document_from_invoice
    from runtime.documents.model import DocumentError
    from runtime.documents.pdf import line_rows
    from store.documents import load_invoice_input

    try:
        inp = load_invoice_input(conn, tenant_id, invoice_id, drafts=True)
        inp = dataclasses.replace(inp, customer=dataclasses.replace(inp.customer, language=language))
        return line_rows(document_from_invoice(inp))
    except (DomainError, DocumentError, ValueError):
        return None


def _language(request: Request[Any, Any, Any]) -> str:
    sess = request.scope.get("auth")
    return getattr(sess, "language", None) or negotiate(request.headers.get("accept-language"))


# the archive's document kinds, in the order the filter offers them
DOCUMENT_KINDS = ("invoice", "credit_note", "self_billing_credit_note", "dunning_letter")


@get("/console/documents", guards=[console_allow("billing_read")], include_in_schema=False)
async def documents(request: Request[Any, Any, Any], kind: str | None = None, cursor: str | None = None) -> Template:
    """The archive: every issued document (invoices and clearing invoices, credit notes, host
    credit notes, dunning letters) in each format, newest first, a PDF opened inline."""
    from store.console import customer_names
    from store.documents import list_documents_newest
    from store.repo import decode_cursor, encode_cursor

    actor = request.user
    kind = kind if kind in DOCUMENT_KINDS else None
    try:
        before = decode_cursor(cursor) if cursor else None
    except (ValueError, DomainError):
        before = None
    limit = 50
    with request.app.state.read_sessions() as db:
        conn = db.connection()
        rows = list_documents_newest(conn, actor.tenant_id, kind=kind, before_id=before, limit=limit + 1)
        names = customer_names(conn, actor.tenant_id, [r.customer_id for r in rows if r.customer_id])
    nxt = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return _page(request, "documents.html", rows=rows[:limit], names=names, kind=kind, kinds=DOCUMENT_KINDS,
                 next_cursor=nxt)


@get("/console/documents/{document_id:str}/pdf", guards=[console_allow("billing_read")], include_in_schema=False)
async def document_pdf(request: Request[Any, Any, Any], document_id: str) -> Response[bytes]:
    from store.documents import get_document

    actor = request.user
    with request.app.state.read_sessions() as db:
        try:
            doc, content = get_document(db.connection(), actor.tenant_id, document_id)
        except DomainError:
            raise _NotFound from None
    if doc.media_type != "application/pdf" or content is None:
        raise _NotFound
    return Response(content, media_type="application/pdf", headers={
        "Content-Disposition": f"inline; filename*=UTF-8''{quote(doc.filename)}",
        "Cache-Control": "private, no-store", "X-Frame-Options": "SAMEORIGIN"})


class _NotFound(Exception):
    pass


# ------------------------------------------------------------------------------ customers

@get("/console/customers", guards=[console_allow("read")], include_in_schema=False)
async def customers(request: Request[Any, Any, Any], q: str = "", cursor: str | None = None) -> Template:
    from store.console import customers as page_of
    from store.repo import decode_cursor, encode_cursor

    actor = request.user
    q = q[:100]
    try:
        after = decode_cursor(cursor) if cursor else None
    except (ValueError, DomainError):
        after = None
    limit = 50
    with request.app.state.read_sessions() as db:
        rows = page_of(db.connection(), actor.tenant_id, q=q, after_id=after, limit=limit)
    nxt = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return _page(request, "customers.html", rows=rows[:limit], q=q, next_cursor=nxt)


# ------------------------------------------------------------------------------ failures

def _wants_htmx(request: Request[Any, Any, Any]) -> bool:
    return request.headers.get("hx-request") == "true"


def on_sign_in_required(request: Request[Any, Any, Any], _exc: Exception) -> Response[Any]:
    target = "/console/sign-in"
    if request.method == "GET" and request.url.path != "/console":
        target += "?next=" + quote(request.url.path + (f"?{request.url.query}" if request.url.query else ""), safe="")
    if _wants_htmx(request):
        return Response(b"", status_code=401, headers={"HX-Redirect": target})
    return Redirect(target, status_code=303)


def on_refused(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    from api.console.session import CsrfRefused

    key = "expired_form" if isinstance(exc, CsrfRefused) else "forbidden"
    return _page(request, "error.html", status_code=403, message=key)


def on_not_found(request: Request[Any, Any, Any], _exc: Exception) -> Response[Any]:
    return _page(request, "error.html", status_code=404, message="not_found")


def exception_handlers() -> dict[Any, Any]:
    from litestar.exceptions import NotFoundException

    from api.console.session import CsrfRefused
    from store.errors import NotFound

    return {SignInRequired: on_sign_in_required, CsrfRefused: on_refused, RoleRefused: on_refused,
            _NotFound: on_not_found, NotFound: on_not_found, NotFoundException: on_not_found}


public_handlers = [sign_in_form, sign_in, theme_css, logo]
handlers = [sign_out, set_language, home, dashboard, inbox, approve, reject, adjust, match, approve_collection,
            reject_collection, approve_payout, reject_payout, approve_dunning, reject_dunning, resolve_dispute, invoices, invoice,
            documents, document_pdf, customers]
