"""End-to-end fixtures: the services as real OS processes (their own roles, schemas and
consumer groups) on the real Kafka broker and PostgreSQL, with kill -9 and restart."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from deploy.story import Partner
from tests.support.infra import ROOT, Infra
from tests.support.onboarding_story import dealing_partner
from tests.support.portal import chromium, portal_process
from tests.support.processes import SERVICES, Fleet

pytestmark = pytest.mark.e2e


# Every service process of the end-to-end tests writes its spans here (the tests read traces).
TRACES = ROOT / ".work" / "e2e" / "traces.jsonl"


@pytest.fixture(scope="package")
async def fleet(infra: Infra) -> AsyncIterator[Fleet]:
    TRACES.parent.mkdir(parents=True, exist_ok=True)
    TRACES.unlink(missing_ok=True)
    running = Fleet(infra, env={"TRACE_EXPORTER": f"file:{TRACES}"})
    try:
        for service in SERVICES:
            await running.start(service)
        yield running
    finally:
        await running.stop_all()


@pytest.fixture(scope="package")
async def referral_partner(fleet: Fleet) -> Partner:
    """An active partner, onboarded through the onboarding API and known to deals. A reseller:
    it registers deals (referral and influencer partners refer them, rules of engagement by
    partner type)."""
    # its Salesforce deals name it by its partner id: a channel manager confirms that once
    partner = Partner("faultline", "Faultline Referrals", "var_reseller")
    return await dealing_partner(fleet, partner, crm_linked=True)


@pytest.fixture(scope="package")
async def portal(fleet: Fleet) -> AsyncIterator[str]:
    """The portal in front of the fleet's services (development mode: plain http cookies)."""
    async with portal_process(fleet, DEVELOPMENT_MODE="true") as url:
        yield url


@pytest.fixture
def browser() -> Iterator[Any]:
    """A headless Chromium session of its own for each test."""
    with chromium() as session:
        yield session
