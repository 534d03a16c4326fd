"""Who may charge where: tokens resolve to contracts, access rules of the location decide, and every
decision is written to ``ocpp_authorization`` with its reason.

A location without rules is public: tokens with an active contract and tokens of accepted roaming
partners (eMSPs) charge. A location with rules is closed to everyone the rules do not let in, which
is what a private depot or an employee-only site needs.

Quotas (issue 18): a ``limit`` rule caps its subject's running sessions at the location (or its
EVSE) while its window holds, "partner X at most 4 connectors 06:00-18:00". Limit rules admit no
one (a location with nothing but limits stays public); an Authorize the admitting rules accept is
refused when a limit it falls under is reached (``partner_quota_exceeded``, or
``<subject>_quota_exceeded``). Taken slots are the subject's open, accepted transactions there and,
for ``CLAIM_S`` seconds, accepted Authorizes not yet followed by a start (an Authorize takes a slot:
two drivers at the last free connector must not both be let in). Counting and deciding are one
critical section per location: PostgreSQL locks the location row (``FOR NO KEY UPDATE``) and SQLite
takes the write lock with a no-op write before counting, in the transaction that then logs the
decision (the claim) or stores the transaction. A token's own fresh claim is not counted against
it; its own running session is not counted on an Authorize (the driver may be ending it), but is
when it starts another.
"""

from __future__ import annotations

import time as _time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, func, insert, or_, select, update
from sqlalchemy.orm import Session

from store.adhoc import is_adhoc_tag, tag_decision
from store.dunning import customer_blocks
from store.models import Contract, Customer, Location, Partner, Token
from store.ocpp import AccessRule, AuthorizationDecision, OcppTransaction
from store.types import utcnow

__all__ = ["CLAIM_S", "Decision", "authorize", "decide"]

# how long an accepted Authorize under a quota holds its slot while the charger starts
CLAIM_S = 120


@dataclass(frozen=True, slots=True)
class Decision:
    status: str  # OCPP: Accepted | Blocked | Expired | Invalid
    reason: str
    token_id: str | None = None
    contract_id: str | None = None
    rule_id: str | None = None

    @property
    def accepted(self) -> bool:
        return self.status == "Accepted"


def _in_window(rule: Any, local: datetime) -> bool:
    if rule.weekdays and local.isoweekday() not in rule.weekdays:
        return False
    if not rule.time_from or not rule.time_to:
        return True
    lo, hi, now = time.fromisoformat(rule.time_from), time.fromisoformat(rule.time_to), local.time()
    if lo <= hi:
        return lo <= now < hi
    return now >= lo or now < hi  # wraps midnight, e.g. 22:00..06:00


@dataclass(frozen=True, slots=True)
class _Holder:
    """The token and what it resolves to: plain values from one query (no ORM objects: this runs
    for every StartTransaction of a busy gateway)."""

    token_id: str
    token_status: str
    contract_id: str | None
    contract_status: str
    contract_start: date | None
    contract_end: date | None
    contract_terminated: date | None
    customer_id: str | None
    groups: tuple[str, ...]
    partner_id: str | None
    partner_names: tuple[str, ...]
    partner_kind: str


def _contract_active(h: _Holder, today: date) -> bool:
    if h.contract_status != "active" or h.contract_start is None or h.contract_start > today:
        return False
    if h.contract_end is not None and h.contract_end < today:
        return False
    return not (h.contract_terminated is not None and h.contract_terminated <= today)


def _subject_matches(rule: _Rule, h: _Holder, active: bool) -> bool:
    s, v = rule.subject, rule.value
    if s == "anyone":
        return True
    if s == "contract":
        return h.contract_id is not None and active
    if s == "partner":
        return h.partner_id is not None and v in h.partner_names
    if s == "roaming":
        return h.partner_kind == "emsp"
    if s == "customer_group":
        return h.customer_id is not None and v in h.groups
    if s == "customer":
        return h.customer_id is not None and h.customer_id == v
    return False


@dataclass(frozen=True, slots=True)
class _Rule:
    id: str
    effect: str
    subject: str
    value: str
    time_from: str
    time_to: str
    weekdays: tuple[int, ...]
    evse_uid: str
    max_sessions: int | None = None
    session_priority: int | None = None


