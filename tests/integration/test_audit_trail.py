"""The audit trail on a scratch schema (real Postgres): an action names the token it was taken
with, so a partner's token a channel manager issued (naming any user) is told apart from the
person's own (onboarding's `token_grants` says who issued each)."""

from __future__ import annotations

import asyncpg
import pytest

from shared.audit import record_action
from shared.identity import Caller, Role
from tests.support.counter import Components

pytestmark = pytest.mark.integration


async def test_an_action_names_the_token_it_was_taken_with(components: Components) -> None:
    """Found in review: a manager could issue a partner admin's token for its real admin and
    accept the partner's plan with it; the trail named the partner's person and nothing else."""
    minted = Caller(
        subject="ptn_x/alice@partner.example",
        roles=frozenset({Role.PARTNER_ADMIN}),
        partner_id="ptn_x",
        token_id="tok-minted-by-a-manager",
    )
    async with components.pool.acquire() as conn:
        await record_action(conn, minted, "plan.answer", "ptn_x/2027")
    row = await components.pool.fetchrow(
        "SELECT principal, token_id FROM audit_log WHERE subject = 'ptn_x/2027'"
    )
    assert row is not None
    assert (row["principal"], row["token_id"]) == (
        "ptn_x/alice@partner.example",
        "tok-minted-by-a-manager",
    )


async def test_the_audit_trail_is_append_only(components: Components) -> None:
    """Found in review: the runtime role (granted UPDATE and DELETE on every table) could erase
    the rows that named it, without a trace."""
    manager = Caller(subject="cm@vendor", roles=frozenset({Role.CHANNEL_MANAGER}))
    async with components.pool.acquire() as conn:
        await record_action(conn, manager, "payout.request", "ptn_y/ref-1")
        for statement in (
            "UPDATE audit_log SET principal = 'someone-else' WHERE subject = 'ptn_y/ref-1'",
            "DELETE FROM audit_log WHERE subject = 'ptn_y/ref-1'",
        ):
            with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
                await conn.execute(statement)
        # TRUNCATE is not granted to the runtime role at all; the trigger stops its owner.
        with pytest.raises((asyncpg.RestrictViolationError, asyncpg.InsufficientPrivilegeError)):
            await conn.execute("TRUNCATE audit_log")
    kept = await components.pool.fetchval(
        "SELECT principal FROM audit_log WHERE subject = 'ptn_y/ref-1'"
    )
    assert kept == "cm@vendor"
