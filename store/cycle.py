"""The statements of a billing cycle's activities (``workflows/billing/activities.py``): what an
account's assembly reads (its account, the ruleset version in force, its contracts, the customer's
sessions, what of them was billed, their rated lines), the draft it writes, and the finance steps'
reads and writes of an invoice. The activities orchestrate and call these; they build no SQL.

The assembly's statements are built once with bound parameters (building one costs more than
SQLite running it); the month-end benchmark measures them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy import (
    String,
    any_,
    bindparam,
    delete,
    func,
    insert,
    literal_column,
    select,
    true,
    type_coerce,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection

from runtime.rated import RatedLine
from store.billing import billed_invoice_ids, billed_session, in_values, invoice, invoice_line
from store.models import AuditEntry, BillingAccount, ChargingSession, Contract, RatedLineRow, RulesetVersion
from store.types import ExactDecimal

__all__ = [
    "BILLED_KINDS",
    "GroupReads",
    "account",
    "account_contracts",
    "account_page",
    "audit_entry_exists",
    "billed_net_of_session",
    "billed_of",
    "customer_account_ids",
    "customer_sessions",
    "cycle_invoice",
    "cycle_invoice_status",
    "cycle_invoice_statuses",
    "insert_draft",
    "invoice_currency_number",
    "invoice_kind",
    "invoice_status",
    "rated_lines_of",
    "rebuild_draft",
    "reject_draft",
    "ruleset_in_force",
    "schedule_accounts",
    "version",
    "version_in_force",
]

_acct = BillingAccount.__table__  # type: ignore[attr-defined]
_contract = Contract.__table__  # type: ignore[attr-defined]
_cs = ChargingSession.__table__  # type: ignore[attr-defined]
_rl = RatedLineRow.__table__  # type: ignore[attr-defined]
_rv = RulesetVersion.__table__  # type: ignore[attr-defined]
_ae = AuditEntry.__table__  # type: ignore[attr-defined]

# the line kinds that bill a session (what a later correction settles against)
BILLED_KINDS = ("session", "late", "adjustment")

_Q_ACCOUNT = select(_acct).where(_acct.c.id == bindparam("a"), _acct.c.tenant_id == bindparam("t"))
_Q_RULESET = (select(_rv.c.id, _rv.c.source, _rv.c.dsl_name)
              .where(_rv.c.tenant_id == bindparam("t"), _rv.c.effective_from <= bindparam("at"))
              .order_by(_rv.c.effective_from.desc(), _rv.c.published_at.desc()).limit(1))
_Q_INVOICE = select(invoice).where(invoice.c.tenant_id == bindparam("t"), invoice.c.account_id == bindparam("a"),
                                   invoice.c.cycle_key == bindparam("k"))
_Q_INVOICE_STATUS = select(invoice.c.id, invoice.c.status).where(
    invoice.c.tenant_id == bindparam("t"), invoice.c.account_id == bindparam("a"),
    invoice.c.cycle_key == bindparam("k"))
_Q_CONTRACTS = (select(_contract.c.id, _contract.c.product, _contract.c.start_date, _contract.c.end_date,
                       _contract.c.status)
                .where(_contract.c.tenant_id == bindparam("t"), _contract.c.account_id == bindparam("a")))
_Q_CUSTOMER_ACCOUNTS = select(_acct.c.id).where(_acct.c.tenant_id == bindparam("t"),
                                                _acct.c.customer_id == bindparam("c")).limit(2)
# only the customer index: with the period's bounds in the WHERE clause SQLite's planner takes the
# (tenant, start) index and walks every customer's month; the caller checks the bounds and the
# tenant in Python (a customer has hundreds of sessions, not millions)
_Q_CUSTOMER_SESSIONS = select(_cs.c.id, _cs.c.tenant_id, _cs.c.current_rating_id, _cs.c.start, _cs.c.energy_kwh,
                              _cs.c.contract_id, _cs.c.status, _cs.c.meter_check).where(
    _cs.c.customer_id == bindparam("c"))
_Q_SIGNED_METER = select(_cs.c.id, _cs.c.facts).where(_cs.c.id.in_(bindparam("ids", expanding=True)))
_Q_BILLED = (select(billed_session.c.session_id, billed_session.c.rating_id, billed_session.c.invoice_id)
             .where(billed_session.c.tenant_id == bindparam("t"),
                    billed_session.c.session_id.in_(bindparam("ids", expanding=True)))
             .order_by(billed_session.c.id))
_Q_RATED_LINES = (select(_rl.c.rating_id, _rl.c.component, _rl.c.description, _rl.c.quantity, _rl.c.unit,
                         _rl.c.unit_price, _rl.c.net, _rl.c.tax_rate, _rl.c.currency, _rl.c.rule, _rl.c.session_id,
                         _rl.c.cost_group)
                  .where(_rl.c.rating_id.in_(bindparam("ids", expanding=True))).order_by(_rl.c.rating_id, _rl.c.seq))
# the same, the amounts as the driver gives them (decimal strings on SQLite, Decimal on PostgreSQL)
_Q_RATED_LINES_RAW = (select(*(type_coerce(c, String()) if isinstance(c.type, ExactDecimal) else c
                               for c in _Q_RATED_LINES.selected_columns))
                      .where(_rl.c.rating_id.in_(bindparam("ids", expanding=True))).order_by(_rl.c.rating_id, _rl.c.seq))
# the same two on PostgreSQL with the ids as one array parameter (``= ANY(:ids)``): a group asks for
# ~1,000 ids at once, and an expanded ``IN`` list is a new statement text each time, which
# SQLAlchemy renders and psycopg parses placeholder by placeholder (~15 % of the batch's CPU)
_IDS = bindparam("ids", type_=ARRAY(String()))
# The billed sessions of many ids on PostgreSQL: one probe of the unique index (tenant, session)
# per id, ``unnest(:ids)`` joined LATERAL to a read of one id fenced by ``OFFSET 0``: an equality
# on the index's two first columns is the plan whatever the planner believes of the table.
# ``= ANY(:ids)`` was not: month-end grows the table from nothing, and without statistics
# (autovacuum analyzes it late, never on a server without it, as the benchmark machine's) the
# planner takes each of a group's ~2,500 ids for a 0.5 % match, so to it they match everything: it
# scanned every billed session of the tenant by the index's first column once per group, which
# made the run quadratic in accounts (10 us of server CPU per id at 3,000 accounts); analyzed at
# 150,000 rows it chose a sequential scan, the same. The array behind a scalar subquery (its
# length unknown to the planner) was worse on small tables: a scan in ``id`` order testing each
# row against the 2,500 ids one by one (``tests/store/test_group_read_plans.py``).
_EACH_ID = func.unnest(_IDS).table_valued("value").render_derived(name="each_id")
_BILLED_ONE = (select(billed_session.c.id, *_Q_BILLED.selected_columns)
               .where(billed_session.c.tenant_id == bindparam("t"), billed_session.c.session_id == _EACH_ID.c.value)
               .offset(literal_column("0")).lateral("billed"))
_Q_BILLED_ANY = (select(_BILLED_ONE.c.session_id, _BILLED_ONE.c.rating_id, _BILLED_ONE.c.invoice_id)
                 .select_from(_EACH_ID).join(_BILLED_ONE, true()).order_by(_BILLED_ONE.c.id))
# and on SQLite with the ids as one JSON array (``IN (SELECT value FROM json_each(:ids))``): one
# statement text whatever the number of ids, so neither SQLAlchemy's rendering of 900 expanded
# parameters nor SQLite's parameter cap (a group's ids in one statement, not chunks of 900)
_JSON_IDS = select(func.json_each(bindparam("ids", type_=String())).table_valued("value").c.value)
_Q_BILLED_JSON = (select(*_Q_BILLED.selected_columns)
                  .where(billed_session.c.tenant_id == bindparam("t"), billed_session.c.session_id.in_(_JSON_IDS))
                  .order_by(billed_session.c.id))
_Q_RATED_LINES_RAW_JSON = (select(*_Q_RATED_LINES_RAW.selected_columns).where(_rl.c.rating_id.in_(_JSON_IDS))
                           .order_by(_rl.c.rating_id, _rl.c.seq))
_Q_RATED_LINES_RAW_ANY = (select(*_Q_RATED_LINES_RAW.selected_columns).where(_rl.c.rating_id == any_(_IDS))
                          .order_by(_rl.c.rating_id, _rl.c.seq))


# a group's sessions with the start and energy as the driver gives them (a string on SQLite), made
# datetime and Decimal in one pass (``_group_sessions``): a group reads a thousand, and the column
# types' processors per value cost twice the read
_Q_GROUP_SESSIONS_RAW = select(_cs.c.customer_id, *(type_coerce(c, String()) if c.name in ("start", "energy_kwh")
                                                   else c for c in _Q_CUSTOMER_SESSIONS.selected_columns))


class GroupSession(NamedTuple):
    """A session as ``customer_sessions`` reads it, with its customer."""

    customer_id: str
    id: str
    tenant_id: str
    current_rating_id: str | None
    start: datetime
    energy_kwh: Decimal
    contract_id: str | None
    status: str
    meter_check: str


def _group_sessions(conn: Connection, cond: Any) -> list[GroupSession]:
    """The sessions ``cond`` selects, as ``UTCDateTime`` and ``ExactDecimal`` would give them: an aware
    UTC start (SQLite keeps naive UTC text), an exact energy."""
    out = []
    new, parse, D = tuple.__new__, datetime.fromisoformat, Decimal
    for r in conn.execute(_Q_GROUP_SESSIONS_RAW.where(cond)).all():
        start, kwh = r[4], r[5]
        if type(start) is str:
            start = parse(start)
        start = start.replace(tzinfo=UTC) if start.tzinfo is None else start.astimezone(UTC)
        out.append(new(GroupSession, (r[0], r[1], r[2], r[3], start, kwh if type(kwh) is D else D(str(kwh)),
                                      r[6], r[7], r[8])))
    return out


def account(conn: Connection, tenant_id: str, account_id: str) -> Any:
    return conn.execute(_Q_ACCOUNT, {"a": account_id, "t": tenant_id}).first()


def ruleset_in_force(conn: Connection, tenant_id: str, at: datetime) -> Any:
    """The tenant's ruleset version in force at ``at`` (id, source, dsl_name), or None."""
    return conn.execute(_Q_RULESET, {"t": tenant_id, "at": at}).first()


