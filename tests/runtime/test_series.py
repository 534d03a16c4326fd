"""Day-ahead price files read into intervals, and series whose intervals end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from runtime.rating import MissingPrice
from runtime.series import BoundedSeries, SeriesFileError, read_prices


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def test_hourly_file_with_header_and_a_repeated_line() -> None:
    pts, header = read_prices("timestamp,price (EUR/MWh)\n"
                              "2026-03-01T00:00:00Z,85.20\n"
                              "2026-03-01T01:00:00+01:00,85.20\n"  # the same instant, written in CET
                              "2026-03-01T01:00:00Z,-3.50\n")
    assert header.startswith("timestamp")
    assert [(p.line, p.start.isoformat(), p.end.isoformat(), p.value) for p in pts] == [
        (2, "2026-03-01T00:00:00+00:00", "2026-03-01T01:00:00+00:00", Decimal("85.20")),
        (4, "2026-03-01T01:00:00+00:00", "2026-03-01T02:00:00+00:00", Decimal("-3.50"))]


def test_entsoe_quarter_hours_with_decimal_commas() -> None:
    text = ('"MTU (UTC)";"Day-ahead Price [EUR/MWh]"\n'
            '"01.03.2026 23:30 - 01.03.2026 23:45";"1.085,20"\n'
            '"01.03.2026 23:45 - 02.03.2026 00:00";"90,1"\n')
    pts, _ = read_prices(text)
    assert [(p.start.hour, p.start.minute, p.end - p.start, p.value) for p in pts] == [
        (23, 30, timedelta(minutes=15), Decimal("1085.20")), (23, 45, timedelta(minutes=15), Decimal("90.1"))]


@pytest.mark.parametrize(("text", "line", "words"), [
    ("2026-03-01T00:00Z,1\n2026-03-01T02:00Z,2\n2026-03-01T03:00Z,2\n", 1,
     "nothing priced from 2026-03-01T01:00Z to 2026-03-01T02:00Z (line 2)"),
    ("t,p\n2026-03-01T00:00Z,1\n2026-03-01T00:00Z,2\n", 3, "is priced 2 here and 1 on line 2"),
    ("2026-03-01T01:00Z,1\n2026-03-01T00:00Z,2\n", 2, "timestamps must increase"),
    ("2026-03-01T00:00Z,1\n2026-03-01T00:15Z,n/e\n", 2, "no price for 2026-03-01T00:15Z"),
    ("2026-03-01T00:00,1\n2026-03-01T01:00,2\n", 1, "has no UTC offset"),
    ("2026-03-01T00:00Z,abc\n", 1, "not a price"),
    ("9999-12-31T23:30:00Z,1\n9999-12-31T23:45:00Z,1\n", 1, "outside 1970..2200"),
    ("2026-03-01T00:00Z,NaN\n", 1, "price out of range"),
    ('"MTU (CET/CEST)";"Price"\n"01.03.2026 00:00 - 01.03.2026 01:00";"1"\n', 2, "(UTC)"),
    ('"MTU (UTC)";"Price"\n"01.03.2026 00:00 - 01.03.2026 01:00";"1"\n"01.03.2026 01:15 - 01.03.2026 02:15";"1"\n',
     2, "nothing priced from 2026-03-01T01:00Z to 2026-03-01T01:15Z"),
])
def test_refused_files_name_the_line(text: str, line: int, words: str) -> None:
    with pytest.raises(SeriesFileError) as exc:
        read_prices(text)
    assert exc.value.line == line and words in str(exc.value), str(exc.value)


def test_a_single_line_takes_the_given_resolution() -> None:
    with pytest.raises(SeriesFileError, match="resolution"):
        read_prices("2026-03-01T00:00Z,1\n")
    pts, _ = read_prices("2026-03-01T00:00Z,1\n", resolution=timedelta(minutes=15))
    assert pts[0].end - pts[0].start == timedelta(minutes=15)


def test_bounded_series_names_the_gap_and_cuts_at_ends() -> None:
    t = lambda h, m=0: datetime(2026, 3, 1, h, m, tzinfo=UTC)  # noqa: E731
    s = BoundedSeries.of("spot_de", [(t(0), t(1), Decimal("0.1")), (t(2), t(3), Decimal("0.2")),
                                     (t(3), None, Decimal("0.3"))])
    assert s.at(_ms("2026-03-01T00:59:59+00:00")) == Decimal("0.1")
    with pytest.raises(MissingPrice, match=r"nothing is imported for 2026-03-01T01:00Z\.\.2026-03-01T02:00Z"):
        s.at(_ms("2026-03-01T01:30:00+00:00"))
    with pytest.raises(MissingPrice, match="its first interval starts 2026-03-01T00:00Z"):
        s.at(_ms("2026-02-28T23:00:00+00:00"))
    # an open interval (no end stored) lasts until the next start, as points did before intervals
    assert s.at(_ms("2026-03-09T00:00:00+00:00")) == Decimal("0.3")
    assert s.boundaries(_ms("2026-03-01T00:30:00+00:00"), _ms("2026-03-01T02:30:00+00:00")) == [
        _ms("2026-03-01T01:00:00+00:00"), _ms("2026-03-01T02:00:00+00:00")]
