"""What the billing controllers share: their role sets, the Temporal client, the database
sessions and the tenant's billing account (a 404 problem when it is not the tenant's)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from typing import Any

from litestar import Request

from api.auth import ROLE_SETS
from store import finance as F
from store.errors import Conflict, DomainError, NotFound

__all__ = ["WorkerUnavailable", "account_of", "app_client", "db_sessions", "send_update", "task_queue", "temporal_client",
           "temporal_configured"]

# who may do what in billing (registered next to the others so the role matrix sees them)
ROLE_SETS.setdefault("billing_read", ("admin", "operator", "approver", "auditor", "analyst"))
ROLE_SETS.setdefault("billing_decide", ("approver", "admin"))  # the workflow's validator has the last word
ROLE_SETS.setdefault("billing_adjust", ("approver", "operator", "admin"))
ROLE_SETS.setdefault("billing_hold", ("approver", "operator", "admin"))
ROLE_SETS.setdefault("billing_write", ("admin", "operator"))  # service items and discounts


async def temporal_client(request: Request[Any, Any, Any]) -> Any:
    """The app's Temporal client: set by ``evbill serve`` (or a test) on ``app.state.temporal``,
    else connected once to ``TEMPORAL_ADDRESS``."""
    return await app_client(request.app)


class WorkerUnavailable(DomainError):
    """No worker took the decision in time (all stopped, or busy): nothing was decided; retry."""

    status = 503


async def send_update(handle: Any, update: Any, arg: Any, refusals: Mapping[str, type[DomainError]], worker: str,
                      nothing: str = "decided") -> Any:
    """Send a decision to a running workflow as a Temporal Update and return its result. A refusal
    by the workflow's validator or handler (an ``ApplicationError``, also behind an activity) becomes
    the problem ``refusals`` names for its type (409 for any other); no worker answering in time a
    503 ``worker_unavailable`` (``worker``: whose, for the message)."""
    from temporalio.client import WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError
    from temporalio.exceptions import ActivityError, ApplicationError

    try:
        return await handle.execute_update(update, arg)
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        while isinstance(cause, ActivityError) and cause.cause is not None:
            cause = cause.cause
        if isinstance(cause, ApplicationError):
            raise refusals.get(cause.type or "", Conflict)(cause.type or "refused", cause.message) from None
        raise
    except WorkflowUpdateRPCTimeoutOrCancelledError:
        raise WorkerUnavailable("worker_unavailable", f"no {worker} worker answered in time; nothing was {nothing}, "
                                                      "try again") from None


def temporal_configured(app: Any) -> bool:
    return getattr(app.state, "temporal", None) is not None or bool(os.environ.get("TEMPORAL_ADDRESS", "").strip())


async def app_client(app: Any) -> Any:
    client = getattr(app.state, "temporal", None)
    if client is None:
        address = os.environ.get("TEMPORAL_ADDRESS", "").strip()
        if not address:
            raise DomainError("temporal_unavailable", "no Temporal server is configured (TEMPORAL_ADDRESS)")
        from temporalio.client import Client

        client = await asyncio.wait_for(Client.connect(address), 10)
        app.state.temporal = client
    return client


def task_queue(app: Any) -> str:
    from workflows.billing.types import TASK_QUEUE

    return getattr(app.state, "billing_task_queue", None) or TASK_QUEUE


def db_sessions(request: Request[Any, Any, Any], write: bool = False) -> Any:
    return request.app.state.sessions() if write else request.app.state.read_sessions()


def account_of(db: Any, tenant_id: str, account_id: str) -> Any:
    acct = F.account(db.connection(), tenant_id, account_id)
    if acct is None:
        raise NotFound("billing_account_not_found", f"billing account {account_id!r} not found")
    return acct
