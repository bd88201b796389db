"""Use case: a partner's webhook endpoints: registered, changed, deleted, their secret
rotated, a delivery sent again. Every change is in the audit log."""

from __future__ import annotations

import uuid
from typing import Any

from services.notifications import webhook_repository
from services.notifications.domain import webhooks
from services.notifications.schemas import EndpointIn, EndpointPatch
from shared.audit import record_action
from shared.clock import now
from shared.db import Connection
from shared.errors import Conflict, NotFound
from shared.identity import Caller


def _url_taken(endpoint_id: uuid.UUID) -> Conflict:
    """One endpoint per URL: a second (a retried registration, a change of another's URL) would
    have every notification delivered twice."""
    return Conflict(
        f"webhook endpoint {endpoint_id} already delivers to this URL (its secret is not shown"
        " again: rotate it if it was lost)"
    )


def _missing(endpoint_id: uuid.UUID) -> NotFound:
    return NotFound(f"webhook endpoint {endpoint_id} not found")


async def register(
    conn: Connection, who: Caller, partner_id: str, body: EndpointIn, *, development_mode: bool
) -> tuple[Any, str]:
    """The new endpoint and its secret."""
    url = webhooks.check_target(body.url, development_mode=development_mode)
    limit = webhooks.MAX_ENDPOINTS_PER_PARTNER
    endpoints, same_url = await webhook_repository.endpoints_and_url_holder(conn, partner_id, url)
    if same_url is not None:
        # Found in review: a registration retried after a timeout made a second endpoint for
        # the URL, with a second secret, and every notification went to it twice.
        raise _url_taken(same_url)
    if endpoints >= limit:
        raise Conflict(f"a partner may register at most {limit} webhook endpoints")
    secret = webhooks.new_secret()
    row = await webhook_repository.insert_endpoint(
        conn, partner_id, url, body.description, sorted(set(body.kinds)), secret
    )
    await record_action(conn, who, "webhook.registered", str(row["endpoint_id"]))
    return row, secret


async def change(
    conn: Connection,
    who: Caller,
    partner_id: str,
    endpoint_id: uuid.UUID,
    body: EndpointPatch,
    *,
    development_mode: bool,
) -> Any:
    """The endpoint changed. Enabled again, or given a new URL, its failures are forgiven and
    its waiting head is tried again at once (a head backing off after failures at the old URL
    waited up to the backoff's cap, 2 hours, before the new one was tried)."""
    url = (
        webhooks.check_target(body.url, development_mode=development_mode)
        if body.url is not None
        else None
    )
    if url is not None:
        _, same_url = await webhook_repository.endpoints_and_url_holder(conn, partner_id, url)
        if same_url is not None and same_url != endpoint_id:
            raise _url_taken(same_url)
    row = await webhook_repository.update_endpoint(
        conn,
        partner_id,
        endpoint_id,
        url=url,
        description=body.description,
        kinds=sorted(set(body.kinds)) if body.kinds is not None else None,
        enabled=body.enabled,
    )
    if row is None:
        raise _missing(endpoint_id)
    if row["reenabled"] or row["url_changed"]:
        await webhook_repository.retry_head_now(conn, endpoint_id)
    await record_action(conn, who, "webhook.changed", str(endpoint_id))
    return row


async def remove(conn: Connection, who: Caller, partner_id: str, endpoint_id: uuid.UUID) -> None:
    if not await webhook_repository.delete_endpoint(conn, partner_id, endpoint_id):
        raise _missing(endpoint_id)
    await record_action(conn, who, "webhook.deleted", str(endpoint_id))


async def rotate(
    conn: Connection, who: Caller, partner_id: str, endpoint_id: uuid.UUID
) -> tuple[str, Any]:
    """A new secret, and until when the one it replaces signs too. Every secret rotated out
    still in its grace keeps signing (a second rotation within it dropped the first's at once);
    409 when the few allowed still do (`webhooks.rotated_out`)."""
    found = await webhook_repository.secrets_for_rotation(conn, partner_id, endpoint_id)
    if found is None:
        raise _missing(endpoint_id)
    current, previous = found
    kept = webhooks.rotated_out(previous, current, now())
    secret = webhooks.new_secret()
    await webhook_repository.rotate_secret(conn, endpoint_id, secret, kept)
    await record_action(conn, who, "webhook.secret_rotated", str(endpoint_id))
    return secret, kept[-1].until


async def redeliver(
    conn: Connection,
    who: Caller,
    partner_id: str,
    endpoint_id: uuid.UUID,
    delivery_id: uuid.UUID,
) -> None:
    asked = await webhook_repository.redeliver(conn, partner_id, endpoint_id, delivery_id)
    if asked is None:
        raise NotFound(f"delivery {delivery_id} not found")
    if not asked:  # found in review: answered "pending" and nothing went out
        raise Conflict(
            f"endpoint {endpoint_id} is disabled: enable it first (its queue then goes out in "
            "order, and a delivery can be asked for again)"
        )
    await record_action(conn, who, "webhook.redelivered", str(delivery_id))
