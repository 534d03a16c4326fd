"""Who may charge where: tokens resolve to contracts, access rules of the location decide, and every
decision is written to ``ocpp_authorization`` with its reason.

A location without rules is public: tokens with an active contract and tokens of accepted roaming
partners (eMSPs) charge. A location with rules is closed to everyone the rules do not let in, which
is what a private depot or an employee-only site needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any, Optional
from zoneinfo import ZoneInfo

from sqlalchemy import insert, or_, select
from sqlalchemy.orm import Session

from store.models import Contract, Customer, Partner, Token
from store.ocpp import AccessRule, AuthorizationDecision

__all__ = ["Decision", "decide", "authorize"]


@dataclass(frozen=True, slots=True)
class Decision:
    status: str  # OCPP: Accepted | Blocked | Expired | Invalid
    reason: str
    token_id: Optional[str] = None
    contract_id: Optional[str] = None
    rule_id: Optional[str] = None

    @property
    def accepted(self) -> bool:
        return self.status == "Accepted"


def _contract_active(con: Contract, today: date) -> bool:
    if con.status != "active" or con.start_date > today:
        return False
    if con.end_date is not None and con.end_date < today:
        return False
    return not (con.terminated_on is not None and con.terminated_on <= today)


def _in_window(rule: AccessRule, local: datetime) -> bool:
    if rule.weekdays and local.isoweekday() not in rule.weekdays:
        return False
    if not rule.time_from or not rule.time_to:
        return True
    lo, hi, now = time.fromisoformat(rule.time_from), time.fromisoformat(rule.time_to), local.time()
    if lo <= hi:
        return lo <= now < hi
    return now >= lo or now < hi  # wraps midnight, e.g. 22:00..06:00


def _subject_matches(rule: AccessRule, token: Token, con: Contract | None, active: bool,
                     cus: Customer | None, par: Partner | None) -> bool:
    s, v = rule.subject, rule.value
    if s == "anyone":
        return True
    if s == "contract":
        return con is not None and active
    if s == "partner":
        return par is not None and v in (par.id, par.party_id, par.name)
    if s == "roaming":
        return par is not None and par.kind == "emsp"
    if s == "customer_group":
        return cus is not None and v in (cus.groups or [])
    if s == "customer":
        return cus is not None and cus.id == v
    return False


def decide(db: Session, tenant_id: str, location_id: str | None, evse_uid: str, id_tag: str, at: datetime,
           tz: str) -> Decision:
    row = db.execute(
        select(Token, Contract, Customer, Partner)
        .outerjoin(Contract, Contract.id == Token.contract_id)
        .outerjoin(Customer, Customer.id == Contract.customer_id)
        .outerjoin(Partner, Partner.id == Token.issuing_partner_id)
        .where(Token.tenant_id == tenant_id, Token.uid == id_tag)).first()
    if row is None:
        return Decision("Invalid", "unknown_token")
    token, con, cus, par = row
    ids: dict[str, Any] = {"token_id": token.id, "contract_id": con.id if con else None}
    if token.status == "blocked":
        return Decision("Blocked", "token_blocked", **ids)
    if token.status == "expired":
        return Decision("Expired", "token_expired", **ids)
    if token.status != "active":
        return Decision("Invalid", f"token_{token.status}"[:60], **ids)
    local = at.astimezone(ZoneInfo(tz or "UTC"))
    active = con is not None and _contract_active(con, local.date())
    if con is not None and not active:
        return Decision("Invalid", "contract_inactive", **ids)
    rules: list[AccessRule] = []
    if location_id:
        rules = list(db.execute(
            select(AccessRule).where(AccessRule.tenant_id == tenant_id, AccessRule.location_id == location_id,
                                     or_(AccessRule.evse_uid == "", AccessRule.evse_uid == evse_uid))
            .order_by(AccessRule.priority, AccessRule.created_at, AccessRule.id)).scalars())  # type: ignore[arg-type]
    if not rules:
        if active:
            return Decision("Accepted", "contract_customer", **ids)
        if par is not None and par.kind == "emsp":
            return Decision("Accepted", "roaming_accepted", **ids)
        return Decision("Invalid", "no_contract", **ids)
    outside_hours = False
    for rule in rules:
        if not _subject_matches(rule, token, con, active, cus, par):
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
    d = decide(db, tenant_id, location_id, evse_uid, id_tag, at, tz)
    db.execute(insert(AuthorizationDecision).values(
        tenant_id=tenant_id, at=at, charge_point_id=charge_point_id, location_id=location_id,
        evse_uid=evse_uid[:64], id_tag=id_tag[:64], token_id=d.token_id, contract_id=d.contract_id,
        context=context, status=d.status, reason=d.reason, rule_id=d.rule_id))
    return d
