"""Onboarding's consumer handlers: attribution credits and reversals, a run at a time, move
attributed revenue, hence tiers (`credit_runs.py`); what they change is recorded in one
statement, each event caused by the credit or reversal behind it."""

from __future__ import annotations

from services.onboarding.credit_runs import record_credits, record_reversals
from services.onboarding.domain.config import OnboardingConfig
from shared.consumer import HandlerContext
from shared.events import Envelope
from shared.events.attribution import CreditIssued, CreditReversed


async def on_credits(ctx: HandlerContext, events: list[Envelope[CreditIssued]]) -> None:
    await ctx.emit_all(await record_credits(ctx.conn, ctx.provided(OnboardingConfig), events))


async def on_reversals(ctx: HandlerContext, events: list[Envelope[CreditReversed]]) -> None:
    await ctx.emit_all(await record_reversals(ctx.conn, ctx.provided(OnboardingConfig), events))
