"""Make the OpenAPI components say exactly what the API validates.

Litestar derives component schemas from pydantic models on its own and drops some constraints on
the way (regex patterns, constraints inside ``Optional``, ``extra="forbid"``, dict shapes). A
client generated from such a document would send requests the API then rejects, so every
component that is one of our pydantic models is replaced by pydantic's own JSON Schema
(draft 2020-12, which OpenAPI 3.1 uses): request models in validation mode, responses in
serialization mode.
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from pydantic import BaseModel

__all__ = ["align_component_schemas", "document_alternative_media"]


def _models() -> dict[str, type[BaseModel]]:
    found: dict[str, type[BaseModel]] = {}
    stack = list(BaseModel.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        module = getattr(cls, "__module__", "") or ""
        if module.startswith("api.") or (module == "pydantic.main" and cls.__name__.endswith("Page")):
            found.setdefault(cls.__name__, cls)
    return found


def align_component_schemas(app: Litestar) -> None:
    from api.crud import ReadModel

    spec = app.openapi_schema
    components = spec.components
    if components is None or components.schemas is None:
        return
    schemas: dict[str, Any] = components.schemas  # type: ignore[assignment]
    models = _models()
    pending = [name for name in list(schemas) if name in models]
    done: set[str] = set()
    while pending:
        name = pending.pop()
        if name in done or name not in models:
            continue
        done.add(name)
        model = models[name]
        mode = "serialization" if issubclass(model, ReadModel) or name in ("Problem", "Health") else "validation"
        js = model.model_json_schema(ref_template="#/components/schemas/{model}", mode=mode)
        for def_name, def_schema in js.pop("$defs", {}).items():
            if def_name not in done:
                schemas[def_name] = def_schema
                if def_name in models:
                    pending.append(def_name)
                done.add(def_name) if def_name not in models else None
        schemas[name] = js


def document_alternative_media(app: Litestar) -> None:
    """A route that answers its success in other media types too (``route(...,
    alternative_media={"text/csv": "..."})``, chosen by a ``format`` parameter) says so in the
    document: each type joins the 200 response's content as a string."""
    from litestar.openapi.spec import OpenAPIMediaType, Schema

    spec = app.openapi_schema
    wanted: dict[str, dict[str, str]] = {}
    for r in app.routes:
        for h in getattr(r, "route_handlers", ()):
            media = (h.opt or {}).get("alternative_media")
            if media and h.operation_id:
                wanted[str(h.operation_id)] = media
    for item in (spec.paths or {}).values():
        for op in (item.get, item.post, item.put, item.patch, item.delete):
            if op is None or op.operation_id not in wanted or not op.responses:
                continue
            ok = op.responses.get("200")
            content = getattr(ok, "content", None)
            if content is None:
                continue
            for media_type, description in wanted[op.operation_id].items():
                content[media_type] = OpenAPIMediaType(schema=Schema(type="string", description=description))  # type: ignore[arg-type]
