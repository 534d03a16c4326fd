"""DSL tariffs as OCPI 2.2.1 Tariff objects: the inverse of ``dsl.ocpi.tariff_to_ast``.

Each ``when`` block becomes a tariff element whose restrictions are the block's conditions, in
source order, and the unconditional lines a last element without restrictions: OCPI's first
matching element per dimension is the DSL's first matching rule per component. What OCPI cannot
say is refused with ``OcpiExportError`` naming the tariff and rule (a price from a series, a
customer group, a parking grace, a cap), except two conditions that are known for the partner the
tariff is exported to: ``roaming`` (true) and ``partner`` (true for its party id, else the rule
never applies to it and is left out).

Units: energy prices per kWh with the step in Wh, time and parking prices per hour with the step
in seconds, durations in seconds, power in kW.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from dsl import ast as A

__all__ = ["OcpiExportError", "export_tariff", "export_tariffs"]

_DAYS = ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY")
_ENERGY = {"kWh": Decimal(1), "Wh": Decimal("0.001"), "MWh": Decimal(1000)}
_TIME_H = {"h": Decimal(1), "min": Decimal(1) / Decimal(60), "s": Decimal(1) / Decimal(3600)}
_SECONDS = {"s": Decimal(1), "min": Decimal(60), "h": Decimal(3600), "days": Decimal(86400)}
_WH = {"Wh": Decimal(1), "kWh": Decimal(1000)}
_POWER_KW = {"kW": Decimal(1), "W": Decimal("0.001")}


class OcpiExportError(ValueError):
    """The tariff cannot be said in OCPI 2.2.1."""


class _Skip(Exception):
    """The rule can never apply to this partner."""


def _plain(d: Decimal) -> Decimal:
    """A value as OCPI writes it: no exponent, no trailing zeros."""
    n = d.normalize()
    return n.quantize(Decimal(1)) if n == n.to_integral_value() else n


def _restrictions(cond: A.Cond | None, where: str, party: str, out: dict[str, Any]) -> None:
    if cond is None:
        return
    if isinstance(cond, A.And):
        for item in cond.items:
            _restrictions(item, where, party, out)
        return
    if isinstance(cond, A.Not) and isinstance(cond.item, A.Atom) and cond.item.kind == "date" \
            and cond.item.args[1] is None:
        out["end_date"] = str(cond.item.args[0])
        return
    if not isinstance(cond, A.Atom):
        raise OcpiExportError(f"{where}: 'or' and 'not' conditions have no OCPI restriction")
    k, args = cond.kind, cond.args
    if k == "always" or k == "roaming":
        return
    if k == "partner":
        if party and not any(str(p) in (party, "*") for p in args):
            raise _Skip()
        return
    if k == "time":
        start, end = str(args[0]), str(args[1])
        out["start_time"] = start
        out["end_time"] = "00:00" if end == "24:00" else end
        return
    if k == "days":
        out["day_of_week"] = [_DAYS[int(str(d))] for d in args]
        return
    if k == "date":
        out["start_date"] = str(args[0])
        if args[1] is not None:
            out["end_date"] = str(args[1])
        return
    if k in ("energy", "power", "current", "duration"):
        op, value, unit = str(args[0]), Decimal(str(args[1])), str(args[2])
        if k == "energy":
            v, key = value * _ENERGY.get(unit, Decimal(1)), "kwh"
        elif k == "power":
            v, key = value * _POWER_KW.get(unit, Decimal(1)), "power"
        elif k == "current":
            v, key = value, "current"
        else:
            v, key = value * _SECONDS.get(unit or "s", Decimal(1)), "duration"
        if op == ">=":
            out[f"min_{key}"] = _plain(v)
        elif op == "<":
            out[f"max_{key}"] = _plain(v)
        else:
            raise OcpiExportError(f"{where}: OCPI restrictions are min (>=) and max (<), found '{op}'")
        return
    if k in ("reservation", "reservation_expires"):
        out["reservation"] = "RESERVATION_EXPIRES" if k == "reservation_expires" else "RESERVATION"
        return
    raise OcpiExportError(f"{where}: the condition '{k}' has no OCPI restriction")


def _component(c: A.ComponentDef, vat: Decimal | None, where: str) -> dict[str, Any]:
    if not isinstance(c.price, A.Num):
        raise OcpiExportError(f"{where}: {c.kind} has a computed price (an index or arithmetic): OCPI needs a "
                              "fixed price")
    if c.after is not None or c.cap is not None:
        raise OcpiExportError(f"{where}: {c.kind} has a grace period or a cap, which OCPI cannot say")
    price = c.price.value
    rate = c.vat if c.vat is not None else vat
    step = 0
    if c.kind in ("start_fee", "flat", "reservation_fee"):
        typ = "FLAT"
    elif c.kind == "energy":
        typ = "ENERGY"
        price = price / _ENERGY[c.unit] if c.unit in _ENERGY else price
        if c.step is not None:
            step = int(c.step[0] * _WH.get(c.step[1], Decimal(1)))
    elif c.kind in ("time", "parking", "reservation"):
        typ = "PARKING_TIME" if c.kind == "parking" else "TIME"
        price = price / _TIME_H[c.unit] if c.unit in _TIME_H else price
        if c.step is not None:
            step = int(c.step[0] * _SECONDS.get(c.step[1], Decimal(1)))
    else:
        raise OcpiExportError(f"{where}: component '{c.kind}' has no OCPI price component")
    out: dict[str, Any] = {"type": typ, "price": _plain(price), "step_size": step or 1}
    if rate is not None:
        out["vat"] = _plain(rate)
    return out


def export_tariff(ruleset_ast: A.Ruleset, name: str, *, country_code: str, party_id: str, last_updated: str,
                  partner_party: str = "", tariff_id: str | None = None) -> dict[str, Any]:
    """The DSL tariff ``name`` as an OCPI 2.2.1 Tariff (decimals as ``Decimal``)."""
    tariff = next((t for t in ruleset_ast.tariffs if t.name == name), None)
    if tariff is None:
        raise OcpiExportError(f"tariff '{name}' is not in ruleset '{ruleset_ast.name}'")
    elements: list[dict[str, Any]] = []
    for rule in tariff.rules:
        where = f"tariff '{name}', {rule.label}"
        restr: dict[str, Any] = {}
        try:
            _restrictions(rule.condition, where, partner_party, restr)
        except _Skip:
            continue
        comps = [_component(c, tariff.vat, where) for c in rule.components]
        if not comps:
            continue
        el: dict[str, Any] = {"price_components": comps}
        if restr:
            el["restrictions"] = restr
        elements.append(el)
    if not elements:
        raise OcpiExportError(f"tariff '{name}' has nothing to price for this partner")
    out: dict[str, Any] = {
        "country_code": country_code, "party_id": party_id, "id": (tariff_id or name)[:36],
        "currency": ruleset_ast.currency, "type": "REGULAR",
        "tariff_alt_text": [{"language": "en", "text": tariff.title or name}],
        "elements": elements, "last_updated": last_updated,
    }
    for key, bound in (("min_price", tariff.min_price), ("max_price", tariff.max_price)):
        if bound is not None:
            out[key] = {"excl_vat": _plain(bound[0]), **({"incl_vat": _plain(bound[1])} if bound[1] is not None else {})}
    return out


def export_tariffs(ruleset_ast: A.Ruleset, names: Mapping[str, str] | None = None, **kw: Any) -> list[dict[str, Any]]:
    """Every tariff OCPI can say (``names``: DSL name -> OCPI id, default all under their names);
    tariffs it cannot say are left out."""
    out = []
    for t in ruleset_ast.tariffs:
        if names is not None and t.name not in names:
            continue
        try:
            out.append(export_tariff(ruleset_ast, t.name, tariff_id=(names or {}).get(t.name), **kw))
        except OcpiExportError:
            continue
    return out
