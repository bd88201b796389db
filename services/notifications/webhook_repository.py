"""Write-side SQL of webhooks: endpoints, the delivery queue (filled in the filing
transaction), leases on endpoints, attempts and their outcomes."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from services.notifications.domain import webhooks
from services.notifications.repository import Filed
from shared.access import REVOKING
from shared.db import Connection, Pool
from shared.events.notifications import NotificationKind

# Woken deliverers on every instance: a commit that queued deliveries.
DELIVERY_CHANNEL = "notifications_webhooks"

ENDPOINT_COLUMNS = """endpoint_id, partner_id, url, description, kinds, enabled, disabled_reason,
    consecutive_failures, failing_since, created_at, updated_at"""


async def endpoints_and_url_holder(conn: Connection, partner_id: str, url: str) -> tuple[int, Any]:
    """The partner's endpoints and its endpoint for `url` (None: none), read under a lock on the
    partner's key, so two concurrent registrations can neither both pass the limit nor both
    register one URL."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('webhooks/' || $1))", partner_id)
    row = await conn.fetchrow(
        """SELECT count(*) AS endpoints,
                  (array_agg(endpoint_id) FILTER (WHERE url = $2))[1] AS same_url
           FROM webhook_endpoints WHERE partner_id = $1""",
        partner_id,
        url,
    )
    assert row is not None  # an aggregate answers one row
    return int(row["endpoints"]), row["same_url"]


async def insert_endpoint(
    conn: Connection,
    partner_id: str,
    url: str,
    description: str,
    kinds: list[str],
    secret: str,
) -> Any:
    return await conn.fetchrow(
        f"""INSERT INTO webhook_endpoints (endpoint_id, partner_id, url, description, kinds, secret)
            VALUES ($1, $2, $3, $4, $5, $6) RETURNING {ENDPOINT_COLUMNS}""",
        uuid.uuid4(),
        partner_id,
        url,
        description,
        kinds,
        secret,
    )


async def update_endpoint(
    conn: Connection,
    partner_id: str,
    endpoint_id: uuid.UUID,
    *,
    url: str | None,
    description: str | None,
    kinds: list[str] | None,
    enabled: bool | None,
) -> Any:
    """Change what is given; the row also says whether its URL changed (`url_changed`) and
    whether it was enabled again (`reenabled`). Enabling a disabled endpoint forgives its
    failures (found in review: `enabled: true` sent to an enabled endpoint, as a client
    re-applying its whole state does, reset its streak, so a dead endpoint was never
    disabled), and so does a new URL: failures at the old one
    say nothing of the new one, which gets its whole budget (before, a URL fixed after 13
    failures was disabled by the new URL's first). Either way its queue is then tried again at
    once, in order (`retry_head_now`)."""
    return await conn.fetchrow(
        f"""UPDATE webhook_endpoints SET
                url = coalesce($3, url),
                description = coalesce($4, description),
                kinds = coalesce($5, kinds),
                enabled = coalesce($6, enabled),
                disabled_reason = CASE WHEN $6 THEN NULL ELSE disabled_reason END,
                consecutive_failures = CASE WHEN ($6 AND NOT old.was_enabled)
                                                 OR $3 <> old.old_url THEN 0
                                            ELSE consecutive_failures END,
                failing_since = CASE WHEN ($6 AND NOT old.was_enabled) OR $3 <> old.old_url
                                     THEN NULL ELSE failing_since END,
                updated_at = now()
            FROM (SELECT url AS old_url, enabled AS was_enabled FROM webhook_endpoints
                  WHERE partner_id = $1 AND endpoint_id = $2 FOR UPDATE) old
            WHERE partner_id = $1 AND endpoint_id = $2
            RETURNING {ENDPOINT_COLUMNS}, url <> old.old_url AS url_changed,
                      enabled AND NOT old.was_enabled AS reenabled""",
        partner_id,
        endpoint_id,
        url,
        description,
        kinds,
        enabled,
    )


