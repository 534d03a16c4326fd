"""``api.shared``: the state file the API processes of one server map together (auth generation,
rate buckets), and the PostgreSQL listener that carries auth changes between servers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from api.shared import (
    SharedState,
    listen_for_auth_changes,
    new_file_path,
    notify_auth_change,
    remove_stale_files,
)
from tests.store.conftest import PG_URL, fresh_engine


def test_two_mappings_of_one_file_see_each_others_writes(tmp_path: Path) -> None:
    a = SharedState.create(str(tmp_path / "shm"))
    b = SharedState.attach(str(tmp_path / "shm"))
    assert a.auth_generation() == b.auth_generation() == 0
    assert a.bump_auth_generation() == 1 and b.auth_generation() == 1
    # one bucket for both: burst 3 in all, whoever takes
    assert [s.take("key_1", 1.0, 3, now=50.0) for s in (a, b, a)] == [0, 0, 0]
    assert b.take("key_1", 1.0, 3, now=50.0) == pytest.approx(1.0)
    assert a.take("key_2", 1.0, 3, now=50.0) == 0
    a.close()
    b.close()


def test_a_file_of_another_kind_is_refused(tmp_path: Path) -> None:
    (tmp_path / "other").write_bytes(b"\0" * 4096)
    with pytest.raises(ValueError, match="not an evbill shared state file"):
        SharedState.attach(str(tmp_path / "other"))


def test_a_full_probe_window_reuses_the_stalest_bucket() -> None:
    s = SharedState.anonymous(slots=4)  # every key probes the same 4 slots
    for i in range(4):
        assert s.take(f"k{i}", 0.001, 1, now=100.0 + i) == 0
    assert s.take("k0", 0.001, 1, now=104.0) > 0  # still empty, still found
    assert s.take("k9", 0.001, 1, now=105.0) == 0  # a fifth key: the stalest slot (k1) makes room
    assert s.take("k9", 0.001, 1, now=105.0) > 0


def test_a_full_bucket_is_as_good_as_a_free_slot() -> None:
    s = SharedState.anonymous(slots=2)
    assert s.take("a", 10.0, 2, now=0.0) == 0
    assert s.take("b", 10.0, 2, now=0.0) == 0
    assert s.take("c", 10.0, 2, now=5.0) == 0  # a's and b's buckets have long refilled


@pytest.mark.skipif(not PG_URL, reason="LISTEN/NOTIFY is PostgreSQL's (set EVBILL_TEST_POSTGRES_URL)")
def test_auth_changes_travel_between_servers_by_notify(tmp_path: Path) -> None:
    engine, cleanup = fresh_engine("postgresql", tmp_path, migrated=False)
    here, there = SharedState.anonymous(), SharedState.anonymous()
    stops = [listen_for_auth_changes(engine, s, poll_s=0.2) for s in (here, there)]
    try:
        deadline = time.monotonic() + 10
        while min(here.auth_generation(), there.auth_generation()) < 1:  # each flushes once on connecting
            assert time.monotonic() < deadline
            time.sleep(0.02)
        before = there.auth_generation()
        with Session(engine) as db:
            notify_auth_change(db)
            time.sleep(0.3)
            assert there.auth_generation() == before  # nothing before the commit
            db.commit()
        while there.auth_generation() == before:
            assert time.monotonic() < deadline, "no notification arrived"
            time.sleep(0.01)
    finally:
        for stop in stops:
            stop()
        cleanup()  # type: ignore[operator]


def test_files_of_killed_servers_are_removed_at_the_next_start(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    dead_pid = int(dead.stdout)  # that process has exited: its pid names no server
    left = tmp_path / f"evbill-api-{dead_pid}-0a1b2c3d"
    mine = Path(new_file_path(str(tmp_path)))
    other = tmp_path / "evbill-api-notes.txt"
    for f in (left, mine, other):
        f.write_bytes(b"x")
    assert mine.name.startswith(f"evbill-api-{os.getpid()}-")
    assert remove_stale_files(str(tmp_path)) == [str(left)]
    assert not left.exists() and mine.exists() and other.exists()
