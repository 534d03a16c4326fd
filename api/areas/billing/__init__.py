"""Billing in the operator API, one module per area:

- ``tasks`` — finance tasks (held invoices), approve / reject / adjust / reprice through the cycle
  workflow's Updates, manual holds and flags, ad-hoc cycles, invoice reads;
- ``services`` — an account's service items and period discounts;
- ``schedules`` — the Temporal Schedules that start each account's cycles;
- ``common`` — role sets, the Temporal client, sessions and the account lookup they share.

Controllers validate, call the workflow or a store function (``store.finance``, ``store.billing``)
and return a schema; no SQL is built here.
"""

from __future__ import annotations

from litestar import Router

from api.areas.billing import schedules, services, tasks
from api.areas.billing.common import temporal_client, temporal_configured
from api.areas.billing.schedules import ScheduleResync, follow_schedules, resync_after_publish
from api.areas.billing.tasks import InvoiceRead

__all__ = ["InvoiceRead", "ScheduleResync", "follow_schedules", "resync_after_publish", "router",
           "temporal_client", "temporal_configured"]

router = Router(path="/", route_handlers=[*tasks.handlers, *services.handlers, *schedules.handlers],
                tags=["billing"])