async def retry_head_now(conn: Connection, endpoint_id: uuid.UUID) -> None:
    """Make the endpoint's delivery waiting for a retry due now (and wake the deliverers).
    Only one waiting: those already due may be out with a holder, whose successes not yet
    recorded would be taken for redeliveries asked for (their due time changed) and sent
    again."""
    await conn.execute(
        """UPDATE webhook_deliveries SET next_attempt_at = now()
           WHERE endpoint_id = $1 AND status = 'pending' AND next_attempt_at > now()""",
        endpoint_id,
    )
    await conn.execute("SELECT pg_notify($1, '')", DELIVERY_CHANNEL)


async def delete_endpoint(conn: Connection, partner_id: str, endpoint_id: uuid.UUID) -> bool:
    result = await conn.execute(
        "DELETE FROM webhook_endpoints WHERE partner_id = $1 AND endpoint_id = $2",
        partner_id,
        endpoint_id,
    )
    return result.split()[-1] == "1"


async def secrets_for_rotation(
    conn: Connection, partner_id: str, endpoint_id: uuid.UUID
) -> tuple[str, list[webhooks.PreviousSecret]] | None:
    """The endpoint's secret and previous secrets, locked until the rotation commits (two
    rotations at once each keep what the other rotated out); None when there is no such."""
    row = await conn.fetchrow(
        """SELECT secret, previous_secrets, previous_secrets_until FROM webhook_endpoints
           WHERE partner_id = $1 AND endpoint_id = $2 FOR UPDATE""",
        partner_id,
        endpoint_id,
    )
    return None if row is None else (row["secret"], _previous(row))


async def rotate_secret(
    conn: Connection,
    endpoint_id: uuid.UUID,
    secret: str,
    previous: Sequence[webhooks.PreviousSecret],
) -> None:
    await conn.execute(
        """UPDATE webhook_endpoints SET secret = $2, previous_secrets = $3,
               previous_secrets_until = $4, updated_at = now()
           WHERE endpoint_id = $1""",
        endpoint_id,
        secret,
        [p.secret for p in previous],
        [p.until for p in previous],
    )


def _previous(row: Any) -> list[webhooks.PreviousSecret]:
    return [
        webhooks.PreviousSecret(secret, until)
        for secret, until in zip(
            row["previous_secrets"], row["previous_secrets_until"], strict=True
        )
    ]


async def redeliver(
    conn: Connection, partner_id: str, endpoint_id: uuid.UUID, delivery_id: uuid.UUID
) -> bool | None:
    """Send a delivery again (the same webhook-id: a receiver that has it drops it). It takes
    its place in the endpoint's order: by its position, before newer messages. Marked as asked
    for: its attempt's failure does not count toward disabling the endpoint. None when there
    is no such delivery; False, and nothing changed, when its endpoint is disabled."""
    row = await conn.fetchrow(
        """WITH endpoint AS (
               SELECT e.enabled FROM webhook_endpoints e
               JOIN webhook_deliveries d ON d.endpoint_id = e.endpoint_id
               WHERE e.partner_id = $1 AND e.endpoint_id = $2 AND d.delivery_id = $3
           ), asked AS (
               UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = now(),
                   requested = true
               WHERE partner_id = $1 AND endpoint_id = $2 AND delivery_id = $3
                 AND (SELECT enabled FROM endpoint)
               RETURNING 1
           )
           SELECT (SELECT enabled FROM endpoint) AS enabled""",
        partner_id,
        endpoint_id,
        delivery_id,
    )
    enabled: bool | None = None if row is None else row["enabled"]
    if enabled:
        await conn.execute("SELECT pg_notify($1, '')", DELIVERY_CHANNEL)
    return enabled


