"""Computed styles shared across documents (``runtime.documents.styles``): every document renders
the same bytes whether the process rendered others before it (invoices, statements and letters
in two languages, the statement's tables of 20 and 60 sessions) or computes its styles as
WeasyPrint itself does."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from runtime.documents import render, styles
from runtime.documents.demo import demo_invoice_input
from runtime.documents.from_invoice import document_from_invoice

CASES = [(case, sessions) for case in ("b2c", "b2b", "b2c_en", "public") for sessions in (20, 60)]
FORMATS = ("facturx-pdf", "statement-pdf")


@contextmanager
def _weasyprints_own_styles() -> Iterator[None]:
    from weasyprint import css  # type: ignore[import-untyped, unused-ignore]

    shared = css.StyleFor.__init__
    css.StyleFor.__init__ = styles._original[0]
    try:
        yield
    finally:
        css.StyleFor.__init__ = shared


def _digests(formats: tuple[str, ...] = FORMATS) -> dict[tuple[str, int, str], str]:
    docs = {key: document_from_invoice(demo_invoice_input(key[0], sessions=key[1], number=f"RE-2026-{key[1]:06d}"))
            for key in CASES}
    return {(*key, fmt): hashlib.sha256(render(docs[key], fmt)).hexdigest() for key in CASES for fmt in formats}


def test_documents_render_the_same_bytes_with_shared_styles() -> None:
    render(document_from_invoice(demo_invoice_input("b2b", sessions=2, number="RE-2026-000001")), "pdf")
    if not styles._original:
        pytest.fail("the shared styles are not installed (another WeasyPrint than styles._VERSION?)")
    with _weasyprints_own_styles():
        own = _digests()
    styles.clear()
    cold = _digests()  # each style computed once, then shared by the documents after it
    warm = _digests()  # every style from the documents before
    assert styles._cache
    assert cold == own
    assert warm == own
