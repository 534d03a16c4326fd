"""An event's facts + the chart -> one balanced journal entry (or none, when its lines cancel on
the accounts the chart chose: a credit balance used on a chart that keeps credit balances on the
debtor account moves nothing)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from runtime.accounting.chart import Chart
from runtime.accounting.journal import EventFacts, JournalEntry, JournalLine, legs
from runtime.money import ZERO

__all__ = ["book"]


def book(chart: Chart, facts: EventFacts, *, source_id: str, document: str, document_date: date,
         posting_date: date, text: str, country: str, debtor_account: str) -> JournalEntry | None:
    """The entry of one event. ``debtor_account`` is the customer's account (personal or the
    control account, ``store`` decides which). Raises ``MappingMissing`` for a line no rule maps
    and ``Unbalanced`` for facts that do not add up."""
    # lines on one account are merged only where nothing but the role tells them apart (a credit
    # balance kept on the debtor account); revenue kinds and VAT rates stay lines of their own
    merged: dict[tuple[str, str, str, str], list[object]] = {}
    for lg in legs(facts):
        if lg.role == "debtor" and chart.debtors == "personal":
            account, bu = debtor_account, ""
        else:
            rule = chart.resolve(facts.kind, lg.role, lg.revenue_kind, lg.vat, country)
            account, bu = rule.account, rule.bu_key
            if lg.role == "debtor":
                account = debtor_account or account
            if account == "debtor":
                account = debtor_account
        k = (account, bu, lg.revenue_kind, lg.vat)
        if k in merged:
            merged[k][0] = merged[k][0] + lg.amount  # type: ignore[operator]
        else:
            merged[k] = [lg.amount, lg.role, lg.revenue_kind, lg.vat]
    lines = []
    for (account, bu, _k, _v), (amount, role, kind, vat) in merged.items():
        assert isinstance(amount, Decimal)
        if amount == ZERO:
            continue
        lines.append(JournalLine(account, "debit" if amount > 0 else "credit", abs(amount), facts.currency,
                                 str(role), str(kind), str(vat), bu))
    if not lines:
        return None
    return JournalEntry(facts.kind, source_id, document, document_date, posting_date, text, tuple(lines))