def cycle_invoice(conn: Connection, tenant_id: str, account_id: str, cycle_key: str) -> Any:
    return conn.execute(_Q_INVOICE, {"t": tenant_id, "a": account_id, "k": cycle_key}).first()


def cycle_invoice_status(conn: Connection, tenant_id: str, account_id: str, cycle_key: str) -> Any:
    return conn.execute(_Q_INVOICE_STATUS, {"t": tenant_id, "a": account_id, "k": cycle_key}).first()


class GroupReads:
    """What a billing run's group of accounts reads per account, read once for the group (one
    statement per kind instead of one per account): the accounts, their contracts, up to two
    accounts of each of their customers, the customers' sessions, the accounts' unreleased holds
    and flags, their service items and discounts (all of them: the period's are picked by the
    caller, as ``store.billing.period_services``/``period_discounts`` do). An account not read
    here (it is not the tenant's) is absent from ``accounts``."""

    def __init__(self, conn: Connection, tenant_id: str, account_ids: Sequence[str]) -> None:
        from store.billing import account_discount, billing_hold, service_item

        self.memo: dict[Any, Any] = {}  # what the caller reads once per group (the tenant's zone)
        self.accounts: dict[str, Any] = {}
        for cond in in_values(conn, _acct.c.id, account_ids):
            self.accounts.update((r.id, r) for r in conn.execute(select(_acct).where(_acct.c.tenant_id == tenant_id,
                                                                                     cond)))
        ids = list(self.accounts)
        customers = sorted({a.customer_id for a in self.accounts.values()})
        self.contracts: dict[str, list[Any]] = {a: [] for a in ids}
        for cond in in_values(conn, _contract.c.account_id, ids):
            for r in conn.execute(select(_contract.c.account_id, *_Q_CONTRACTS.selected_columns).where(
                    _contract.c.tenant_id == tenant_id, cond)):
                self.contracts[r.account_id].append(r)
        self.customer_accounts: dict[str, list[str]] = {c: [] for c in customers}
        for cond in in_values(conn, _acct.c.customer_id, customers):
            for r in conn.execute(select(_acct.c.customer_id, _acct.c.id).where(_acct.c.tenant_id == tenant_id, cond)
                                  .order_by(_acct.c.id)):
                self.customer_accounts[r.customer_id].append(r.id)
        self.sessions: dict[str, list[GroupSession]] = {c: [] for c in customers}
        for cond in in_values(conn, _cs.c.customer_id, customers):
            for r in _group_sessions(conn, cond):
                self.sessions[r.customer_id].append(r)
        self.holds = self._by_account(conn, tenant_id, billing_hold, ids, billing_hold.c.released_at.is_(None))
        self.services = self._by_account(conn, tenant_id, service_item, ids)
        self.discounts = self._by_account(conn, tenant_id, account_discount, ids)

    # Reads that depend on what the caller computes per account (its cycle key, its period) are
    # made for the whole group at the first account's values and kept; an account asking with
    # other values (another policy's period) is read on its own, as without the group. Each saves
    # a statement per account: on PostgreSQL a round trip of ~1-2 ms at month-end.
    def cycle_invoice(self, conn: Connection, tenant_id: str, account_id: str, key: str) -> Any:
        """``cycle_invoice`` of a group's account."""
        got = self.memo.get(("cycle_invoice", key))
        if got is None:
            got = self.memo[("cycle_invoice", key)] = {}
            for cond in in_values(conn, invoice.c.account_id, list(self.accounts)):
                got.update((r.account_id, r) for r in conn.execute(select(invoice).where(
                    invoice.c.tenant_id == tenant_id, cond, invoice.c.cycle_key == key)))
        return got.get(account_id) if account_id in self.accounts else cycle_invoice(conn, tenant_id, account_id, key)

    def previous_net(self, conn: Connection, tenant_id: str, account_id: str, before: datetime,
                     currency: str | None = None) -> Decimal | None:
        """``store.billing.previous_net`` of a group's account."""
        from store.billing import previous_net

        got = self.memo.get(("previous_net", before))
        if got is None:
            got = self.memo[("previous_net", before)] = {}
            for cond in in_values(conn, invoice.c.account_id, list(self.accounts)):
                for r in conn.execute(select(invoice.c.account_id, invoice.c.net_total, invoice.c.currency).where(
                        invoice.c.tenant_id == tenant_id, cond, invoice.c.status == "finalized",
                        invoice.c.kind == "invoice", invoice.c.period_end <= before)
                        .order_by(invoice.c.period_end.desc())):
                    got.setdefault(r.account_id, r)  # the latest first
        if account_id not in self.accounts:
            return previous_net(conn, tenant_id, account_id, before, currency)
        row = got.get(account_id)
        if row is None or (currency is not None and row.currency != currency):
            return None
        net: Decimal = row.net_total
        return net

    def open_invoices(self, conn: Connection, tenant_id: str, account_id: str, except_id: str) -> list[str]:
        """The ids of the account's draft and held invoices but ``except_id`` (a handful; at
        month-end usually none)."""
        got = self.memo.get("open_invoices")
        if got is None:
            got = self.memo["open_invoices"] = {}
            for cond in in_values(conn, invoice.c.account_id, list(self.accounts)):
                for r in conn.execute(select(invoice.c.account_id, invoice.c.id).where(
                        invoice.c.tenant_id == tenant_id, cond, invoice.c.status.in_(("draft", "held")))):
                    got.setdefault(r.account_id, []).append(r.id)
        return [i for i in got.get(account_id, ()) if i != except_id]

    def billed_of(self, conn: Connection, tenant_id: str, session_ids: Sequence[str], since: datetime,
                  until: datetime) -> list[Any]:
        """``billed_of`` for sessions of the group's customers that started in [``since``,
        ``until``): read for every such session of the group at the first call."""
        window = self.memo.get("billed_window")
        if window is None:
            ids = [r.id for rows in self.sessions.values() for r in rows
                   if r.tenant_id == tenant_id and r.current_rating_id and since <= r.start < until]
            got: dict[str, list[Any]] = {}
            for b in billed_of(conn, tenant_id, ids) if ids else ():  # one statement: the ids are one parameter
                got.setdefault(b.session_id, []).append(b)
            window = self.memo["billed_window"] = (since, until, got)
        if not window[0] <= since or not until <= window[1]:
            return billed_of(conn, tenant_id, session_ids)
        got = window[2]
        return [b for s in session_ids for b in got.get(s, ())]

    def rated_lines_of(self, conn: Connection, rating_ids: Sequence[str]) -> dict[str, list[RatedLine]]:
        """``rated_lines_of``: at the first call, the lines of every rating of the group's sessions
        in the ``billed_of`` window that is not billed yet (what the group's drafts will bill,
        give or take a session on another open invoice); a rating not among them is read then."""
        got = self.memo.get("rated_lines")
        if got is None:
            got = self.memo["rated_lines"] = {}
            window = self.memo.get("billed_window")
            if window is not None:
                since, until, billed = window
                want = [r.current_rating_id for rows in self.sessions.values() for r in rows
                        if r.current_rating_id and since <= r.start < until
                        and all(b.rating_id != r.current_rating_id for b in billed.get(r.id, ()))]
                if want:
                    got.update(rated_lines_of(conn, want))
        missing = [r for r in dict.fromkeys(rating_ids) if r not in got]
        if missing:
            got.update(rated_lines_of(conn, missing))
        return {r: got[r] for r in rating_ids}

    @staticmethod
    def _by_account(conn: Connection, tenant_id: str, table: Any, ids: Sequence[str], *where: Any
                    ) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {a: [] for a in ids}
        for cond in in_values(conn, table.c.account_id, ids):
            for r in conn.execute(select(table).where(table.c.tenant_id == tenant_id, cond, *where)
                                  .order_by(table.c.id)):
                out[r.account_id].append(r)
        return out