# rules change rarely and are read at every start: cached per location for a few seconds (a new or
# changed rule applies within RULES_TTL_S; token status is never cached, a block applies at once)
RULES_TTL_S = 5.0
_rules_cache: dict[tuple[str, str], tuple[float, list[_Rule]]] = {}


def _rules(db: Session, tenant_id: str, location_id: str) -> list[_Rule]:
    key = (tenant_id, location_id)
    now = _time.monotonic()
    hit = _rules_cache.get(key)
    if hit is not None and hit[0] > now:
        return hit[1]
    rows = db.execute(
        select(AccessRule.id, AccessRule.effect, AccessRule.subject, AccessRule.value, AccessRule.time_from,
               AccessRule.time_to, AccessRule.weekdays, AccessRule.evse_uid, AccessRule.max_sessions,
               AccessRule.session_priority)
        .where(AccessRule.tenant_id == tenant_id, AccessRule.location_id == location_id)
        .order_by(AccessRule.priority, AccessRule.created_at, AccessRule.id)).all()  # type: ignore[arg-type]
    rules = [_Rule(r[0], r[1], r[2], r[3], r[4], r[5], tuple(r[6] or ()), r[7], r[8], r[9]) for r in rows]
    if len(_rules_cache) > 10_000:
        _rules_cache.clear()
    _rules_cache[key] = (now + RULES_TTL_S, rules)
    return rules


def clear_rules_cache() -> None:
    _rules_cache.clear()


_HOLDER_COLUMNS = (Token.id, Token.status, Contract.id, Contract.status, Contract.start_date, Contract.end_date,
                   Contract.terminated_on, Customer.id, Customer.groups, Partner.id, Partner.party_id, Partner.name,
                   Partner.kind, Token.uid)


def _holder_query(tenant_id: str) -> Any:
    return (select(*_HOLDER_COLUMNS)
            .outerjoin(Contract, Contract.id == Token.contract_id)  # type: ignore[arg-type]
            .outerjoin(Customer, Customer.id == Contract.customer_id)  # type: ignore[arg-type]
            .outerjoin(Partner, Partner.id == Token.issuing_partner_id)  # type: ignore[arg-type]
            .where(Token.tenant_id == tenant_id))


def _holder_of(row: Any) -> _Holder:
    pid = row[9]
    return _Holder(row[0], row[1], row[2], row[3] or "", row[4], row[5], row[6], row[7], tuple(row[8] or ()),
                   pid, tuple(x for x in (pid, row[10], row[11]) if x) if pid else (), row[12] or "")


# built once (every start asks): binding values is all a call does
_HOLDER_BY_TAG = (select(*_HOLDER_COLUMNS)
                  .outerjoin(Contract, Contract.id == Token.contract_id)  # type: ignore[arg-type]
                  .outerjoin(Customer, Customer.id == Contract.customer_id)  # type: ignore[arg-type]
                  .outerjoin(Partner, Partner.id == Token.issuing_partner_id)  # type: ignore[arg-type]
                  .where(Token.tenant_id == bindparam("tenant"), Token.uid == bindparam("uid")))


def _holder(db: Session, tenant_id: str, id_tag: str) -> _Holder | None:
    row = db.connection().execute(_HOLDER_BY_TAG, {"tenant": tenant_id, "uid": id_tag}).first()
    return None if row is None else _holder_of(row)


def _holders(db: Session, tenant_id: str, id_tags: Iterable[str]) -> dict[str, _Holder]:
    tags = sorted(set(id_tags))
    out: dict[str, _Holder] = {}
    for i in range(0, len(tags), 500):
        for row in db.execute(_holder_query(tenant_id).where(Token.uid.in_(tags[i:i + 500]))):  # type: ignore[attr-defined]
            out[row[13]] = _holder_of(row)
    return out


def lock_location(db: Session, location_id: str) -> None:
    """Serialize quota decisions at one location until the caller's transaction ends (see the
    module's docstring): a row lock that lets inserts referencing the location go on (PostgreSQL),
    the database's write lock (SQLite)."""
    if db.get_bind().dialect.name == "sqlite":
        db.execute(update(Location).where(Location.id == location_id).values(code=Location.code))  # type: ignore[arg-type]
    else:
        db.execute(select(Location.id).where(Location.id == location_id)  # type: ignore[arg-type]
                   .with_for_update(key_share=True))


