"""Billing activities: all the I/O of a billing cycle. Each step is one transaction, so a retried
activity sees either all of a previous attempt or none of it, and every step is idempotent:
assembling finds its own draft by (account, cycle key), numbers are allocated once per invoice,
postings carry ids chosen by the workflow.

The pure work (periods, rating the period's fees, rounding, VAT, holds) is ``runtime.invoicing``;
the ruleset's ``billing``/``hold`` blocks are read by ``dsl.policies``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine import Connection
from temporalio import activity
from temporalio.exceptions import ApplicationError

from dsl.compiler import compile_ruleset
from runtime.invoicing import (
    APPROVAL_REQUIRED,
    BillingPolicy,
    Correction,
    ForeignAmount,
    HoldPolicy,
    InvoiceDraft,
    LateSession,
    ManualPosting,
    MeterFinding,
    PaymentTerms,
    Period,
    PeriodDiscount,
    assemble_invoice,
    compare_periods,
    evaluate_holds,
    period_ending,
    split_currencies,
)
from runtime.money import ZERO, require_currency
from runtime.rated import RatedLine, TraceEntry, trusted_result
from runtime.tax import Treatment, customer_treatment, exemption
from store import billing as B
from store import cycle as C
from store.types import new_id, utcnow
from workflows.billing.types import (
    AccountPage,
    AccountPageInput,
    AssembleBatchInput,
    AssembleInput,
    BatchOutcome,
    CloseTaskInput,
    CollectPaymentInput,
    DraftSummary,
    EscalateInput,
    FinalizeInput,
    FinalizeOutput,
    HandOverResult,
    OpenTaskInput,
    PostingInput,
    RenderDocumentsInput,
    cycle_workflow_id,
)

__all__ = ["LOOKBACK_DAYS", "BillingActivities"]

log = logging.getLogger("evbill.billing")

# how far back a cycle looks for late sessions and re-rated ones (older corrections need an
# ad-hoc cycle with an explicit period)
LOOKBACK_DAYS = 400
# accounts of a billing run's batch read and written together, in one transaction each: a group
# costs ~37 statements whatever its size (on PostgreSQL each a round trip and a parse; 25 instead
# of 10 accounts: 1.6 instead of 4 statements per account), and its write transaction holds
# SQLite's lock (PostgreSQL's number series row from the draw on) ~80 ms instead of ~30
_GROUP = 25

def _d(v: Decimal) -> str:
    return format(v, "f")


def _chunks(seq: Sequence[Any], n: int = 500) -> list[Sequence[Any]]:
    return [seq[i:i + n] for i in range(0, len(seq), n)]


_CYCLES = ("monthly", "quarterly", "ad_hoc")


def account_calendar(pols: Any, billing_cycle: str | None, timezone: str) -> tuple[str, int, str]:
    """When an account's cut-offs fall: (cycle, cut-off day, zone) from the billing policy its cycle
    names (else the ruleset's first; day 1 without any) and the account's own cycle and zone where
    the policy leaves them open; ``pols`` the policies of the ruleset version in force (None: none).
    What a cycle bills (``BillingActivities._policies``), what the run schedules follow and what a
    scheduled run picks."""
    billing = (pols.billing_named(billing_cycle) or pols.billing_named(None)) if pols is not None else None
    cycle = billing_cycle if billing_cycle in _CYCLES else (billing.cycle if billing is not None else "monthly")
    return (cycle or "monthly", billing.cut_off_day if billing is not None else 1,
            (billing.timezone if billing is not None else "") or timezone)


class BillingActivities:
    """Activities bound to one database engine (the worker creates one instance).

    ``stats`` accumulates (calls, seconds, CPU seconds of the thread) per activity so the month-end benchmark can say where
    the time goes; ``EVBILL_BILLING_STATS=path`` makes a worker process write them to a JSON file."""

    def __init__(self, engine: Engine, stats_path: str | None = None, *, delivers_email: bool = False) -> None:
        self.engine = engine
        # this worker sends e-mail (SMTP configured): the hand-over names the queued delivery, and
        # the cycle starts its DocumentDeliveryWorkflow
        self.delivers_email = delivers_email
        self.stats: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
        self._stats_lock = threading.Lock()
        self._stats_path = stats_path or os.environ.get("EVBILL_BILLING_STATS") or None
        self._since_dump = 0
        if self._stats_path:
            # the benchmark's statements per account: every statement this worker sends (an
            # executemany counts once, as it is one round trip)
            from sqlalchemy import event

            def count(*_: Any) -> None:
                with self._stats_lock:
                    self.stats["sql_statements"][0] += 1

            event.listen(engine, "after_cursor_execute", count)

    def _took(self, name: str, t0: float, c0: float, n: int = 1) -> None:
        dt, dc = time.perf_counter() - t0, time.thread_time() - c0
        with self._stats_lock:
            st = self.stats[name]
            st[0] += n
            st[1] += dt
            st[2] += dc
            self._since_dump += n
            if self._stats_path and self._since_dump >= 50:
                self._since_dump = 0
                tmp = self._stats_path + ".tmp"
                with open(tmp, "w") as fh:
                    json.dump(dict(self.stats), fh)
                os.replace(tmp, self._stats_path)

    def all(self) -> list[Any]:
        return [self.assemble_draft, self.open_task, self.escalate_task, self.close_task, self.add_posting,
                self.finalize_invoice, self.reject_invoice, self.render_documents, self.collect_payment,
                self.account_page, self.assemble_batch]

    # ------------------------------------------------------------------ policies
    def _ruleset(self, conn: Connection, tenant_id: str, at: datetime) -> Any:
        row = C.ruleset_in_force(conn, tenant_id, at)
        if row is None:
            return None, None
        res = compile_ruleset(row.source, f"{row.dsl_name or row.id}.evb")
        if res.ruleset is None:
            # published versions were checked at publication; failing here means a compiler change
            raise ApplicationError(f"ruleset version {row.id} no longer compiles:\n{res.render()}",
                                   type="ruleset_invalid", non_retryable=True)
        return row.id, res.ruleset

    def _policies(self, ruleset: Any, acct: Any) -> tuple[BillingPolicy, HoldPolicy]:
        billing, hold = BillingPolicy(cycle=acct.billing_cycle or "monthly"), HoldPolicy()
        if ruleset is not None:
            pols = ruleset.policies  # read once per ruleset content (the compile cache)
            # the account's cycle names the policy (``billing monthly { ... }``); else the first
            billing = pols.billing_named(acct.billing_cycle) or pols.billing_named(None) or billing
            hold = pols.hold_named("default") or pols.hold_named(None) or hold
        try:
            terms = PaymentTerms.parse(acct.payment_terms) if acct.payment_terms else billing.payment_terms
        except ValueError:
            terms = billing.payment_terms
        cycle = acct.billing_cycle if acct.billing_cycle in ("monthly", "quarterly", "ad_hoc") else billing.cycle
        return (BillingPolicy(billing.name, cycle, billing.cut_off_day, billing.timezone or acct.timezone, terms),
                hold)

    # ------------------------------------------------------------------ assembly
    @activity.defn(name="billing.assemble_draft")
    def assemble_draft(self, inp: AssembleInput) -> DraftSummary:
        t0, c0 = time.perf_counter(), time.thread_time()
        out = self._assemble_one(inp)
        self._took("assemble_draft", t0, c0)
        return out

    def _assemble_one(self, inp: AssembleInput, *, collect: bool = False) -> DraftSummary:
        """One account's draft, finalized when ``finalize_if_clean`` and no hold rule stops it
        (``collect``: and scheduled for collection in that transaction); idempotent by (account,
        cycle key): a repeat returns what the first call left."""
        as_of = datetime.fromisoformat(inp.as_of)
        for _ in range(3):
            # read and compute outside the write lock (SQLite has one for the whole database), then
            # write in a short transaction that re-checks what the reading saw
            with self.engine.connect() as conn:
                plan = self._assemble(conn, inp, as_of)
                conn.rollback()
            if isinstance(plan, DraftSummary):
                return plan
            with B.write_transaction(self.engine) as conn:
                out = self._write_plan(conn, inp, plan, collect=collect)
            if out is None:
                continue  # another attempt or an adjustment got there first: read again
            _log_draft(inp.account_id, out)
            return out
        raise ApplicationError("the draft changed under three attempts in a row", type="draft_contended")

    def _write_plan(self, conn: Connection, inp: AssembleInput, plan: dict[str, Any], *,
                    collect: bool = False) -> DraftSummary | None:
        """Write a planned draft and, when clean and ``inp.finalize_if_clean``, number it in the same
        transaction (a crash leaves either nothing or a numbered invoice); ``collect``: hand the
        numbered invoice over to collection in it too. None: the draft changed since it was read."""
        written = self._write_draft(conn, plan)
        if written is None:
            return None
        return self._finalize_written(conn, inp, plan, *written, collect=collect)

    def _finalize_written(self, conn: Connection, inp: AssembleInput, plan: dict[str, Any], out: DraftSummary,
                          billed: list[tuple[str, str]], *, collect: bool = False) -> DraftSummary:
        """Number a draft ``_write_draft`` just wrote, when it is clean and ``inp.finalize_if_clean``."""
        if inp.finalize_if_clean and out.status == "draft" and not out.reasons:
            if plan["existed"]:
                fin = self._finalize(conn, inp.tenant_id, out.invoice_id, "", plan["now"])
            else:
                fin = self._finalize_new(conn, inp.tenant_id, out, billed, plan["now"])
            out.status, out.number, out.finalized_now = "finalized", fin.number, True
            out.dunning_workflows = fin.dunning_workflows
            if collect:
                from store import collections as PC

                PC.schedule_invoice(conn, inp.tenant_id, out.invoice_id)
        return out

    def _assemble(self, conn: Connection, inp: AssembleInput, as_of: datetime,
                  rs: tuple[Any, Any] | None = None, pre: C.GroupReads | None = None) -> DraftSummary | dict[str, Any]:
        """``rs``: the tenant's ruleset version in force at ``as_of`` (``_ruleset``), and ``pre`` the
        account's rows, when the caller read them already (a billing run's group reads them once)."""
        t = inp.tenant_id
        acct = C.account(conn, t, inp.account_id) if pre is None else pre.accounts.get(inp.account_id)
        if acct is None:
            raise ApplicationError(f"billing account {inp.account_id!r} not found", type="account_not_found",
                                   non_retryable=True)
        rv_id, ruleset = rs if rs is not None else self._ruleset(conn, t, as_of)
        policy, hold = self._policies(ruleset, acct)
        if inp.period is not None:
            period = Period.from_dict(inp.period)
        elif policy.cycle == "ad_hoc":
            raise ApplicationError("an ad-hoc account needs an explicit period", type="period_required",
                                   non_retryable=True)
        else:
            period = period_ending(policy.cycle, policy.cut_off_day, policy.timezone or acct.timezone, as_of)
        key = inp.cycle_key or period.key
        existing = C.cycle_invoice(conn, t, acct.id, key) if pre is None else pre.cycle_invoice(conn, t, acct.id, key)
        summary_extra = dict(approval_required=hold.approval_required,
                             auto_release_after_s=int(hold.auto_release_after.total_seconds())
                             if hold.auto_release_after else None,
                             escalate_after_s=int(hold.escalate_after.total_seconds()) if hold.escalate_after else None)
        if existing is not None and existing.status in ("finalized", "rejected", "empty"):
            return self._summary(existing, **summary_extra)
        inv_id = existing.id if existing is not None else new_id("inv")
        # the draft is dated the day it is assembled, in the tenant's zone (a clean draft is
        # finalized in this very step; a held one is dated again when finance decides)
        now = datetime.fromisoformat(inp.now) if inp.now else utcnow()
        issue = now.astimezone(_zone(self._tenant_zone(conn, t, period.timezone, pre))).date()
        draft, rating_of, n_postings = self._draft(conn, t, acct, inv_id, period, issue, policy, ruleset, rv_id, pre,
                                                   fresh=existing is None)
        prev = B.previous_net(conn, t, acct.id, period.start, acct.currency) if pre is None else \
            pre.previous_net(conn, t, acct.id, period.start, acct.currency)
        comparison = compare_periods(draft.net_total, prev)
        holds = B.active_holds(conn, t, acct.id, inv_id, None if pre is None else pre.holds[acct.id])
        held = evaluate_holds(draft, hold, comparison, holds.flags, holds.reasons, rv_id or "")
        reasons = [r.to_dict() for r in held]
        if any(r.kind in APPROVAL_REQUIRED for r in held):
            # an unpriced service item, or an amount in another currency, waits for a person whatever
            # the policy would auto-release
            summary_extra.update(approval_required=True, auto_release_after_s=None)
        status = "empty" if draft.empty else ("held" if reasons and existing is not None
                                              and existing.status == "held" else "draft")
        values = dict(
            kind=draft.kind, status=status, currency=draft.currency, period_start=period.start,
            period_end=period.end, local_start=period.local_start, local_end=period.local_end,
            timezone=period.timezone, issue_date=draft.issue_date, due_date=draft.due_date,
            payment_terms=policy.payment_terms.text(), net_total=draft.net_total, tax_total=draft.tax_total,
            gross_total=draft.gross_total,
            tax_groups=[g.to_dict() for g in draft.tax_groups],
            sessions=draft.sessions, energy_kwh=draft.energy_kwh, hold_reasons=reasons,
            comparison=comparison.to_dict(), corrects=list(draft.corrects), workflow_id=inp.workflow_id,
            ruleset_version_id=rv_id)
        return dict(t=t, acct=acct, key=key, inv_id=inv_id, existed=existing is not None, now=now,
                    seen_status=existing.status if existing is not None else None, values=values,
                    lines=draft.lines, rating_of=rating_of, holds=() if draft.empty else holds.hold_ids,
                    extra=summary_extra, postings=n_postings)

    def _write_draft(self, conn: Connection, plan: dict[str, Any]) -> tuple[DraftSummary, list[tuple[str, str]]] | None:
        """Write the planned draft; returns its summary and the (session, rating) pairs it bills."""
        t, acct, key, inv_id, values = plan["t"], plan["acct"], plan["key"], plan["inv_id"], plan["values"]
        existing = C.cycle_invoice_status(conn, t, acct.id, key)
        now_status = existing.status if existing is not None else None
        if now_status != plan["seen_status"] or (existing is not None
                                                 and len(B.postings_of(conn, inv_id)) != plan["postings"]):
            return None  # another attempt or an adjustment got there first: read again
        if existing is None:
            C.insert_draft(conn, dict(
                id=inv_id, tenant_id=t, account_id=acct.id, customer_id=acct.customer_id, cycle_key=key,
                rejected_reason="", decided_by="", created_at=utcnow(), **values))
        else:
            # a draft is still ours to rebuild (after an adjustment, or on a retried activity)
            C.rebuild_draft(conn, inv_id, values)
        billed = B.insert_lines(conn, t, inv_id, plan["lines"], plan["rating_of"])
        B.consume_holds(conn, t, plan["holds"], inv_id)  # a manual hold is for the next invoice: this one
        # the summary comes from what was just written (the number is drawn later, if at all)
        row = SimpleNamespace(id=inv_id, cycle_key=key, number="", **values)
        return self._summary(row, **plan["extra"]), billed

    @staticmethod
    def _summary(row: Any, **extra: Any) -> DraftSummary:
        return DraftSummary(
            invoice_id=row.id, cycle_key=row.cycle_key, status=row.status, kind=row.kind, currency=row.currency,
            net=_d(row.net_total), tax=_d(row.tax_total), gross=_d(row.gross_total), lines=0,
            sessions=row.sessions,
            period={"start": row.period_start.isoformat(), "end": row.period_end.isoformat(),
                    "local_start": row.local_start.isoformat(), "local_end": row.local_end.isoformat(),
                    "timezone": row.timezone},
            reasons=list(row.hold_reasons or []), comparison=dict(row.comparison or {}), number=row.number or "",
            **extra)

    def _draft(self, conn: Connection, t: str, acct: Any, inv_id: str, period: Period, issue: date,
               policy: BillingPolicy, ruleset: Any, rv_id: str | None = None, pre: C.GroupReads | None = None,
               *, fresh: bool = False) -> tuple[InvoiceDraft, dict[str, str], int]:
        """``fresh``: ``inv_id`` is a new id, of no invoice yet (nothing can be posted on it)."""
        if pre is None:
            contracts = C.account_contracts(conn, t, acct.id)
            n_accounts = len(C.customer_account_ids(conn, t, acct.customer_id))
            sessions = C.customer_sessions(conn, acct.customer_id)
        else:
            contracts = pre.contracts[acct.id]
            n_accounts = len(pre.customer_accounts[acct.customer_id])
            sessions = pre.sessions[acct.customer_id]
        contract_ids = {c.id for c in contracts}
        lookback = period.start - timedelta(days=LOOKBACK_DAYS)
        # the customer's sessions; contracts tell accounts of one customer apart
        rows = [r for r in sessions
            if r.tenant_id == t and r.status == "rated" and lookback <= r.start < period.end
            and r.current_rating_id and (r.contract_id in contract_ids
                                         or (r.contract_id is None and n_accounts == 1))]
        ids = [r.id for r in rows]
        billed: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for ch in _chunks(ids):
            for b in (C.billed_of(conn, t, ch) if pre is None else pre.billed_of(conn, t, ch, lookback, period.end)):
                billed[b.session_id].append((b.rating_id, b.invoice_id))
        elsewhere = set()
        open_ids = None if pre is None else pre.open_invoices(conn, t, acct.id, inv_id)
        if open_ids is None or open_ids:
            for ch in _chunks(ids):
                elsewhere |= B.ids_on_open_invoices(conn, t, acct.id, inv_id, ch, open_ids)
        current: list[Any] = []
        late_rows: list[Any] = []
        corr_rows: list[Any] = []
        for r in rows:
            if r.id in elsewhere:
                continue
            got = billed.get(r.id)
            if not got:
                (current if r.start >= period.start else late_rows).append(r)
            elif r.current_rating_id not in {x[0] for x in got}:
                corr_rows.append(r)
        rating_ids = [r.current_rating_id for r in current + late_rows + corr_rows]
        lines_of: dict[str, list[RatedLine]] = defaultdict(list)
        for ch in _chunks(rating_ids):
            lines_of.update(C.rated_lines_of(conn, ch) if pre is None else pre.rated_lines_of(conn, ch))
        new = tuple.__new__  # a NamedTuple by tuple.__new__ alone, not its Python __new__
        all_results = []
        for r in sorted(current, key=lambda x: (x.start, x.id)):
            ms = int(r.start.timestamp() * 1000)
            rated = tuple(lines_of[r.current_rating_id])
            # a rating is in the currency of the ruleset that made it, which need not be the account's
            cur = rated[0].currency if rated else acct.currency
            for ln in rated:  # what RatingResult's own check refuses (its __init__ costs 3 us a session)
                if ln.currency != cur:
                    require_currency(cur, ln.currency, f"{ln.component} line of session {r.id}")
            all_results.append(trusted_result(r.id, "", "", "", "", cur, rated,
                                              (new(TraceEntry, ("", "", ms, ms, ZERO, ZERO, "")),), r.energy_kwh,
                                              ZERO, ZERO))
        product = None
        for c in contracts:
            if ruleset is not None and c.product in ruleset.products and c.status == "active":
                product = c.product
                break
        late_all = [LateSession(r.id, r.current_rating_id, "earlier period", tuple(lines_of[r.current_rating_id]))
                    for r in sorted(late_rows, key=lambda x: (x.start, x.id))]
        services = B.period_services(
            conn, t, acct.id, period, ruleset.policies.services if ruleset is not None else None,
            None if pre is None else pre.services[acct.id])
        # what was priced in another currency than the account's is set aside: the draft is held
        # for it (currency_mismatch), never added into the account's total
        split = split_currencies(acct.currency, results=all_results, late=late_all,
                                 corrections=self._corrections(conn, t, corr_rows, billed, lines_of),
                                 services=services.items)
        results, late, corrections, foreign = list(split.results), split.late, split.corrections, list(split.foreign)
        if ruleset is not None and ruleset.currency != acct.currency:
            # the version's base fees, allowances and tiers would be in its currency: not applied
            foreign.insert(0, ForeignAmount("ruleset_version", rv_id or "", ruleset.currency, None, product or ""))
        if ruleset is not None and ruleset.currency == acct.currency:
            pr = ruleset.rate_period(results, product, period.months)
            period_lines, energy = pr.lines, pr.energy_kwh
        else:
            period_lines = tuple(ln for res in results for ln in res.lines)
            energy = sum((res.energy_kwh for res in results), Decimal(0))
        discounts: list[PeriodDiscount] = B.period_discounts(conn, t, acct.id, period,
                                                             None if pre is None else pre.discounts[acct.id])
        postings = [] if fresh else [ManualPosting(p.id, p.description, p.amount, p.tax_rate, p.author_id)
                                     for p in B.postings_of(conn, inv_id)]
        draft = assemble_invoice(
            account_id=acct.id, currency=acct.currency, period=period, issue_date=issue,
            terms=policy.payment_terms, period_lines=period_lines, sessions=len(results), energy_kwh=energy,
            services=split.services, discounts=discounts, postings=postings, late=late, corrections=corrections,
            rounding=ruleset.rounding if ruleset is not None else "half_up", unpriced=services.unpriced,
            foreign=foreign, treatment=self._treatment(conn, t, acct, ruleset))
        meter = self._meter_findings(conn, current + late_rows)
        if meter:
            draft = dataclasses.replace(draft, meter=meter)
        rating_of = {r.id: r.current_rating_id for r in rows}
        return draft, rating_of, len(postings)

    @staticmethod
    def _meter_findings(conn: Connection, rows: list[Any]) -> tuple[MeterFinding, ...]:
        """Sessions billed now whose signed meter data failed its check (Eichrecht): they hold the draft."""
        bad = [r for r in rows if r.meter_check in ("meter_signature_invalid", "meter_mismatch")]
        if not bad:
            return ()
        signed = C.signed_meter_of(conn, [r.id for r in bad])
        out = []
        for r in sorted(bad, key=lambda x: (x.start, x.id)):
            sm = signed.get(r.id, {})
            # a legal-for-trade tariff without any signed data: the check itself found nothing wrong
            reason = str(sm.get("reason") or ("" if sm.get("check") == r.meter_check else "no_signed_data"))
            out.append(MeterFinding(r.id, r.meter_check, reason,
                                    Decimal(sm["signed_kwh"]) if sm.get("signed_kwh") else None, r.energy_kwh))
        return tuple(out)

    @staticmethod
    def _tenant_zone(conn: Connection, t: str, fallback: str, pre: C.GroupReads | None) -> str:
        """The tenant's zone (``store.billing.tenant_zone``), read once per group."""
        if pre is None:
            return B.tenant_zone(conn, t, fallback)
        key = ("zone", fallback)
        if key not in pre.memo:
            pre.memo[key] = B.tenant_zone(conn, t, fallback)
        return str(pre.memo[key])

    def _reverse_charge(self, conn: Connection, t: str, acct: Any, ruleset: Any) -> bool:
        """Whether the account's invoice is a reverse-charge supply (``_treatment`` says AE)."""
        return self._treatment(conn, t, acct, ruleset).category == "AE"

    def _treatment(self, conn: Connection, t: str, acct: Any, ruleset: Any) -> Treatment:
        """How the account's invoice is taxed (``runtime.tax.Treatment``), from the ruleset's tax
        policy and the customer:

        - ``exempt`` (for everyone, or for groups the customer is in): category E with the VATEX
          code and reason the statement gives;
        - ``reverse_charge`` (likewise scoped): the ruleset's supplies follow the B2B rule (the
          place of supply is where the customer is established), so a business in another EU
          member state with a VAT ID python-stdnum accepts (and a stored online check did not
          refuse) is AE, a business outside the EU with a tax ID is O (``customer_treatment``);
        - everything else is taxed (S). Read only for rulesets with such statements."""
        taxed = Treatment("S")
        if ruleset is None:
            return taxed
        from dsl import ast as DA

        statements = [st for p in ruleset.ast.policies if p.kind == "tax"
                      for st in p.statements if isinstance(st, (DA.ReverseCharge, DA.TaxExempt))]
        if not statements:
            return taxed
        groups: set[str] | None = None

        def applies(st: Any) -> bool:
            nonlocal groups
            if not st.groups:
                return True
            if groups is None:
                groups = set(B.customer_groups(conn, acct.customer_id))
            return any(g.value in groups for g in st.groups)

        for st in statements:
            if isinstance(st, DA.TaxExempt) and applies(st):
                return exemption(st.code, st.note)
        if not any(isinstance(st, DA.ReverseCharge) and applies(st) for st in statements):
            return taxed
        from store.customers import vat_check_refused
        from store.documents import vat_parties

        supply, country, business, vat_id = vat_parties(conn, t, acct)
        # the seam for the online check: VIES's stored answer (api.vies) where it refused the ID;
        # unchecked (VIES off or unreachable) leaves it to the format
        refused = bool(vat_id) and vat_check_refused(conn, acct.customer_id, vat_id or "")
        return customer_treatment(supply, country, business, vat_id, online=(lambda _v: False) if refused else None)

    def _corrections(self, conn: Connection, t: str, rows: list[Any], billed: dict[str, list[tuple[str, str]]],
                     lines_of: dict[str, list[RatedLine]]) -> list[Correction]:
        out = []
        for r in sorted(rows, key=lambda x: (x.start, x.id)):
            billed_net = C.billed_net_of_session(conn, t, r.id)
            last_rating, last_invoice = billed[r.id][-1]
            inv = C.invoice_currency_number(conn, last_invoice)
            out.append(Correction(r.id, r.current_rating_id, last_rating, last_invoice, inv.number or "",
                                  dict(billed_net), tuple(lines_of[r.current_rating_id]), inv.currency))
        return out

    # ------------------------------------------------------------------ finance tasks
    @activity.defn(name="billing.open_task")
    def open_task(self, inp: OpenTaskInput) -> str:
        with B.write_transaction(self.engine) as conn:
            return B.open_task(conn, inp.tenant_id, inp.invoice_id, inp.account_id, inp.workflow_id, inp.reasons,
                               inp.comparison)

    @activity.defn(name="billing.escalate_task")
    def escalate_task(self, inp: EscalateInput) -> None:
        with B.write_transaction(self.engine) as conn:
            B.escalate_task(conn, inp.task_id, inp.level)
        log.warning("finance task %s escalated to level %d", inp.task_id, inp.level)

    @activity.defn(name="billing.close_task")
    def close_task(self, inp: CloseTaskInput) -> None:
        with B.write_transaction(self.engine) as conn:
            if inp.task_id:
                B.close_task(conn, inp.task_id, inp.status, inp.user_id, inp.reason)
                _audit(conn, inp.tenant_id, inp.user_id, inp.role, f"finance_task.{inp.status}", "finance_task",
                       inp.task_id, {"invoice_id": inp.invoice_id, "reason": inp.reason})
        if inp.task_id:
            log.info("finance task %s %s by %s", inp.task_id, inp.status, inp.user_id or "the hold policy",
                     extra={"task_id": inp.task_id, "invoice_id": inp.invoice_id, "decision": inp.status})

    @activity.defn(name="billing.add_posting")
    def add_posting(self, inp: PostingInput) -> None:
        with B.write_transaction(self.engine) as conn:
            if C.invoice_status(conn, inp.tenant_id, inp.invoice_id) not in ("draft", "held"):
                raise ApplicationError("only a draft or held invoice can be adjusted", type="invoice_not_open",
                                       non_retryable=True)
            B.add_posting(conn, inp.tenant_id, inp.invoice_id, inp.posting_id, inp.description,
                          Decimal(inp.amount), Decimal(inp.tax_rate), inp.author_id)
            _audit(conn, inp.tenant_id, inp.author_id, inp.author_role, "invoice.adjust", "billing_invoice",
                   inp.invoice_id, {"posting_id": inp.posting_id, "description": inp.description,
                                    "amount": inp.amount, "tax_rate": inp.tax_rate})

    # ------------------------------------------------------------------ finalization
    @activity.defn(name="billing.finalize_invoice")
    def finalize_invoice(self, inp: FinalizeInput) -> FinalizeOutput:
        t0, c0 = time.perf_counter(), time.thread_time()
        with B.write_transaction(self.engine) as conn:
            at = datetime.fromisoformat(inp.now) if inp.now else utcnow()
            out = self._nothing_to_number(conn, inp) or self._finalize(conn, inp.tenant_id, inp.invoice_id,
                                                                       inp.decided_by, at)
        self._took("finalize_invoice", t0, c0)
        if out.number and not out.already:
            log.info("invoice %s finalized: %s %s gross, decided by %s", out.number, out.kind, out.gross,
                     inp.decided_by or "the hold policy",
                     extra={"invoice_id": out.invoice_id, "number": out.number, "gross": out.gross})
        return out

    @staticmethod
    def _nothing_to_number(conn: Connection, inp: FinalizeInput) -> FinalizeOutput | None:
        """An approved draft without a single line is closed as empty (``store.billing.close_if_empty``)."""
        kind = B.close_if_empty(conn, inp.tenant_id, inp.invoice_id, inp.decided_by)
        return None if kind is None else FinalizeOutput(inp.invoice_id, "", kind, "0", False)

    def _finalize_new(self, conn: Connection, tenant_id: str, draft: DraftSummary,
                      billed: list[tuple[str, str]], at: datetime) -> FinalizeOutput:
        """Number a draft this transaction inserted (see ``store.billing.finalize_new_draft``)."""
        B.ensure_series(conn, tenant_id, *B.INVOICE_SERIES[draft.kind])
        res = B.finalize_new_draft(conn, tenant_id, draft.invoice_id, draft.kind, Decimal(draft.gross), billed, at)
        return FinalizeOutput(res.invoice_id, res.number, res.kind, _d(res.gross_total), res.already,
                              _dunning_to_tell(conn, tenant_id, res.invoice_id, res.kind))

    def _finalize(self, conn: Connection, tenant_id: str, invoice_id: str, decided_by: str,
                  at: datetime) -> FinalizeOutput:
        kind = C.invoice_kind(conn, invoice_id)
        B.ensure_series(conn, tenant_id, *B.INVOICE_SERIES[kind])
        try:
            res = B.finalize_invoice(conn, tenant_id, invoice_id, decided_by, at)
        except B.AllocationError as exc:
            raise ApplicationError(str(exc), type="invoice_not_finalizable", non_retryable=True) from None
        return FinalizeOutput(res.invoice_id, res.number, res.kind, _d(res.gross_total), res.already,
                              _dunning_to_tell(conn, tenant_id, res.invoice_id, res.kind))

    @activity.defn(name="billing.reject_invoice")
    def reject_invoice(self, inp: CloseTaskInput) -> None:
        with B.write_transaction(self.engine) as conn:
            C.reject_draft(conn, inp.tenant_id, inp.invoice_id, inp.reason[:1000], inp.user_id)
            if inp.task_id:
                B.close_task(conn, inp.task_id, "rejected", inp.user_id, inp.reason[:1000])
            _audit(conn, inp.tenant_id, inp.user_id, inp.role, "invoice.reject", "billing_invoice", inp.invoice_id,
                   {"reason": inp.reason[:1000], "task_id": inp.task_id})
        log.info("invoice draft %s rejected by %s", inp.invoice_id, inp.user_id,
                 extra={"invoice_id": inp.invoice_id, "decision": "rejected"})

    # ------------------------------------------------------------------ the hand-over
    @activity.defn(name="documents.render_invoice")
    def render_documents(self, inp: RenderDocumentsInput) -> HandOverResult:
        """Render the PDF and e-invoice, archive them with their sha256 and queue the e-mail
        (``store.documents.hand_over``; idempotent). When this worker delivers e-mail, the result
        names the queued delivery still to be sent, for the cycle to start its delivery workflow.
        EVBILL_RENDER_DOCUMENTS=0 keeps the old stub (billing-only benchmarks)."""
        return self._render(inp, for_cycle=True)

    def _render(self, inp: RenderDocumentsInput, *, for_cycle: bool) -> HandOverResult:
        """``for_cycle``: the calling cycle starts the e-mail's delivery workflow; else (a billing
        run's batch) the delivery stays queued for the delivery sweep."""
        if os.environ.get("EVBILL_RENDER_DOCUMENTS", "1") == "0":
            return HandOverResult("pending", f"documents for {inp.number} not rendered yet")
        from store.documents import defer_delivery, deliveries_of, hand_over
        from workflows.documents.types import HANDED_OVER_GRACE

        status, detail = hand_over(self.engine, inp.tenant_id, inp.invoice_id)
        delivery_id = ""
        if status == "issued" and self.delivers_email and for_cycle:
            with B.write_transaction(self.engine) as conn:
                # the delivery at issue (seq 0), unless it already left (a retried hand-over)
                delivery_id = next((d.id for d in deliveries_of(conn, inp.tenant_id, inp.number)
                                    if d.seq == 0 and d.status in ("pending", "failed")), "")
                if delivery_id:  # the cycle's delivery workflow sends it, not the sweep
                    defer_delivery(conn, inp.tenant_id, delivery_id, utcnow() + HANDED_OVER_GRACE)
        return HandOverResult(status, detail, delivery_id)

    @activity.defn(name="payments.collect_invoice")
    def collect_payment(self, inp: CollectPaymentInput) -> HandOverResult:
        """The hand-over to collection: a direct-debit invoice's open item is scheduled for the
        run that collects on the date the invoice notified (``scheduled``); an invoice paid by
        transfer waits for the bank statement (``awaiting_transfer``, with its due date). One
        transaction, written once per invoice: a retry answers what the first attempt did."""
        from store import collections as PC

        t0, c0 = time.perf_counter(), time.thread_time()
        with self.engine.begin() as conn:
            status, detail = PC.schedule_invoice(conn, inp.tenant_id, inp.invoice_id)
        self._took("collect_invoice", t0, c0)
        return HandOverResult(status, detail)

    # ------------------------------------------------------------------ the billing run's batches
    @activity.defn(name="billing.account_page")
    def account_page(self, inp: AccountPageInput) -> AccountPage:
        """The next page of the tenant's active accounts billed on ``inp.cycle`` (the account's own
        cycle, else the ruleset's billing policy, as the cycle and the schedules read it) and, when
        ``inp.timezone`` is set, whose cut-offs fall in that zone (``account_calendar``)."""
        with self.engine.connect() as conn:
            rows = C.account_page(conn, inp.tenant_id, inp.after, inp.limit)
            pols = None
            if rows and (inp.timezone or any(r.billing_cycle not in _CYCLES for r in rows)):
                _rv, ruleset = self._ruleset(conn, inp.tenant_id, utcnow())
                pols = ruleset.policies if ruleset is not None else None
        ids = []
        for r in rows:
            cycle, _day, zone = account_calendar(pols, r.billing_cycle, r.timezone)
            if cycle == inp.cycle and (not inp.timezone or zone == inp.timezone):
                ids.append(r.id)
        return AccountPage(ids, rows[-1].id if rows else "")

    @activity.defn(name="billing.assemble_batch")
    def assemble_batch(self, inp: AssembleBatchInput) -> BatchOutcome:
        """Assemble, finalize and hand over a batch of accounts, each on its own and idempotent by
        (account, cycle key): a retried batch (a worker killed mid-batch) finds the accounts the
        first attempt finalized and only hands them over again, which is idempotent too. An account
        whose draft a hold rule stops, or whose assembly fails with a business error, is left to a
        cycle workflow of its own (``held``): the draft names that workflow already.

        The accounts go through in groups of ``_GROUP``: their drafts are read and computed in one
        read transaction, then written, numbered and scheduled for collection in one write
        transaction (one SQLite write lock and one commit per group, not two per account). A group
        whose writing fails goes through again one account at a time, so one bad account does not
        hold up the others."""
        info = activity.info()
        done = int(info.heartbeat_details[0]) if info.heartbeat_details else 0
        out = BatchOutcome()
        ids = list(inp.account_ids)
        for g in range(0, len(ids), _GROUP):
            t0, c0 = time.perf_counter(), time.thread_time()
            group = ids[g:g + _GROUP]
            for i, (account_id, draft) in enumerate(zip(group, self._group(inp, group, g), strict=True), start=g):
                self._tally(inp, out, account_id, draft, hand_over=i >= done)
                activity.heartbeat(i + 1)
            self._took("batch_account", t0, c0, len(group))
        return out

    def _group(self, inp: AssembleBatchInput, ids: list[str], before: int) -> list[DraftSummary | ApplicationError]:
        """The group's accounts assembled, and the clean ones numbered and scheduled for collection;
        ``before``: the batch's accounts handed over already (what the heartbeats report meanwhile)."""
        as_of = datetime.fromisoformat(inp.as_of)
        args = {a: AssembleInput(inp.tenant_id, a, inp.as_of, cycle_workflow_id(inp.tenant_id, a, inp.as_of),
                                 finalize_if_clean=True, now=inp.now) for a in ids}
        got: dict[str, DraftSummary | ApplicationError] = {}
        plans: dict[str, dict[str, Any]] = {}
        with self.engine.connect() as conn:
            try:
                rs = self._ruleset(conn, inp.tenant_id, as_of)
            except ApplicationError:
                rs = None  # each account fails on it by itself
            pre = C.GroupReads(conn, inp.tenant_id, ids)
            for a in ids:
                activity.heartbeat(before)  # alive: a slow group is not taken for a dead worker
                try:
                    plan = self._assemble(conn, args[a], as_of, rs, pre)
                except ApplicationError as exc:
                    got[a] = exc
                    continue
                if isinstance(plan, DraftSummary):
                    got[a] = plan  # finalized, rejected or empty already: nothing to write
                else:
                    plans[a] = plan
            conn.rollback()
        alone = []
        if plans:
            try:
                with B.write_transaction(self.engine) as conn:
                    written = self._write_group(conn, args, plans)
            except Exception:  # the group is rolled back whole: each account again on its own
                log.warning("a group of %d drafts failed to write; one account at a time", len(plans), exc_info=True)
                alone = list(plans)
            else:
                for a, w in written.items():
                    if w is None:
                        alone.append(a)  # changed since it was read: that account again on its own
                    else:
                        got[a] = w
                        _log_draft(a, w)
        for a in alone:
            try:
                got[a] = self._assemble_one(args[a], collect=True)
            except ApplicationError as exc:
                got[a] = exc
        return [got[a] for a in ids]

    def _write_group(self, conn: Connection, args: dict[str, AssembleInput],
                     plans: dict[str, dict[str, Any]]) -> dict[str, DraftSummary | None]:
        """Write a group's planned drafts in one transaction, set-based: one read of what the
        accounts have at their cycle keys now, one insert of the new drafts and one of all their
        lines, then one block of numbers per series for the clean ones in account order, their
        billed sessions, open items and journal entries in bulk, and their hand-over to
        collection (``B.finalize_new_drafts``, ``PC.schedule_invoices``). A draft being rebuilt
        (it existed before) goes the per-account way. None: that draft changed since it was read.

        Every draft and its lines are written before any number is drawn: on PostgreSQL the
        series row stays locked from the draw until commit, so other writers wait for the
        numbering only, not for the drafts too."""
        from store import collections as PC

        t = next(iter(args.values())).tenant_id
        now_at = C.cycle_invoice_statuses(conn, t, {a: p["key"] for a, p in plans.items()})
        out: dict[str, DraftSummary | None] = {}
        new: list[str] = []
        for a, p in plans.items():
            row = now_at.get(a)
            if p["seen_status"] is None and row is None:
                new.append(a)
            elif p["seen_status"] is None or row is None:
                out[a] = None  # another attempt wrote (or removed) it meanwhile: read again
            else:  # a draft still ours to rebuild: the per-account way
                d = self._write_draft(conn, p)
                out[a] = None if d is None else self._finalize_written(conn, args[a], p, *d, collect=True)
        if not new:
            return out
        created = utcnow()
        B.insert_drafts(conn, [dict(id=plans[a]["inv_id"], tenant_id=t, account_id=a,
                                    customer_id=plans[a]["acct"].customer_id, cycle_key=plans[a]["key"],
                                    rejected_reason="", decided_by="", created_at=created, **plans[a]["values"])
                               for a in new])
        billed = dict(zip(new, B.insert_many_lines(conn, t, [(plans[a]["inv_id"], plans[a]["lines"],
                                                              plans[a]["rating_of"]) for a in new]), strict=True))
        clean = []
        for a in new:
            p = plans[a]
            B.consume_holds(conn, t, p["holds"], p["inv_id"])  # a manual hold is for the next invoice: this one
            s = out[a] = self._summary(SimpleNamespace(id=p["inv_id"], cycle_key=p["key"], number="", **p["values"]),
                                       **p["extra"])
            if args[a].finalize_if_clean and s.status == "draft" and not s.reasons:
                clean.append(a)
        if not clean:
            return out
        results, rows = B.finalize_new_drafts(
            conn, t, [(plans[a]["inv_id"], plans[a]["values"]["kind"], plans[a]["values"]["gross_total"], billed[a])
                      for a in clean], plans[clean[0]]["now"],
            {plans[a]["inv_id"]: [(ln.kind, ln.tax_rate, ln.net) for ln in plans[a]["lines"]] for a in clean})
        for a, res in zip(clean, results, strict=True):
            s = out[a]
            assert s is not None
            s.status, s.number, s.finalized_now = "finalized", res.number, True
            s.dunning_workflows = _dunning_to_tell(conn, t, res.invoice_id, res.kind)
        PC.schedule_invoices(conn, t, rows)
        return out

    def _tally(self, inp: AssembleBatchInput, out: BatchOutcome, account_id: str,
               draft: DraftSummary | ApplicationError, *, hand_over: bool) -> None:
        if isinstance(draft, ApplicationError):
            out.held.append(account_id)
            out.failed.append({"account_id": account_id, "type": draft.type or "", "message": str(draft)[:500]})
        elif draft.status == "finalized":
            out.finalized += 1
            if hand_over:
                # what this attempt numbered was scheduled for collection in its transaction; the
                # documents follow, and a retried batch hands over again what an earlier attempt may
                # not have (idempotent), except the accounts its heartbeats reported done
                self._hand_over(inp.tenant_id, draft, collect=not draft.finalized_now)
            if draft.kind == "credit_note":
                with self.engine.connect() as conn:
                    out.dunning_workflows += _dunning_to_tell(conn, inp.tenant_id, draft.invoice_id, draft.kind)
        elif draft.status == "empty":
            out.empty += 1
        elif draft.status == "rejected":
            out.rejected += 1
        else:  # a draft waiting for a person (held) or left over from an interrupted cycle
            out.held.append(account_id)

    def _hand_over(self, tenant_id: str, draft: DraftSummary, *, collect: bool = True) -> None:
        self._render(RenderDocumentsInput(tenant_id, draft.invoice_id, draft.number), for_cycle=False)
        if collect:
            self.collect_payment(CollectPaymentInput(tenant_id, draft.invoice_id, draft.number, draft.gross,
                                                     draft.kind))


