"""Random and mutated ruleset text never crashes the compiler: only diagnostics come back."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsl import compile_ruleset
from runtime.rating import RatingError
from runtime.sessions import SessionFacts

SEED = (Path(__file__).parent / "golden").glob("*.evb")
CORPUS = [p.read_text(encoding="utf-8") for p in sorted(SEED)] + ['''
ruleset stadtwerke currency EUR timezone Europe/Berlin holidays DE-BE
groups employees, new_customers
series spot_de
tariff ac_public "AC public" {
  vat 19%
  start_fee 0.35
  energy 0.49 per kWh step 1 Wh
  parking 0.10 per min after 240 min, at most 12.00
  when time 22:00..06:00 { energy 0.39 per kWh }
  when group employees { energy 0.25 per kWh; start_fee 0 }
  when days mon..fri and not holiday { energy index(spot_de) * 1.10 + 0.12 per kWh }
  min_price 1.00
}
discount winter_promo "10% on energy" {
  10% off energy
  for locations berlin_* and group new_customers
  valid 2026-12-01..2027-01-01, once per customer, exclusive
}
product flex { tariff ac_public; fee 4.99 per month; includes 50 kWh
  energy graduated { 0..100 kWh at 0.45; 100.. kWh at 0.40 } }
dunning standard { stage 1 after 7 days reminder; stage 2 after 14 days fee 5.00 }
''']

SESSION = SessionFacts.from_dict({"id": "f", "start": "2026-12-05T21:00:00Z", "end": "2026-12-06T03:00:00Z",
                                  "energy_kwh": "33.3", "charging_end": "2026-12-05T23:00:00Z",
                                  "customer_groups": ["employees"], "location_id": "berlin_1"})


def _compile_and_rate(text: str) -> None:
    res = compile_ruleset(text, "fuzz.evb")
    assert res.ok == (not res.errors)
    for d in res.diagnostics:
        assert d.code and d.message and d.span.line >= 1
    res.render()  # rendering never fails either
    if res.ruleset is not None:
        for name in res.ruleset.tariffs:
            try:
                res.ruleset.rate(SESSION, tariff=name)
            except RatingError:
                pass  # e.g. an indexed price without its series: a clear, typed refusal


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_random_text(text: str) -> None:
    _compile_and_rate(text)


@st.composite
def mutated(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(CORPUS))
    for _ in range(draw(st.integers(1, 4))):
        if not text:
            break
        i = draw(st.integers(0, len(text) - 1))
        j = min(len(text), i + draw(st.integers(0, 12)))
        op = draw(st.sampled_from(["delete", "insert", "replace", "duplicate"]))
        junk = draw(st.sampled_from(["{", "}", ";", ",", "..", "%", "when", "energy", "per", "0", "-1", "999999",
                                     "\"", "#", "\n", "index(", ")", "kWh", "25:61", "2026-02-30", "€", "\t"]))
        if op == "delete":
            text = text[:i] + text[j:]
        elif op == "insert":
            text = text[:i] + junk + text[i:]
        elif op == "replace":
            text = text[:i] + junk + text[j:]
        else:
            text = text[:j] + text[i:j] + text[j:]
    return text


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_rulesets(text: str) -> None:
    _compile_and_rate(text)
