"""The channel-manager console's operations and oversight pages in real headless Chromium, in
front of the five real services: each page shows what the services' APIs answer, a partner's
person cannot open any of them, and screenshots go to .work/screenshots/."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from deploy.story import Partner
from shared.topics import ATTRIBUTION_CREDITS
from tests.e2e.test_portal_browser import page_shows, sign_in
from tests.support.factories import credit_issued
from tests.support.infra import Infra
from tests.support.kafka import publish
from tests.support.polling import eventually
from tests.support.portal import chromium, screenshot
from tests.support.processes import ADMIN, ADMIN_TOKEN, Fleet

pytestmark = pytest.mark.e2e

CONSOLE_PAGES = ("/console/dead-letters",)


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium() as session:
        yield session


async def waiting_letter(fleet: Fleet, service: str, key: str) -> dict[str, Any]:
    """The service's waiting dead letter keyed `key`, once its API lists it."""
    url = f"{fleet.url(service)}/admin/dead-letters"
    async with httpx.AsyncClient(timeout=30) as client:

        async def listed() -> dict[str, Any] | None:
            after: int | None = None
            while True:
                params: dict[str, Any] = {"state": "waiting", "limit": 200}
                if after is not None:
                    params["after"] = after
                page = (await client.get(url, params=params, headers=ADMIN)).json()
                for letter in page["letters"]:
                    if letter["key"] == key:
                        return dict(letter)
                after = page["next_after"]
                if after is None:
                    return None

        found: dict[str, Any] = await eventually(listed, 60, what=f"a {service} dead letter")
        return found


async def test_a_manager_sees_dead_letters_with_reasons_and_replays_one(
    fleet: Fleet, infra: Infra, portal: str, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    # A poison event on a real topic: a credit in a currency no programme pays.
    deal = f"salesforce:dlq-portal-{uuid.uuid4().hex[:8]}"
    credit = credit_issued(deal_key=deal, amount="500.00", currency="EUR")
    await publish(infra, ATTRIBUTION_CREDITS, [credit], subject=deal, source="attribution")
    letter = await waiting_letter(fleet, "incentives", deal)
    await waiting_letter(fleet, "onboarding", deal)  # onboarding counts credits too

    await sign_in(browser, portal, ADMIN_TOKEN)
    browser.get(f"{portal}/console/dead-letters")
    card = browser.find_element(By.ID, f"letter-incentives-{letter['offset']}")
    assert letter["reason"] in card.find_element(By.CSS_SELECTOR, ".reason").text
    assert card.find_element(By.CSS_SELECTOR, ".event-type").text == "credit.issued.v1"
    assert deal in card.text
    onboarding = browser.find_element(By.ID, "dead-letters-onboarding").text
    assert "reporting currency" in onboarding
    screenshot(browser, "console-dead-letters")

    card.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    outcome = f"incentives dead letter {letter['offset']}: dead_lettered (failed again"
    await page_shows(browser, "#message", outcome, "the replay's outcome")
    replayed = browser.find_element(By.ID, f"letter-incentives-{letter['offset']}")
    assert "by channel-manager@tests" in replayed.find_element(By.CSS_SELECTOR, ".replayed").text
    assert replayed.find_elements(By.CSS_SELECTOR, "button") == []  # once: no button any more
    screenshot(browser, "console-dead-letters-replayed")

    # Its failure again is a new letter, naming the one it was.
    again = await waiting_letter(fleet, "incentives", deal)
    assert again["replayed_from"] == f"incentives.dlq.v1:{letter['offset']}"


@pytest.mark.parametrize("path", CONSOLE_PAGES)
async def test_a_partner_cannot_open_the_console_pages(
    portal: str, referral_partner: Partner, browser: Any, path: str
) -> None:
    from selenium.webdriver.common.by import By

    await sign_in(browser, portal, referral_partner.token)
    browser.get(f"{portal}{path}")
    assert (
        "this page needs the role channel_manager" in browser.find_element(By.TAG_NAME, "main").text
    )
    async with httpx.AsyncClient() as client:
        answer = await client.get(
            f"{portal}{path}", cookies={"pollinate_session": referral_partner.token}
        )
    assert answer.status_code == 403