async def enqueue(conn: Connection, filed: list[Filed]) -> int:
    """Queue each partner's new messages for the partner's endpoints of their kinds (a rep's
    messages have no webhooks). Disabled endpoints queue too: nothing is lost while one is
    off, and re-enabling it delivers in order."""
    mine = [f for f in filed if f.message.recipient.id == f.message.partner_id]
    if not mine:
        return 0
    result = await conn.execute(
        """INSERT INTO webhook_deliveries (delivery_id, endpoint_id, partner_id, position,
               message_id, event_type, payload)
           SELECT time_ordered_uuid(), e.endpoint_id, m.partner_id, m.position, m.message_id,
                  m.event_type, m.payload
           FROM unnest($1::bigint[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[])
                AS m(position, message_id, partner_id, kind, event_type, payload)
           JOIN webhook_endpoints e ON e.partner_id = m.partner_id
                AND (cardinality(e.kinds) = 0 OR m.kind = ANY(e.kinds))
           ON CONFLICT (endpoint_id, message_id) DO NOTHING""",
        [f.position for f in mine],
        [f.message.notification_id for f in mine],
        [f.message.partner_id for f in mine],
        [f.message.kind for f in mine],
        [webhooks.event_type(f.message.kind) for f in mine],
        [webhooks.payload(f.message, f.position) for f in mine],
    )
    queued = int(result.split()[-1])
    if queued:
        await conn.execute("SELECT pg_notify($1, '')", DELIVERY_CHANNEL)
    return queued


# The notice that a partner lost access (suspended, expelled, rejected) goes to its endpoints
# and mailbox; what comes after it waits until the partner is active again.
ACCESS_NOTICE = webhooks.event_type(NotificationKind.PARTNER_STATUS)

# The endpoints with a pending delivery: the pending-head index walked one endpoint at a time
# (a loose index scan), so a claim costs what the endpoints with work cost, not every endpoint
# registered (each wake-up claims).
_QUEUED = """WITH RECURSIVE queued(endpoint_id) AS (
               (SELECT d.endpoint_id FROM webhook_deliveries d WHERE d.status = 'pending'
                ORDER BY d.endpoint_id, d.position LIMIT 1)
               UNION ALL
               SELECT (SELECT d.endpoint_id FROM webhook_deliveries d
                       WHERE d.status = 'pending' AND d.endpoint_id > q.endpoint_id
                       ORDER BY d.endpoint_id, d.position LIMIT 1)
               FROM queued q WHERE q.endpoint_id IS NOT NULL
           )"""


def _due(revoking: str) -> str:
    """The endpoints (`c`) of `_QUEUED` that are enabled, held by no one and whose head is
    due, in turn: the longest due first, where an endpoint given back (`released_at`) is due
    from then (its turn is over: those due before go first). The head of a partner that lost
    access is its first notice saying so, ahead of what waits before it (found in review: a
    notice behind a delivery waiting for a retry never went out, as nothing else does)."""
    return f"""SELECT c.endpoint_id
               FROM queued q
               JOIN webhook_endpoints c ON c.endpoint_id = q.endpoint_id
               CROSS JOIN LATERAL (
                   SELECT EXISTS (SELECT 1 FROM partner_access a
                                  WHERE a.partner_id = c.partner_id
                                    AND a.status = ANY({revoking}::text[])) AS held) partner
               CROSS JOIN LATERAL (
                   SELECT d.next_attempt_at FROM webhook_deliveries d
                   WHERE d.endpoint_id = c.endpoint_id AND d.status = 'pending'
                     AND (NOT partner.held OR d.event_type = '{ACCESS_NOTICE}')
                   ORDER BY d.position LIMIT 1) head
               WHERE c.enabled AND (c.lease_until IS NULL OR c.lease_until < now())
                 AND head.next_attempt_at <= now()
               ORDER BY greatest(head.next_attempt_at, c.released_at)"""


@dataclass(frozen=True)
class ClaimedEndpoint:
    endpoint_id: uuid.UUID
    partner_id: str
    url: str
    signing: webhooks.Signing


