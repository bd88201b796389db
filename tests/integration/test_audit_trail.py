"""The audit trail on a scratch schema (real Postgres): an action names the token it was taken
with, so a partner's token a channel manager issued (naming any user) is told apart from the
person's own (onboarding's `token_grants` says who issued each)."""

from __future__ import annotations

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
