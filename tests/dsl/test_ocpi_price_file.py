"""`evbill ocpi price --cdrs`: the fast path for CDR files prints exactly what the exact path prints.

Each line of a CDR file is decoded by msgspec into typed structs and priced by ``_fast_session``;
anything unusual goes down the exact path (``load_json``, ``cdr_to_session``, ``price_cdr``). These
tests hold the two to the same bytes, line by line, for ordinary CDRs and for the odd ones (numbers
as strings, negative zero, exponents, ids that are numbers, broken JSON, invalid fields), and check
that worker processes print the same file in the same order.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.cli import main as cli_main
from dsl import ocpi as O
from dsl.compiler import compile_ruleset
from dsl.ocpi_fast import hours_text
from runtime.rating import RatingContext

ROOT = Path(__file__).resolve().parents[2]
TARIFF = ROOT.parent / "shared" / "conformance" / "ocpi" / "spec-2.2.1" / "examples" / "tariff_4_complex.json"
# the spec's complex tariff, inline so these tests run without the shared data
COMPLEX = {
    "country_code": "DE", "party_id": "ALL", "id": "14", "currency": "EUR", "elements": [
        {"price_components": [{"type": "FLAT", "price": 2.50, "vat": 15.0, "step_size": 1}]},
        {"price_components": [{"type": "TIME", "price": 1.00, "vat": 20.0, "step_size": 900}],
         "restrictions": {"max_current": 32.00}},
        {"price_components": [{"type": "TIME", "price": 2.00, "vat": 20.0, "step_size": 600}],
         "restrictions": {"min_current": 32.00, "day_of_week": ["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY",
                                                                  "FRIDAY"]}},
        {"price_components": [{"type": "ENERGY", "price": 0.25, "vat": 10.0, "step_size": 100}],
         "restrictions": {"max_power": 22}},
        {"price_components": [{"type": "PARKING_TIME", "price": 5.00, "vat": 10.0, "step_size": 300}],
         "restrictions": {"start_time": "09:00", "end_time": "18:00"}},
    ], "last_updated": "2015-06-29T20:39:09Z"}
RULESET = compile_ruleset(O.import_tariff(O.load_json(json.dumps(COMPLEX))), "complex").ruleset
assert RULESET is not None


def exact(line: str, i: int = 0, tz: str = "UTC", expired: bool = False) -> tuple[str, bool]:
    """What the command printed for a line before the fast path existed."""
    try:
        cdr: Any = O.load_json(line)
    except json.JSONDecodeError as exc:
        cdr = O.OcpiError(f"not valid JSON: {exc.msg} (column {exc.colno})")
    return O._price_one(RULESET, f"f:{i + 1}", cdr, f"cdr-{i + 1}", tz, expired)


def fast(line: str, i: int = 0, tz: str = "UTC", expired: bool = False) -> tuple[str, bool]:
    ctx = RatingContext(tz=tz, reservation="RESERVATION_EXPIRES" if expired else None)
    return O._price_line(RULESET, ctx, line, f"f:{i + 1}", f"cdr-{i + 1}", tz, expired)


def cdr(**over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": "C1", "start_date_time": "2026-03-02T08:30:00Z", "end_date_time": "2026-03-02T12:00:00Z",
        "currency": "EUR", "cdr_location": {"country": "DE", "evse_id": "DE*ALL*E1", "connector_power_type": "AC"},
        "charging_periods": [
            {"start_date_time": "2026-03-02T08:30:00Z", "dimensions": [
                {"type": "ENERGY", "volume": 10.5}, {"type": "TIME", "volume": 1.5},
                {"type": "MAX_CURRENT", "volume": 32}, {"type": "MAX_POWER", "volume": 22.08}]},
            {"start_date_time": "2026-03-02T10:00:00Z", "dimensions": [{"type": "PARKING_TIME", "volume": 2}]},
        ]}
    doc.update(over)
    return doc


ODD = [
    json.dumps(cdr()),
    json.dumps(cdr(id=17)),  # a number as id: str() of what load_json made of it
    json.dumps(cdr(id=1.50)),
    json.dumps(cdr(id="")),
    json.dumps(cdr(cdr_location="DE")),
    json.dumps(cdr(cdr_location={"country": 49})),
    json.dumps(cdr(cdr_location={"country": "DE", "connector_power_type": "DC"})),
    json.dumps(cdr()).replace("10.5", '"10.5"'),  # a volume as a string: refused
    json.dumps(cdr()).replace("10.5", "-0").replace("22.08", "-0.0"),
    json.dumps(cdr()).replace("10.5", "1.05E1").replace('"volume": 2}', '"volume": 2e0}'),
    json.dumps(cdr()).replace("10.5", "10.500000000000000000000000001"),
    json.dumps(cdr()).replace("10.5", "-1"),
    json.dumps(cdr()).replace("10.5", "NaN"),
    json.dumps(cdr()).replace("10.5", "null"),
    json.dumps(cdr()).replace('"ENERGY"', '"ENERGIE"'),
    json.dumps(cdr()).replace('"MAX_POWER"', '"ENERGY"'),  # ENERGY twice in one period
    json.dumps(cdr()).replace('"MAX_POWER"', '"STATE_OF_CHARGE"'),
    json.dumps(cdr(start_date_time="2026-03-02T13:00:00Z")),  # ends before it starts
    json.dumps(cdr(start_date_time="2026-03-02T09:30:00+01:00")),
    json.dumps(cdr(start_date_time="2026-03-02t08:30:00z")),
    json.dumps(cdr(start_date_time="2026-02-30T08:30:00Z")),
    json.dumps(cdr(end_date_time="2026-03-02T12:00:00")),  # no offset
    json.dumps(cdr(charging_periods=[])),
    # an invalid date in a period's start (fromisoformat's ValueError: the exact path says what is wrong)
    json.dumps(cdr()).replace('"2026-03-02T10:00:00Z"', '"2026-02-30T10:00:00Z"'),
    json.dumps(cdr(end_date_time="2026-03-02T24:00:00Z")),
    json.dumps(cdr(charging_periods=list(reversed(cdr()["charging_periods"])))),
    json.dumps(cdr(charging_periods=[{"start_date_time": "2026-03-02T08:30:00Z", "dimensions": [
        {"type": "RESERVATION_TIME", "volume": 0.5}]}])),
    '{"id": "X", "start_date_time": "2026-03-02T08:30:00Z"',  # broken JSON
    '["not", "a", "cdr"]',
    '{"id": "\\ud800", "start_date_time": "2026-03-02T08:30:00Z", "end_date_time": "2026-03-02T09:00:00Z", '
    '"charging_periods": [{"start_date_time": "2026-03-02T08:30:00Z", "dimensions": []}]}',
    json.dumps(cdr(id="Zoë \u2603")),  # escaped on output as json.dumps does
    json.dumps(cdr(), indent=1).replace("\n", " "),
]


@pytest.mark.parametrize("i", range(len(ODD)))
def test_fast_path_prints_what_the_exact_path_prints(i: int) -> None:
    line = ODD[i]
    for tz, expired in (("UTC", False), ("Europe/Berlin", True)):
        assert fast(line, i, tz, expired) == exact(line, i, tz, expired)


def test_the_odd_lines_do_reach_both_outcomes() -> None:
    outcomes = [fast(line, i)[1] for i, line in enumerate(ODD)]
    assert any(outcomes) and not all(outcomes)  # some price, some fail


def test_total_time_in_integers_is_the_decimal_total_time() -> None:
    from decimal import Decimal

    def decimal_text(ms: int) -> str:  # what the exact path prints: _fmt(max(ZERO, _hours))
        return O._fmt(max(O._ZERO, Decimal(ms * 1000) / Decimal(3_600_000_000)))

    spans = [*range(-3000, 4_000_000, 1000), *(h * 3_600_000 + d for h in (0, 1, 7, 10**6) for d in
                                             (-1000, 0, 179_000, 180_000, 181_000, 359_000, 360_000, 18_000))]
    import random

    rnd = random.Random(5)
    spans += [rnd.randrange(0, 10**13) * 1000 for _ in range(20_000)]
    for ms in spans:
        assert hours_text(ms) == decimal_text(ms), ms


@settings(max_examples=300, deadline=None)
@given(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1)),
       st.sampled_from([None, "60", "7Z", "+1", "1_", " 1", "\u0661\u0662"]), st.integers(0, 2))
def test_timestamps_read_by_utc_ms_are_fromisoformat(when: Any, odd: str | None, where: int) -> None:
    text = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    if odd is not None:  # two characters of the hour, the minutes or the seconds replaced
        at = (11, 14, 17)[where]
        text = text[:at] + odd[:2].ljust(2, "0") + text[at + 2:]
    try:
        want: Any = O._epoch_ms(text)
    except O._Slow:
        want = "slow"
    except ValueError:
        want = "invalid"
    try:
        got: Any = O._fast_module().ms_of(text, O._epoch_ms)
    except O._Slow:
        got = "slow"
    except ValueError:
        got = "invalid"
    assert got == want or (want == "slow" and got == "invalid")  # both leave the line to the exact path


volumes = st.one_of(st.integers(0, 10**6), st.decimals(min_value=0, max_value=10**4, places=6),
                    st.floats(min_value=0, max_value=1e4, allow_nan=False))


def _number(v: Any) -> str:
    """A volume as JSON text: Decimals and ints as written, floats by repr, strings quoted."""
    return json.dumps(v) if isinstance(v, str) else repr(v) if isinstance(v, float) else str(v)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 7200), st.sampled_from(["charge", "park"]), volumes, volumes,
                          st.sampled_from([10, 16, 32, 63, 32.0, "32"])), min_size=1, max_size=6),
       st.integers(0, 400 * 86400))
def test_generated_cdrs_fast_equals_exact(periods: list[tuple[int, str, Any, Any, Any]], offset: int) -> None:
    from datetime import UTC, datetime, timedelta

    t = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=offset)
    raw = []
    start = t
    for secs, kind, v1, v2, amps in periods:
        dims = ([("ENERGY", v1), ("TIME", v2), ("MAX_CURRENT", amps)] if kind == "charge" else [("PARKING_TIME", v1)])
        text = ", ".join(f'{{"type": "{k}", "volume": {_number(v)}}}' for k, v in dims)
        raw.append(f'{{"start_date_time": "{t.strftime("%Y-%m-%dT%H:%M:%SZ")}", "dimensions": [{text}]}}')
        t += timedelta(seconds=secs)
    doc = cdr(start_date_time=start.strftime("%Y-%m-%dT%H:%M:%SZ"), end_date_time=t.strftime("%Y-%m-%dT%H:%M:%SZ"),
              charging_periods="PERIODS")
    line = json.dumps(doc).replace('"PERIODS"', "[" + ", ".join(raw) + "]")
    assert fast(line) == exact(line)


def test_workers_print_the_file_in_input_order(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    tariff = tmp_path / "tariff.json"
    tariff.write_text(json.dumps(COMPLEX))
    lines = []
    for n in range(2500):  # several chunks per worker
        lines.append(json.dumps(cdr(id=f"C{n}", start_date_time=f"2026-03-{1 + n % 28:02d}T08:30:00Z",
                                    end_date_time=f"2026-03-{1 + n % 28:02d}T12:00:00Z")).replace(
            '"2026-03-02T08:30:00Z"', f'"2026-03-{1 + n % 28:02d}T08:30:00Z"').replace(
            '"2026-03-02T10:00:00Z"', f'"2026-03-{1 + n % 28:02d}T10:00:00Z"'))
        if n % 500 == 7:
            lines += ["", "{broken", json.dumps(cdr(id=f"bad{n}", charging_periods=[]))]
    cdrs = tmp_path / "cdrs.jsonl"
    cdrs.write_text("\n".join(lines) + "\n")
    outs = {}
    for workers in ("1", "2", "3"):
        monkeypatch.setenv("EVBILL_OCPI_WORKERS", workers)
        rc = cli_main(["ocpi", "price", "--tariff", str(tariff), "--cdrs", str(cdrs)])
        outs[workers] = (rc, capsys.readouterr().out)
    assert outs["1"] == outs["2"] == outs["3"]
    rc, text = outs["1"]
    assert rc == 1  # the broken lines fail, the others are priced
    printed = text.splitlines()
    assert len(printed) == len([x for x in lines if x.strip()])
    assert [json.loads(x).get("id") for x in printed[:3]] == ["C0", "C1", "C2"]
    assert json.loads(printed[8])["cdr"] == f"{cdrs}:10" and "not valid JSON" in json.loads(printed[8])["error"]


@pytest.mark.skipif(not TARIFF.exists(), reason="the shared OCPI examples are absent")
def test_benchmark_cdrs_fast_equals_exact() -> None:
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import random

    import ocpi_price

    rs = compile_ruleset(O.import_tariff(O.load_json(TARIFF.read_text())), "t").ruleset
    assert rs is not None
    rnd = random.Random(5)
    ctx = RatingContext(tz="UTC")
    for i in range(300):
        line = json.dumps(ocpi_price.make_cdr(rnd, i), separators=(",", ":"))
        assert O._price_line(rs, ctx, line, "l", "d", "UTC", False) == \
            O._price_one(rs, "l", O.load_json(line), "d", "UTC", False)


def test_ordinary_cdrs_take_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_exact_path(text: str) -> Any:
        raise AssertionError("the exact path was taken")

    monkeypatch.setattr(O, "load_json", no_exact_path)
    for line in (ODD[0], ODD[3], ODD[6], ODD[9]):
        assert fast(line)[1] is False
    with pytest.raises(AssertionError, match="exact path"):
        fast(ODD[7])  # a volume given as a string is the exact path's to refuse


def test_an_ascii_file_is_mapped_not_read(tmp_path: Path) -> None:
    """``_read_cdrs`` maps a regular ASCII file (its bytes, not copied); an empty file (which cannot be
    mapped) and a pipe are read as before; the ASCII check goes window by window."""
    import mmap
    import os
    import threading

    path = tmp_path / "c.jsonl"
    path.write_bytes(b'{"a": 1}\n{"b": 2}\n')
    data = O._read_cdrs(str(path))
    assert isinstance(data, mmap.mmap) and data[:] == path.read_bytes()
    assert O._parts(data, 2) == O._parts(path.read_bytes(), 2)
    assert O._lines_up_to(data, 10, 4) == 3
    (tmp_path / "empty.jsonl").write_bytes(b"")
    assert O._read_cdrs(str(tmp_path / "empty.jsonl")) == b""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(b'{"a": 1}\n'))
    writer.start()
    assert O._read_cdrs(str(fifo)) == b'{"a": 1}\n'
    writer.join()
    (tmp_path / "u.jsonl").write_bytes(b"x" * 9 + "\u00e9".encode())
    with open(tmp_path / "u.jsonl", "rb") as f:
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    assert not O._ascii(mapped, 4) and O._ascii(mapped[:9], 4) and isinstance(O._read_cdrs(str(tmp_path / "u.jsonl")), str)


def test_an_ascii_file_read_as_bytes_prints_what_its_text_prints(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A file all ASCII is priced from its bytes (``_read_cdrs``); one with carriage returns or other
    characters from its text, as before: each prints what pricing its decoded text prints."""
    tariff = tmp_path / "tariff.json"
    tariff.write_text(json.dumps(COMPLEX))
    lines = [json.dumps(cdr(id=f"C{n}")) for n in range(30)] + ["", "{broken"]
    files = {"lf": "\n".join(lines) + "\n", "crlf": "\r\n".join(lines) + "\r\n", "cr": "\r".join(lines),
             "utf8": "\n".join(lines).replace('"C7"', '"C\u00e9"') + "\n"}
    outs = {}
    for name, content in files.items():
        path = tmp_path / f"{name}.jsonl"
        path.write_bytes(content.encode("utf-8"))
        assert (not isinstance(O._read_cdrs(str(path)), str)) == (name == "lf")
        for workers in ("1", "2"):
            monkeypatch.setenv("EVBILL_OCPI_WORKERS", workers)
            rc = cli_main(["ocpi", "price", "--tariff", str(tariff), "--cdrs", str(path)])
            got = capsys.readouterr().out
            monkeypatch.setattr(O, "_read_cdrs", O._read)  # the text as read before: what it must print
            assert (rc, got) == (cli_main(["ocpi", "price", "--tariff", str(tariff), "--cdrs", str(path)]),
                                 capsys.readouterr().out)
            monkeypatch.undo()
        outs[name] = got.replace(f"{name}.jsonl", "F")
    assert outs["lf"] == outs["crlf"] == outs["cr"] != outs["utf8"]
    assert '"id": "C\\u00e9"' in outs["utf8"]
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"id": "\xff"}\n')
    assert cli_main(["ocpi", "price", "--tariff", str(tariff), "--cdrs", str(bad)]) == 1
    assert "not UTF-8 text" in capsys.readouterr().err
    assert cli_main(["ocpi", "price", "--tariff", str(tariff), "--cdrs", str(tmp_path / "none.jsonl")]) == 1
    assert "no such file" in capsys.readouterr().err


