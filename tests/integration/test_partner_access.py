"""Partner access on a scratch schema's `partner_access` (real Postgres): the latest status and
when the partner last lost access, whatever order its versions arrive in, as every service's
HTTP edge reads them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from shared.access import PartnerAccess, record_partner_states
from shared.events.partners import PartnerStateChanged, PartnerStatus
from tests.support.counter import Components
from tests.support.factories import partner_state_changed

pytestmark = pytest.mark.integration

T0 = datetime.now(UTC) - timedelta(hours=2)


def version(partner: str, number: int, status: PartnerStatus, hours: int) -> PartnerStateChanged:
    return partner_state_changed(
        partner_id=partner, version=number, status=status, changed_at=T0 + timedelta(hours=hours)
    )


@pytest.mark.parametrize("late", [False, True], ids=["one batch", "suspension heard last"])
async def test_a_token_from_before_a_suspension_stays_refused_once_reinstated(
    components: Components, late: bool
) -> None:
    """Found in review: only the latest status was kept, so a partner reinstated within its
    tokens' life had every earlier token working again (a leaked one, the reason to suspend)."""
    partner = f"p-{uuid.uuid4().hex[:8]}"
    active = version(partner, 1, PartnerStatus.ACTIVE, 0)
    suspended = version(partner, 2, PartnerStatus.SUSPENDED, 1)
    reinstated = version(partner, 3, PartnerStatus.ACTIVE, 2)
    batches = [[active, reinstated], [suspended]] if late else [[active, suspended, reinstated]]
    for batch in batches:
        async with components.pool.acquire() as conn:
            await record_partner_states(conn, batch)
    access = PartnerAccess()
    await access.refresh(components.pool)
    assert access.revoked(partner) is None  # active: version 3 stands
    leaked = access.refused(partner, T0 + timedelta(minutes=30))
    assert leaked is not None
    assert "after this token was issued" in leaked
    assert access.refused(partner, T0 + timedelta(hours=1, minutes=30)) is None
