"""Creating tenants and API credentials (used by the API, ``evbill serve`` and tests)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from store.audit import Actor, append_audit
from store.models import ROLES, ApiKey, Tenant, User
from store.repo import snapshot
from store.types import new_id

__all__ = ["Credential", "bootstrap_tenant", "create_user", "issue_key", "verify_charge_point"]


@dataclass(frozen=True, slots=True)
class Credential:
    user_id: str
    key_id: str
    key: str  # shown once: "<key id>.<secret>"


def issue_key(db: Session, tenant_id: str, user_id: str, name: str = "") -> tuple[ApiKey, str]:
    secret = secrets.token_urlsafe(32)
    key = ApiKey(id=new_id("key"), tenant_id=tenant_id, user_id=user_id, name=name,
                 secret_sha256=hashlib.sha256(secret.encode()).hexdigest())
    db.add(key)
    return key, f"{key.id}.{secret}"


def create_user(db: Session, tenant_id: str, email: str, role: str, name: str = "",
                partner_id: str | None = None) -> User:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    user = User(id=new_id("usr"), tenant_id=tenant_id, email=email, name=name, role=role, partner_id=partner_id)
    db.add(user)
    return user


def bootstrap_tenant(db: Session, name: str, admin_email: str = "admin@localhost", **fields: Any) -> tuple[Tenant, Credential]:
    """A new tenant with one admin user and key; commits."""
    tenant = Tenant(id=new_id("ten"), name=name, **fields)
    db.add(tenant)
    db.flush()
    user = create_user(db, tenant.id, admin_email, "admin", name="administrator")
    db.flush()
    key, plain = issue_key(db, tenant.id, user.id, "bootstrap")
    actor = Actor(tenant.id, user.id, "admin")
    append_audit(db, actor, "tenant.create", "tenant", tenant.id, None, snapshot(tenant, ("audit_seq", "audit_head")))
    cred = Credential(user.id, key.id, plain)
    db.commit()
    db.refresh(tenant)
    return tenant, cred


def verify_charge_point(db: Session, identity: str, password: str) -> str | None:
    """For the OCPP gateway: the charge point's tenant id if ``password`` matches its stored hash
    (compared in constant time), else None."""
    import hmac

    from sqlalchemy import select

    from store.models import ChargePoint

    row = db.execute(select(ChargePoint.tenant_id, ChargePoint.password_sha256)
                     .where(ChargePoint.identity == identity, ChargePoint.status == "active")).first()
    if row is None or not row[1]:
        return None
    if not hmac.compare_digest(row[1], hashlib.sha256(password.encode()).hexdigest()):
        return None
    return str(row[0])
