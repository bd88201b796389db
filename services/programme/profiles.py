"""Write side of the partner projection (`partner_profiles`): the programme's events about a
partner kept as its current standing. The account manager and the annual review come from
onboarding (partners.programme.v1), the health score from attribution (attribution.health.v1);
each consumer is idempotent (the inbox), and each part keeps only its newest word, so a late,
repeated or reordered event changes nothing. Tier, type and status are the lifecycle's
(`partner_versions`, kept by handlers.py); the `partner_book` view puts both together."""

from __future__ import annotations

import json

from services.programme.domain.profiles import newest_per_partner
from shared.consumer import HandlerContext
from shared.db import columns
from shared.events import Envelope
from shared.events.attribution import PartnerHealthScored
from shared.events.programme import (
    AccountManagerAssigned,
    RequalificationAppealDecided,
    RequalificationDecided,
)


async def on_managers_assigned(
    ctx: HandlerContext, events: list[Envelope[AccountManagerAssigned]]
) -> None:
    rows = newest_per_partner([e.data for e in events], _partner, lambda e: e.assigned_at)
    await ctx.conn.execute(
        """
        INSERT INTO partner_profiles (partner_id, account_manager, manager_assigned_at)
        SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[])
        ON CONFLICT (partner_id) DO UPDATE SET
            account_manager = EXCLUDED.account_manager,
            manager_assigned_at = EXCLUDED.manager_assigned_at
        WHERE partner_profiles.manager_assigned_at IS NULL
           OR partner_profiles.manager_assigned_at <= EXCLUDED.manager_assigned_at
        """,
        *columns([(r.partner_id, r.manager, r.assigned_at) for r in rows]),
    )


async def on_health_scored(
    ctx: HandlerContext, events: list[Envelope[PartnerHealthScored]]
) -> None:
    rows = newest_per_partner([e.data for e in events], _partner, lambda e: (e.day, e.scored_at))
    await ctx.conn.execute(
        """
        INSERT INTO partner_profiles (partner_id, health_score, health_previous, health_day)
        SELECT * FROM unnest($1::text[], $2::numeric[], $3::numeric[], $4::date[])
        ON CONFLICT (partner_id) DO UPDATE SET
            health_score = EXCLUDED.health_score,
            health_previous = EXCLUDED.health_previous,
            health_day = EXCLUDED.health_day
        WHERE partner_profiles.health_day IS NULL
           OR partner_profiles.health_day <= EXCLUDED.health_day
        """,
        *columns([(r.partner_id, r.score, r.previous_score, r.day) for r in rows]),
    )


async def on_reviews_decided(
    ctx: HandlerContext, events: list[Envelope[RequalificationDecided]]
) -> None:
    """A partner's newest review; a newer review starts without an appeal."""
    rows = newest_per_partner([e.data for e in events], _partner, lambda e: e.decided_at)
    await ctx.conn.execute(
        """
        INSERT INTO partner_profiles (partner_id, review_id, review_on, review_outcome,
            review_reasons, probation_until, review_decided_at)
        SELECT e.partner_id, e.review_id, e.review_on, e.outcome,
               ARRAY(SELECT jsonb_array_elements_text(e.reasons::jsonb)), e.probation_until,
               e.decided_at
        FROM unnest($1::text[], $2::text[], $3::date[], $4::text[], $5::text[], $6::date[],
                    $7::timestamptz[])
            AS e(partner_id, review_id, review_on, outcome, reasons, probation_until,
                 decided_at)
        ON CONFLICT (partner_id) DO UPDATE SET
            review_id = EXCLUDED.review_id, review_on = EXCLUDED.review_on,
            review_outcome = EXCLUDED.review_outcome, review_reasons = EXCLUDED.review_reasons,
            probation_until = EXCLUDED.probation_until,
            review_decided_at = EXCLUDED.review_decided_at,
            appeal_upheld = CASE WHEN partner_profiles.review_id = EXCLUDED.review_id
                                 THEN partner_profiles.appeal_upheld END,
            appeal_decided_at = CASE WHEN partner_profiles.review_id = EXCLUDED.review_id
                                     THEN partner_profiles.appeal_decided_at END
        WHERE partner_profiles.review_decided_at IS NULL
           OR partner_profiles.review_decided_at <= EXCLUDED.review_decided_at
        """,
        *columns(
            [
                (
                    r.partner_id,
                    r.review_id,
                    r.review_on,
                    r.outcome.value,
                    json.dumps(list(r.reasons)),
                    r.probation_until,
                    r.decided_at,
                )
                for r in rows
            ]
        ),
    )


async def on_appeals_decided(
    ctx: HandlerContext, events: list[Envelope[RequalificationAppealDecided]]
) -> None:
    """An appeal's decision, on the review it appeals (an appeal of an older review than the
    partner's latest one changes nothing: the latest review stands)."""
    rows = newest_per_partner([e.data for e in events], _partner, lambda e: e.decided_at)
    await ctx.conn.execute(
        """
        UPDATE partner_profiles p SET appeal_upheld = e.upheld, appeal_decided_at = e.decided_at
        FROM unnest($1::text[], $2::text[], $3::bool[], $4::timestamptz[])
            AS e(partner_id, review_id, upheld, decided_at)
        WHERE p.partner_id = e.partner_id AND p.review_id = e.review_id
          AND (p.appeal_decided_at IS NULL OR p.appeal_decided_at <= e.decided_at)
        """,
        *columns([(r.partner_id, r.review_id, r.upheld, r.decided_at) for r in rows]),
    )


def _partner(
    event: AccountManagerAssigned
    | PartnerHealthScored
    | RequalificationDecided
    | RequalificationAppealDecided,
) -> str:
    return event.partner_id
