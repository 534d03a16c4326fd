"""``evbill demo``: a whole simulated month on the embedded defaults, artefacts under ``./out/``.

Each step says what it did. What exists today: a month of synthetic charging sessions for each
business model in ``rulesets/``, rated through the compiled DSL, then every account's month rated
as a billing period (subscriptions, included energy, tiers), with a report.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from dsl import CompiledRuleset, PriceSeries, RatingContext, compile_ruleset
from runtime.money import quantize
from runtime.sessions import SessionFacts

RULESETS = Path(__file__).resolve().parents[1] / "rulesets"
MONTH_START = datetime(2026, 11, 1, tzinfo=UTC)
DAYS = 30


@dataclass(frozen=True)
class Scenario:
    """One business model: its ruleset and who charges how."""

    key: str
    title: str
    ruleset: str
    make_session: Callable[[random.Random, int, datetime], dict[str, Any]]


def _public(rnd: random.Random, i: int, start: datetime) -> dict[str, Any]:
    dc = rnd.random() < 0.35
    minutes = rnd.randint(15, 60) if dc else rnd.randint(45, 720)
    charge = minutes if dc else min(minutes, rnd.randint(30, 300))
    power = rnd.choice([50, 150, 300]) if dc else 11
    kwh = Decimal(min(charge / 60 * power * rnd.uniform(0.5, 0.9), 90 if dc else 60)).quantize(Decimal("0.001"))
    return dict(power_type="DC" if dc else "AC", max_power_kw=str(power), minutes=minutes, charge=charge, kwh=kwh,
                location_id=f"berlin_{rnd.randint(1, 40):02d}", customer_id=f"pub{rnd.randint(1, 400)}")


def _emp(rnd: random.Random, i: int, start: datetime) -> dict[str, Any]:
    cust = rnd.randint(1, 120)
    product = "flex" if cust % 3 == 0 else "pro" if cust % 7 == 0 else ""
    minutes = rnd.randint(30, 240)
    return dict(minutes=minutes, charge=minutes, kwh=Decimal(rnd.randint(5000, 45000)) / 1000,
                customer_id=f"emp{cust}", product=product, power_type="DC" if rnd.random() < 0.2 else "AC")


def _fleet(rnd: random.Random, i: int, start: datetime) -> dict[str, Any]:
    group = rnd.choices(["employees", "pool_cars", "management", ""], weights=[6, 3, 1, 2])[0]
    minutes = rnd.randint(120, 660)
    return dict(minutes=minutes, charge=min(minutes, rnd.randint(60, 240)), kwh=Decimal(rnd.randint(4000, 30000)) / 1000,
                customer_groups=[group] if group else [], customer_id=f"acme{rnd.randint(1, 80)}")


def _depot(rnd: random.Random, i: int, start: datetime) -> dict[str, Any]:
    partner = rnd.choices(["DE-FLX", "NL-TRK", "DE-BUS", ""], weights=[5, 3, 3, 1])[0]
    minutes = rnd.randint(60, 300)
    return dict(minutes=minutes, charge=max(30, minutes - rnd.randint(0, 90)), kwh=Decimal(rnd.randint(80, 400)),
                partner=partner, roaming=bool(partner), power_type="DC", customer_id=partner or "adhoc",
                location_id="hamburg_sued")


def _dynamic(rnd: random.Random, i: int, start: datetime) -> dict[str, Any]:
    minutes = rnd.randint(30, 300)
    return dict(minutes=minutes, charge=minutes, kwh=Decimal(rnd.randint(3000, 40000)) / 1000,
                customer_id=f"dyn{rnd.randint(1, 60)}", power_type="DC" if rnd.random() < 0.1 else "AC")


SCENARIOS = [
    Scenario("public_cpo", "Public CPO (AC/DC, night rate, blocking fee)", "public_cpo/public_cpo.evb", _public),
    Scenario("emp", "EMP with subscriptions", "emp_subscription/emp_subscription.evb", _emp),
    Scenario("fleet", "Employer / fleet", "fleet_employer/fleet_employer.evb", _fleet),
    Scenario("depot", "Depot for partner fleets", "partner_depot/partner_depot.evb", _depot),
    Scenario("dynamic", "Dynamic spot tariff", "dynamic_spot/dynamic_spot.evb", _dynamic),
]


def _spot_month(rnd: random.Random) -> PriceSeries:
    """A month of hourly day-ahead prices with a daily shape (EUR/kWh)."""
    pts = []
    for h in range(24 * (DAYS + 2)):
        hour = h % 24
        shape = 0.06 + 0.05 * (1 if 17 <= hour <= 20 else 0) - 0.04 * (1 if 11 <= hour <= 14 else 0)
        pts.append((MONTH_START - timedelta(days=1) + timedelta(hours=h),
                    Decimal(str(round(shape + rnd.uniform(-0.02, 0.04), 4)))))
    return PriceSeries.from_points("spot_de", pts)


def _sessions(sc: Scenario, n: int, rnd: random.Random) -> list[SessionFacts]:
    out = []
    for i in range(n):
        start = MONTH_START + timedelta(minutes=rnd.randrange(0, DAYS * 24 * 60 - 800))
        d = sc.make_session(rnd, i, start)
        minutes, charge, kwh = d.pop("minutes"), d.pop("charge"), d.pop("kwh")
        out.append(SessionFacts.from_dict({
            "id": f"{sc.key}-{i:05d}", "start": start.isoformat(), "end": (start + timedelta(minutes=minutes)).isoformat(),
            "charging_end": (start + timedelta(minutes=charge)).isoformat(), "energy_kwh": str(kwh), **d}))
    return out


def _say(msg: str) -> None:
    print(msg, flush=True)


FORMAT_LABELS = {"pdf": "PDF", "facturx-pdf": "Factur-X PDF (CII embedded)", "xrechnung-ubl": "XRechnung UBL",
                 "xrechnung-cii": "XRechnung CII", "peppol-ubl": "Peppol BIS UBL", "facturx-cii": "Factur-X CII"}


def main(args: argparse.Namespace) -> int:
    with card_sandbox() as card_line:
        return _run(args, card_line)


@contextmanager
def card_sandbox() -> Iterator[str | None]:
    """Card payments for the demo's ad-hoc page: when the environment configures no payment
    provider (``api.payments.provider_from_env``), the local card sandbox
    (``api.payments.sandbox``: test cards only, nothing leaves the machine) on a free port of
    127.0.0.1 with the Stripe adapter pointed at it — its Checkout page too — until the demo (or
    ``--serve``) ends; the line that says so, or None. A provider set by the environment always
    wins, and ``EVBILL_PAYMENT_PROVIDER=none`` keeps card payments off."""
    import os

    from api.payments import provider_from_env
    from api.payments.sandbox import sandbox_environment, stripe_wire

    if os.environ.get("EVBILL_PAYMENT_PROVIDER", "").strip().lower() == "none" or provider_from_env() is not None:
        yield None
        return
    with stripe_wire() as wire:
        env = sandbox_environment(wire)
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            yield (f"card payments: local sandbox at {wire.base}, test card 4242 4242 4242 4242 (a stand-in "
                   f"acquirer: test cards only, nothing leaves this machine; EVBILL_STRIPE_SECRET_KEY sets a real one)")
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def _run(args: argparse.Namespace, card_line: str | None) -> int:
    import logging
    import os

    from api.doctor import warn_at_start
    from api.logs import setup_logging

    # the demo narrates on stdout; its own loggers speak up only for what goes wrong
    setup_logging(level=os.environ.get("EVBILL_LOG_LEVEL") or "WARNING")
    temporal_before = os.environ.get("TEMPORAL_ADDRESS")
    warn_at_start(logging.getLogger("evbill.demo"), smtp=False)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rnd = random.Random(args.seed)
    per = max(1, args.sessions // len(SCENARIOS))
    spot = _spot_month(rnd)
    ctx = RatingContext(series={"spot_de": spot})
    t0 = time.perf_counter()
    _say(f"evbill demo: simulating {DAYS} days of charging (seed {args.seed}), artefacts in {out}/")
    summary_rows: list[dict[str, Any]] = []
    summary: dict[str, Any] = {"seed": args.seed, "sessions": args.sessions, "month_start": MONTH_START.isoformat(),
                               "card_payments": "local sandbox" if card_line else "environment"}
    if card_line:
        _say(f"  {card_line}")
    grand = Decimal(0)
    rated_total = 0
    for sc in SCENARIOS:
        path = RULESETS / sc.ruleset
        res = compile_ruleset(path.read_text(encoding="utf-8"), str(path))
        if res.ruleset is None:
            _say(res.render())
            return 1
        rs: CompiledRuleset = res.ruleset
        sessions = _sessions(sc, per, rnd)
        t = time.perf_counter()
        results = rs.rate_many(sessions, ctx)
        dt = time.perf_counter() - t
        rated_total += len(results)
        with open(out / f"rated_{sc.key}.jsonl", "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r.to_dict()) + "\n" for r in results)
        # each account's month as a billing period
        by_acc: dict[tuple[str, str], list[Any]] = defaultdict(list)
        for s, r in zip(sorted(sessions, key=lambda x: x.start), results):
            by_acc[(s.customer_id, s.product)].append(r)
        periods = []
        for (cust, product), rr in sorted(by_acc.items()):
            p = rs.rate_period(rr, product if product in rs.products else None)
            periods.append({"customer_id": cust, "product": product, **p.to_dict()})
        with open(out / f"periods_{sc.key}.json", "w", encoding="utf-8") as f:
            json.dump(periods, f, indent=1)
        net = sum((Decimal(p["net"]) for p in periods), Decimal(0))
        kwh = sum((r.energy_kwh for r in results), Decimal(0))
        grand += net
        summary_rows.append({"scenario": sc.title, "ruleset": f"{rs.name} ({rs.sha256[:12]})", "sessions": len(results),
                             "accounts": len(periods), "kwh": str(quantize(kwh, 1)), "net_eur": str(net),
                             "rated_per_s": f"{len(results) / dt:,.0f}"})
        _say(f"  rated {len(results):>5} sessions for {sc.title:<45} {len(periods):>4} accounts, "
             f"{quantize(kwh, 1):>9} kWh, net {net:>11} EUR")
    with open(out / "summary.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(summary_rows[0]))
        w.writeheader()
        w.writerows(summary_rows)
    _say(f"  {rated_total} sessions rated through the DSL, {len(SCENARIOS)} rulesets, month net {grand} EUR; "
         f"see {out}/summary.csv")
    # summary.json: what the seed determines (no timings), so two runs can be compared as a whole
    summary["scenarios"] = [{k: v for k, v in row.items() if k != "rated_per_s"} for row in summary_rows]
    summary["dsl_net_eur"] = str(grand)
    code = _system_month(out, rnd, summary)
    with open(out / "summary.json", "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=1, ensure_ascii=False)
        f.write("\n")
    _say(f"done in {time.perf_counter() - t0:.1f} s; summary in {out}/summary.json")
    if code == 0 and getattr(args, "serve", False):
        # the month's Temporal server has stopped: serve starts its own embedded one unless the
        # environment named a cluster before the demo began
        if temporal_before is None:
            os.environ.pop("TEMPORAL_ADDRESS", None)
        else:
            os.environ["TEMPORAL_ADDRESS"] = temporal_before
        return _serve(out, args, card_line)
    return code


def _serve(out: Path, args: argparse.Namespace, card_line: str | None,
           email: str = "approver@stadtwerke.example") -> int:
    """``evbill demo --serve``: ``evbill serve`` on the demo's database, with a fresh console
    password for the demo's approver (printed here, once: a demo's sign-in, nothing else's), and
    the first charging point's ad-hoc page, paid through the card sandbox while it runs."""
    import os
    import secrets

    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from api import demo_adhoc, serve
    from api.demo_system import HOST_PORTAL_EMAIL
    from store.console import set_password
    from store.db import make_engine
    from store.models import User
    from store.records import evse_ids

    url = f"sqlite:///{(out / 'evbill-demo.db').resolve()}"
    engine = make_engine(url)
    password, host_password = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
    try:
        with Session(engine) as db:
            user = db.execute(select(User).where(User.email == email)).scalar_one()
            tenant_id = user.tenant_id
            set_password(db, tenant_id, user.id, password)
            host = db.execute(select(User).where(User.tenant_id == tenant_id, User.email == HOST_PORTAL_EMAIL)
                              ).scalar_one_or_none()
            if host is not None:
                set_password(db, tenant_id, host.id, host_password)
            db.commit()
        with engine.connect() as conn:
            evse = next(iter(evse_ids(conn, tenant_id, limit=1)), None)
        # its charger (simulated) connects to the gateway and answers the driver's payment
        identity = demo_adhoc.keep_connected(engine, tenant_id) if evse and args.ocpp_port else None
    finally:
        engine.dispose()
    os.environ["EVBILL_DATABASE_URL"] = url
    _say(f"console: http://127.0.0.1:{args.port}/console  sign in as {email} with password {password}  "
         f"(API reference at /schema/; Ctrl-C stops the server)")
    if evse:
        _say(f"ad-hoc charging: http://127.0.0.1:{args.port}/charge/{evse} (the QR code's page of the first "
             f"charging point{f'; its charger {identity} is simulated and stays connected' if identity else ''})")
    if card_line:
        _say(card_line)
    _say(f"partner portal: the site host signs in at the same address as {HOST_PORTAL_EMAIL} with password "
         f"{host_password} (its site's sessions, statements, credit notes and payouts)")
    return serve.main(argparse.Namespace(host="127.0.0.1", port=args.port, ocpp_host=None,
                                         ocpp_port=args.ocpp_port, no_temporal=False, workers=1))


