"""Write-side SQL of enablement: people of partners (memberships), the learning system's
statements and what each did."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from services.onboarding.domain.enablement import VOIDED
from services.onboarding.repository import Row, new_id
from shared.db import Connection, columns


async def lock_actors(conn: Connection, keys: Collection[str]) -> None:
    """Serialise work on these actors (statements arriving, the person being registered) for
    the rest of the transaction, so a statement is never stored unmatched while its person is
    being registered (each would miss the other). Keys are locked in order: no deadlock."""
    await conn.execute(
        """SELECT pg_advisory_xact_lock(hashtext(k))
           FROM (SELECT DISTINCT k FROM unnest($1::text[]) AS u(k) ORDER BY k) AS s""",
        sorted(keys),
    )


async def current_person(conn: Connection, email: str, lms_account: str | None) -> Row | None:
    """The current membership (not left) holding this mailbox or learning-system account."""
    return await conn.fetchrow(
        """SELECT * FROM people WHERE left_at IS NULL
             AND (email = $1 OR ($2::text IS NOT NULL AND lms_account = $2))
           ORDER BY joined_at LIMIT 1""",
        email,
        lms_account,
    )


async def domain_holders(conn: Connection, domains: Collection[str]) -> dict[str, str]:
    """Which partner holds (has verified) each of `domains` that is held."""
    rows = await conn.fetch(
        """SELECT domain, partner_id FROM partners
           WHERE domain = ANY($1::text[]) AND domain_verified_at IS NOT NULL""",
        sorted(set(domains)),
    )
    return {r["domain"]: r["partner_id"] for r in rows}


async def insert_person(
    conn: Connection,
    partner_id: str,
    *,
    email: str,
    name: str | None,
    role: str,
    lms_account: str | None,
    at: datetime,
    by: str,
) -> Row:
    row = await conn.fetchrow(
        """INSERT INTO people (person_id, partner_id, email, name, role, lms_account,
               joined_at, added_by)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *""",
        new_id("psn"),
        partner_id,
        email,
        name,
        role,
        lms_account,
        at,
        by,
    )
    assert row is not None
    return row


async def claim_certifications(conn: Connection, person: Row) -> None:
    """Certifications recorded by hand for this person's mailbox at their partner before they
    were registered are theirs from now on (so their leaving removes them too)."""
    await conn.execute(
        """UPDATE certifications SET person_id = $1
           WHERE partner_id = $2 AND person = $3 AND person_id IS NULL""",
        person["person_id"],
        person["partner_id"],
        person["email"],
    )


async def lock_person(
    conn: Connection, partner_id: str, person_id: str, *, lock: bool = True
) -> Row | None:
    """The partner's person (locked for update unless `lock` is false)."""
    return await conn.fetchrow(
        "SELECT * FROM people WHERE person_id = $1 AND partner_id = $2"
        + (" FOR UPDATE" if lock else ""),
        person_id,
        partner_id,
    )


async def mark_left(conn: Connection, person_id: str, at: datetime, by: str) -> Row:
    row = await conn.fetchrow(
        "UPDATE people SET left_at = $2, left_by = $3 WHERE person_id = $1 RETURNING *",
        person_id,
        at,
        by,
    )
    assert row is not None
    return row


async def memberships(conn: Connection, keys: Collection[str]) -> list[Row]:
    """Every membership (current or past) known by one of these actor keys."""
    return await conn.fetch(
        """SELECT * FROM people
           WHERE 'mbox:' || email = ANY($1::text[]) OR lms_account = ANY($1::text[])
           ORDER BY joined_at""",
        list(keys),
    )


async def insert_statements(conn: Connection, rows: Sequence[tuple[Any, ...]]) -> set[str]:
    """Store statements not stored before (id, content, comparable, actor key, verb, activity,
    occurred at, stored at, stored by), one statement; returns the ids that are new."""
    if not rows:
        return set()
    arrays = columns(rows)
    arrays[1] = [json.dumps(c) for c in arrays[1]]
    inserted = await conn.fetch(
        """INSERT INTO xapi_statements (statement_id, content, comparable, actor_key, verb,
               activity, occurred_at, stored_at, stored_by)
           SELECT * FROM unnest($1::uuid[], $2::jsonb[], $3::text[], $4::text[], $5::text[],
                                $6::text[], $7::timestamptz[], $8::timestamptz[], $9::text[])
           ON CONFLICT (statement_id) DO NOTHING
           RETURNING statement_id::text""",
        *arrays,
    )
    return {r["statement_id"] for r in inserted}