def _dunning_to_tell(conn: Connection, tenant_id: str, invoice_id: str, kind: str) -> list[str]:
    """A credit note takes off what its customer owes: the workflows of the customer's open dunning
    cases in its currency, to be told by the cycle (``changed``) rather than at their next wake-up."""
    if kind != "credit_note":
        return []
    from store import dunning as DN

    return DN.invoice_case_workflows(conn, tenant_id, invoice_id)


def _log_draft(account_id: str, out: DraftSummary) -> None:
    """One line per assembled draft: numbered at once, held for finance, or nothing to bill."""
    extra = {"account_id": account_id, "invoice_id": out.invoice_id, "status": out.status}
    if out.finalized_now:
        log.info("invoice %s finalized: account %s, %s %s gross, %d sessions", out.number, account_id, out.kind,
                 out.gross, out.sessions, extra=extra)
    elif out.reasons:
        log.info("draft %s of account %s held for finance: %s", out.invoice_id, account_id,
                 "; ".join(r.get("message") or r.get("kind", "") for r in out.reasons), extra=extra)
    elif out.status == "empty":
        log.info("account %s: nothing to bill", account_id, extra=extra)


def _audit(conn: Connection, tenant_id: str, user_id: str, role: str, action: str, entity: str, entity_id: str,
           after: dict[str, Any]) -> None:
    """Finance decisions go into the tenant's hash-chained audit log, in the decision's transaction.
    A retried activity whose first attempt committed finds nothing left to change but would append
    again, so the entry is skipped when the same action on the same entity is already there."""
    from sqlalchemy.orm import Session

    from store.audit import Actor, append_audit

    if C.audit_entry_exists(conn, tenant_id, action, entity_id, user_id) and action != "invoice.adjust":
        return
    db = Session(bind=conn)
    append_audit(db, Actor(tenant_id, user_id, role or "system"), action, entity, entity_id, None, after)
    db.flush()


def _zone(name: str) -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)