def cycle_invoice_statuses(conn: Connection, tenant_id: str, keys: Mapping[str, str]) -> dict[str, Any]:
    """``cycle_invoice_status`` of many accounts at once: ``keys`` maps account id -> cycle key;
    returns account id -> (id, status) of the invoice each has at its key (accounts without one left out)."""
    out: dict[str, Any] = {}
    for cond in in_values(conn, invoice.c.account_id, list(keys)):
        for r in conn.execute(select(invoice.c.account_id, invoice.c.cycle_key, invoice.c.id, invoice.c.status).where(
                invoice.c.tenant_id == tenant_id, cond, invoice.c.cycle_key.in_(sorted(set(keys.values()))))):
            if keys[r.account_id] == r.cycle_key:
                out[r.account_id] = r
    return out


def account_contracts(conn: Connection, tenant_id: str, account_id: str) -> list[Any]:
    return list(conn.execute(_Q_CONTRACTS, {"t": tenant_id, "a": account_id}).all())


def customer_account_ids(conn: Connection, tenant_id: str, customer_id: str) -> list[Any]:
    """At most two of the customer's accounts: enough to tell whether it has one only."""
    return list(conn.execute(_Q_CUSTOMER_ACCOUNTS, {"t": tenant_id, "c": customer_id}).all())


