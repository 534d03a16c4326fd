"""The fast path of `evbill ocpi price` compiled by mypyc prints what the plain module prints.

``dsl.native`` compiles ``dsl/ocpi_fast.py``; these tests compile it afresh (into a temporary folder,
under another module name, so the build ``make install`` left is not touched) and price the same
lines with both: ordinary CDRs of the benchmark's kind, the odd ones the exact path must take, and
random ones. They also check that ``dsl.ocpi`` takes the compiled module only when it was built
from the source as it is now, and that ``EVBILL_OCPI_NATIVE=0`` keeps the plain one.
"""

from __future__ import annotations

import json
import random
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import dsl
from dsl import native, ocpi_fast
from dsl import ocpi as O
from runtime.rating import RatingContext

from .test_ocpi_price_file import ODD, RULESET, cdr

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[types.ModuleType]:
    import importlib

    folder = tmp_path_factory.mktemp("native") / "dsl"
    built = native.build(folder, "_ocpi_fast_t")
    assert {p.name.split(".")[0] for p in built} == {"_ocpi_fast_t", "_ocpi_fast_t__mypyc"}
    dsl.__path__.append(str(folder))
    try:
        mod = importlib.import_module("dsl._ocpi_fast_t")
        yield mod
    finally:
        dsl.__path__.remove(str(folder))
        for name in ("dsl._ocpi_fast_t", "dsl._ocpi_fast_t__mypyc"):
            sys.modules.pop(name, None)


def _pricer(module: Any, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], tuple[str, bool]]:
    """The command's per-line function (the fast path and the exact path behind it) with ``module``
    as the fast path."""
    monkeypatch.setattr(O, "_FAST_MODULE", [module])
    monkeypatch.setattr(O, "_FAST", [])
    ctx = RatingContext(tz="UTC")
    fast = O._fast_pricer(RULESET, ctx)
    assert fast is not None

    def price(line: str) -> tuple[str, bool]:
        try:
            return fast(line), False
        except O._FAST_ERRORS as exc:
            return type(exc).__name__, True
    return price


def _lines() -> list[str]:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import ocpi_price
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    rnd = random.Random(11)
    lines = [json.dumps(ocpi_price.make_cdr(rnd, i), separators=(",", ":")) for i in range(400)]
    lines += ODD + [json.dumps(cdr(id=f"x{i}", cdr_location=None)) for i in range(3)]
    return lines


def test_the_compiled_module_is_compiled_from_this_source(compiled: types.ModuleType) -> None:
    assert compiled.__file__ is not None and not compiled.__file__.endswith(".py")
    assert native.source_sha256() == compiled.SOURCE_SHA256
    assert compiled.hours_text(1_800_000) == ocpi_fast.hours_text(1_800_000) == "0.5000"


def test_compiled_and_plain_price_every_line_alike(compiled: types.ModuleType,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    lines = _lines()
    plain = [_pricer(ocpi_fast, monkeypatch)(x) for x in lines]
    native_out = [_pricer(compiled, monkeypatch)(x) for x in lines]
    assert native_out == plain
    assert sum(bad for _t, bad in plain) >= 5 and sum(not bad for _t, bad in plain) >= 400  # both outcomes seen


def test_the_command_takes_the_compiled_module_only_when_current(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    current = types.ModuleType("dsl._ocpi_fast_c")
    current.SOURCE_SHA256 = native.source_sha256()  # type: ignore[attr-defined]
    stale = types.ModuleType("dsl._ocpi_fast_c")
    stale.SOURCE_SHA256 = "0" * 64  # type: ignore[attr-defined]
    real_import = importlib.import_module
    for fake, env, want in ((current, "", current), (current, "0", ocpi_fast), (stale, "", ocpi_fast),
                            (None, "", ocpi_fast)):
        def fake_import(name: str, package: str | None = None, fake: Any = fake) -> Any:
            if name == "dsl._ocpi_fast_c":
                if fake is None:
                    raise ImportError(name)
                return fake
            return real_import(name, package)
        monkeypatch.setattr(importlib, "import_module", fake_import)
        monkeypatch.setenv("EVBILL_OCPI_NATIVE", env)
        monkeypatch.setattr(O, "_FAST_MODULE", [])
        assert O._fast_module() is want


def _iso_ms(text: str) -> int:
    """What the path behind ``utc_ms`` makes of a 20-character Z timestamp: fromisoformat's instant
    in whole seconds; -1 where fromisoformat refuses it."""
    from datetime import datetime

    try:
        return int(datetime.fromisoformat(text).timestamp()) * 1000
    except ValueError:
        return -1


def test_timestamps_by_arithmetic_are_fromisoformats(compiled: types.ModuleType) -> None:
    """``utc_ms`` (plain and compiled) gives fromisoformat's instant for every timestamp it reads and
    -1 (the lookups and fromisoformat behind it decide) for the rest: real instants from 1970 to
    9999, leap days, and strings one character off (a month 13, 30 February, 24:00, a letter)."""
    from datetime import UTC, datetime

    rnd = random.Random(20261207)
    texts = ["1970-01-01T00:00:00Z", "2000-02-29T23:59:59Z", "2100-02-29T00:00:00Z", "2024-02-29T12:00:00Z",
             "2023-02-29T12:00:00Z", "1969-12-31T23:59:59Z", "9999-12-31T23:59:59Z", "2026-04-31T00:00:00Z",
             "2026-07-22T24:00:00Z", "2026-07-22T17:60:00Z", "2026-07-22 17:14:33Z", "2026-07-22T17:14:33z"]
    for _ in range(20_000):
        texts.append(datetime.fromtimestamp(rnd.randrange(0, 253_402_300_800), UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    for _ in range(20_000):
        t = list(rnd.choice(texts[12:]))
        t[rnd.randrange(20)] = rnd.choice("0123456789-:TZ x\u0663")
        texts.append("".join(t))
    read = 0
    for text in texts:
        want = _iso_ms(text)
        for module in (ocpi_fast, compiled):
            got = module.utc_ms(text)
            assert got == -1 or got == want, (module.__name__, text, got, want)
            common = text.isascii() and text[4] + text[7] + text[10] + text[13] + text[16] == "--T::"
            if want >= 0 and common:  # the common shape is read, not left
                assert got == want, (module.__name__, text)
        read += want >= 0
    assert read > 20_000
