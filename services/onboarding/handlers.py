"""Onboarding's consumer handlers: attribution credits and reversals, a run at a time, move
attributed revenue, hence tiers (`credit_runs.py`); what they change is recorded in one
statement, each event caused by the credit or reversal behind it. Attribution's health scores
are kept for the programme year (`signals.py`)."""

from __future__ import annotations

from services.onboarding.credit_runs import record_credits, record_reversals
from services.onboarding.domain.config import OnboardingConfig
from services.onboarding.signals import record_health
from shared.consumer import HandlerContext
from shared.events import Envelope
from shared.events.attribution import CreditIssued, CreditReversed, PartnerHealthScored


async def on_credits(ctx: HandlerContext, events: list[Envelope[CreditIssued]]) -> None:
    await ctx.emit_all(await record_credits(ctx.conn, ctx.provided(OnboardingConfig), events))


async def on_reversals(ctx: HandlerContext, events: list[Envelope[CreditReversed]]) -> None:
    await ctx.emit_all(await record_reversals(ctx.conn, ctx.provided(OnboardingConfig), events))


async def on_health(ctx: HandlerContext, events: list[Envelope[PartnerHealthScored]]) -> None:
    """Attribution scored partners' health: the newest day of each is kept."""
    await record_health(ctx.conn, [e.data for e in events])
