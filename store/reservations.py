"""Reservations of EVSEs (issue 18): one row per reservation from the API's request to its end.

A reservation holds one EVSE for a token (its id tag) or for a partner's tokens from ``start``
until ``expiry``. Its ``status`` moves

- ``scheduled`` (the window starts later: the gateway sends ReserveNow when it starts) or
  ``requested`` (ReserveNow sent, no answer yet) ->
- ``accepted`` (the charger answered Accepted) or ``refused`` (Faulted, Occupied, Rejected or
  Unavailable: ``charger_status`` keeps the answer) or ``failed`` (no answer, or a CALLERROR) ->
- from ``accepted``: ``used`` (a transaction started with it: 1.6 StartTransaction.reservationId,
  2.0.1 TransactionEvent.reservationId), ``cancelled`` (CancelReservation accepted, or the 2.0.1
  charger reported it ``Removed``) or ``expired`` (its expiry passed unused, or the 2.0.1 charger
  reported it ``Expired``).

``ocpp_id`` is the reservationId both OCPP versions carry (an integer; unique per charger).
Billing: a used reservation's session carries the reserved time (``SessionFacts.reserved_from``);
an expired one becomes a session of its own (``session_id``, source ``reservation``) priced with
``reservation_expires``; refused, failed and cancelled ones are never billed.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, Integer, UniqueConstraint
from sqlmodel import Field, SQLModel

from store.types import UTCDateTime, utcnow

__all__ = ["ACTIVE", "RESERVATION_STATUSES", "Reservation"]

RESERVATION_STATUSES = ("scheduled", "requested", "accepted", "refused", "failed", "cancelled", "used", "expired")
# the statuses that hold the EVSE (an overlapping request for it is refused)
ACTIVE = ("scheduled", "requested", "accepted")


class Reservation(SQLModel, table=True):
    __tablename__ = "reservation"
    __table_args__ = (UniqueConstraint("charge_point_id", "ocpp_id"),
                      Index("ix_reservation_status_expiry", "status", "expiry"),
                      Index("ix_reservation_evse", "tenant_id", "evse_uid", "expiry"))
    id: str = Field(primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenant.id", index=True, max_length=40)
    ocpp_id: int = Field(sa_column=Column(Integer, nullable=False))
    location_id: str = Field(foreign_key="location.id", max_length=40)
    charge_point_id: str = Field(foreign_key="charge_point.id", max_length=40)
    evse_uid: str = Field(max_length=64)
    connector_id: int = Field(default=0)
    # who may use it: a token (its id tag), or a partner's tokens (the group tag sent to the charger)
    id_tag: str = Field(max_length=64)
    token_id: str | None = Field(default=None, foreign_key="token.id", max_length=40)
    partner_id: str | None = Field(default=None, foreign_key="partner.id", max_length=40)
    start: datetime = Field(sa_type=UTCDateTime, nullable=False)
    expiry: datetime = Field(sa_type=UTCDateTime, nullable=False)
    status: str = Field(default="requested", max_length=12)
    ocpp_version: str = Field(default="", max_length=8)
    charger_status: str = Field(default="", max_length=20)  # ReserveNow's answer
    cancel_status: str = Field(default="", max_length=20)  # CancelReservation's answer
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    end_reason: str = Field(default="", max_length=300)
    transaction_id: int | None = Field(default=None, index=True)  # the ocpp_transaction that used it
    session_id: str | None = Field(default=None, max_length=40)  # the session that bills it
    description: str = Field(default="", max_length=300)
    created_by: str = Field(default="", max_length=40)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
