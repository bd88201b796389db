"""Builders of the deal-registration rules' inputs (services/deals/domain/rules.py) for unit
tests: a request for Northwind by an active partner and a registration another partner holds
on it, at NOW, under the default policy; a test overrides only what it is about."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from services.deals.domain.rules import (
    ExistingRegistration,
    PartnerView,
    RegistrationRequest,
    RulesOfEngagement,
)
from shared.events.partners import PartnerStatus
from shared.events.registrations import RegistrationStatus

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
POLICY = RulesOfEngagement()
# The requesting partner (p-1) as deals projects it: active, silver, selling data and ai in the
# US and Germany.
ACTIVE = PartnerView(
    "p-1", PartnerStatus.ACTIVE, "silver", frozenset({"US", "DE"}), frozenset({"data", "ai"})
)

NORTHWIND_REQUEST = RegistrationRequest(
    partner_id="p-1",
    customer_name="Northwind Traders Ltd.",
    customer_domain="https://www.northwind.com",
    customer_country="US",
    products=frozenset({"data"}),
    amount=Decimal("40000"),
    currency="USD",
    submitted_at=NOW,
)
HELD_ON_NORTHWIND = ExistingRegistration(
    registration_id="reg-old",
    partner_id="p-2",
    customer_name="Northwind Traders",
    customer_domain="northwind.com",
    products=frozenset({"data"}),
    status=RegistrationStatus.APPROVED,
    registered_at=NOW - timedelta(days=10),
    expires_at=NOW + timedelta(days=80),
)


def request(**overrides: Any) -> RegistrationRequest:
    return replace(NORTHWIND_REQUEST, **overrides)


def existing(**overrides: Any) -> ExistingRegistration:
    return replace(HELD_ON_NORTHWIND, **overrides)
