"""The archive: a finalized document is stored once with its SHA-256 and never replaced; credit
notes must reference an archived invoice and cannot credit more than it. SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import threading
from datetime import date
from decimal import Decimal as D

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from runtime.documents import render
from runtime.documents.demo import demo_invoice_input
from runtime.documents.from_invoice import document_from_invoice, partial_credit, reversal_of
from store import documents as A
from store.errors import Conflict, InvalidInput, NotFound
from store.tenants import bootstrap_tenant


def _tenant(engine: Engine, name: str = "acme") -> str:
    with Session(engine) as db:
        tenant, _ = bootstrap_tenant(db, name, email=f"billing@{name}.example", legal_name=f"{name} GmbH")
        return tenant.id


def _store(engine: Engine, tid: str, content: bytes, number: str = "RE-1", fmt: str = "pdf",
           kind: str = "invoice", gross: D = D("119.00"), corrects: str | None = None) -> A.StoredDocument:
    with engine.begin() as conn:
        return A.store_document(conn, tid, kind=kind, number=number, fmt=fmt, media_type="application/pdf",
                                content=content, issue_date=date(2026, 11, 2), currency="EUR", gross_total=gross,
                                corrects_number=corrects)


def test_stored_once_with_sha256_same_bytes_idempotent_different_refused(engine: Engine) -> None:
    tid = _tenant(engine)
    first = _store(engine, tid, b"%PDF-1 original")
    assert first.created and first.sha256 == hashlib.sha256(b"%PDF-1 original").hexdigest()
    again = _store(engine, tid, b"%PDF-1 original")
    assert not again.created and again.id == first.id
    with pytest.raises(A.DocumentImmutable) as err:
        _store(engine, tid, b"%PDF-1 regenerated differently")
    assert err.value.code == "document_immutable" and isinstance(err.value, Conflict)
    with engine.connect() as conn:
        meta, content = A.get_document(conn, tid, first.id)
    assert content == b"%PDF-1 original" and meta.sha256 == first.sha256 and meta.size == len(content)
    # the same number cannot become a different document in another format either
    with pytest.raises(Conflict) as taken:
        _store(engine, tid, b"<xml/>", fmt="xrechnung-ubl", gross=D("1.00"))
    assert taken.value.code == "document_number_taken"
    other = _tenant(engine, "other")
    assert _store(engine, other, b"%PDF-1 other tenant").created  # numbers are per tenant
    with engine.connect() as conn, pytest.raises(NotFound):
        A.get_document(conn, other, first.id)


def test_real_rendering_is_deterministic_so_a_retry_stores_nothing_new(engine: Engine) -> None:
    tid = _tenant(engine)
    doc = document_from_invoice(demo_invoice_input("b2b", sessions=3, number="RE-9"))
    formats = ("facturx-pdf", "xrechnung-cii")
    first = A.issue_documents(engine, tid, doc, formats, source_invoice_id="inv_1", email="a@example.org")
    second = A.issue_documents(engine, tid, doc, formats, source_invoice_id="inv_1", email="a@example.org")
    assert [d.created for d in first] == [True, True] and [d.created for d in second] == [False, False]
    assert [d.sha256 for d in first] == [d.sha256 for d in second]
    with engine.connect() as conn:
        assert len(A.deliveries_of(conn, tid, "RE-9")) == 1  # the retry queued no second e-mail
        listed = A.list_documents(conn, tid, source_invoice_id="inv_1")
    assert {d.format for d in listed} == set(formats) and all(d.delivery_status == "pending" for d in listed)


def test_the_credit_limit_is_exact(engine: Engine) -> None:
    """Issue 11 defect 2: what is left to credit is summed as decimals (SQLite's SUM over the text
    columns gave 0.60 - (0.10 + 0.20) = 0.29999999999999996 and refused a credit of 0.30)."""
    tid = _tenant(engine)
    _store(engine, tid, b"inv", number="RE-60", gross=D("0.60"))
    _store(engine, tid, b"gs1", number="GS-61", kind="credit_note", gross=D("0.10"), corrects="RE-60")
    _store(engine, tid, b"gs1x", number="GS-61", fmt="xrechnung-cii", kind="credit_note", gross=D("0.10"),
           corrects="RE-60")  # one note in two formats counts once
    _store(engine, tid, b"gs2", number="GS-62", kind="credit_note", gross=D("0.20"), corrects="RE-60")
    _store(engine, tid, b"gs3", number="GS-63", kind="credit_note", gross=D("0.30"), corrects="RE-60")
    with pytest.raises(A.CreditExceedsInvoice) as too_much:
        _store(engine, tid, b"gs4", number="GS-64", kind="credit_note", gross=D("0.01"), corrects="RE-60")
    assert too_much.value.code == "credit_exceeds_invoice" and "the 0.00 left" in str(too_much.value), too_much.value


def test_credit_notes_reference_an_archived_invoice_and_never_credit_more(engine: Engine) -> None:
    tid = _tenant(engine)
    invoice = document_from_invoice(demo_invoice_input("b2b", sessions=2, number="RE-10"))
    A.issue_documents(engine, tid, invoice, ("xrechnung-cii",))
    orphan = reversal_of(invoice, "GS-0", date(2026, 11, 9))
    import dataclasses

    from runtime.documents.model import PrecedingInvoice

    orphan = dataclasses.replace(orphan, preceding=PrecedingInvoice("RE-404"))
    with pytest.raises(NotFound) as nf:
        A.issue_documents(engine, tid, orphan, ("xrechnung-cii",))
    assert nf.value.code == "corrected_invoice_not_found"
    part = partial_credit(invoice, "GS-1", date(2026, 11, 9), [("1", D(1))])
    A.issue_documents(engine, tid, part, ("xrechnung-cii", "pdf"))  # two formats count once
    storno = reversal_of(invoice, "GS-2", date(2026, 11, 10))
    with pytest.raises(A.CreditExceedsInvoice) as too_much:
        A.issue_documents(engine, tid, storno, ("xrechnung-cii",))
    assert too_much.value.code == "credit_exceeds_invoice"
    rest = partial_credit(invoice, "GS-3", date(2026, 11, 10), [("1", D(1)), ("2", invoice.lines[1].quantity)])
    A.issue_documents(engine, tid, rest, ("xrechnung-cii",))
    with engine.connect() as conn:
        notes = A.list_documents(conn, tid, corrects_number="RE-10")
        assert {d.number for d in notes} == {"GS-1", "GS-3"}
        with pytest.raises(InvalidInput):
            A.store_document(conn, tid, kind="credit_note", number="GS-9", fmt="pdf", media_type="application/pdf",
                             content=b"x", issue_date=date(2026, 11, 1), currency="EUR", gross_total=D(1))


def test_concurrent_writers_of_one_document_store_it_once(engine: Engine) -> None:
    tid = _tenant(engine)
    content = render(document_from_invoice(demo_invoice_input("b2c", sessions=1, number="RE-20")), "xrechnung-cii")
    results: list[object] = []

    def write() -> None:
        try:
            results.append(_store(engine, tid, content, number="RE-20", fmt="xrechnung-cii", gross=D(1)))
        except Exception as exc:  # noqa: BLE001  (the assertion below shows what went wrong)
            results.append(exc)

    threads = [threading.Thread(target=write) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with engine.connect() as conn:
        rows = conn.execute(select(A.document.c.id).where(A.document.c.tenant_id == tid)).all()
    assert len(rows) == 1
    assert all(isinstance(r, A.StoredDocument) for r in results), results
    assert sum(1 for r in results if r.created) == 1  # type: ignore[attr-defined]


def test_listing_filters_and_pages(engine: Engine) -> None:
    tid = _tenant(engine)
    for i in range(5):
        _store(engine, tid, f"doc {i}".encode(), number=f"RE-{i}", gross=D(i + 1))
    with engine.connect() as conn:
        page1 = A.list_documents(conn, tid, limit=2)
        page2 = A.list_documents(conn, tid, limit=2, after_id=page1[-1].id)
        page3 = A.list_documents(conn, tid, limit=2, after_id=page2[-1].id)
        assert [d.number for d in page1 + page2 + page3] == [f"RE-{i}" for i in range(5)]
        assert [d.number for d in A.list_documents(conn, tid, number="RE-3")] == ["RE-3"]
        assert A.list_documents(conn, tid, kind="credit_note") == []
