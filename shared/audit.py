"""The audit trail: every write through a service's API records who acted (the verified
principal of its token: `sub`, roles, partner), what it did and to what, in the write's own
transaction, so the trail and the change commit together or not at all."""

from __future__ import annotations

from shared.db import Connection
from shared.identity import Caller


async def record_action(conn: Connection, who: Caller, action: str, subject: str) -> None:
    await conn.execute(
        """INSERT INTO audit_log (principal, roles, partner_id, action, subject)
           VALUES ($1, $2, $3, $4, $5)""",
        who.subject,
        sorted(role.value for role in who.roles),
        who.partner_id,
        action,
        subject,
    )
