"""Host credit notes (issue 15): an issued partner statement becomes a self-billing credit note
(Gutschrift) of its own gapless series (``GU-000001``), rendered white-label in the partner's
language as PDF and XRechnung UBL + CII (UNTDID 1001 code 389), archived like invoices
(``/documents``), e-mailed to the partner, and paid out by the next payout run (a ``host_credit``
payable). A correction is a new note naming the one it corrects. SQL lives in
``store.host_credits``; every issue is in the audit chain.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from litestar import Request
from pydantic import Field

from api.auth import ROLE_SETS
from api.crud import CursorParam, IdPath, LimitParam, ReadModel, WriteModel, open_scope, page_of, route
from api.schemas import DecimalOut
from store import host_credits as H
from store.documents import issue_documents, list_documents
from store.errors import NotFound
from store.repo import Scope, encode_cursor

__all__ = ["handlers"]

ROLE_SETS.setdefault("statements_read", ("admin", "operator", "approver", "auditor", "partner"))
ROLE_SETS.setdefault("statements_write", ("admin", "operator"))


class HostCreditNoteCreate(WriteModel):
    issue_date: date | None = Field(None, description="default: today")


class HostCreditNoteCorrection(WriteModel):
    reason: str = Field(min_length=1, max_length=500, description="why the note is corrected")
    issue_date: date | None = Field(None, description="default: today")


class ArchivedRead(ReadModel):
    id: str
    format: str
    filename: str
    sha256: str
    delivery_status: str


class HostCreditNoteRead(ReadModel):
    id: str
    number: str
    statement_id: str
    partner_id: str
    corrects_id: str | None = Field(description="a correction: the note it corrects")
    corrects_number: str | None
    issue_date: date
    currency: str
    net: DecimalOut
    tax: DecimalOut
    gross: DecimalOut
    payable: DecimalOut = Field(description="what the note adds to the partner's payout (a correction: the "
                                            "difference; negative: the partner was paid too much)")
    netted: DecimalOut = Field(description="what the partner owed from earlier corrections, deducted from this "
                                           "note's payout (the agreement's terms say netting)")
    netted_receivables: DecimalOut = Field(
        Decimal(0), description="what the partner owed as a customer (open receivable items of its customer "
                                "record), settled from this note's payout (the agreement's terms say netting)")
    vat_status: str
    vat_rate: DecimalOut
    language: str
    formats: list[str]
    payable_id: str | None = Field(description="the host_credit payable the payout run pays")
    reason: str
    issued_by: str
    documents: list[ArchivedRead] = Field(default_factory=list, description="the archived renderings")


HostCreditNotePage = page_of(HostCreditNoteRead)


def _only_partner(scope: Scope) -> str | None:
    return (scope.actor.partner_id or "") if scope.actor.role == "partner" else None


def _read(scope: Scope, row: Any) -> HostCreditNoteRead:
    docs = list_documents(scope.db.connection(), scope.tenant_id, number=row.number, limit=10)
    return HostCreditNoteRead.model_validate({**row._mapping, "documents": [
        {"id": d.id, "format": d.format, "filename": d.filename, "sha256": d.sha256,
         "delivery_status": d.delivery_status} for d in docs]})


def _issue(request: Request[Any, Any, Any], statement_id: str | None, corrects_id: str | None,
           issue_date: date | None, reason: str = "") -> HostCreditNoteRead:
    with open_scope(request) as scope:
        conn = scope.db.connection()
        if corrects_id is not None and H.get_note(conn, scope.tenant_id, corrects_id) is None:
            raise NotFound("host_credit_note_not_found", f"host credit note {corrects_id!r} not found")
        issued = H.issue_note(conn, scope.tenant_id, statement_id or "", issued_by=scope.actor.user_id,
                              issue_date=issue_date or date.today(), corrects_id=corrects_id, reason=reason)
        row = issued.row
        scope.audit("issue", "host_credit_note", row.id, after={
            "number": row.number, "statement_id": row.statement_id, "corrects": row.corrects_number,
            "gross": str(row.gross), "currency": row.currency, "vat_status": row.vat_status,
            "payable_id": row.payable_id})
        scope.commit()
        engine = scope.db.get_bind()
    # rendered and archived after the note is committed: issue_documents is idempotent, and the
    # archive refuses other bytes for the same number
    issue_documents(engine, scope.tenant_id, issued.document, list(row.formats),  # type: ignore[arg-type]
                    email=issued.email, requested_by=scope.actor.user_id)
    with open_scope(request) as scope:
        return _read(scope, H.get_note(scope.db.connection(), scope.tenant_id, row.id))


@route("POST", "/partner-statements/{partner_statement_id:str}/credit-note", operation_id="issue_host_credit_note",
       roles="statements_write", status_code=201,
       summary="Issue the statement's self-billing credit note (Gutschrift): numbered, rendered (PDF, XRechnung "
               "UBL and CII), archived, e-mailed to the partner, and payable by the next payout run")
def issue_host_credit_note(request: Request[Any, Any, Any], partner_statement_id: IdPath,
                           data: HostCreditNoteCreate) -> HostCreditNoteRead:
    return _issue(request, partner_statement_id, None, data.issue_date)


@route("POST", "/host-credit-notes/{host_credit_note_id:str}/corrections", operation_id="correct_host_credit_note",
       roles="statements_write", status_code=201,
       summary="Correct a host credit note: a new note that takes its lines back and states the statement again "
               "with the partner's details as they are now")
def correct_host_credit_note(request: Request[Any, Any, Any], host_credit_note_id: IdPath,
                             data: HostCreditNoteCorrection) -> HostCreditNoteRead:
    return _issue(request, None, host_credit_note_id, data.issue_date, data.reason)


@route("GET", "/host-credit-notes", operation_id="list_host_credit_notes", roles="statements_read",
       summary="Host credit notes, by number")
def list_host_credit_notes(request: Request[Any, Any, Any], limit: LimitParam = 50, cursor: CursorParam = None,
                           partner_id: str | None = None,
                           statement_id: str | None = None) -> HostCreditNotePage:  # type: ignore[valid-type]
    from api.areas.statements import seq_after

    with open_scope(request) as scope:
        after = seq_after(cursor)
        only = _only_partner(scope)
        if only is not None:
            partner_id = only
        rows = H.list_notes(scope.db.connection(), scope.tenant_id, partner_id=partner_id, statement_id=statement_id,
                            after_seq=after, limit=limit + 1)
        nxt = encode_cursor(str(rows[limit - 1].number_seq)) if len(rows) > limit else None
        return HostCreditNotePage(items=[_read(scope, r) for r in rows[:limit]], next_cursor=nxt)


@route("GET", "/host-credit-notes/{host_credit_note_id:str}", operation_id="get_host_credit_note",
       roles="statements_read", summary="A host credit note (by id or number) with its archived documents")
def get_host_credit_note(request: Request[Any, Any, Any], host_credit_note_id: IdPath) -> HostCreditNoteRead:
    with open_scope(request) as scope:
        row = H.get_note(scope.db.connection(), scope.tenant_id, host_credit_note_id)
        only = _only_partner(scope)
        if row is None or (only is not None and row.partner_id != only):
            raise NotFound("host_credit_note_not_found", f"host credit note {host_credit_note_id!r} not found")
        return _read(scope, row)


handlers = [issue_host_credit_note, correct_host_credit_note, list_host_credit_notes, get_host_credit_note]
