"""The audit trail: every write through a service's API records who acted (the verified
principal of its token: `sub`, roles, partner, and the token's id, which joins onboarding's
`token_grants` to who issued it), what it did and to what, in the write's own transaction, so
the trail and the change commit together or not at all."""

from __future__ import annotations

from shared.db import Connection, Pool
from shared.identity import Caller


async def record_action(conn: Connection, who: Caller, action: str, subject: str) -> None:
    await conn.execute(
        """INSERT INTO audit_log (principal, roles, partner_id, action, subject, token_id)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        who.subject,
        sorted(role.value for role in who.roles),
        who.partner_id,
        action,
        subject,
        who.token_id,
    )


async def record_run_asked(pool: Pool, who: Caller, action: str, subject: str) -> None:
    """A manual run of periodic work, recorded when it is asked for, before it starts: the run
    commits batch by batch, so one that fails half-way has still changed things, and the trail
    says who asked (found in review: recorded only after a whole run succeeded)."""
    async with pool.acquire() as conn:
        await record_action(conn, who, action, subject)
