"""What the billing controllers share: their role sets, the Temporal client, the database
sessions and the tenant's billing account (a 404 problem when it is not the tenant's)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from typing import Any

from litestar import Request

from api.auth import ROLE_SETS, actor_of
from store import finance as F
from store.errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound

__all__ = ["RUN_REFUSALS", "WorkerUnavailable", "account_of", "app_client", "db_sessions", "decide_approval_run",
           "send_update", "start_approval_run", "task_queue", "temporal_client", "temporal_configured"]

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


# an approval run's refusals (``workflows.approval_run``) as problem documents
RUN_REFUSALS: Mapping[str, type[DomainError]] = {"forbidden": Forbidden, "four_eyes": Forbidden,
                                                 "not_waiting": Conflict, "reason_required": InvalidInput}


async def start_approval_run(request: Request[Any, Any, Any], run: Any, inp: Any, workflow_id: str, action: str,
                             details: Mapping[str, Any]) -> None:
    """Start a collection or payout run (``run``: its workflow's run method) under ``workflow_id``; the
    same id again finds the run already there. The start is audited as ``action``."""
    from temporalio.common import WorkflowIDReusePolicy
    from temporalio.exceptions import WorkflowAlreadyStartedError

    from store.audit import append_audit

    client = await temporal_client(request)
    try:
        await client.start_workflow(run, inp, id=workflow_id, task_queue=task_queue(request.app),
                                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE)
    except WorkflowAlreadyStartedError:
        pass  # the same run again: its workflow answers
    actor = actor_of(request)
    with request.app.state.sessions() as db:
        append_audit(db, actor, action, action.split(".")[0], workflow_id, None, dict(details))
        db.commit()


async def decide_approval_run(request: Request[Any, Any, Any], workflow: Any, run: Any, name: str, reason: str,
                              noun: str) -> None:
    """Approve or reject (``name``) the approval run ``run`` (its row) through its workflow, and wait
    until the decision's activity has run, so that the caller answers with the run as it now stands."""
    from temporalio.client import WorkflowFailureError

    from workflows.approval_run import RunDecision

    if run.status != "awaiting_approval":
        raise Conflict("not_waiting", f"the {noun} run is {run.status}")
    actor = actor_of(request)
    handle = (await temporal_client(request)).get_workflow_handle(run.workflow_id)
    await send_update(handle, getattr(workflow, name), RunDecision(actor.user_id, actor.role, reason), RUN_REFUSALS,
                      noun)
    try:
        await handle.result()
    except WorkflowFailureError as exc:
        raise Conflict(f"{noun}_failed", f"the {noun} run failed: {exc.cause}") from None