def _documents_line(docs: list[dict[str, Any]], invoices: int) -> str:
    """What each document is: counted by kind and format, and who gets the e-invoices."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for d in docs:
        groups[(d["kind"], d["format"])].append(d)
    parts = []
    for (kind, fmt), items in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        what = f"{len(items)} {kind.replace('_', ' ')} {FORMAT_LABELS.get(fmt, fmt)}"
        if fmt not in ("pdf", "facturx-pdf"):
            what += " for " + ", ".join(sorted({f"{d['customer'] or '?'} ({d['number']})" for d in items}))
        parts.append(what)
    return (f"{len(docs)} documents for {invoices} invoices rendered and archived, in each customer's formats: "
            + "; ".join(parts))


def _system_month(out: Path, rnd: random.Random, summary: dict[str, Any]) -> int:
    """The real parts end to end: database, operator API, OCPP gateway with simulated chargers."""
    from api import demo_system as sysdemo

    _say("system month: SQLite database, operator API, OCPP gateway")
    run = sysdemo.setup_tenant(out)
    try:
        _say(f"  operator set up tenant 'Stadtwerke Musterstadt': {len(sysdemo.CUSTOMERS)} customers with contracts "
             f"and SEPA mandates, {len(run.chargers)} chargers; analyst drafted public_cpo, approver published it")
        sysdemo.drive_chargers(run, MONTH_START, 14, rnd)
        _say(f"  {len(run.chargers)} chargers (OCPP 1.6J and 2.0.1 over WebSocket) reported {run.transactions} "
             f"transactions; {run.sessions_rated} sessions stored and rated, net {run.net_total} EUR "
             f"(database {out}/evbill-demo.db)")
        system: dict[str, Any] = {"transactions": run.transactions, "sessions_rated": run.sessions_rated,
                                  "sessions_net_eur": run.net_total}
        signed = sum(n for check, n in run.meter_checks.items() if check != "unsigned")
        _say(f"  Eichrecht: {sysdemo.SIGNING_CHARGER}'s meter {sysdemo.SIGNING_METER_SERIAL} reported its public key "
             f"(OCPP DataTransfer) and signed {signed} sessions' begin and end readings (OCMF); "
             f"{run.meter_checks.get('verified', 0)} verified"
             f"{'' if run.meter_checks.get('verified', 0) == signed else ', the rest held for review'}; each invoice's session "
             "statement prints them with a QR code for the S.A.F.E. Transparenzsoftware")
        summary["eichrecht"] = {"signed_sessions": signed, "verified": run.meter_checks.get("verified", 0),
                                "held": signed - run.meter_checks.get("verified", 0)}
        summary["system"] = system
        if run.sessions_rated != run.transactions:
            _say("  ERROR: not every transaction became exactly one rated session")
            return 1
        cut_off = datetime(2026, 12, 1, tzinfo=ZoneInfo("Europe/Berlin"))
        me = sysdemo.month_end(run, out, cut_off)
        system["held"] = []
        for task in me.held:
            why = "; ".join(r.get("message") or r.get("kind", "") for r in task["reasons"])
            who = run.ids["account_names"].get(task["account_id"], task["account_id"])
            system["held"].append({"customer": who, "gross": task["gross_total"], "reasons": why})
            _say(f"  held for finance: {who}, gross {task['gross_total']} EUR ({why}); approved through the API")
        _say(f"  month-end on Temporal (embedded dev server, history {out}/temporal.db): "
             f"{len(me.invoices)} invoices finalized:")
        for inv in me.invoices:
            _say(f"    {inv['number']}  {inv['gross']:>9} EUR  {inv['customer']}"
                 f"{'  (approved by finance)' if inv['decided_by'] else ''}")
        system["invoices"] = [{k: v for k, v in inv.items() if k != "decided_by"}
                              | {"approved": bool(inv["decided_by"])} for inv in me.invoices]
        system["documents"] = me.documents
        # the counts DESIGN.md names for summary.json ("What evbill demo leaves under ./out/")
        summary["invoices_finalized"] = len(me.invoices)
        summary["documents"] = len(me.documents)
        _say(f"  {_documents_line(me.documents, len(me.invoices))}; exported to {out}/documents/")
        from runtime.documents.demo import write_demo_documents

        samples = write_demo_documents(out / "documents" / "e-invoice-samples")
        _say(f"  {len(samples)} e-invoice samples (XRechnung UBL/CII, Peppol, Factur-X, reverse charge, credit notes, "
             f"self-billing for a site host) in {out}/documents/e-invoice-samples/")
        if not me.invoices or not me.held:
            _say("  ERROR: the month-end should finalize invoices and hold at least one for finance")
            return 1
        col = sysdemo.collect_and_reconcile(run, out, me.invoices)
        _say(f"  SEPA direct debit: operator started a collection run, finance approved it: {col.run['items']} items, "
             f"{col.run['total']} EUR, {col.run['pain_version']} in {out}/sepa/{col.files[0]}")
        st = col.statement
        _say(f"  bank statement {out}/bank/{col.statement_file} imported: {st['entries']} entries, {st['matched']} "
             f"matched ({', '.join(f'{k} {v}' for k, v in sorted(st['rules'].items()))}), "
             f"{st['partially_matched']} paid in part or in excess, {st['unmatched']} unmatched, {st['returns']} returned")
        _say(f"    returned: {col.returned['number']} ({col.returned['customer']}), {col.returned['reason']}, "
             f"bank fee {col.returned['fee']} EUR passed on; its item is open again")
        if col.transfer:
            _say(f"    transfer naming {col.transfer['number']} from {col.transfer['customer']}: settled by reference, "
                 f"{col.transfer['overpaid']} EUR paid too much")
        hc = col.host_credit
        if hc:
            _say(f"  site host: {hc['host']}'s statement {hc['statement']} ({hc['sessions']} sessions): 10 % share "
                 f"{hc['share']} EUR, {hc['reimbursed_kwh']} kWh reimbursed at the hour's day-ahead price + 0.02 "
                 f"= {hc['reimbursement']} EUR; self-billing credit note {hc['number']} ({hc['vat_status']}: net "
                 f"{hc['net']} + VAT {hc['tax']} = {hc['gross']} EUR) as PDF and XRechnung in {out}/documents/")
        if col.refund:
            _say(f"  payout run: the {col.refund['amount']} {col.refund['currency']} credit balance of "
                 f"{col.refund['customer']} (refund requested by an operator)"
                 f"{' and the host credit note ' + hc['number'] if hc else ''}, approved by finance: "
                 f"{out}/sepa/{col.refund['file']}")
        _say(f"    a transfer from an unknown IBAN waits for finance (GET /bank-entries?status=unmatched); "
             f"open receivables now {', '.join(f'{v} {k}' for k, v in col.open_after.items()) or 'none'}")
        system["collection"] = {"run": col.run, "items": col.items, "files": col.files, "returned": col.returned,
                                "transfer": col.transfer, "refund": col.refund}
        if hc:
            system["host_credit"] = {**hc, "paid_by": col.refund.get("file", "")}
        system["bank"] = {"file": col.statement_file, **{k: v for k, v in st.items()
                                                          if k not in ("statement_id", "statements")},
                          "open_after": col.open_after}
        summary["collections"] = {"items": col.run["items"], "files": len(col.files)}
        summary["bank"] = {k: st[k] for k in ("entries", "matched", "unmatched", "returns")}
        if col.payout_files:
            summary["payouts"] = {"files": len(col.payout_files), "refunds": col.payout_items.get("refund", 0),
                                  "credit_notes": col.payout_items.get("host_credit", 0)}
        if st["matched"] < col.run["items"] or st["returns"] != 1 or st["unmatched"] != 1:
            _say("  ERROR: the bank statement should match every collected item, one return and leave one unmatched")
            return 1
        dun = sysdemo.dun_unpaid(run, out, col.returned["number"])
        st = {x["stage"]: x for x in dun.stages}
        _say(f"  dunning: {dun.customer} leaves {dun.invoice} unpaid after the return; its DunningWorkflow opened a "
             f"case on {dun.case['started_on']} ({dun.case['policy']} policy) and, on Temporal's time-skipping "
             f"test server (a clock the demo moves on), reached "
             + ", ".join(f"stage {n} on {x['reached_on']} ({x['letter']}, charged {x['charged']})"
                         for n, x in sorted(st.items()))
             + f"; stage 3 was approved by an approver through the API; letters {', '.join(dun.letters)} in "
             f"{out}/dunning/; {dun.blocked_tokens} token blocked: Authorize of {dun.authorize.get('token')} at "
             f"{dun.authorize.get('charger')} over OCPP answered {dun.authorize.get('status')}")
        system["dunning"] = {"customer": dun.customer, "invoice": dun.invoice, **dun.case, "stages": dun.stages,
                             "letters": dun.letters, "authorize": dun.authorize}
        summary["dunning"] = {"cases": 1, "letters": len(dun.letters), "stages": len(dun.stages),
                              "approved": sum(1 for x in dun.stages if x["decided_by"]),
                              "charged": format(sum((Decimal(x["charged"]) for x in dun.stages), Decimal(0)), "f"),
                              "blocked_tokens": dun.blocked_tokens,
                              "authorize_refused": int(dun.authorize.get("status") == "Blocked")}
        if dun.case["stage"] != 3 or len(dun.letters) != 3 or dun.blocked_tokens != 1 \
                or dun.authorize.get("status") != "Blocked":
            _say("  ERROR: the unpaid customer's dunning case should reach stage 3 with three letters, its tokens "
                 "blocked and Authorize refused")
            return 1
        booked = sysdemo.book_and_export(run, out, "2026-12")
        rec = booked.reconciliation["currencies"].get("EUR", {})
        _say(f"  journal (SKR03, personal debtor accounts): {booked.entries} entries, every one balanced; "
             f"receivables {rec.get('receivables')} EUR = open items {rec.get('open_items')} EUR, revenue "
             f"{rec.get('revenue')} EUR, VAT payable {rec.get('vat_payable')} EUR")
        _say(f"  posting batch {booked.batch['number']} ({booked.batch['entries']} entries, sha256 "
             f"{booked.batch['sha256'][:12]}…): DATEV Buchungsstapel and Debitoren, CSV and JSON lines in "
             f"{out}/accounting/")
        system["accounting"] = {"batch": {k: booked.batch[k] for k in ("number", "period", "entries")},
                                "files": booked.files, "reconciliation": booked.reconciliation}
        summary["journal"] = {"entries": booked.entries, "balanced": booked.balanced}
        if not booked.balanced:
            _say("  ERROR: the journal does not balance or does not reconcile with the open items")
            return 1
        clr = sysdemo.clear_roaming(run, out)
        cs, dsp = clr.statement, clr.dispute
        _say(f"  eMSP clearing: {sysdemo.EMSP['name']}'s {cs['month']} statement ({cs['cdrs']} CDRs priced by the "
             f"roaming agreement's tariff, net {cs['net_total']} EUR) as XLSX and OCPI 2.2.1 CDR JSON; its "
             f"ClearingWorkflow's D-7 window on the time-skipping test server: on day 3 the partner's key disputed "
             f"{dsp['cdr']} ({dsp['ours']} -> {dsp['proposed']} EUR), on day 8 finance chose {dsp['resolution']}; "
             f"clearing invoice {cs['invoice_number']} ({'reverse charge, ' if cs['reverse_charge'] else ''}"
             f"net {cs['invoice_net']}, gross {cs['invoice_gross']} EUR) paid by transfer, matched by its number "
             f"(open {clr.paid['open_after']}), {len(clr.journal)} journal entries; files in {out}/clearing/")
        commission_net = sum((Decimal(cm["net"]) for cm in clr.commissions), Decimal(0))
        _say(f"  its commission lines ({', '.join(cm['rule'] for cm in clr.commissions)}): {commission_net} EUR; "
             + "; ".join(f"{cm['kind']} re-taken after the dispute: {cm['stated']} -> {cm['net']} EUR"
                         for cm in clr.commissions if cm.get("stated")))
        system["clearing"] = {**cs, "dispute": dsp, "files": clr.files, "paid": clr.paid, "journal": clr.journal,
                              "commissions": clr.commissions}
        summary["clearing"] = {"statements": 1, "cdrs": cs["cdrs"], "disputes": 1, "invoice": cs["invoice_number"],
                               "files": len(clr.files), "paid": clr.paid["matched"],
                               "journal_entries": len(clr.journal), "commissions": len(clr.commissions),
                               "commission_net": format(commission_net, "f"),
                               "commissions_recomputed": sum(1 for cm in clr.commissions if cm.get("stated"))}
        if clr.paid["open_after"] != "0.00" or not all(e["balanced"] for e in clr.journal) or len(clr.journal) != 2:
            _say("  ERROR: the clearing invoice should be settled by the transfer and booked, balanced")
            return 1
        # after the month's statements and invoices: a charger's offline log arrives late
        system["unassigned"] = sysdemo.unknown_token_session(run, MONTH_START)
        _say(f"  operator imported a charger's offline log late: one November session with an unknown card "
             f"({system['unassigned']['token_uid']}) waits unassigned for review, billed to nobody")
        # issue 18: a charging point reserved for a customer's card, accepted, used and priced
        from api.demo_reservation import reserve_and_charge

        rsv = reserve_and_charge(run, not_for=dun.customer)
        summary["reservations"] = rsv
        _say(f"  reservation: operator reserved {rsv['evse']} for a customer's card through the API, the connected "
             f"charger accepted (ReserveNow); the customer started with it {rsv['reserved_minutes']} minutes later "
             f"and charged {rsv['energy_kwh']} kWh: session net {rsv['session_net']} {rsv['currency']}, of it "
             f"'{rsv['reservation_line']}' {rsv['reservation_net']} {rsv['currency']}")
        if not (rsv["accepted"] and rsv["used"] and rsv["reservation_line"]) or rsv["start_authorized"] != "Accepted":
            _say("  ERROR: the reservation should be accepted, used by the session and priced on it")
            return 1
        from api import demo_console

        why = demo_console.unavailable()
        if why:
            _say(f"  console screenshots skipped: {why}")
        else:
            # one ad-hoc charge end to end, only ever through the local card sandbox (never a real card)
            sandbox = summary.get("card_payments") == "local sandbox"
            charger = (f"ws://127.0.0.1:{run.ids['gateway'].port}/ocpp", run.chargers) if sandbox else None
            shots = demo_console.screenshots(run.engine, run.ids["tenant_id"], out / "console", charger=charger,
                                             receipts=out / "adhoc")
            summary["console"] = {"screenshots": len(shots)}
            _say(f"  console: an approver signed in at /console with headless Chromium; {len(shots)} pages "
                 f"({', '.join(s.removesuffix('.png') for s in shots)}) in {out}/console/")
            if "adhoc.png" in shots:
                summary["adhoc"] = sysdemo.adhoc_summary(run)
                a = summary["adhoc"]
                _say(f"  ad-hoc charge at {a['evse']}: QR page, paid on the card sandbox's Checkout page "
                     f"({a['reserved']} {a['currency']} reserved), RemoteStart to the simulated charger, "
                     f"{a['energy_kwh']} kWh, stopped from the page, {a['captured']} {a['currency']} captured, "
                     f"the rest released; receipt {a['receipt']} in {out}/adhoc/")
    finally:
        sysdemo.close(run)
    return 0
