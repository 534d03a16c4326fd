"""People at the console: their passwords (argon2id hashes, beside their API keys) and their
signed-in sessions, and the figures of the console's dashboard.

A password lives in a table of its own (``user_password``), not on ``app_user``: the user's row
travels into audit snapshots and API answers, its hash must never. A console session is known by
the sha256 of the random token its cookie carries (the token itself is never stored) and has a CSRF
token of its own for the forms it posts; signing out revokes it, and it ends by itself after
``SESSION_HOURS`` or when its user is deactivated.
"""

from __future__ import annotations

import hashlib
import secrets
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Column, ForeignKey, Index, String, Table, and_, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from store.models import ChargingSession, Tenant, User, metadata
from store.types import UTCDateTime, utcnow

__all__ = [
    "MIN_PASSWORD",
    "SESSION_HOURS",
    "ConsoleSession",
    "Dashboard",
    "PasswordTooShort",
    "console_session",
    "dashboard",
    "open_session",
    "revoke_session",
    "session_by_token",
    "set_password",
    "sign_in",
    "user_password",
]

MIN_PASSWORD = 12
SESSION_HOURS = 12

user_password = Table(
    "user_password", metadata,
    Column("user_id", String(40), ForeignKey("app_user.id"), primary_key=True),
    Column("tenant_id", String(40), ForeignKey("tenant.id"), nullable=False),
    Column("hash", String(200), nullable=False),  # argon2id, PHC string (salt and parameters inside)
    Column("set_at", UTCDateTime(), nullable=False),
)