def _slots_taken(db: Session, tenant_id: str, location_id: str, rule: _Rule, id_tag: str,
                 today: date, starting: bool) -> int:
    """How many slots of ``rule``'s subject are taken at the location (its EVSE, when it names one):
    open accepted transactions and fresh accepted Authorizes not yet followed by a transaction of
    the same token there. ``id_tag``'s own claim is never counted, its own running transactions
    only when it is ``starting`` another (an Authorize may be the driver ending the session)."""
    tx = OcppTransaction
    cond = [tx.tenant_id == tenant_id, tx.location_id == location_id, tx.status == "open",
            tx.auth_status == "Accepted"]
    if not starting:
        cond.append(tx.id_tag != id_tag)
    if rule.evse_uid:
        cond.append(tx.evse_uid == rule.evse_uid)
    per_tag = {t: int(n) for t, n in db.execute(select(tx.id_tag, func.count()).where(*cond).group_by(tx.id_tag))
               if t}
    where = _subject_sql(rule)
    pending: list[str] = []  # tokens whose subject is matched here, one per slot
    counted = 0
    if where is not None:
        # the subject's tokens as a semi-join: a hashed set of the partner's (customer's ...) cards
        # against the location's running transactions, however many of either
        theirs = (select(Token.uid).outerjoin(Partner, Partner.id == Token.issuing_partner_id)  # type: ignore[arg-type]
                  .outerjoin(Contract, Contract.id == Token.contract_id)  # type: ignore[arg-type]
                  .where(Token.tenant_id == tenant_id, *where))
        counted = db.execute(select(func.count()).where(*cond, tx.id_tag.in_(theirs))).scalar_one()  # type: ignore[union-attr]
    else:
        pending = [t for t, n in per_tag.items() for _ in range(n)]
    ad = AuthorizationDecision
    since = utcnow() - timedelta(seconds=CLAIM_S)
    claims_q = (select(ad.id_tag, func.max(ad.at)).where(
        ad.tenant_id == tenant_id, ad.location_id == location_id, ad.context == "Authorize",
        ad.status == "Accepted", ad.at >= since, ad.id_tag != id_tag).group_by(ad.id_tag))  # type: ignore[arg-type,operator]
    if rule.evse_uid:
        claims_q = claims_q.where(ad.evse_uid == rule.evse_uid)
    claims = {t: at for t, at in db.execute(claims_q) if t not in per_tag}
    if claims:
        # a claim is used up once the token started a transaction there (running: counted above)
        started = dict(db.execute(select(tx.id_tag, func.max(tx.created_at)).where(
            tx.tenant_id == tenant_id, tx.location_id == location_id,
            tx.id_tag.in_(list(claims))).group_by(tx.id_tag)).all())  # type: ignore[union-attr]
        pending.extend(t for t, at in claims.items() if t not in started or started[t] < at)
    if pending:
        holders = _holders(db, tenant_id, pending)
        counted += sum(1 for t in pending if (h := holders.get(t)) is not None
                       and _subject_matches(rule, h, _contract_active(h, today)))
    return int(counted)


def _subject_sql(rule: _Rule) -> list[Any] | None:
    """Conditions on the running transactions' tokens (joined with their partner and contract) that
    select ``rule``'s subject, for the subjects SQL can say; None: matched in Python."""
    v = rule.value
    if rule.subject == "anyone":
        return []
    if rule.subject == "partner":
        return [or_(Partner.id == v, Partner.party_id == v, Partner.name == v)]
    if rule.subject == "roaming":
        return [Partner.kind == "emsp"]
    if rule.subject == "customer":
        return [Contract.customer_id == v]
    return None


def _quota(db: Session, tenant_id: str, location_id: str, limits: list[_Rule], h: _Holder, active: bool,
           id_tag: str, local: datetime, starting: bool) -> _Rule | None:
    """The first limit rule the holder falls under whose quota is reached, else None."""
    mine = [r for r in limits if r.max_sessions is not None and _subject_matches(r, h, active)
            and _in_window(r, local)]
    if not mine:
        return None
    lock_location(db, location_id)
    for rule in mine:
        assert rule.max_sessions is not None
        if _slots_taken(db, tenant_id, location_id, rule, id_tag, local.date(), starting) >= rule.max_sessions:
            return rule
    return None