def customer_sessions(conn: Connection, customer_id: str) -> list[Any]:
    return list(conn.execute(_Q_CUSTOMER_SESSIONS, {"c": customer_id}).all())


def signed_meter_of(conn: Connection, session_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The check of each session's signed meter data (``facts["signed_meter"]``), for the few
    sessions whose check holds an invoice."""
    out = {}
    for sid, facts in conn.execute(_Q_SIGNED_METER, {"ids": list(session_ids)}).all():
        sm = (facts or {}).get("signed_meter") if isinstance(facts, dict) else None
        out[sid] = sm if isinstance(sm, dict) else {}
    return out


def billed_of(conn: Connection, tenant_id: str, session_ids: Sequence[str]) -> list[Any]:
    """(session_id, rating_id, invoice_id) for each time these sessions were billed, in order."""
    if conn.dialect.name == "postgresql":
        # each id once: the read joins the ids (``= ANY`` took a repeated one once)
        return list(conn.execute(_Q_BILLED_ANY, {"t": tenant_id, "ids": list(dict.fromkeys(session_ids))}).all())
    return list(conn.execute(_Q_BILLED_JSON, {"t": tenant_id, "ids": json.dumps(list(session_ids))}).all())


def rated_lines_of(conn: Connection, rating_ids: Sequence[str]) -> dict[str, list[RatedLine]]:
    """The ratings' lines, by rating id (every id given, an empty list for a rating without lines),
    in line order. The amounts are read as the database gives them and made ``Decimal`` here as
    each line is made (month-end reads a few hundred lines per account: the column type's
    processor per value cost more than the read, and a tuple per row between read and line more
    than the line itself)."""
    D, new = Decimal, tuple.__new__
    out: dict[str, list[RatedLine]] = {r: [] for r in rating_ids}
    if conn.dialect.name == "postgresql":
        rows = conn.execute(_Q_RATED_LINES_RAW_ANY, {"ids": list(rating_ids)}).all()  # one fetch, not one per row
    else:
        rows = conn.execute(_Q_RATED_LINES_RAW_JSON, {"ids": json.dumps(list(rating_ids))}).all()
    if rows and type(rows[0][3]) is D:  # psycopg gives NUMERIC as Decimal already
        for r in rows:
            out[r[0]].append(new(RatedLine, (r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10],
                                             r[11] or "", None)))
    else:
        for r in rows:
            out[r[0]].append(new(RatedLine, (r[1], r[2], D(r[3]), r[4], D(r[5]), D(r[6]), D(r[7]), r[8], r[9],
                                             r[10], r[11] or "", None)))
    return out


def billed_net_of_session(conn: Connection, tenant_id: str, session_id: str) -> dict[Decimal, Decimal]:
    """What finalized invoices billed for the session so far, net per VAT rate (summed as decimals)."""
    out: dict[Decimal, Decimal] = {}
    billed_on = billed_invoice_ids(tenant_id, session_id)
    for ln in conn.execute(select(invoice_line.c.net, invoice_line.c.tax_rate)
                           .join(invoice, invoice.c.id == invoice_line.c.invoice_id)
                           .where(invoice_line.c.invoice_id.in_(billed_on), invoice_line.c.tenant_id == tenant_id,
                                  invoice_line.c.session_id == session_id, invoice.c.status == "finalized",
                                  invoice_line.c.kind.in_(BILLED_KINDS))):
        out[ln.tax_rate] = out.get(ln.tax_rate, Decimal(0)) + ln.net
    return out


def invoice_currency_number(conn: Connection, invoice_id: str) -> Any:
    return conn.execute(select(invoice.c.number, invoice.c.currency).where(invoice.c.id == invoice_id)).one()


def invoice_status(conn: Connection, tenant_id: str, invoice_id: str) -> str | None:
    row = conn.execute(select(invoice.c.status).where(invoice.c.id == invoice_id,
                                                      invoice.c.tenant_id == tenant_id)).first()
    return None if row is None else str(row.status)


def invoice_kind(conn: Connection, invoice_id: str) -> str:
    return str(conn.execute(select(invoice.c.kind).where(invoice.c.id == invoice_id)).scalar_one())


def insert_draft(conn: Connection, values: Mapping[str, Any]) -> None:
    conn.execute(insert(invoice).values(**values))


def rebuild_draft(conn: Connection, invoice_id: str, values: Mapping[str, Any]) -> None:
    """A draft is still the cycle's to rebuild (after an adjustment, or on a retried activity): its
    lines go, its row takes the new values."""
    conn.execute(delete(invoice_line).where(invoice_line.c.invoice_id == invoice_id))
    conn.execute(update(invoice).where(invoice.c.id == invoice_id).values(**values))


def reject_draft(conn: Connection, tenant_id: str, invoice_id: str, reason: str, user_id: str) -> None:
    conn.execute(update(invoice).where(invoice.c.id == invoice_id, invoice.c.tenant_id == tenant_id,
                                       invoice.c.status.in_(("draft", "held")))
                 .values(status="rejected", rejected_reason=reason, decided_by=user_id))


def audit_entry_exists(conn: Connection, tenant_id: str, action: str, entity_id: str, actor_id: str) -> bool:
    return conn.execute(select(_ae.c.id).where(_ae.c.tenant_id == tenant_id, _ae.c.action == action,
                                               _ae.c.entity_id == entity_id, _ae.c.actor_id == actor_id)
                        .limit(1)).first() is not None


def version_in_force(conn: Connection, tenant_id: str, at: datetime, but: str | None = None) -> Any:
    """The tenant's ruleset version in force at ``at`` (id, source, dsl_name, effective_from),
    leaving out ``but``; None when none is."""
    stmt = select(_rv.c.id, _rv.c.source, _rv.c.dsl_name, _rv.c.effective_from).where(
        _rv.c.tenant_id == tenant_id, _rv.c.effective_from <= at)
    if but is not None:
        stmt = stmt.where(_rv.c.id != but)
    return conn.execute(stmt.order_by(_rv.c.effective_from.desc(), _rv.c.published_at.desc()).limit(1)).first()


def version(conn: Connection, tenant_id: str, version_id: str) -> Any:
    return conn.execute(select(_rv.c.id, _rv.c.source, _rv.c.dsl_name, _rv.c.effective_from).where(
        _rv.c.tenant_id == tenant_id, _rv.c.id == version_id)).first()


def account_page(conn: Connection, tenant_id: str, after: str, limit: int) -> list[Any]:
    """The next ``limit`` of the tenant's active accounts after id ``after`` (id, billing_cycle,
    timezone), by id: a billing run pages through them."""
    stmt = (select(_acct.c.id, _acct.c.billing_cycle, _acct.c.timezone)
            .where(_acct.c.tenant_id == tenant_id, _acct.c.status == "active", _acct.c.id > after)
            .order_by(_acct.c.id).limit(limit))
    return list(conn.execute(stmt).all())


def schedule_accounts(conn: Connection, tenant_id: str, account_ids: Sequence[str] | None = None) -> list[Any]:
    """The tenant's accounts (id, billing_cycle, timezone, status) by id; only ``account_ids`` when given."""
    stmt = select(_acct.c.id, _acct.c.billing_cycle, _acct.c.timezone, _acct.c.status).where(
        _acct.c.tenant_id == tenant_id)
    if account_ids is not None:
        stmt = stmt.where(_acct.c.id.in_(list(account_ids)))
    return list(conn.execute(stmt.order_by(_acct.c.id)).all())