console_session = Table(
    "console_session", metadata,
    Column("id", String(64), primary_key=True),  # sha256 of the cookie's token
    Column("tenant_id", String(40), ForeignKey("tenant.id"), nullable=False),
    Column("user_id", String(40), ForeignKey("app_user.id"), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("language", String(5), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("revoked_at", UTCDateTime(), nullable=True),
    Index("ix_console_session_user", "user_id"),
)

# argon2-cffi's defaults are RFC 9106's low-memory recommendation (argon2id, 64 MiB, t=3, p=4)
_HASHER = PasswordHasher()
# verified against when the e-mail is unknown, so a wrong address costs the time a wrong password does
_DUMMY = _HASHER.hash("not a password of anyone's")


class PasswordTooShort(ValueError):
    pass


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def set_password(db: Session, tenant_id: str, user_id: str, password: str) -> None:
    """Set (or replace) a user's password; every console session of the user ends."""
    if len(password) < MIN_PASSWORD:
        raise PasswordTooShort(f"a password needs at least {MIN_PASSWORD} characters")
    conn = db.connection()
    hashed, now = _HASHER.hash(password), utcnow()
    done = conn.execute(update(user_password).where(user_password.c.user_id == user_id)
                        .values(hash=hashed, set_at=now)).rowcount
    if not done:
        conn.execute(insert(user_password).values(user_id=user_id, tenant_id=tenant_id, hash=hashed, set_at=now))
    conn.execute(update(console_session).where(console_session.c.user_id == user_id,
                                               console_session.c.revoked_at.is_(None)).values(revoked_at=now))


@dataclass(frozen=True, slots=True)
class Candidate:
    user_id: str
    tenant_id: str
    tenant_name: str
    role: str


def sign_in(db: Session, email: str, password: str, tenant_id: str | None = None) -> list[Candidate]:
    """The active users with this e-mail (in ``tenant_id`` if given) whose password it is; more than
    one only when the address is a user in several tenants with the same password."""
    q = (select(User.id, User.tenant_id, User.role, Tenant.name, user_password.c.hash)
         .join(user_password, user_password.c.user_id == User.id)
         .join(Tenant, Tenant.id == User.tenant_id)  # type: ignore[arg-type]
         .where(User.email == email.strip(), User.active.is_(True)))  # type: ignore[attr-defined]
    if tenant_id:
        q = q.where(User.tenant_id == tenant_id)
    rows = db.execute(q.order_by(User.tenant_id)).all()
    if not rows:
        try:
            _HASHER.verify(_DUMMY, password)
        except VerificationError:
            pass
        return []
    found = []
    for r in rows:
        try:
            _HASHER.verify(r.hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            continue
        found.append(Candidate(r.id, r.tenant_id, r.name, r.role))
    return found


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    id: str
    tenant_id: str
    user_id: str
    role: str
    partner_id: str | None
    email: str
    name: str
    csrf: str
    language: str
    expires_at: datetime


def open_session(db: Session, tenant_id: str, user_id: str, language: str) -> str:
    """A new console session; returns the token for the cookie (shown once, stored as its sha256)."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    db.connection().execute(insert(console_session).values(
        id=_sha(token), tenant_id=tenant_id, user_id=user_id, csrf=secrets.token_urlsafe(32), language=language,
        created_at=now, expires_at=now + timedelta(hours=SESSION_HOURS), revoked_at=None))
    return token


def session_by_token(conn: Connection, token: str) -> ConsoleSession | None:
    """The live session behind a cookie's token: not revoked, not expired, its user active."""
    if not token or len(token) > 200:
        return None
    s = console_session.c
    row = conn.execute(
        select(s.id, s.tenant_id, s.user_id, s.csrf, s.language, s.expires_at, User.role, User.partner_id,
               User.email, User.name)
        .join(User, and_(User.id == s.user_id, User.tenant_id == s.tenant_id))  # type: ignore[arg-type]
        .where(s.id == _sha(token), s.revoked_at.is_(None), User.active.is_(True))  # type: ignore[attr-defined]
    ).first()
    if row is None or row.expires_at <= utcnow():
        return None
    return ConsoleSession(row.id, row.tenant_id, row.user_id, row.role, row.partner_id, row.email, row.name,
                          row.csrf, row.language, row.expires_at)


def revoke_session(db: Session, session_id: str) -> None:
    db.connection().execute(update(console_session).where(console_session.c.id == session_id,
                                                          console_session.c.revoked_at.is_(None))
                            .values(revoked_at=utcnow()))


def set_language(db: Session, session_id: str, language: str) -> None:
    db.connection().execute(update(console_session).where(console_session.c.id == session_id)
                            .values(language=language))


# ------------------------------------------------------------------------------ dashboard

@dataclass
class SiteDay:
    sessions: int = 0
    energy_kwh: Decimal = Decimal(0)
    # net revenue per currency: the sessions' rated nets, as their invoices bill them
    revenue: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))


@dataclass
class Dashboard:
    start: date
    end: date  # exclusive
    days: list[date]
    sites: list[str]
    by_day: dict[date, SiteDay]
    by_site: dict[str, SiteDay]
    unrated: int
    open_receivables: dict[str, Decimal]  # per currency
    open_items: int
    overdue: dict[str, Decimal]
    held_invoices: int
    unmatched_entries: int
    unmatched_amounts: dict[str, Decimal]


def dashboard(db: Session, tenant_id: str, tzname: str, start: date, end: date, today: date,
              site: str | None = None) -> Dashboard:
    """Sessions, energy and net revenue per local day and site over ``[start, end)`` (the tenant's
    zone) from the rated sessions (``store.statements``' reading of them), the open receivables
    (``store.receivables``), held invoices (``store.finance``) and unmatched bank entries
    (``store.bank``). Money is summed here, in Python, per currency. With ``site`` the days count
    only that site's sessions (the per-site figures always cover every site)."""
    from zoneinfo import ZoneInfo

    from store import finance as F
    from store import receivables as R
    from store.statements import _revenues

    tz = ZoneInfo(tzname)
    lo = datetime.combine(start, datetime.min.time(), tz)
    hi = datetime.combine(end, datetime.min.time(), tz)
    cs = ChargingSession
    where = and_(cs.tenant_id == tenant_id, cs.start >= lo, cs.start < hi)  # type: ignore[arg-type,operator]
    # each session at its rated net as invoices bill it (rounded per session by its rating), so
    # the dashboard's revenue is the invoices' revenue, not the lines' unrounded sum
    found, unrated = _revenues(db, where, tzname, cs.net_total)
    days = [start + timedelta(days=i) for i in range((end - start).days)]
    by_day = {d: SiteDay() for d in days}
    by_site: dict[str, SiteDay] = {}
    for rev, row in found:
        net = row.net_total if row.net_total is not None else sum((n for _rate, n in rev.lines), Decimal(0))
        at = rev.site or "—"
        aggs = [by_site.setdefault(at, SiteDay())]
        if site is None or at == site:
            aggs.append(by_day.setdefault(rev.local_date, SiteDay()))
        for agg in aggs:
            agg.sessions += 1
            agg.energy_kwh += rev.energy_kwh
            agg.revenue[rev.currency] += net
    conn = db.connection()
    tenant_currency = db.get(Tenant, tenant_id)
    currencies = sorted({tenant_currency.currency if tenant_currency else "EUR"}
                        | {c for a in by_site.values() for c in a.revenue})
    open_total: dict[str, Decimal] = {}
    overdue: dict[str, Decimal] = {}
    items = 0
    for cur in currencies:
        for st in R.open_items(conn, tenant_id, cur):
            if st.open <= 0:
                continue
            items += 1
            open_total[cur] = open_total.get(cur, Decimal(0)) + st.open
            if st.due_date is not None and st.due_date < today:
                overdue[cur] = overdue.get(cur, Decimal(0)) + st.open
    held = F.finance_tasks(conn, tenant_id, status="open", after_id=None, limit=10_000,
                          kind="invoice_hold")
    unmatched = _unmatched(conn, tenant_id)
    amounts: dict[str, Decimal] = {}
    for e in unmatched:
        amounts[e.currency] = amounts.get(e.currency, Decimal(0)) + e.amount
    return Dashboard(start, end, days, sorted(by_site), by_day, by_site, unrated, open_total, items, overdue,
                     len(held), len(unmatched), amounts)


def _unmatched(conn: Connection, tenant_id: str) -> Sequence[Any]:
    from store import bank as BK

    out: list[Any] = []
    after = None
    while True:
        page = BK.list_entries(conn, tenant_id, status="unmatched", after_id=after, limit=500)
        out.extend(page)
        if len(page) < 500:
            return out
        after = page[-1].id


# ------------------------------------------------------------------------------ lists

def latest_session_day(conn: Connection, tenant_id: str) -> datetime | None:
    """When the tenant's newest session started (the dashboard opens on its month)."""
    cs = ChargingSession
    # ordered rather than MAX(): the guard keeps SQL aggregates to integer columns
    return conn.execute(select(cs.start).where(cs.tenant_id == tenant_id)  # type: ignore[arg-type]
                        .order_by(cs.start.desc()).limit(1)).scalar()  # type: ignore[union-attr,attr-defined]


def account_labels(conn: Connection, tenant_id: str, account_ids: Sequence[str]) -> dict[str, str]:
    """``{account id: "customer name · account name"}`` for the accounts of one page."""
    from store.models import BillingAccount, Customer

    ids = sorted(set(account_ids))
    out: dict[str, str] = {}
    for i in range(0, len(ids), 500):
        for aid, aname, cname, cnum in conn.execute(
                select(BillingAccount.id, BillingAccount.name, Customer.name, Customer.number)
                .join(Customer, Customer.id == BillingAccount.customer_id)  # type: ignore[arg-type]
                .where(BillingAccount.tenant_id == tenant_id,
                       BillingAccount.id.in_(ids[i:i + 500]))):  # type: ignore[attr-defined]
            out[aid] = " · ".join(x for x in (cname, cnum or "", aname) if x)
    return out


def billing_accounts(conn: Connection, tenant_id: str, currency: str, limit: int = 500) -> list[tuple[str, str]]:
    """(id, label) of the tenant's billing accounts in ``currency``, by customer name: the choices
    of a manual bank match."""
    from store.models import BillingAccount, Customer

    rows = conn.execute(
        select(BillingAccount.id, BillingAccount.name, Customer.name, Customer.number)
        .join(Customer, Customer.id == BillingAccount.customer_id)  # type: ignore[arg-type]
        .where(BillingAccount.tenant_id == tenant_id, BillingAccount.currency == currency)
        .order_by(Customer.name, BillingAccount.id).limit(limit)).all()
    return [(aid, " · ".join(x for x in (cname, cnum or "", aname) if x)) for aid, aname, cname, cnum in rows]


def customers(conn: Connection, tenant_id: str, *, q: str = "", after_id: str | None = None,
              limit: int = 50) -> list[Any]:
    """A page of the tenant's customers in id order (``limit + 1`` rows at most), optionally those
    whose name, number or e-mail contains ``q``."""
    from sqlalchemy import or_

    from store.models import Customer

    c = Customer
    stmt = select(c.id, c.number, c.name, c.company_name, c.email, c.city, c.country, c.kind,
                  c.created_at).where(c.tenant_id == tenant_id)
    if q:
        from sqlalchemy import func

        # the search text is matched literally: % and _ are no wildcards here
        text = q.strip().lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        like = f"%{text}%"
        stmt = stmt.where(or_(*(func.lower(col).like(like, escape="\\")
                                for col in (c.name, c.number, c.email, c.company_name))))
    if after_id:
        stmt = stmt.where(c.id > after_id)  # type: ignore[arg-type,operator]
    return list(conn.execute(stmt.order_by(c.id).limit(limit + 1)).all())


def customer_names(conn: Connection, tenant_id: str, ids: Sequence[str]) -> dict[str, str]:
    from store.models import Customer

    wanted = sorted({i for i in ids if i})
    out: dict[str, str] = {}
    for i in range(0, len(wanted), 500):
        for cid, name in conn.execute(select(Customer.id, Customer.name).where(
                Customer.tenant_id == tenant_id, Customer.id.in_(wanted[i:i + 500]))):  # type: ignore[attr-defined]
            out[cid] = name
    return out


@dataclass(frozen=True, slots=True)
class Approval:
    """A run or a dunning stage waiting for finance: what the inbox shows of it."""

    kind: str  # collection_run | payout_run | dunning_stage
    id: str  # the run's id, or the dunning case's
    creditor: str  # the creditor account's name (runs)
    as_of: date | None
    items: int
    total: Decimal
    currency: str
    parties: tuple[str, ...]  # the customers collected from, the payees paid, the customer dunned
    started_by: str  # who started the run (four eyes: not the one to approve it)
    stage: int = 0
    letter: str = ""
    overdue: Decimal = Decimal(0)
    charged: Decimal = Decimal(0)
    planned_on: date | None = None
    refs: tuple[str, ...] = ()  # the numbers of the invoices a dunning stage names
    # a dunning stage's approval task left open past the policy's 'escalate after': when, and the
    # role it is given to (``store.dunning.escalate_stage``)
    escalated_at: datetime | None = None
    assigned_role: str | None = None


def approvals(conn: Connection, tenant_id: str, limit: int = 100) -> dict[str, list[Approval]]:
    """Collection runs, payout runs and dunning stages awaiting approval, oldest first."""
    from store import collections as C
    from store import dunning as DN
    from store import payables as P

    creditors = {r.id: r.name for r in conn.execute(select(C.creditor_account.c.id, C.creditor_account.c.name)
                                                    .where(C.creditor_account.c.tenant_id == tenant_id))}
    out: dict[str, list[Approval]] = {"collection_run": [], "payout_run": [], "dunning_stage": []}
    for run in reversed(C.runs(conn, tenant_id, status="awaiting_approval", limit=limit)):
        accounts = list(dict.fromkeys(i.account_id for i in C.run_items(conn, run.id)))
        labels = account_labels(conn, tenant_id, accounts)
        out["collection_run"].append(Approval(
            "collection_run", run.id, creditors.get(run.creditor_account_id, ""), run.as_of, run.items, run.total,
            run.currency, tuple(labels.get(a, a) for a in accounts), run.started_by))
    for run in reversed(P.list_runs(conn, tenant_id, status="awaiting_approval", limit=limit)):
        payees = tuple(dict.fromkeys(i.payee_name for i in P.run_items(conn, run.id)))
        out["payout_run"].append(Approval(
            "payout_run", run.id, creditors.get(run.creditor_account_id, ""), run.as_of, run.items, run.total,
            run.currency, payees, run.started_by))
    cases = DN.cases(conn, tenant_id, status="awaiting_approval", limit=limit)
    names = customer_names(conn, tenant_id, [c.customer_id for c in cases])
    for case in cases:
        waiting = [s for s in DN.stages_of(conn, tenant_id, case.id) if s["status"] == "awaiting_approval"]
        if not waiting:
            continue
        s = waiting[-1]
        listed = s["detail"].get("items", []) if isinstance(s["detail"], dict) else []
        out["dunning_stage"].append(Approval(
            "dunning_stage", case.id, "", None, len(listed), s["total"], s["currency"],
            (names.get(case.customer_id, case.customer_id),), "", stage=s["stage"], letter=s["letter"],
            overdue=s["overdue"], charged=s["charged"], planned_on=s["planned_on"],
            refs=tuple(str(i.get("number") or i.get("id", "")) for i in listed),
            escalated_at=s.get("escalated_at"), assigned_role=s.get("assigned_role")))
    # escalated stages first (longest escalated first), then the others as they came
    out["dunning_stage"].sort(key=lambda a: (a.escalated_at is None, a.escalated_at or datetime.min))
    return out


# ------------------------------------------------------------------------------ more figures

@dataclass
class Utilisation:
    """Occupied hours over available hours (the EVSEs registered at a site × the hours of the
    period). A session counts on its local start day with its whole plug-in time; a site with no
    EVSE registered has no utilisation (None), only hours."""

    hours_by_site: dict[str, Decimal]
    evses_by_site: dict[str, int]
    by_site: dict[str, Decimal | None]  # percent
    by_day: dict[date, Decimal | None]  # percent, over the sites with EVSEs (or ``site``'s)
    total: Decimal | None


def utilisation(conn: Connection, tenant_id: str, tzname: str, start: date, end: date,
                site: str | None = None) -> Utilisation:
    from zoneinfo import ZoneInfo

    from store.models import Evse, Location

    tz = ZoneInfo(tzname)
    lo = datetime.combine(start, datetime.min.time(), tz)
    hi = datetime.combine(end, datetime.min.time(), tz)
    cs = ChargingSession.__table__.c  # type: ignore[attr-defined]
    loc, ev = Location.__table__.c, Evse.__table__.c  # type: ignore[attr-defined]
    evses: dict[str, int] = defaultdict(int)
    for code, _id in conn.execute(select(loc.code, ev.id).join_from(Evse.__table__, Location.__table__,  # type: ignore[arg-type]
                                                                   loc.id == ev.location_id)
                                  .where(ev.tenant_id == tenant_id)):
        evses[code or "—"] += 1
    hours: dict[str, Decimal] = defaultdict(Decimal)
    day_hours: dict[date, Decimal] = defaultdict(Decimal)
    for ref, s_start, s_end in conn.execute(select(cs.location_ref, cs.start, cs.end).where(
            cs.tenant_id == tenant_id, cs.start >= lo, cs.start < hi)):
        at = ref or "—"
        h = Decimal(max(0, int((s_end - s_start).total_seconds()))) / 3600
        hours[at] += h
        if at in evses and (site is None or at == site):
            day_hours[s_start.astimezone(tz).date()] += h
    days = (end - start).days

    def pct(occupied: Decimal, evse_count: int, n_days: int) -> Decimal | None:
        if evse_count <= 0 or n_days <= 0:
            return None
        return (occupied * 100 / (evse_count * 24 * n_days)).quantize(Decimal("0.1"))

    by_site = {s: pct(h, evses.get(s, 0), days) for s, h in hours.items()}
    counted = evses.get(site, 0) if site is not None else sum(evses[s] for s in evses)
    by_day = {start + timedelta(days=i): pct(day_hours.get(start + timedelta(days=i), Decimal(0)), counted, 1)
              for i in range(days)}
    total = pct(sum((h for s, h in hours.items() if s in evses), Decimal(0)), sum(evses.values()), days)
    return Utilisation(dict(hours), dict(evses), by_site, by_day, total)


def days_sales_outstanding(conn: Connection, tenant_id: str, open_receivables: dict[str, Decimal], today: date,
                           window_days: int = 90) -> dict[str, Decimal | None]:
    """Per currency: the open receivables over what was invoiced (gross, finalized invoices less
    credit notes issued in the last ``window_days`` days), times the window's days. None where
    nothing was invoiced in the window."""
    from store.billing import invoice

    i = invoice.c
    sold: dict[str, Decimal] = defaultdict(Decimal)
    for kind, cur, gross in conn.execute(select(i.kind, i.currency, i.gross_total).where(
            i.tenant_id == tenant_id, i.status == "finalized", i.issue_date > today - timedelta(days=window_days),
            i.issue_date <= today)):
        g = Decimal(gross)
        sold[cur] += -abs(g) if kind == "credit_note" else g
    out: dict[str, Decimal | None] = {}
    for cur in sorted(set(sold) | set(open_receivables)):
        s = sold.get(cur, Decimal(0))
        out[cur] = ((open_receivables.get(cur, Decimal(0)) / s * window_days).quantize(Decimal("0.1"))
                    if s > 0 else None)
    return out


def dunning_by_stage(conn: Connection, tenant_id: str) -> list[tuple[int, int, int]]:
    """Open dunning cases per stage reached: (stage, cases, of them awaiting approval), stage 0
    first (started, no stage reached yet). A case past its last stage (``done``) is still open
    until paid: its customer is blocked or handed over, and finance wants to see it."""
    from sqlalchemy import func

    from store.dunning import dunning_case

    c = dunning_case.c
    counts: dict[int, list[int]] = {}
    for stage, status, n in conn.execute(select(c.stage, c.status, func.count()).where(
            c.tenant_id == tenant_id, c.open_key.is_not(None))
            .group_by(c.stage, c.status)):
        row = counts.setdefault(int(stage), [0, 0])
        row[0] += int(n)
        if status == "awaiting_approval":
            row[1] += int(n)
    return [(s, v[0], v[1]) for s, v in sorted(counts.items())]