async def claim_endpoints(
    pool: Pool, owner: uuid.UUID, limit: int, lease_seconds: float
) -> list[ClaimedEndpoint]:
    """Lease up to `limit` enabled endpoints whose head delivery is due and that no one else
    holds, the longest due first. One holder per endpoint keeps its deliveries in order. A
    partner that lost access (suspended, expelled: `partner_access`, which every service
    follows) gets nothing meanwhile: its deliveries wait, in order, until it is active again.
    Only endpoints with a pending delivery are looked at (`_QUEUED`)."""
    rows = await pool.fetch(
        f"""{_QUEUED}
           UPDATE webhook_endpoints e
           SET lease_until = now() + make_interval(secs => $3), lease_owner = $1
           WHERE e.endpoint_id IN ({_due("$4")} LIMIT $2 FOR UPDATE OF c SKIP LOCKED)
           RETURNING e.endpoint_id, e.partner_id, e.url, e.secret, e.previous_secrets,
                     e.previous_secrets_until""",
        owner,
        limit,
        lease_seconds,
        sorted(status.value for status in REVOKING),
    )
    return [
        ClaimedEndpoint(
            row["endpoint_id"],
            row["partner_id"],
            row["url"],
            webhooks.Signing(row["secret"], tuple(_previous(row))),
        )
        for row in rows
    ]


async def due_run(pool: Pool, endpoint_id: uuid.UUID, limit: int) -> list[Any]:
    """The endpoint's pending deliveries in order, from its head, while they are due: the run
    a deliverer sends one after the other (only the head can be waiting for a retry, since
    nothing behind it was tried). A partner that lost access is sent the notices saying so,
    ahead of the deliveries waiting for its access (held back with the rest, the notice reached
    it only if it happened to be delivered before notifications heard of the change, and an
    expelled partner never; behind a delivery waiting for a retry, it waited for good)."""
    # The deliveries held for the partner's access are passed over here, before the limit:
    # found in review, skipping them after it left a notice behind 50 of them unsent, and the
    # endpoint, its head due, claimed again and again with nothing to send.
    rows = await pool.fetch(
        """SELECT delivery_id, message_id, payload, attempts, next_attempt_at, requested,
                  next_attempt_at <= now() AS due
           FROM webhook_deliveries d
           WHERE endpoint_id = $1 AND status = 'pending'
             AND (event_type = $3 OR NOT EXISTS (
                      SELECT 1 FROM partner_access a
                      WHERE a.partner_id = d.partner_id AND a.status = ANY($4::text[])))
           ORDER BY position LIMIT $2""",
        endpoint_id,
        limit,
        ACCESS_NOTICE,
        sorted(status.value for status in REVOKING),
    )
    run = []
    for row in rows:
        if not row["due"]:
            break
        run.append(row)
    return run


