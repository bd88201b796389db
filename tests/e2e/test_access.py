"""Tokens across the platform: one issuing place, one token for every service, and a partner
suspended at onboarding loses access everywhere within seconds (and gets no new token)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from deploy.story import Partner, Story
from tests.support.polling import eventually
from tests.support.processes import ADMIN, ADMIN_TOKEN, Fleet

pytestmark = pytest.mark.e2e


def own_resources(partner_id: str) -> dict[str, str]:
    return {
        "onboarding": f"/partners/{partner_id}",
        "deals": "/registrations",
        "attribution": f"/partners/{partner_id}/revenue",
        "incentives": f"/partners/{partner_id}/balance",
    }


async def test_a_suspended_partner_loses_access_everywhere_within_seconds(fleet: Fleet) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        story = Story(client, fleet.urls, ADMIN_TOKEN)
        partner = Partner("lockout", "Lockout Analytics", "isv")
        await story.onboard(partner, ["data"])
        own = {"Authorization": f"Bearer {partner.token}"}
        for service, path in own_resources(partner.partner_id).items():
            answer = await client.get(fleet.url(service) + path, headers=own)
            assert answer.status_code == 200, (service, answer.text)

        suspended = await client.post(
            f"{fleet.url('onboarding')}/admin/partners/{partner.partner_id}/status",
            json={"status": "suspended", "reason": "unpaid invoices"},
            headers=ADMIN,
        )
        assert suspended.status_code == 200, suspended.text

        async def refused_everywhere() -> bool:
            for service, path in own_resources(partner.partner_id).items():
                answer = await client.get(fleet.url(service) + path, headers=own)
                if answer.status_code != 403:
                    return False
                assert answer.json() == {"detail": "partner access revoked: suspended"}
            return True

        await eventually(
            refused_everywhere, 15, what="every service to refuse the suspended partner"
        )
        again = await client.post(
            f"{fleet.url('onboarding')}/admin/partner-tokens/{partner.partner_id}", headers=ADMIN
        )
        assert again.status_code == 409, again.text
        # A manager still reaches the partner's data.
        manager = await client.get(
            fleet.url("incentives") + own_resources(partner.partner_id)["incentives"],
            headers=ADMIN,
        )
        assert manager.status_code == 200


async def test_a_write_records_the_principal_that_made_it(fleet: Fleet, admin_db: Any) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        story = Story(client, fleet.urls, ADMIN_TOKEN)
        partner = Partner("ledgerline", "Ledgerline Data", "isv")
        await story.onboard(partner, ["data"])
        await story.known_to_deals(partner)
        deals = fleet.url("deals")
        own = await client.post(
            f"{deals}/registrations",
            json=story.registration(f"Audit {story.run} Corp", f"audit-{story.run}.example"),
            headers={"Authorization": f"Bearer {partner.token}"},
        )
        for_partner = await client.post(
            f"{deals}/registrations?partner_id={partner.partner_id}",
            json=story.registration(f"Audit {story.run} Labs", f"audit-{story.run}.test"),
            headers=ADMIN,
        )
        ids = [answer.json()["registration_id"] for answer in (own, for_partner)]
        # An approved registration cannot be reviewed: the refused write leaves no trail.
        refused = await client.post(
            f"{deals}/registrations/{ids[0]}/review?approve=true", headers=ADMIN
        )
    assert refused.status_code == 409, refused.text
    trail = await admin_db.fetch(
        "SELECT subject, principal, roles, partner_id, action FROM deals.audit_log "
        "WHERE subject = ANY($1::text[]) ORDER BY id",
        ids,
    )
    assert [tuple(row) for row in trail] == [
        (
            ids[0],
            f"{partner.partner_id}/app",
            ["partner_user"],
            partner.partner_id,
            "registration.register",
        ),
        (ids[1], "channel-manager@tests", ["channel_manager"], None, "registration.register"),
    ]
