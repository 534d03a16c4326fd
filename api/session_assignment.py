"""Unassigned sessions: bringing them in once the tenant's data says whom they bill.

A session no billing account takes (``api.session_io.assignment_of``: unknown token, a token
without a contract, a closed account, no contract in force at the session start) is stored with
status ``unassigned`` and its reason; no billing cycle takes it (cycles bill ``rated`` sessions).
``resolve`` looks its token up again, the same way the import did (``session_io._enrich``): when
the chain now holds, the session gets its token, customer and contract, its facts get what the
contract says (product, customer groups), it is rated again with them (a new rating appended, the
first one stays as history) and becomes ``rated``. The account's next cycle bills it: a cycle
takes every rated, not yet billed session of the account up to ``LOOKBACK_DAYS`` back, so one
whose start lies in a period already invoiced is billed as a late session with its own date.

``resolve`` runs when a token is created or changed, a contract or billing account changed (the
CRM routes' ``on_write``), and when an operator asks (``POST /sessions/{id}/assign``,
``POST /sessions/unassigned/resolve``). A session that is no longer unassigned is left as it is,
so resolving twice changes nothing; sessions already billed to a customer are never moved.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, func, select, update

from api.crud import ReadModel
from api.rating import VersionIndex
from api.schemas import DecimalOut
from api.session_io import Incoming, _enrich, bulk_insert, rate_stored, rating_rows
from store.errors import InvalidInput
from store.models import ChargingSession, Contract, RatedLineRow, SessionRating, Token
from store.repo import Scope
from store.types import utcnow

__all__ = ["RESOLVE_MAX", "AssignOutcome", "ResolveResult", "on_account_write", "on_contract_write",
           "on_token_write", "resolve"]

# sessions one call resolves (each may be rated again); more wait for the next call
RESOLVE_MAX = 2000


class AssignOutcome(ReadModel):
    session_id: str
    status: str
    changed: bool
    unassigned_reason: str | None = None
    unassigned_message: str | None = None
    customer_id: str | None = None
    contract_id: str | None = None
    rerated: bool = False
    rating_error: str | None = None
    gross_total: DecimalOut | None = None


class ResolveResult(ReadModel):
    checked: int
    assigned: int
    still_unassigned: int
    more: bool  # more unassigned sessions are left than one call resolves: call again
    items: list[AssignOutcome]


_cs = ChargingSession.__table__  # type: ignore[attr-defined]
# Core, not ORM objects: a token that brings in thousands of sessions must not pay for an identity
# map the ORM re-evaluates on every statement
_COLS = (_cs.c.id, _cs.c.source, _cs.c.start, _cs.c["end"], _cs.c.tariff, _cs.c.facts, _cs.c.status,
         _cs.c.location_id, _cs.c.site_host_id, _cs.c.token_id, _cs.c.customer_id, _cs.c.contract_id,
         _cs.c.unassigned_reason, _cs.c.unassigned_message, _cs.c.current_rating_id, _cs.c.currency,
         _cs.c.net_total, _cs.c.tax_total, _cs.c.gross_total)


def resolve(scope: Scope, *, session_ids: Sequence[str] | None = None, token_uids: Sequence[str] | None = None,
            trigger: str = "", limit: int = RESOLVE_MAX) -> ResolveResult:
    """Resolve the tenant's unassigned sessions (those of ``session_ids`` / ``token_uids`` when
    given) against its data as it is now, in the caller's transaction (the caller commits).

    The sessions are locked as they are read (PostgreSQL; SQLite has one writer anyway), so of two
    resolutions at once the second finds them no longer unassigned. The changes are audited in one
    entry per call, as an import is: ``session.assign`` (each session brought in, before and after)
    and ``session.unassigned`` (each that stays out for another reason than before); the entity id
    is the session's when there is one."""
    stmt = select(*_COLS).where(_cs.c.tenant_id == scope.tenant_id, _cs.c.status == "unassigned")
    if session_ids is not None:
        stmt = stmt.where(_cs.c.id.in_(list(session_ids)))
    if token_uids is not None:
        stmt = stmt.where(_cs.c.token_uid.in_(list(token_uids)))
    rows = list(scope.db.execute(stmt.order_by(_cs.c.id).limit(limit + 1).with_for_update()).all())
    more, rows = len(rows) > limit, rows[:limit]
    # the stored facts are enriched afresh (the session id keys them: external ids are per source)
    incoming = [Incoming(r.id, r.source, copy.deepcopy(dict(r.facts or {}))) for r in rows]
    links = _enrich(scope, incoming)
    batch = _Batch(scope, rows)
    items = [batch.apply(r, inc.facts or {}, links[r.id]) for r, inc in zip(rows, incoming)]
    batch.write(trigger)
    assigned = sum(i.status != "unassigned" and i.changed for i in items)
    return ResolveResult(checked=len(items), assigned=assigned,
                         still_unassigned=sum(i.status == "unassigned" for i in items), more=more, items=items)


