"""Rules of engagement by partner type on real deals processes: deals learns each partner's
type from onboarding's partners.lifecycle.v1 (its partner projection), a referral partner's
registration is refused as a referral partner's (it refers, it does not register), a reseller
gets its type's protection window, and a partner whose type deals never heard keeps the
policy's rules."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from shared.topics import PARTNER_LIFECYCLE
from tests.support.deals import admin_fetch, registration_request
from tests.support.factories import partner_state_changed
from tests.support.infra import Infra
from tests.support.kafka import publish
from tests.support.polling import eventually
from tests.support.processes import auth

pytestmark = pytest.mark.integration


async def typed_partners(infra: Infra, partners: dict[str, str | None]) -> None:
    """Announce each partner with its type as onboarding does; None: a projection row from
    before deals kept types (its type unknown)."""
    for partner_id, kind in partners.items():
        state = partner_state_changed(partner_id=partner_id, partner_type=kind or "gsi")
        await publish(infra, PARTNER_LIFECYCLE, [state], subject=partner_id, source="onboarding")
    conn = await asyncpg.connect(infra.admin_dsn)
    try:

        async def projected() -> bool:
            rows = await conn.fetch(
                "SELECT partner_id, partner_type FROM deals.partners WHERE partner_id = ANY($1)",
                list(partners),
            )
            return {r["partner_id"]: r["partner_type"] for r in rows} == {
                p: kind or "gsi" for p, kind in partners.items()
            }

        await eventually(projected, what="deals to learn the partners' types")
        # The type of a partner projected before deals kept types is unknown.
        unknown = [p for p, kind in partners.items() if kind is None]
        await conn.execute(
            "UPDATE deals.partners SET partner_type = NULL WHERE partner_id = ANY($1)", unknown
        )
    finally:
        await conn.close()


def body(run: str, customer: str) -> dict[str, Any]:
    return registration_request(f"{customer} {run} Holdings", f"{customer.lower()}-{run}.example")


async def test_a_referral_partners_registration_is_treated_per_its_type(
    infra: Infra, deals_instances: list[str]
) -> None:
    run = uuid.uuid4().hex[:8]
    referral, reseller, untyped = (f"p-{k}-{run}" for k in ("referral", "reseller", "untyped"))
    await typed_partners(
        infra, {referral: "referral_affiliate", reseller: "var_reseller", untyped: None}
    )
    deals = deals_instances[0]
    async with httpx.AsyncClient(base_url=deals, timeout=30) as client:
        # The dry run says the same as the registration.
        dry = await client.post(
            "/registrations/check", headers=auth(referral), json=body(run, "Fjord")
        )
        assert dry.status_code == 200, dry.text
        assert dry.json()["would_be"] == "rejected"
        refused = await client.post(
            "/registrations", headers=auth(referral), json=body(run, "Fjord")
        )
        assert refused.status_code == 201, refused.text
        decision = refused.json()
        assert (decision["status"], decision["expires_at"]) == ("rejected", None)
        assert decision["reasons"][0].startswith(
            "referral_affiliate partners refer deals rather than register them"
        )
        # Refused, it holds nothing: another partner registers the customer unopposed.
        after = await client.post("/registrations", headers=auth(reseller), json=body(run, "Fjord"))
        assert after.status_code == 201, after.text
        assert after.json()["status"] == "approved"

        # A partner whose type deals never heard gets the policy's 90 days, as before types.
        plain = await client.post("/registrations", headers=auth(untyped), json=body(run, "Heron"))
        assert plain.status_code == 201, plain.text
        assert plain.json()["status"] == "approved"

    rows = await admin_fetch(
        infra,
        """SELECT partner_id, expires_at - submitted_at AS window FROM deals.registrations
           WHERE partner_id = ANY($1) AND status = 'approved'""",
        [reseller, untyped],
    )
    assert {r["partner_id"]: r["window"] for r in rows} == {
        reseller: timedelta(days=60),
        untyped: timedelta(days=90),
    }