def _mixed_file(tmp_path: Path) -> tuple[Path, Path]:
    """A tariff and a CDR file of 2,600 lines: ordinary CDRs with blank, broken and unpriceable lines
    between them (the exact path's, printed by the parent between the workers' spooled runs)."""
    tariff = tmp_path / "tariff.json"
    tariff.write_text(json.dumps(COMPLEX))
    lines = []
    for n in range(2500):
        lines.append(json.dumps(cdr(id=f"C{n}", start_date_time=f"2026-03-{1 + n % 28:02d}T08:30:00Z",
                                    end_date_time=f"2026-03-{1 + n % 28:02d}T12:00:00Z")).replace(
            '"2026-03-02T08:30:00Z"', f'"2026-03-{1 + n % 28:02d}T08:30:00Z"').replace(
            '"2026-03-02T10:00:00Z"', f'"2026-03-{1 + n % 28:02d}T10:00:00Z"'))
        if n % 300 == 7:
            lines += ["", "{broken", json.dumps(cdr(id=f"bad{n}", charging_periods=[])), ODD[2]]
    cdrs = tmp_path / "cdrs.jsonl"
    cdrs.write_text("\n".join(lines) + "\n")
    return tariff, cdrs


def test_spooled_workers_print_what_one_process_prints(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Standard output a file descriptor: workers spool their text and the parent copies it out
    (``_copy_out``: sendfile, or reads and writes for an append-only file); the bytes are what one
    process printing through ``sys.stdout`` prints, and no spool directory is left behind."""
    import glob
    import io
    import sys
    import tempfile

    tariff, cdrs = _mixed_file(tmp_path)
    argv = ["ocpi", "price", "--tariff", str(tariff), "--cdrs", str(cdrs)]
    monkeypatch.setenv("EVBILL_OCPI_WORKERS", "1")
    want = (cli_main(argv), capsys.readouterr().out.encode())
    assert want[0] == 1 and want[1].count(b"\n") == 2500 + 9 * 3
    copies: list[int] = []
    real_copy = O._copy_out
    monkeypatch.setattr(O, "_copy_out", lambda *a: copies.append(a[2]) or real_copy(*a))
    spool_dir = O._spool_dir(0) or tempfile.gettempdir()
    spools = set(glob.glob(f"{spool_dir}/evbill-ocpi-*"))
    for workers in ("2", "3"):
        for mode in ("w", "a"):
            out = tmp_path / f"out-{workers}-{mode}"
            if mode == "a":
                out.write_bytes(b"before\n")
            monkeypatch.setenv("EVBILL_OCPI_WORKERS", workers)
            copies.clear()
            with open(out, mode + "b") as raw:
                text = io.TextIOWrapper(raw, encoding="utf-8", write_through=False)
                monkeypatch.setattr(sys, "stdout", text)
                rc = cli_main(argv)
                text.flush()
                monkeypatch.undo()
                monkeypatch.setattr(O, "_copy_out", lambda *a: copies.append(a[2]) or real_copy(*a))
            assert (rc, out.read_bytes()) == (want[0], (b"before\n" if mode == "a" else b"") + want[1])
            assert len(copies) > 9 and sum(copies) < len(want[1])  # spooled runs between the exact path's lines
    assert set(glob.glob(f"{spool_dir}/evbill-ocpi-*")) == spools


def test_spooled_output_through_a_pipe(tmp_path: Path) -> None:
    """The command as a process writing into a pipe (sendfile onto a pipe) prints what it prints into
    a file with one process."""
    import os
    import subprocess
    import sys

    tariff, cdrs = _mixed_file(tmp_path)
    cmd = [sys.executable, "-c", "import sys; from api.cli import main; sys.exit(main())",
           "ocpi", "price", "--tariff", str(tariff), "--cdrs", str(cdrs)]
    env = dict(os.environ, PYTHONPATH=str(ROOT), EVBILL_OCPI_WORKERS="1")
    one = subprocess.run(cmd, env=env, capture_output=True, cwd=ROOT, timeout=300)
    two = subprocess.run(cmd, env=dict(env, EVBILL_OCPI_WORKERS="2"), capture_output=True, cwd=ROOT, timeout=300)
    assert one.returncode == two.returncode == 1
    assert one.stdout == two.stdout and one.stdout.count(b"\n") == 2527


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab\n\r", max_size=60), st.integers(1, 30), st.integers(1, 8), st.booleans())
def test_lines_counted_as_far_as_needed(text: str, cap: int, window: int, as_bytes: bool) -> None:
    """``_workers`` is told the number of lines (a count of newlines plus one) or ``cap``, whichever is
    fewer, counted window by window."""
    data: str | bytes = text.encode() if as_bytes else text
    assert O._lines_up_to(data, cap, window) == min(cap, text.count("\n") + 1)


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="ab \n\x0b\x0c\x1c\x1d\x1e", max_size=40))
def test_lines_of_an_ascii_part_are_its_splitlines(text: str) -> None:
    """A worker splits a part of an ASCII file (bytes, no carriage return) into the lines its text's
    splitlines() gives, the rarer line breaks included."""
    assert O._lines(text.encode("ascii")) == text.splitlines()
    assert O._lines(text) == text.splitlines()


def test_a_full_spool_sends_the_text_back(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker whose spool file system is full (every other write to its spool fails, ENOSPC) hands
    those runs back as text, which the parent prints between the copied ones: the same bytes."""
    import errno
    import io
    import os
    import sys

    tariff, cdrs = _mixed_file(tmp_path)
    argv = ["ocpi", "price", "--tariff", str(tariff), "--cdrs", str(cdrs)]
    monkeypatch.setenv("EVBILL_OCPI_WORKERS", "1")
    want = (cli_main(argv), capsys.readouterr().out.encode())
    real_write = os.write
    calls = [0]

    def full(fd: int, data: Any) -> int:
        if O._SPOOL_FILE and fd == O._SPOOL_FILE[0]:
            calls[0] += 1
            if calls[0] % 2:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full)  # inherited by the forked workers
    copies: list[int] = []
    real_copy = O._copy_out
    monkeypatch.setattr(O, "_copy_out", lambda *a: copies.append(a[2]) or real_copy(*a))
    monkeypatch.setenv("EVBILL_OCPI_WORKERS", "2")
    out = tmp_path / "out"
    with open(out, "wb") as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8")
        monkeypatch.setattr(sys, "stdout", text)
        rc = cli_main(argv)
        text.flush()
        monkeypatch.setattr(sys, "stdout", sys.__stdout__)
    assert (rc, out.read_bytes()) == want
    assert 0 < sum(copies) < len(want[1]) - 1000  # some runs copied from the spool, others sent back as text
