"""Write-side SQL of e-mail: preferences, the mails queued when messages are filed, digests
gathered, mails claimed for sending and their outcome."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from services.notifications.domain import email
from services.notifications.domain.addressing import Recipient, RecipientKind
from services.notifications.domain.email import EmailMode, EmailPreference
from services.notifications.domain.messages import Message
from services.notifications.repository import Filed
from shared.access import REVOKING
from shared.db import Connection, Pool, from_row
from shared.events.notifications import NotificationKind
from shared.name_ids import NameIds

EMAIL_IDS = NameIds(uuid.UUID("8d3b8a70-5f0e-4a55-9f1c-0c2e6f1d4b21"))


async def set_preference(
    conn: Connection, recipient: Recipient, preference: EmailPreference
) -> Any:
    return await conn.fetchrow(
        """INSERT INTO email_preferences (recipient_kind, recipient, address, kinds, mode)
           VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (recipient_kind, recipient) DO UPDATE
           SET address = excluded.address, kinds = excluded.kinds, mode = excluded.mode,
               updated_at = now()
           RETURNING address, kinds, mode, updated_at""",
        recipient.kind.value,
        recipient.id,
        preference.address,
        sorted(preference.kinds),
        preference.mode.value,
    )


async def preferences(
    conn: Connection, recipients: set[Recipient]
) -> dict[Recipient, EmailPreference]:
    rows = await conn.fetch(
        """SELECT p.recipient_kind, p.recipient, p.address, p.kinds, p.mode
           FROM email_preferences p
           JOIN unnest($1::text[], $2::text[]) AS r(kind, id)
             ON p.recipient_kind = r.kind AND p.recipient = r.id
           WHERE p.mode <> 'off'""",
        [r.kind.value for r in recipients],
        [r.id for r in recipients],
    )
    return {
        Recipient(RecipientKind(row["recipient_kind"]), row["recipient"]): EmailPreference(
            row["address"], EmailMode(row["mode"]), frozenset(row["kinds"])
        )
        for row in rows
    }


async def route(conn: Connection, filed: list[Filed]) -> int:
    """Queue the filed messages their recipients want by mail: a mail each now, or a place in
    the next digest. Returns how many were queued either way."""
    if not filed:
        return 0
    wanted = await preferences(conn, {f.message.recipient for f in filed})
    now_mails: list[tuple[Filed, EmailPreference]] = []
    later: list[Filed] = []
    for item in filed:
        preference = wanted.get(item.message.recipient)
        mode = preference.wants(item.message.kind) if preference else EmailMode.OFF
        # A change of the partner's standing is mailed at once, even to a digest reader: in a
        # digest with other messages, a partner that lost access had the whole mail held, the
        # notice saying so with it (found in review).
        urgent = item.message.kind == NotificationKind.PARTNER_STATUS
        if preference is not None and (
            mode is EmailMode.IMMEDIATE or (mode is EmailMode.DIGEST and urgent)
        ):
            now_mails.append((item, preference))
        elif mode is EmailMode.DIGEST:
            later.append(item)
    for item, preference in now_mails:
        subject, body = email.immediate(item.message)
        await queue_mail(
            conn,
            EMAIL_IDS.uuid(str(item.message.notification_id)),
            item.message.recipient,
            preference.address,
            subject,
            body,
            [item.position],
        )
    if later:
        await conn.execute(
            """INSERT INTO email_digest_queue (recipient_kind, recipient, position)
               SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])
               ON CONFLICT DO NOTHING""",
            [f.message.recipient.kind.value for f in later],
            [f.message.recipient.id for f in later],
            [f.position for f in later],
        )
    return len(now_mails) + len(later)


async def queue_mail(
    conn: Connection,
    email_id: uuid.UUID,
    recipient: Recipient,
    address: str,
    subject: str,
    body: str,
    positions: list[int],
) -> None:
    await conn.execute(
        """INSERT INTO emails (email_id, recipient_kind, recipient, address, subject, body,
               positions) VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (email_id) DO NOTHING""",
        email_id,
        recipient.kind.value,
        recipient.id,
        address,
        subject,
        body,
        positions,
    )


async def take_digests(conn: Connection) -> list[tuple[Recipient, str, list[int], list[Message]]]:
    """Everything waiting for a digest, per recipient with its address, taken off the queue
    (in this transaction: the digest mails are queued in it too)."""
    rows = await conn.fetch(
        """DELETE FROM email_digest_queue q
           RETURNING q.recipient_kind, q.recipient, q.position"""
    )
    if not rows:
        return []
    messages = {
        row["position"]: row
        for row in await conn.fetch(
            """SELECT position, notification_id, recipient_kind, recipient, partner_id, kind,
                      subject, body, registration_id, deal_key, created_at, ingested_at
               FROM messages WHERE position = ANY($1::bigint[])""",
            [row["position"] for row in rows],
        )
    }
    by_recipient: dict[Recipient, list[int]] = {}
    for row in rows:
        key = Recipient(RecipientKind(row["recipient_kind"]), row["recipient"])
        by_recipient.setdefault(key, []).append(row["position"])
    wanted = await preferences(conn, set(by_recipient))
    digests = []
    for recipient, positions in by_recipient.items():
        preference = wanted.get(recipient)
        if preference is None or preference.mode is EmailMode.OFF:
            continue  # mail turned off since: nothing to send
        # A switch to immediate mail gets what waited in one last digest (it was dropped:
        # found in review); a kind no longer wanted is left out.
        kept = [
            p
            for p in sorted(positions)
            if p in messages and preference.wants(messages[p]["kind"]) is not EmailMode.OFF
        ]
        if kept:
            carried = [message_of(messages[p]) for p in kept]
            digests.append((recipient, preference.address, kept, carried))
    return digests


def message_of(row: Any) -> Message:
    return from_row(
        Message, row, recipient=Recipient(RecipientKind(row["recipient_kind"]), row["recipient"])
    )


async def claim_due(pool: Pool, limit: int, lease_seconds: float) -> list[Any]:
    """Pending mails that are due, pushed out of reach for the lease while they are sent (an
    instance that dies mid-send leaves them to be sent again after it). A partner that lost
    access gets no mail meanwhile: its mails wait, but for the notice saying so (held back
    with the rest, it reached the partner only if it happened to go before notifications heard
    of the change, and an expelled partner never)."""
    return await pool.fetch(
        """UPDATE emails m SET next_attempt_at = now() + make_interval(secs => $2),
               -- to the address the recipient names now (a person who left, removed since)
               address = coalesce((SELECT p.address FROM email_preferences p
                                   WHERE p.recipient_kind = m.recipient_kind
                                     AND p.recipient = m.recipient), m.address)
           WHERE email_id IN (
               SELECT m.email_id FROM emails m
               WHERE m.status = 'pending' AND m.next_attempt_at <= now()
                 AND NOT (m.recipient_kind = 'partner' AND EXISTS (
                     SELECT 1 FROM partner_access a
                     WHERE a.partner_id = m.recipient AND a.status = ANY($3::text[]))
                   AND (SELECT count(*) FROM messages x
                        WHERE x.position = ANY(m.positions) AND x.kind = $4)
                       < cardinality(m.positions))
               ORDER BY m.next_attempt_at LIMIT $1 FOR UPDATE OF m SKIP LOCKED)
           RETURNING email_id, address, subject, body, attempts,
                     coalesce(first_attempt_at, now()) AS trying_since""",
        limit,
        lease_seconds,
        sorted(status.value for status in REVOKING),
        NotificationKind.PARTNER_STATUS.value,
    )


async def withdraw_unwanted(pool: Pool) -> int:
    """Give up the due mails their recipient no longer wants: e-mail turned off, or none of
    their messages' kinds wanted any more, since they were queued (found in review: a backlog
    held by a relay outage or a suspension went out after the recipient turned mail off)."""
    result = await pool.execute(
        """UPDATE emails m SET status = 'failed', last_error = $1
           WHERE m.status = 'pending' AND m.next_attempt_at <= now()
             AND EXISTS (
                 SELECT 1 FROM email_preferences p
                 WHERE p.recipient_kind = m.recipient_kind AND p.recipient = m.recipient
                   AND (p.mode = 'off' OR (cardinality(p.kinds) > 0 AND NOT EXISTS (
                       SELECT 1 FROM messages x
                       WHERE x.position = ANY(m.positions) AND x.kind = ANY(p.kinds)))))""",
        "not sent: the recipient turned e-mail off, or wants none of its kinds, since it was "
        "queued",
    )
    return int(result.split()[-1])


async def give_back(pool: Pool, email_ids: list[uuid.UUID]) -> None:
    """Claimed mails not begun within their lease: due again at once."""
    await pool.execute(
        "UPDATE emails SET next_attempt_at = now() WHERE email_id = ANY($1::uuid[])"
        " AND status = 'pending'",
        email_ids,
    )


async def settle(
    pool: Pool,
    email_id: uuid.UUID,
    *,
    sent_at: datetime | None,
    error: str | None,
    retry_at: datetime | None,
) -> None:
    """Sent; or failed and due again at `retry_at`; or failed for good (no `retry_at`)."""
    await pool.execute(
        """UPDATE emails SET attempts = attempts + 1, last_error = $3,
               status = CASE WHEN $2::timestamptz IS NOT NULL THEN 'sent'
                             WHEN $4::timestamptz IS NULL THEN 'failed' ELSE 'pending' END,
               sent_at = $2, next_attempt_at = coalesce($4, next_attempt_at),
               first_attempt_at = coalesce(first_attempt_at, now())
           WHERE email_id = $1""",
        email_id,
        sent_at,
        error,
        retry_at,
    )


async def digests_due(conn: Connection, every: timedelta) -> bool:
    """Whether digests are due (`every` passed since they were last gathered), the schedule's
    row locked for the transaction and moved to now when they are: another instance deciding at
    the same moment waits, then finds them not due."""
    moved = await conn.fetchval(
        """UPDATE digest_schedule SET gathered_at = now()
           WHERE gathered_at <= now() - $1::interval RETURNING true""",
        every,
    )
    return moved is not None
