"""What screens call a billed or rated line: the documents' names and unit labels, per language."""

from __future__ import annotations

from types import SimpleNamespace as L

from runtime.documents.from_invoice import rated_line_names, unit_label


def test_rated_lines_are_named_as_the_invoice_names_them() -> None:
    lines = [L(component="energy", description="Energy", rule="tariff public, line 13: base"),
             L(component="parking", description="Parking time", rule="tariff public, line 14: park"),
             L(component="cap", description="Parking time: capped at 12.00", rule="tariff public, line 14: park"),
             L(component="cap", description="capped somehow", rule="elsewhere")]
    assert rated_line_names(lines, "EUR", "de") == [
        "Energie", "Blockiergebühr", "Deckelung Blockiergebühr – höchstens 12,00\xa0€ je Ladevorgang", "Deckelung"]
    assert rated_line_names(lines, "EUR", "en")[2] == "Parking fee cap – at most €12.00 per session"


def test_unit_labels_follow_the_documents() -> None:
    assert [unit_label(u, "de") for u in ("kWh", "min", "h", "session", "month")] == ["kWh", "Min.", "Std.", "Stk.", "Monat"]
    assert [unit_label(u, "en") for u in ("kWh", "min", "session")] == ["kWh", "min", "pcs"]
    assert unit_label("min", "xx") == "min"
