"""``evbill bank import`` SIGKILLed in the middle of a statement, then run again: every entry is
booked once, exactly as an import that was never interrupted books it.

Three camt.053 files of 1,500 entries against 5,000 open items (payments naming the invoice,
partial payments, payments of one item's exact amount, unknown payers, and in the last file
entries the first one carried already, re-delivered under a new message id). The process is
killed while it is inside a file's transaction, after that transaction has written (the test sees
the database's write lock held by it: SQLite's writer lock, PostgreSQL's row-exclusive lock on
``bank_statement``), first in the second file, then, on the re-run, in the third; the third run
finishes. A reference tenant in the same database imports the same files in one uninterrupted
run; both must end with the same bank entries and the same open amount on every item.
SQLite, and PostgreSQL when ``EVBILL_TEST_POSTGRES_URL`` is set.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.engine import make_url

from runtime.bank.simulate import SimEntry, SimTransaction, statement_xml
from store import bank as BK
from store import receivables as R
from store.db import make_engine, migrate
from tests.pgschema import PG_URL, pg_schema
from tests.workflows.seed import OpenItem, seed_open_items, seed_tenant

ROOT = Path(__file__).resolve().parents[2]
OWN_IBAN = "DE89370400440532013000"
N_ITEMS, N_ACCOUNTS, PER_FILE = 5000, 2000, 1500
PAID_ON = date(2026, 12, 9)


def _iban(n: int) -> str:
    bban = f"50010517{n:010d}"
    return f"DE{98 - int(bban + '131400') % 97:02d}{bban}"


def statements(items: list[OpenItem]) -> list[bytes]:
    """Three statements; each entry but the re-deliveries pays a different item."""
    pool = iter(items)
    files: list[list[SimEntry]] = []
    for f in range(3):
        entries: list[SimEntry] = []
        for k in range(PER_FILE):
            ref = f"F{f}-{k:05d}"
            kind = k % 10
            if f == 2 and kind == 9:  # the first file's entry again, under this file's message id
                entries.append(files[0][k])
                continue
            it = next(pool)
            if kind < 5:
                tx = SimTransaction(it.amount, debtor_iban=_iban(f * PER_FILE + k), remittance=f"Rechnung {it.number}")
            elif kind == 5:
                tx = SimTransaction(it.amount - 1, remittance=f"Teilzahlung {it.number}")
            elif kind in (6, 7):
                tx = SimTransaction(it.amount, debtor_name=f"Payer {f}-{k}", remittance="Strom")
            else:
                tx = SimTransaction(Decimal(5000) + Decimal(f * PER_FILE + k) / 100, debtor_name=f"Unknown {f}-{k}",
                                    remittance="Danke")
            entries.append(SimEntry(tx.amount, True, PAID_ON, ref, [tx]))
        files.append(entries)
    return [statement_xml(message_id=f"MSG-{f}", statement_id=f"STMT-{f}", sequence=f + 1,
                          created=datetime(2026, 12, 10, tzinfo=UTC), account_iban=OWN_IBAN, currency="EUR",
                          opening=Decimal(0), entries=entries) for f, entries in enumerate(files)]


@dataclass
class Db:
    kind: str
    engine: Engine
    url: str  # what the CLI is given as EVBILL_DATABASE_URL
    schema: str | None
    path: Path | None

    def writing(self) -> bool:
        """Whether another connection is inside a transaction that has written to the statements."""
        if self.path is not None:
            con = sqlite3.connect(self.path, timeout=0, isolation_level=None)
            try:
                con.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError:
                return True  # the one writer's lock is held
            finally:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                con.close()
            return False
        with self.engine.connect() as conn:
            return conn.execute(text(
                "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = 'bank_statement' "
                "AND n.nspname = :s AND l.mode = 'RowExclusiveLock' AND l.granted AND l.pid <> pg_backend_pid()"),
                {"s": self.schema}).scalar_one() > 0


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    if request.param == "sqlite":
        path = tmp_path / "evbill.db"
        engine = make_engine(f"sqlite:///{path}")
        migrate(engine)
        yield Db("sqlite", engine, f"sqlite:///{path}", None, path)
        engine.dispose()
        return
    if not PG_URL:
        pytest.skip("EVBILL_TEST_POSTGRES_URL is not set")
    with pg_schema("bankcrash") as (_admin, schema):
        engine = make_engine(PG_URL, schema=schema, pool_size=2, max_overflow=2)
        try:
            migrate(engine)
            url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
            yield Db("postgresql", engine, url.render_as_string(hide_password=False), schema, None)
        finally:
            engine.dispose()


def cli(db: Db, tenant: str, files: list[Path]) -> subprocess.Popen[str]:
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "EVBILL_DATABASE_URL": db.url}
    return subprocess.Popen([sys.executable, "-m", "api.cli", "bank", "import", "--tenant", tenant,
                             *map(str, files)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def imported(db: Db, tenant: str) -> set[str]:
    with db.engine.connect() as conn:
        return set(conn.execute(select(BK.bank_statement.c.statement_id)
                                .where(BK.bank_statement.c.tenant_id == tenant)).scalars())


def kill_inside(db: Db, tenant: str, proc: subprocess.Popen[str], statement: str, after: set[str]) -> None:
    """SIGKILL ``proc`` once the statements ``after`` are committed and it is inside the
    transaction of the next one, ``statement``, and has written there."""
    assert proc.stdout is not None
    for _ in after:  # the CLI answers each file once its transaction is committed
        assert json.loads(proc.stdout.readline())["entries"] == PER_FILE
    assert after <= imported(db, tenant)
    deadline = time.monotonic() + 120
    while not db.writing():
        assert proc.poll() is None and time.monotonic() < deadline, f"{statement}'s transaction never began"
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert statement not in imported(db, tenant)  # its transaction died with the process


def state(db: Db, tenant: str) -> tuple[dict[str, tuple[Any, ...]], dict[str, Decimal], int]:
    """The tenant's bank entries (by identity) and each item's open amount (by number), and how many
    payments were booked; ids left out (they differ between tenants)."""
    with db.engine.connect() as conn:
        entries = {r.key: (r.status, r.rule, r.amount, r.event_id is not None, r.seq) for r in conn.execute(
            select(BK.bank_entry).where(BK.bank_entry.c.tenant_id == tenant))}
        opens = {s.number: s.open for s in R.item_states(conn, tenant)}
        payments = len(conn.execute(select(R.receivable_event.c.key).where(
            R.receivable_event.c.tenant_id == tenant, R.receivable_event.c.kind == "payment")).all())
    return entries, opens, payments


def test_bank_import_sigkilled_mid_statement_books_every_entry_once(db: Db, tmp_path: Path) -> None:
    runs = {}
    for tenant in ("ref", "killed"):
        s = seed_tenant(db.engine, tenant, N_ACCOUNTS)
        runs[tenant] = seed_open_items(db.engine, s, N_ITEMS, due=date(2026, 12, 1))
    files = []
    for n, data in enumerate(statements(runs["ref"])):  # the same numbers and amounts in both tenants
        files.append(tmp_path / f"stmt-{n}.xml")
        files[-1].write_bytes(data)

    ref = cli(db, "ref", files)
    out, err = ref.communicate(timeout=600)
    assert ref.returncode == 0, err
    lines = [json.loads(x) for x in out.splitlines()]
    assert [x["entries"] for x in lines] == [PER_FILE] * 3 and lines[2]["duplicates"] == PER_FILE // 10

    first = cli(db, "killed", files)
    kill_inside(db, "killed", first, "STMT-1", {"STMT-0"})
    second = cli(db, "killed", files)
    kill_inside(db, "killed", second, "STMT-2", {"STMT-0", "STMT-1"})
    assert imported(db, "killed") == {"STMT-0", "STMT-1"}
    last = cli(db, "killed", files)
    out, err = last.communicate(timeout=600)
    assert last.returncode == 0, err
    again = [json.loads(x) for x in out.splitlines()]
    # the files that were committed are recognised whole; the one killed in every run is imported now
    assert [(x["entries"], x["duplicates"]) for x in again[:2]] == [(PER_FILE, PER_FILE)] * 2
    assert {k: again[2][k] for k in ("entries", "matched", "partially_matched", "unmatched", "duplicates")} == {
        k: lines[2][k] for k in ("entries", "matched", "partially_matched", "unmatched", "duplicates")}

    want, got = state(db, "ref"), state(db, "killed")
    assert len(got[0]) == 3 * PER_FILE - PER_FILE // 10  # every entry stored once (re-deliveries are not new)
    assert got[0] == want[0]  # each entry with the same status, rule and booking
    assert got[1] == want[1]  # every item's open amount as after the uninterrupted import
    assert got[2] == want[2] == sum(1 for v in got[0].values() if v[3])  # one payment per booked entry
