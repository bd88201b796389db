"""The audit trail: every write through a service's API records who acted (the verified
principal of its token: `sub`, roles, partner, and the token's id, which joins onboarding's
`token_grants` to who issued it), what it did and to what, in the write's own transaction, so
the trail and the change commit together or not at all."""

from __future__ import annotations

from shared.db import Connection
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
