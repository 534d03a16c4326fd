"""Liveness without credentials (load balancers and ``evbill serve`` smoke checks)."""

from __future__ import annotations

from litestar import get
from pydantic import BaseModel


class Health(BaseModel):
    status: str


@get("/health", operation_id="get_health", summary="Liveness", tags=["health"], security=[{}])
async def health() -> Health:
    return Health(status="ok")
