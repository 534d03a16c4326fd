"""Clean parses kept on disk (``dsl.parsed``): a second process compiling the same text reads the
tree back, equal to a fresh parse, without importing Lark; only clean parses are kept; a folder or
entry someone else could have written is never read; a changed parser never reads an old tree."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import dsl.parser
from dsl import parsed
from dsl.compiler import _compile
from dsl.ocpi import _tariff_of, import_tariff, load_json
from dsl.parser import parse
from tests.dsl import test_ocpi_conformance as conf

ROOT = Path(__file__).resolve().parents[2]
RULESETS = sorted((ROOT / "rulesets").glob("*/*.evb"))


def _texts() -> list[tuple[str, str]]:
    out = [(p.name, p.read_text(encoding="utf-8")) for p in RULESETS]
    seen: set[Path] = set()
    for case in conf.CASES:  # every tariff of the OCPI conformance cases, imported
        if case.tariff in seen:
            continue
        seen.add(case.tariff)
        doc = load_json(case.tariff.read_text(encoding="utf-8"))
        out.append((case.id, import_tariff(_tariff_of(doc, str(case.tariff)))))
    return out


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("EVBILL_CACHE_DIR", str(folder))
    return folder


def test_a_second_parse_reads_the_same_tree_back(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    texts = _texts()
    assert len(texts) >= 5 + (1 if conf.CASES else 0)
    fresh = {}
    for name, text in texts:
        first = parsed.parse_cached(text, name)
        assert first.clean, name
        fresh[name] = parse(text, name).ruleset
        assert first.ruleset == fresh[name]
    assert len(list(cache.glob("ast-*.pickle"))) == len({t for _, t in texts})

    def no_parsing(*_a: object, **_k: object) -> None:
        raise AssertionError("parsed again")

    monkeypatch.setattr(dsl.parser, "parse", no_parsing)
    for name, text in texts:
        again = parsed.parse_cached(text, "another name.evb")  # a file name labels diagnostics only
        assert again.clean and again.ruleset == fresh[name], name


def test_a_text_with_errors_is_not_kept(cache: Path) -> None:
    text = (ROOT / "rulesets" / "public_cpo" / "public_cpo.evb").read_text(encoding="utf-8")
    broken = text.replace("{", "{ energyy 0.1 per kWh", 1)
    got = parsed.parse_cached(broken, "broken.evb")
    assert got.diagnostics and not got.clean
    assert not list(cache.glob("ast-*"))
    assert _compile(broken, "broken.evb", "x").ruleset is None


def test_a_folder_others_may_write_to_is_not_used(cache: Path) -> None:
    cache.mkdir(mode=0o700)
    os.chmod(cache, 0o777)
    assert parsed.cache_dir() is None
    text = RULESETS[0].read_text(encoding="utf-8")
    assert parsed.parse_cached(text).clean
    assert not list(cache.iterdir())


def test_a_damaged_or_writable_entry_is_parsed_instead(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = RULESETS[0].read_text(encoding="utf-8")
    want = parse(text).ruleset
    parsed.parse_cached(text)
    (entry,) = cache.glob("ast-*.pickle")
    entry.write_bytes(b"not a pickle")
    assert parsed.parse_cached(text).ruleset == want
    calls: list[str] = []
    real = dsl.parser.parse
    monkeypatch.setattr(dsl.parser, "parse", lambda t, f="<ruleset>": calls.append(f) or real(t, f))
    os.chmod(entry, 0o666)  # someone else could have put anything there
    assert parsed.parse_cached(text, "x.evb").ruleset == want
    assert calls == ["x.evb"]


def test_a_changed_parser_does_not_find_old_trees(cache: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    text = RULESETS[0].read_text(encoding="utf-8")
    before = parsed._entry(text)
    changed = tmp_path / "parser.py"
    changed.write_text((ROOT / "dsl" / "parser.py").read_text(encoding="utf-8") + "\n# changed\n", encoding="utf-8")
    monkeypatch.setattr(parsed, "_SHAPERS", (*parsed._SHAPERS[:1], changed, *parsed._SHAPERS[2:]))
    monkeypatch.setattr(parsed, "_SALT", [])
    after = parsed._entry(text)
    assert before is not None and after is not None and before != after


def test_a_new_process_compiles_a_cached_ruleset_without_lark(cache: Path) -> None:
    path = RULESETS[0]
    probe = ("import sys; from dsl.compiler import compile_ruleset; "
             f"r = compile_ruleset(open({str(path)!r}, encoding='utf-8').read(), 'x.evb'); "
             "print(r.ruleset is not None, 'lark' in sys.modules)")
    env = {**os.environ, "EVBILL_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}
    runs = [subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=ROOT,
                           check=True).stdout.split() for _ in range(2)]
    assert runs == [["True", "True"], ["True", "False"]]
