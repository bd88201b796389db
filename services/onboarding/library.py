"""The resource library: channel managers publish and withdraw resources; a partner's people see
those meant for their partner's type and tier and engage with them (downloads, sandbox
sign-ups), which is recorded as a signal of enablement."""

from __future__ import annotations

from datetime import datetime

from services.onboarding import enablement_repository as store
from services.onboarding.domain.resources import (
    Engagement,
    ResourceKind,
    check_engagement,
    visible,
)
from services.onboarding.repository import Row
from shared.db import Connection
from shared.errors import NotFound


async def engage(
    conn: Connection,
    partner_id: str,
    resource_id: str,
    action: Engagement,
    *,
    subject: str,
    at: datetime,
) -> tuple[Row, bool]:
    """Record that one of the partner's people downloaded a resource or signed up for an
    early-access sandbox. A resource not meant for the partner (or withdrawn) is not found,
    exactly as a missing one. Returns the resource and whether the engagement is new."""
    partner = await store.partner_standing(conn, partner_id)
    resource = await store.resource(conn, resource_id)
    if (
        partner is None
        or resource is None
        or resource["withdrawn_at"] is not None
        or not visible(
            resource["partner_types"], resource["tiers"], partner["partner_type"], partner["tier"]
        )
    ):
        raise NotFound(f"resource {resource_id} not found")
    check_engagement(ResourceKind(resource["kind"]), action)
    created = await store.record_engagement(
        conn, resource_id, partner_id, subject, action.value, at
    )
    return resource, created
