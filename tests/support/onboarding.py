"""What tests of onboarding (and the demo story) share: a small program whose tiers a few
credits move, a partner's standing under it, and a strong application body."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from services.onboarding.domain.config import OnboardingConfig
from services.onboarding.domain.requalification import Standing
from shared.events.partners import PartnerStatus

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
AGREEMENT = NOW + timedelta(days=200)

# Silver at 1 000 and gold at 5 000 (each with a competency), "ai" deals only for partners
# holding the ai competency, 10 days of grace.
SMALL_PROGRAM: dict[str, Any] = {
    "version": "small-program-1",
    "tiers": [
        {"name": "registered", "min_revenue": 0},
        {"name": "silver", "min_revenue": 1000, "min_competencies": 1},
        {"name": "gold", "min_revenue": 5000, "min_competencies": 1},
    ],
    "competencies": [{"name": "data"}, {"name": "ai"}],
    "gated_products": {"ai": "ai"},
    "grace_days": 10,
}
SMALL = OnboardingConfig.model_validate(SMALL_PROGRAM)


def standing(**overrides: object) -> Standing:
    """An active silver partner with the data competency and 2 000 of revenue under the small
    program, its agreement valid until AGREEMENT; `overrides` change any of it."""
    values: dict[str, object] = {
        "status": PartnerStatus.ACTIVE,
        "tier": "silver",
        "revenue": Decimal(2000),
        "competencies": frozenset({"data"}),
        "agreement_valid_until": AGREEMENT,
    }
    values.update(overrides)
    return Standing(**values)  # type: ignore[arg-type]


def strong_application(domain: str, **overrides: Any) -> dict[str, Any]:
    """A `POST /applications` body that qualifies: a large GSI across three regions."""
    body: dict[str, Any] = {
        "company_name": f"Contoso {domain}",
        "domain": domain,
        "partner_type": "gsi",
        "regions": ["US", "DE", "GB"],
        "products": ["data", "ai"],
        "competencies_claimed": ["data", "ai", "cloud"],
        "industries": ["financial_services", "healthcare"],
        "segments": ["enterprise"],
        "annual_revenue": "25000000",
        "years_in_business": 10,
        "certified_staff": 12,
        "contacts": [{"name": "Ada", "email": "ada@" + domain, "role": "alliances"}],
    }
    body.update(overrides)
    return body


async def active_partner(client: Any, url: str, domain: str, admin: dict[str, str]) -> str:
    """A strong application, approved by a channel manager (`admin`'s headers), its checklist
    completed: an active partner in the base tier (`client`: an httpx.AsyncClient)."""
    applied = await client.post(f"{url}/applications", json=strong_application(domain))
    assert applied.status_code == 201, applied.text
    pid: str = applied.json()["partner_id"]
    decided = await client.post(
        f"{url}/applications/{pid}/decision", headers=admin, json={"approve": True}
    )
    assert decided.status_code == 200, decided.text
    for item in ("profile_complete", "agreement_signed", "first_enablement_done"):
        done = await client.post(
            f"{url}/partners/{pid}/checklist/{item}", headers=admin, json={"evidence": "ref-1"}
        )
        assert done.status_code == 200, done.text
    assert done.json()["status"] == "active"
    return pid