async def comparables(conn: Connection, statement_ids: Collection[str]) -> dict[str, str]:
    rows = await conn.fetch(
        """SELECT statement_id::text, comparable FROM xapi_statements
           WHERE statement_id = ANY($1::uuid[])""",
        list(statement_ids),
    )
    return {r["statement_id"]: r["comparable"] for r in rows}


async def unmatched_statements(conn: Connection, keys: Collection[str]) -> list[Row]:
    """Statements of these actors that no person has claimed yet (not voided, not voiding
    others), oldest first."""
    return await conn.fetch(
        """SELECT s.statement_id::text, s.content, s.occurred_at FROM xapi_statements s
           WHERE s.actor_key = ANY($1::text[]) AND s.verb <> $2
             AND NOT EXISTS (SELECT 1 FROM xapi_statement_outcomes o
                             WHERE o.statement_id = s.statement_id)
             AND NOT EXISTS (SELECT 1 FROM xapi_voided v WHERE v.statement_id = s.statement_id)
           ORDER BY s.occurred_at, s.stored_at""",
        list(keys),
        VOIDED,
    )


async def insert_outcomes(conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """What statements did (statement id, person, partner, certification, outcome, at)."""
    if not rows:
        return
    await conn.execute(
        """INSERT INTO xapi_statement_outcomes (statement_id, person_id, partner_id,
               certification_id, outcome, decided_at)
           SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],
                                $6::timestamptz[])""",
        *columns(rows),
    )


async def expiring_certifications(
    conn: Connection, as_of: datetime, horizon_days: int, not_certified: Collection[Any]
) -> list[Row]:
    """Certifications counting now that expire within `horizon_days`, with the reminder windows
    already sent: not those of people who left, of partners no longer certified, nor those
    renewed (the same person, role and track certified again until later)."""
    return await conn.fetch(
        """
        SELECT c.certification_id, c.partner_id, c.person, c.person_name, c.role, c.track,
               c.expires_at,
               ARRAY(SELECT r.days_before FROM certification_reminders r
                     WHERE r.certification_id = c.certification_id) AS sent
        FROM certifications c
        JOIN partners pr ON pr.partner_id = c.partner_id
        LEFT JOIN people p ON p.person_id = c.person_id
        WHERE c.expires_at > $1 AND c.expires_at <= $1 + make_interval(days => $2)
          AND c.issued_at <= $1
          AND p.left_at IS NULL AND c.voided_at IS NULL
          AND pr.status <> ALL($3::text[])
          AND NOT EXISTS (
              SELECT 1 FROM certifications n
              WHERE n.partner_id = c.partner_id AND n.person = c.person AND n.role = c.role
                AND n.track = c.track AND n.expires_at > c.expires_at
                AND n.voided_at IS NULL)
        ORDER BY c.expires_at, c.certification_id
        """,
        as_of,
        horizon_days,
        sorted(str(status) for status in not_certified),
    )


async def insert_reminders(
    conn: Connection, reminders: Sequence[tuple[str, int]], at: datetime
) -> set[tuple[str, int]]:
    """Record reminders (certification, days before) not sent before; returns those new."""
    if not reminders:
        return set()
    rows = await conn.fetch(
        """INSERT INTO certification_reminders (certification_id, days_before, sent_at)
           SELECT c, d, $3 FROM unnest($1::text[], $2::int[]) AS u(c, d)
           ON CONFLICT DO NOTHING RETURNING certification_id, days_before""",
        [c for c, _ in reminders],
        [d for _, d in reminders],
        at,
    )
    return {(r["certification_id"], r["days_before"]) for r in rows}


async def insert_resource(
    conn: Connection,
    *,
    kind: str,
    title: str,
    url: str,
    partner_types: Sequence[str],
    tiers: Sequence[str],
    by: str,
    at: datetime,
) -> Row:
    row = await conn.fetchrow(
        """INSERT INTO resources (resource_id, kind, title, url, partner_types, tiers,
               published_by, published_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *""",
        new_id("res"),
        kind,
        title,
        url,
        sorted(partner_types),
        sorted(tiers),
        by,
        at,
    )
    assert row is not None
    return row


async def withdraw_resource(conn: Connection, resource_id: str, at: datetime) -> Row | None:
    """Withdraw a resource (a withdrawn one keeps its first withdrawal time)."""
    return await conn.fetchrow(
        """UPDATE resources SET withdrawn_at = coalesce(withdrawn_at, $2)
           WHERE resource_id = $1 RETURNING *""",
        resource_id,
        at,
    )


async def record_engagement(
    conn: Connection,
    resource_id: str,
    partner_id: str,
    subject: str,
    action: str,
    at: datetime,
) -> bool:
    """Record an engagement; False when it was recorded already (a download the same day, a
    sign-up ever)."""
    recorded = await conn.fetchval(
        """INSERT INTO resource_engagements (resource_id, partner_id, subject, action, on_day, at)
           VALUES ($1, $2, $3, $4, ($5::timestamptz AT TIME ZONE 'UTC')::date, $5)
           ON CONFLICT DO NOTHING RETURNING true""",
        resource_id,
        partner_id,
        subject,
        action,
        at,
    )
    return bool(recorded)


async def partner_standing(conn: Connection, partner_id: str) -> Row | None:
    """The partner's type and tier (what resources are meant for)."""
    return await conn.fetchrow(
        "SELECT partner_type, tier FROM partners WHERE partner_id = $1", partner_id
    )


async def resource(conn: Connection, resource_id: str) -> Row | None:
    return await conn.fetchrow("SELECT * FROM resources WHERE resource_id = $1", resource_id)


async def record_voids(
    conn: Connection, voids: Sequence[tuple[str, str]], at: datetime
) -> set[str]:
    """Record statements voided (target, voiding statement); a statement voided twice keeps
    its first voiding. The certifications they gave are voided: returns their partners."""
    if not voids:
        return set()
    await conn.execute(
        """INSERT INTO xapi_voided (statement_id, voided_by, voided_at)
           SELECT t, v, $3 FROM unnest($1::uuid[], $2::uuid[]) AS u(t, v)
           ON CONFLICT DO NOTHING""",
        [t for t, _ in voids],
        [v for _, v in voids],
        at,
    )
    # A certification another statement still stands behind (the same pass sent again under
    # a new id) is not voided with the first: it moves to that statement. Found in review:
    # voiding one of two statements behind a certification revoked it for good.
    rows = await conn.fetch(
        """WITH standing AS (
               SELECT DISTINCT ON (c.certification_id) c.certification_id, o.statement_id
               FROM certifications c
               JOIN xapi_statement_outcomes o ON o.certification_id = c.certification_id
               WHERE c.statement_id = ANY($1::uuid[]) AND c.voided_at IS NULL
                 AND NOT EXISTS (SELECT 1 FROM xapi_voided v WHERE v.statement_id = o.statement_id)
               ORDER BY c.certification_id, o.decided_at, o.statement_id
           ), moved AS (
               UPDATE certifications c SET statement_id = standing.statement_id
               FROM standing WHERE c.certification_id = standing.certification_id
           )
           UPDATE certifications SET voided_at = $2
           WHERE statement_id = ANY($1::uuid[]) AND voided_at IS NULL
             AND certification_id NOT IN (SELECT certification_id FROM standing)
           RETURNING partner_id""",
        [t for t, _ in voids],
        at,
    )
    return {r["partner_id"] for r in rows}


async def voided_among(conn: Connection, statement_ids: Collection[str]) -> set[str]:
    rows = await conn.fetch(
        "SELECT statement_id::text FROM xapi_voided WHERE statement_id = ANY($1::uuid[])",
        list(statement_ids),
    )
    return {r["statement_id"] for r in rows}
