"""E-mail delivery of issued documents: workflows, activities, the sweep's schedule."""

from __future__ import annotations

from typing import Any

__all__ = ["start_delivery"]


async def start_delivery(client: Any, tenant_id: str, delivery_id: str, number: str, task_queue: str) -> str:
    """Start the ``DocumentDeliveryWorkflow`` of one queued delivery (a re-send asked for through
    the API); returns its workflow id. Started twice, the second start finds the first."""
    from temporalio.exceptions import WorkflowAlreadyStartedError

    from workflows.documents.types import DeliverDocumentInput, delivery_workflow_id

    wid = delivery_workflow_id(tenant_id, delivery_id)
    try:
        await client.start_workflow("DocumentDeliveryWorkflow", DeliverDocumentInput(tenant_id, delivery_id, number),
                                    id=wid, task_queue=task_queue)
    except WorkflowAlreadyStartedError:
        pass
    return wid