async def delivered(
    pool: Pool, endpoint_id: uuid.UUID, url: str, attempts: Sequence[Attempt]
) -> bool:
    """Successful attempts (made to `url`), in one statement: logged, their deliveries done,
    the endpoint's failures forgiven. A delivery asked for again (`redeliver`) since its
    attempt was read is logged but stays pending, so it is sent again. False when the endpoint
    is no longer to be served: deliveries gone (the endpoint deleted meanwhile), the endpoint
    disabled, its partner's access revoked, or its URL changed (its holder would go on sending
    the backlog to the old URL: it lets go, and the endpoint is claimed with the new one).

    Its commit does not wait for the WAL flush (`synchronous_commit` off for this statement's
    transaction only): losing the marks in a crash only sends those deliveries again, with the
    same webhook-id, which the specification allows and receivers drop.

    The attempts travel as one JSON document, not as arrays: Postgres sees an array
    parameter's length when it plans, so the statement was planned afresh on every call
    (0.6 ms of Postgres' CPU, as much as running it); a document's rows are not counted in
    advance, and after its first few calls Postgres keeps one plan for it."""
    serving = await pool.fetchval(
        """WITH done AS (
               SELECT * FROM jsonb_to_recordset($1::jsonb)
                   AS a(delivery_id uuid, attempt int, attempted_at timestamptz,
                        status_code int, duration_ms int, due_at timestamptz)
           ), marked AS (
               UPDATE webhook_deliveries d SET attempts = a.attempt,
                   last_status_code = a.status_code, last_error = NULL,
                   status = CASE WHEN d.next_attempt_at = a.due_at THEN 'delivered'
                                 ELSE d.status END,
                   delivered_at = CASE WHEN d.next_attempt_at = a.due_at THEN a.attempted_at
                                       ELSE d.delivered_at END,
                   requested = d.requested AND d.next_attempt_at <> a.due_at
               FROM done a
               WHERE d.delivery_id = a.delivery_id
                 AND set_config('synchronous_commit', 'off', true) IS NOT NULL
               RETURNING d.delivery_id
           ), logged AS (
               INSERT INTO webhook_attempts (delivery_id, attempt, attempted_at, status_code,
                   duration_ms)
               SELECT a.delivery_id, a.attempt, a.attempted_at, a.status_code, a.duration_ms
               FROM done a JOIN marked USING (delivery_id)
               ON CONFLICT (delivery_id, attempt) DO NOTHING
           ), forgiven AS (
               UPDATE webhook_endpoints SET consecutive_failures = 0, failing_since = NULL
               WHERE endpoint_id = $2 AND consecutive_failures <> 0 AND url = $4
           )
           SELECT (SELECT count(*) FROM marked) = (SELECT count(DISTINCT delivery_id) FROM done)
              AND EXISTS (SELECT 1 FROM webhook_endpoints e
                          WHERE e.endpoint_id = $2 AND e.enabled AND e.url = $4
                            AND NOT EXISTS (SELECT 1 FROM partner_access a
                                            WHERE a.partner_id = e.partner_id
                                              AND a.status = ANY($3::text[])))""",
        json.dumps([_settled(attempt) for attempt in attempts]),
        endpoint_id,
        sorted(status.value for status in REVOKING),
        url,
    )
    return bool(serving)


def _settled(attempt: Attempt) -> dict[str, Any]:
    """An attempt as a row of `delivered`'s document. Times keep their microseconds (`due_at`
    is compared for equality with the delivery's `next_attempt_at`) and carry their offset (a
    naive one is taken as local time, as asyncpg sends it)."""
    return {
        "delivery_id": str(attempt.delivery_id),
        "attempt": attempt.number,
        "attempted_at": attempt.at.astimezone(UTC).isoformat(),
        "status_code": attempt.status_code,
        "duration_ms": attempt.duration_ms,
        "due_at": attempt.due_at.astimezone(UTC).isoformat(),
    }


async def renew_lease(
    pool: Pool, endpoint_id: uuid.UUID, owner: uuid.UUID, lease_seconds: float
) -> bool:
    """Keep the lease; False when it lapsed and someone else holds the endpoint now."""
    result = await pool.execute(
        """UPDATE webhook_endpoints SET lease_until = now() + make_interval(secs => $3)
           WHERE endpoint_id = $1 AND lease_owner = $2 AND enabled""",
        endpoint_id,
        owner,
        lease_seconds,
    )
    return result.split()[-1] == "1"


async def waiting_endpoints(pool: Pool, limit: int) -> int:
    """How many endpoints (at most `limit`) are due and held by no one: those waiting for a
    deliverer's slot when every slot is taken."""
    count = await pool.fetchval(
        f"{_QUEUED} SELECT count(*) FROM ({_due('$2')} LIMIT $1) due",
        limit,
        sorted(status.value for status in REVOKING),
    )
    return int(count)


