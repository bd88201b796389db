"""Partner access: whose tokens no longer count, in every service, within seconds.

Tokens are short-lived but not instantly: a partner suspended or expelled must lose access
sooner. Every service consumes `partners.lifecycle.v1` in a platform-owned group
(`<service>.partner-access`) into its `partner_access` table; every instance of the service
refreshes its in-memory view from that table every `refresh_seconds` (instances share the
group's partitions, so none of them sees every event itself), and the HTTP edge refuses a
partner whose latest status revokes access (403 `partner access revoked: suspended`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from shared.db import Connection, Pool
from shared.events.partners import REVOKING, PartnerStateChanged, PartnerStatus

__all__ = ["REVOKING", "PartnerAccess", "record_partner_states"]


class PartnerAccess:
    """The in-memory view an instance's HTTP edge reads (no I/O per request)."""

    def __init__(self) -> None:
        self._status: dict[str, PartnerStatus] = {}
        self._revoked_at: dict[str, datetime] = {}
        self._seen_until: datetime | None = None

    def revoked(self, partner_id: str) -> str | None:
        """Why the partner may not act (its status), or None."""
        status = self._status.get(partner_id)
        return status.value if status in REVOKING else None

    def refused(self, partner_id: str, issued_at: datetime | None) -> str | None:
        """Why a token of the partner issued at `issued_at` may not act, or None: the partner
        has no access, or lost it after the token was issued (reinstated since, its earlier
        tokens are not: a suspension is the only way to stop a leaked partner token)."""
        revoked = self.revoked(partner_id)
        if revoked is not None:
            return f"partner access revoked: {revoked}"
        revoked_at = self._revoked_at.get(partner_id)
        # A token's issue time is in whole seconds: one issued in the second of the revocation
        # is taken as issued after it (a new token right after a reinstatement must work).
        if (
            revoked_at is not None
            and issued_at is not None
            and issued_at < revoked_at.replace(microsecond=0)
        ):
            return (
                f"partner access was revoked at {revoked_at.isoformat()}, after this token was "
                "issued: sign in again for a new one"
            )
        return None

    async def refresh(self, pool: Pool) -> int:
        """Read what changed since the last refresh (all of it the first time)."""
        # seen_at is stamped inside the writing transaction, which may commit after a later
        # stamp was read: each refresh looks back over a margin longer than any such write.
        rows = await pool.fetch(
            """SELECT partner_id, status, revoked_at, seen_at FROM partner_access
               WHERE $1::timestamptz IS NULL OR seen_at >= $1 - interval '30 seconds'
               ORDER BY seen_at""",
            self._seen_until,
        )
        for row in rows:
            self._status[row["partner_id"]] = PartnerStatus(row["status"])
            if row["revoked_at"] is not None:
                self._revoked_at[row["partner_id"]] = row["revoked_at"]
        if rows:
            self._seen_until = max(rows[-1]["seen_at"], self._seen_until or rows[-1]["seen_at"])
        return len(rows)


async def record_partner_states(conn: Connection, events: Sequence[PartnerStateChanged]) -> None:
    """Keep each partner's latest status (an older version never wins) and when it last lost
    access (from any revoking version, whatever its order: a suspension and the reinstatement
    after it may come in one batch, or the other way round), one statement."""
    latest: dict[str, PartnerStateChanged] = {}
    revoked_at: dict[str, datetime] = {}
    for event in events:
        held = latest.get(event.partner_id)
        if held is None or held.version < event.version:
            latest[event.partner_id] = event
        if event.status in REVOKING:
            before = revoked_at.get(event.partner_id)
            revoked_at[event.partner_id] = max(event.changed_at, before or event.changed_at)
    await conn.execute(
        """
        INSERT INTO partner_access (partner_id, status, version, changed_at, revoked_at)
        SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::timestamptz[],
                             $5::timestamptz[])
        ON CONFLICT (partner_id) DO UPDATE SET
            status = CASE WHEN partner_access.version < EXCLUDED.version
                          THEN EXCLUDED.status ELSE partner_access.status END,
            changed_at = CASE WHEN partner_access.version < EXCLUDED.version
                              THEN EXCLUDED.changed_at ELSE partner_access.changed_at END,
            version = greatest(partner_access.version, EXCLUDED.version),
            revoked_at = greatest(partner_access.revoked_at, EXCLUDED.revoked_at),
            seen_at = clock_timestamp()
        WHERE partner_access.version < EXCLUDED.version
           OR EXCLUDED.revoked_at > coalesce(partner_access.revoked_at, '-infinity')
        """,
        list(latest),
        [e.status.value for e in latest.values()],
        [e.version for e in latest.values()],
        [e.changed_at for e in latest.values()],
        [revoked_at.get(partner_id) for partner_id in latest],
    )
