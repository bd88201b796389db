"""The portal in a real headless Chromium, in front of the five real services: a partner's
person signs in with the token onboarding issued, sees the partner's tier, open registrations
and latest notifications, and sees a new notification arrive live (the notifications stream,
through the portal) without reloading. Screenshots go to .work/screenshots/."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from deploy.story import Partner
from tests.support.polling import eventually
from tests.support.portal import chromium, portal_process, screenshot
from tests.support.processes import Fleet

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def portal(fleet: Fleet) -> AsyncIterator[str]:
    async with portal_process(fleet, DEVELOPMENT_MODE="true") as url:
        yield url


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium() as session:
        yield session


def registration(customer: str, domain: str) -> dict[str, Any]:
    return {
        "customer_name": customer,
        "customer_domain": domain,
        "customer_country": "US",
        "products": ["data"],
        "amount": "18000.00",
        "currency": "USD",
    }


async def register(fleet: Fleet, partner: Partner, customer: str) -> dict[str, Any]:
    domain = f"{customer.split()[0].lower()}-{uuid.uuid4().hex[:6]}.example"
    async with httpx.AsyncClient(timeout=30) as client:
        answer = await client.post(
            f"{fleet.url('deals')}/registrations",
            headers=partner.auth,
            json=registration(customer, domain),
        )
    assert answer.status_code == 201, answer.text
    decision: dict[str, Any] = answer.json()
    return decision


async def page_shows(browser: Any, selector: str, text: str, what: str) -> None:
    from selenium.webdriver.common.by import By

    async def shown() -> bool:
        found = browser.find_elements(By.CSS_SELECTOR, selector)
        return any(text in element.text for element in found)

    await eventually(shown, 30, what=what, every=0.2)


async def sign_in(browser: Any, portal: str, token: str) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{portal}/home")
    assert browser.current_url.startswith(f"{portal}/sign-in"), browser.current_url
    screenshot(browser, "sign-in")
    browser.find_element(By.ID, "token").send_keys(token)
    browser.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
    await page_shows(browser, "h1", "", "the page after signing in")


async def test_a_partner_signs_in_and_sees_its_home_with_live_notifications(
    fleet: Fleet, portal: str, referral_partner: Partner, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    customer = f"Portal Home {uuid.uuid4().hex[:6]} Inc"
    before = await register(fleet, referral_partner, customer)
    async with httpx.AsyncClient(timeout=30) as client:
        partner = (
            await client.get(
                f"{fleet.url('onboarding')}/partners/{referral_partner.partner_id}",
                headers=referral_partner.auth,
            )
        ).json()

    await sign_in(browser, portal, referral_partner.token)
    assert browser.current_url == f"{portal}/home"
    assert browser.find_element(By.ID, "tier").text == partner["tier"]
    assert browser.find_element(By.TAG_NAME, "h1").text == partner["company_name"]
    if before["status"] in ("approved", "pending_review", "submitted"):
        await page_shows(browser, "#open-registrations", customer, "the open registration")
    # The decision's notification is filed asynchronously (outbox, Kafka, the inbox): the page
    # shows it once it is there, on load or live.
    subject_of_first = await _latest_subject(fleet, referral_partner, before["registration_id"])
    browser.refresh()
    await page_shows(browser, "#notifications", subject_of_first, "the latest notification")
    screenshot(browser, "partner-home")

    # A new decision while the page is open arrives over the live stream, without a reload.
    marker = browser.find_element(By.ID, "tier")
    later = f"Portal Live {uuid.uuid4().hex[:6]} Inc"
    decided = await register(fleet, referral_partner, later)
    subject = await _latest_subject(fleet, referral_partner, decided["registration_id"])
    await page_shows(browser, "#notifications .fresh", subject, "the live notification")
    assert marker.is_displayed()  # the same document: no reload happened
    screenshot(browser, "partner-home-live")


async def _latest_subject(fleet: Fleet, partner: Partner, registration_id: str) -> str:
    """The subject of the partner's notification about `registration_id`, once filed."""
    path = f"{fleet.url('notifications')}/partners/{partner.partner_id}/notifications"
    async with httpx.AsyncClient(timeout=30) as client:

        async def filed() -> str | None:
            after: str | None = None
            while True:
                params = {"limit": 200, **({"after": after} if after else {})}
                page = (await client.get(path, headers=partner.auth, params=params)).json()
                for item in page["items"]:
                    if item.get("registration_id") == registration_id:
                        return str(item["subject"])
                if len(page["items"]) < 200:
                    return None
                after = page["next_cursor"]

        subject: str = await eventually(filed, 30, what=f"a notification about {registration_id}")
        return subject


async def test_signing_out_ends_the_session(
    fleet: Fleet, portal: str, referral_partner: Partner, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    await sign_in(browser, portal, referral_partner.token)
    cookie = browser.get_cookie("pollinate_session")
    assert cookie is not None
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Strict"
    browser.find_element(By.CSS_SELECTOR, ".sign-out button").click()
    await page_shows(browser, "h1", "Sign in", "the sign-in page")
    assert browser.get_cookie("pollinate_session") is None
    browser.get(f"{portal}/home")
    assert browser.current_url.startswith(f"{portal}/sign-in")