_LINKS = ("location_id", "site_host_id", "token_id")
_Q_ASSIGN = (update(_cs).where(_cs.c.id == bindparam("sid"), _cs.c.status == "unassigned").values(
    status=bindparam("st"), unassigned_reason="", unassigned_message="", customer_id=bindparam("cus"),
    contract_id=bindparam("con"), facts=bindparam("facts", type_=_cs.c.facts.type),
    location_id=bindparam("loc"), site_host_id=bindparam("host"), token_id=bindparam("tok"),
    rating_error=bindparam("err"), current_rating_id=bindparam("rat"), currency=bindparam("cur"),
    net_total=bindparam("net", type_=_cs.c.net_total.type), tax_total=bindparam("tax", type_=_cs.c.tax_total.type),
    gross_total=bindparam("gross", type_=_cs.c.gross_total.type)))
_Q_STILL_OUT = (update(_cs).where(_cs.c.id == bindparam("sid"), _cs.c.status == "unassigned").values(
    unassigned_reason=bindparam("why"), unassigned_message=bindparam("msg"), location_id=bindparam("loc"),
    site_host_id=bindparam("host"), token_id=bindparam("tok")))


class _Batch:
    """One resolution: what rating loads once (versions, contexts over the sessions' window), the
    next rating number of each session, and the rows written together at the end."""

    def __init__(self, scope: Scope, rows: list[Any]) -> None:
        self.scope = scope
        self.versions = VersionIndex.load(scope) if rows else None
        self.contexts: dict[str, Any] = {}
        self.window = (min((r.start for r in rows), default=utcnow()), max((r.end for r in rows), default=utcnow()))
        self.seq: dict[str, int] = {}
        ids = [r.id for r in rows]
        for i in range(0, len(ids), 900):
            for sid, seq in scope.db.execute(
                    select(SessionRating.session_id, func.max(SessionRating.seq))
                    .where(SessionRating.session_id.in_(ids[i:i + 900]))  # type: ignore[attr-defined]
                    .group_by(SessionRating.session_id)):
                self.seq[sid] = int(seq)
        self.ratings: list[dict[str, Any]] = []
        self.lines: list[dict[str, Any]] = []
        self.assigned: list[dict[str, Any]] = []
        self.still_out: list[dict[str, Any]] = []
        self.audit_in: list[dict[str, Any]] = []
        self.audit_out: list[dict[str, Any]] = []

    def apply(self, s: Any, facts: dict[str, Any], link: dict[str, Any]) -> AssignOutcome:
        why, message = link["unassigned_reason"], link["unassigned_message"]
        links = {k: link[k] for k in _LINKS}
        if why:
            changes = {k: v for k, v in {**links, "unassigned_reason": why, "unassigned_message": message}.items()
                       if getattr(s, k) != v}
            if changes:
                self.still_out.append({"sid": s.id, "why": why, "msg": message, "loc": links["location_id"],
                                       "host": links["site_host_id"], "tok": links["token_id"]})
                self.audit_out.append({"id": s.id, "before": {k: getattr(s, k) for k in changes}, "after": changes})
            return AssignOutcome(session_id=s.id, status="unassigned", changed=bool(changes),
                                 unassigned_reason=why, unassigned_message=message, gross_total=s.gross_total)
        values = {"sid": s.id, "st": "rated", "cus": link["customer_id"], "con": link["contract_id"], "facts": facts,
                  "loc": links["location_id"], "host": links["site_host_id"], "tok": links["token_id"], "err": "",
                  "rat": s.current_rating_id, "cur": s.currency, "net": s.net_total, "tax": s.tax_total,
                  "gross": s.gross_total}
        before = {"status": s.status, "unassigned_reason": s.unassigned_reason, "customer_id": s.customer_id,
                  "contract_id": s.contract_id, "current_rating_id": s.current_rating_id,
                  "gross_total": s.gross_total}
        after: dict[str, Any] = {"status": "rated", "customer_id": link["customer_id"],
                                 "contract_id": link["contract_id"]}
        rerated = False
        # the contract fills the facts rating reads (product, customer groups): the session is
        # priced again with them; a session whose facts did not change keeps its rating
        if facts != (s.facts or {}) or s.current_rating_id is None:
            try:
                version, result = rate_stored(self.scope, s, facts, location_id=links["location_id"],
                                              versions=self.versions, contexts=self.contexts, window=self.window)
            except InvalidInput as exc:
                values["err"] = f"{exc.code}: {exc.message}"[:1000]
                values["st"] = "unrated" if exc.code == "no_ruleset_in_force" else "rating_failed"
                after.update(status=values["st"], rating_error=values["err"])
            else:
                seq = self.seq[s.id] = self.seq.get(s.id, 0) + 1
                rating, lines = rating_rows(self.scope, s.id, seq, version, result, "assignment")
                self.ratings.append(rating)
                self.lines.extend(lines)
                rerated = True
                values.update(rat=rating["id"], cur=result.currency, net=result.net_total, tax=result.tax_total,
                              gross=result.gross_total)
                after.update(current_rating_id=rating["id"], gross_total=result.gross_total,
                             ruleset_version_id=version.id)
        self.assigned.append(values)
        self.audit_in.append({"id": s.id, "before": before, "after": after})
        return AssignOutcome(session_id=s.id, status=values["st"], changed=True, customer_id=link["customer_id"],
                             contract_id=link["contract_id"], rerated=rerated, rating_error=values["err"] or None,
                             gross_total=values["gross"])

    def write(self, trigger: str) -> None:
        bulk_insert(self.scope, SessionRating, self.ratings)
        bulk_insert(self.scope, RatedLineRow, self.lines)
        if self.assigned:
            self.scope.db.execute(_Q_ASSIGN, self.assigned)
        if self.still_out:
            self.scope.db.execute(_Q_STILL_OUT, self.still_out)
        for action, entries in (("session.assign", self.audit_in), ("session.unassigned", self.audit_out)):
            if entries:
                one = entries[0]["id"] if len(entries) == 1 else ""
                self.scope.audit(action, "charging_session", one, None, {"trigger": trigger, "sessions": entries})


# --- what the CRM's writes bring in -------------------------------------------------------------

def on_token_write(scope: Scope, token: Token) -> None:
    """A token was registered or changed: its unassigned sessions may resolve now."""
    resolve(scope, token_uids=[token.uid], trigger=f"token {token.id}")


def _tokens_of(scope: Scope, *conds: Any) -> list[str]:
    return list(scope.db.execute(select(Token.uid).join(Contract, Contract.id == Token.contract_id)
                                 .where(Token.tenant_id == scope.tenant_id, *conds)).scalars())


def on_contract_write(scope: Scope, contract: Contract) -> None:
    """A contract changed (its dates, its account): the unassigned sessions of its tokens."""
    uids = _tokens_of(scope, Contract.id == contract.id)
    if uids:
        resolve(scope, token_uids=uids, trigger=f"contract {contract.id}")


def on_account_write(scope: Scope, account: Any) -> None:
    """A billing account changed (closed, opened again): the unassigned sessions of its contracts' tokens."""
    uids = _tokens_of(scope, Contract.account_id == account.id)
    if uids:
        resolve(scope, token_uids=uids, trigger=f"billing account {account.id}")
