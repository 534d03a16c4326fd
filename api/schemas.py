"""Schema building blocks: decimal strings for money, and the Create/Update/Read triplet helpers.

Amounts travel as decimal strings both ways (``"0.49"``); a JSON number for money is refused,
because floats are not exact.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Optional

from pydantic import BeforeValidator, Field, create_model
from pydantic.fields import FieldInfo

from api.crud import ReadModel, WriteModel
from api.validation import Country, Currency  # checked by ISO 3166 and ISO 4217 data (api.validation)

__all__ = ["Country", "Currency", "DecimalOut", "DecimalStr", "Id", "RefId", "read_of", "update_of"]

DecimalStr = Annotated[str, Field(pattern=r"^-?[0-9]{1,12}(\.[0-9]{1,12})?$", max_length=26,
                                  examples=["0.49"])]
Id = Annotated[str, Field(min_length=1, max_length=40)]
RefId = Optional[Id]


def _dec_out(v: Any) -> Any:
    if isinstance(v, Decimal):
        return format(v, "f")
    return v


DecimalOut = Annotated[str, BeforeValidator(_dec_out)]


def update_of(create: type[WriteModel], name: str) -> type[WriteModel]:
    """Every field of ``create`` optional: PATCH sends only what changes."""
    fields: dict[str, Any] = {}
    for fname, f in create.model_fields.items():
        inner = Annotated[(f.annotation, *f.metadata)] if f.metadata else f.annotation  # type: ignore[misc]
        fields[fname] = (Optional[inner], FieldInfo(default=None, description=f.description))
    return create_model(name, __base__=WriteModel, **fields)  # type: ignore[call-overload,no-any-return]


def read_of(create: type[WriteModel], name: str, **extra: Any) -> type[ReadModel]:
    """The stored shape: ``create``'s fields (constraints dropped, decimals as strings) plus ids
    and timestamps."""
    fields: dict[str, Any] = {"id": (str, ...)}
    for fname, f in create.model_fields.items():
        ann = f.annotation
        if "[0-9]{1,12}" in str(f.annotation) + str(f.metadata):
            ann = DecimalOut if f.is_required() or f.default is not None else Optional[DecimalOut]
        elif f.metadata is not None and str(ann).startswith("typing.Optional[typing.Annotated"):
            ann = Optional[str]
        fields[fname] = (ann, ...)
    fields.update({k: (v, ...) for k, v in extra.items()})
    fields.setdefault("created_at", (datetime, ...))
    return create_model(name, __base__=ReadModel, **fields)  # type: ignore[call-overload,no-any-return]


_ = (date,)
