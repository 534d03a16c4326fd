"""An event's facts + the chart -> one balanced journal entry (or none, when its lines cancel on
the accounts the chart chose: a credit balance used on a chart that keeps credit balances on the
debtor account moves nothing)."""

from __future__ import annotations

from datetime import date
from typing import Any

from runtime.accounting.chart import Chart
from runtime.accounting.journal import FX_ROLES, EventFacts, JournalEntry, JournalLine, legs
from runtime.money import ZERO

__all__ = ["book"]


def book(chart: Chart, facts: EventFacts, *, source_id: str, document: str, document_date: date,
         posting_date: date, text: str, country: str, debtor_account: str) -> JournalEntry | None:
    """The entry of one event. ``debtor_account`` is the customer's account (personal or the
    control account, ``store`` decides which). Raises ``MappingMissing`` for a line no rule maps
    and ``Unbalanced`` for facts that do not add up."""
    # lines on one account are merged only where nothing but the role tells them apart (a credit
    # balance kept on the debtor account); revenue kinds and VAT rates stay lines of their own
    merged: dict[tuple[str, str, str, str], list[Any]] = {}
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
            merged[k][0] += lg.amount
            merged[k][4] += lg.functional
        else:
            merged[k] = [lg.amount, lg.role, lg.revenue_kind, lg.vat, lg.functional]
    foreign = facts.foreign
    if foreign:
        _fold_exchange(chart, facts, country, merged)
    lines = []
    for (account, bu, _k, _v), (amount, role, kind, vat, functional) in merged.items():
        if amount == ZERO and not (foreign and functional):
            continue
        debit = amount > 0 or (amount == 0 and functional > 0)
        lines.append(JournalLine(account, "debit" if debit else "credit", abs(amount), facts.currency,
                                 str(role), str(kind), str(vat), bu,
                                 (functional if debit else -functional) if foreign else None))
    if not lines:
        return None
    if not foreign:
        return JournalEntry(facts.kind, source_id, document, document_date, posting_date, text, tuple(lines))
    return JournalEntry(facts.kind, source_id, document, document_date, posting_date, text, tuple(lines),
                        functional_currency=facts.functional, rate=facts.rate, rate_date=facts.rate_date)


def _fold_exchange(chart: Chart, facts: EventFacts, country: str, merged: dict[tuple[str, str, str, str], list[Any]]) -> None:
    """Lines of one account that cancel in the document's currency but not in the functional one
    (an invoice item and a credit balance valued at different days' rates, both kept on the
    customer's account) are no line: what they leave in the functional currency belongs to the
    exchange difference. Afterwards there is one exchange difference line, gain or loss by its sign."""
    fx = ZERO
    for k in [k for k, v in merged.items() if v[1] in FX_ROLES or (v[0] == ZERO and v[4] != ZERO)]:
        fx += merged.pop(k)[4]
    if fx:
        role = "fx_loss" if fx > 0 else "fx_gain"
        rule = chart.resolve(facts.kind, role, "", "", country)
        merged[(rule.account, rule.bu_key, "", "")] = [ZERO, role, "", "", fx]