def decide(db: Session, tenant_id: str, location_id: str | None, evse_uid: str, id_tag: str, at: datetime,
           tz: str, charge_point_id: str = "", context: str = "") -> Decision:
    if is_adhoc_tag(id_tag):
        # a one-time tag of a card-paid ad-hoc charge (issue 16): it starts the EVSE it was paid
        # for while the payment is reserved, nothing else (an Authorize names no EVSE: there the
        # charger must be the one it was paid at)
        adhoc = tag_decision(db.connection(), tenant_id, "" if context == "Authorize" else evse_uid, id_tag,
                             charge_point_id)
        if adhoc is not None:
            return Decision(*adhoc)
    h = _holder(db, tenant_id, id_tag)
    if h is None:
        return Decision("Invalid", "unknown_token")
    ids: dict[str, Any] = {"token_id": h.token_id, "contract_id": h.contract_id}
    if h.token_status == "blocked":
        return Decision("Blocked", "token_blocked", **ids)
    if h.token_status == "expired":
        return Decision("Expired", "token_expired", **ids)
    if h.token_status != "active":
        return Decision("Invalid", f"token_{h.token_status}"[:60], **ids)
    blocks = customer_blocks(db.connection(), tenant_id, h.customer_id) if h.customer_id is not None else {}
    if blocks:
        # a dunning stage blocked the customer's tokens or suspended the contract; released as soon
        # as the case closes (paid)
        return Decision("Blocked", "dunning_blocked" if "block_tokens" in blocks else "dunning_contract_suspended",
                        **ids)
    local = at.astimezone(ZoneInfo(tz or "UTC"))
    active = h.contract_id is not None and _contract_active(h, local.date())
    if h.contract_id is not None and not active:
        return Decision("Invalid", "contract_inactive", **ids)
    every = [r for r in _rules(db, tenant_id, location_id) if r.evse_uid in ("", evse_uid)] if location_id else []
    rules = [r for r in every if r.effect != "limit"]
    d = _admit(rules, h, active, local, ids)
    limits = [r for r in every if r.effect == "limit"]
    if d.accepted and limits and location_id:
        full = _quota(db, tenant_id, location_id, limits, h, active, id_tag, local, context != "Authorize")
        if full is not None:
            return Decision("Invalid", f"{full.subject}_quota_exceeded"[:60], rule_id=full.id, **ids)
    return d


def _admit(rules: list[_Rule], h: _Holder, active: bool, local: datetime, ids: dict[str, Any]) -> Decision:
    """What the location's allow and deny rules say (no rules: public)."""
    if not rules:
        if active:
            return Decision("Accepted", "contract_customer", **ids)
        if h.partner_kind == "emsp":
            return Decision("Accepted", "roaming_accepted", **ids)
        return Decision("Invalid", "no_contract", **ids)
    outside_hours = False
    for rule in rules:
        if not _subject_matches(rule, h, active):
            continue
        if not _in_window(rule, local):
            outside_hours = True
            continue
        if rule.effect == "deny":
            return Decision("Invalid", f"denied_by_rule:{rule.subject}"[:60], rule_id=rule.id, **ids)
        return Decision("Accepted", f"allowed_by_rule:{rule.subject}"[:60], rule_id=rule.id, **ids)
    return Decision("Invalid", "outside_allowed_hours" if outside_hours else "not_allowed_here", **ids)


def authorize(db: Session, *, tenant_id: str, charge_point_id: str, location_id: str | None, evse_uid: str,
              id_tag: str, at: datetime, tz: str, context: str) -> Decision:
    """Decide and log the decision in the caller's transaction."""
    d = decide(db, tenant_id, location_id, evse_uid, id_tag, at, tz, charge_point_id, context)
    db.connection().execute(_LOG_DECISION, {
        "tenant_id": tenant_id, "at": at, "charge_point_id": charge_point_id, "location_id": location_id,
        "evse_uid": evse_uid[:64], "id_tag": id_tag[:64], "token_id": d.token_id, "contract_id": d.contract_id,
        "context": context, "status": d.status, "reason": d.reason, "rule_id": d.rule_id})
    return d


_LOG_DECISION = insert(AuthorizationDecision.__table__)  # type: ignore[arg-type]