async def release_lease(pool: Pool, endpoint_id: uuid.UUID, owner: uuid.UUID) -> None:
    """Give the endpoint back; the time it was given back orders its next turn (`_due`)."""
    await pool.execute(
        """UPDATE webhook_endpoints SET lease_until = NULL, lease_owner = NULL,
               released_at = now()
           WHERE endpoint_id = $1 AND lease_owner = $2""",
        endpoint_id,
        owner,
    )


@dataclass(frozen=True)
class Attempt:
    delivery_id: uuid.UUID
    number: int
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int
    # The delivery's next_attempt_at when it was read for this attempt: a redelivery asked for
    # meanwhile changes it, and the delivery is then sent again.
    due_at: datetime
    # Asked for by the partner (redeliver), not a retry: its failure is not counted.
    requested: bool = False
    # How long the receiver asked to be left alone (a throttling answer's Retry-After).
    retry_after: timedelta | None = None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def ended_at(self) -> datetime:
        return self.at + timedelta(milliseconds=self.duration_ms)


async def record_attempt(conn: Connection, attempt: Attempt, retry_at: datetime | None) -> None:
    """The attempt in the log, and the delivery's state after it: delivered, or due again at
    `retry_at`; a redelivery asked for since the attempt was read stands (due at once)."""
    await conn.execute(
        """INSERT INTO webhook_attempts (delivery_id, attempt, attempted_at, status_code, error,
               duration_ms) VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (delivery_id, attempt) DO NOTHING""",
        attempt.delivery_id,
        attempt.number,
        attempt.at,
        attempt.status_code,
        attempt.error,
        attempt.duration_ms,
    )
    await conn.execute(
        """UPDATE webhook_deliveries SET attempts = $2, last_status_code = $3, last_error = $4,
               status = CASE WHEN $5 AND next_attempt_at = $8 THEN 'delivered'
                             ELSE 'pending' END,
               delivered_at = CASE WHEN $5 AND next_attempt_at = $8 THEN $6
                                   ELSE delivered_at END,
               next_attempt_at = CASE WHEN next_attempt_at = $8
                                      THEN coalesce($7, next_attempt_at)
                                      ELSE next_attempt_at END,
               requested = requested AND next_attempt_at <> $8
           WHERE delivery_id = $1""",
        attempt.delivery_id,
        attempt.number,
        attempt.status_code,
        attempt.error,
        attempt.succeeded,
        attempt.at,
        retry_at,
        attempt.due_at,
    )


async def endpoint_outcome(
    conn: Connection,
    endpoint_id: uuid.UUID,
    url: str,
    succeeded: bool,
    at: datetime,
    *,
    counted: bool,
) -> Any:
    """Count the endpoint's failures in a row (a success forgives them; a failure not
    `counted`, a redelivery's, leaves them); returns them, whether the endpoint is still
    enabled and its URL now, under its row lock. An attempt made to `url` when the endpoint has
    another now (changed while it was out) changes nothing: the new URL's count is its own."""
    return await conn.fetchrow(
        """UPDATE webhook_endpoints SET
               consecutive_failures = CASE WHEN url <> $5 THEN consecutive_failures
                                           WHEN $2 THEN 0
                                           WHEN $4 THEN consecutive_failures + 1
                                           ELSE consecutive_failures END,
               failing_since = CASE WHEN url <> $5 THEN failing_since
                                    WHEN $2 THEN NULL
                                    WHEN $4 THEN coalesce(failing_since, $3)
                                    ELSE failing_since END
           WHERE endpoint_id = $1
           RETURNING partner_id, url, enabled, consecutive_failures, failing_since""",
        endpoint_id,
        succeeded,
        at,
        counted,
        url,
    )


async def disable_endpoint(conn: Connection, endpoint_id: uuid.UUID, reason: str) -> None:
    await conn.execute(
        """UPDATE webhook_endpoints SET enabled = false, disabled_reason = $2,
               lease_until = NULL, lease_owner = NULL, updated_at = now()
           WHERE endpoint_id = $1""",
        endpoint_id,
        reason,
    )
