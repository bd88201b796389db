"""What tests of onboarding (and the demo story) share: a small program whose tiers a few
credits move, and a strong application body."""

from __future__ import annotations

from typing import Any

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
