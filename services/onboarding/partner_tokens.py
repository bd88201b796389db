"""Partner tokens: a platform-wide token (shared/auth.py) for a partner once it is admitted."""

from __future__ import annotations

from services.onboarding import views
from services.onboarding.domain.lifecycle import check_may_hold_token
from shared.auth import partner_token
from shared.db import Pool
from shared.events.partners import PartnerStatus


async def issue_partner_token(pool: Pool, secret: str, partner_id: str) -> str:
    row = await views.partner_row(pool, partner_id)
    check_may_hold_token(partner_id, PartnerStatus(row["status"]))
    return partner_token(secret, partner_id)
