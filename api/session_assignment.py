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

from sqlalchemy import select, update

from api.crud import ReadModel
from api.schemas import DecimalOut
from api.session_io import Incoming, _enrich, append_rating
from store.errors import InvalidInput
from store.models import ChargingSession, Contract, Token
from store.repo import Scope

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


def resolve(scope: Scope, *, session_ids: Sequence[str] | None = None, token_uids: Sequence[str] | None = None,
            trigger: str = "", limit: int = RESOLVE_MAX) -> ResolveResult:
    """Resolve the tenant's unassigned sessions (those of ``session_ids`` / ``token_uids`` when
    given) against its data as it is now, in the caller's transaction (the caller commits).
    Every change is audited: ``session.assign`` when a session is brought in, ``session.unassigned``
    when it stays out for another reason than before."""
    cs = ChargingSession
    stmt = select(cs).where(cs.tenant_id == scope.tenant_id, cs.status == "unassigned")
    if session_ids is not None:
        stmt = stmt.where(cs.id.in_(list(session_ids)))  # type: ignore[attr-defined]
    if token_uids is not None:
        stmt = stmt.where(cs.token_uid.in_(list(token_uids)))  # type: ignore[attr-defined]
    rows = list(scope.db.execute(stmt.order_by(cs.id).limit(limit + 1)).scalars())
    more, rows = len(rows) > limit, rows[:limit]
    # the stored facts are enriched afresh (the session id keys them: external ids are per source)
    incoming = [Incoming(r.id, r.source, copy.deepcopy(dict(r.facts or {}))) for r in rows]
    links = _enrich(scope, incoming)
    items = [_apply(scope, r, inc.facts or {}, links[r.id], trigger) for r, inc in zip(rows, incoming)]
    assigned = sum(i.status != "unassigned" and i.changed for i in items)
    return ResolveResult(checked=len(items), assigned=assigned,
                         still_unassigned=sum(i.status == "unassigned" for i in items), more=more, items=items)


def _apply(scope: Scope, s: ChargingSession, facts: dict[str, Any], link: dict[str, Any],
           trigger: str) -> AssignOutcome:
    cs = ChargingSession
    why, message = link["unassigned_reason"], link["unassigned_message"]
    linked = {k: link[k] for k in ("location_id", "site_host_id", "token_id")}
    if why:
        changes = {k: v for k, v in {**linked, "unassigned_reason": why, "unassigned_message": message}.items()
                   if getattr(s, k) != v}
        if changes:
            before = {k: getattr(s, k) for k in changes}
            scope.db.execute(update(cs).where(cs.id == s.id, cs.status == "unassigned").values(**changes))
            scope.audit("session.unassigned", "charging_session", s.id, before, {**changes, "trigger": trigger})
        return AssignOutcome(session_id=s.id, status="unassigned", changed=bool(changes), unassigned_reason=why,
                             unassigned_message=message, gross_total=s.gross_total)
    before = {"status": s.status, "unassigned_reason": s.unassigned_reason, "customer_id": s.customer_id,
              "contract_id": s.contract_id, "current_rating_id": s.current_rating_id,
              "gross_total": s.gross_total}
    old_facts, rating_id, gross = dict(s.facts or {}), s.current_rating_id, s.gross_total
    # claim it first: of two resolutions at once only one brings it in (the other finds nothing)
    claimed = scope.db.execute(update(cs).where(cs.id == s.id, cs.status == "unassigned").values(
        status="rated", unassigned_reason="", unassigned_message="", customer_id=link["customer_id"],
        contract_id=link["contract_id"], facts=facts, **linked))
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        return AssignOutcome(session_id=s.id, status=before["status"], changed=False)
    after: dict[str, Any] = {"status": "rated", "customer_id": link["customer_id"],
                             "contract_id": link["contract_id"], "current_rating_id": rating_id,
                             "gross_total": gross, "trigger": trigger}
    rerated, error = False, ""
    totals: dict[str, Any] = {}
    # the contract fills the facts rating reads (product, customer groups): the session is priced
    # again with them; a session whose facts did not change keeps its rating
    if facts != old_facts or rating_id is None:
        try:
            rating, result, version = append_rating(scope, s, facts, "assignment", location_id=link["location_id"])
        except InvalidInput as exc:
            error = f"{exc.code}: {exc.message}"[:1000]
            status = "unrated" if exc.code == "no_ruleset_in_force" else "rating_failed"
            scope.db.execute(update(cs).where(cs.id == s.id).values(status=status, rating_error=error))
            after.update(status=status, rating_error=error)
        else:
            rerated = True
            totals = {"currency": result.currency, "net_total": result.net_total, "tax_total": result.tax_total,
                      "gross_total": result.gross_total}
            scope.db.execute(update(cs).where(cs.id == s.id).values(current_rating_id=rating["id"], rating_error="",
                                                                     **totals))
            after.update(current_rating_id=rating["id"], gross_total=result.gross_total,
                         ruleset_version_id=version.id)
    scope.audit("session.assign", "charging_session", s.id, before, after)
    return AssignOutcome(session_id=s.id, status=after["status"], changed=True, customer_id=link["customer_id"],
                         contract_id=link["contract_id"], rerated=rerated, rating_error=error or None,
                         gross_total=totals.get("gross_total", gross))


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
