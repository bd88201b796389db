"""The demo's story, seen in the portal: after `make demo`'s story (told here against the
fleet) and its portal sign-ins, the printed partner person sees the partner's registrations,
earnings, notifications, learning and resources exactly as the services answer; another of the
story's partners sees its rejected conflict with the reason; the printed manager sign-in opens
the console. Screenshots of every partner page go to .work/screenshots/demo-*.png."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from deploy.demo_portal import SignIns, portal_sign_ins
from deploy.story import StoryResult, tell_story
from tests.support.portal import PARTNER_PAGES, chromium, page_shows, screenshot, sign_in
from tests.support.processes import ADMIN_TOKEN, Fleet

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def demo(fleet: Fleet, portal: str) -> tuple[StoryResult, SignIns]:
    result, _ = await tell_story(fleet.urls, ADMIN_TOKEN)
    async with httpx.AsyncClient(timeout=30) as client:
        signs = await portal_sign_ins(
            client, fleet.urls, portal, result.partners["alpine"], ADMIN_TOKEN, result.run
        )
    return result, signs


async def test_the_demo_partner_sees_the_story_in_the_portal(
    fleet: Fleet, portal: str, demo: tuple[StoryResult, SignIns], browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    result, signs = demo
    alpine = signs.partner
    headers = {"Authorization": f"Bearer {signs.partner_token}"}
    async with httpx.AsyncClient(timeout=30, headers=headers) as client:
        registrations = (
            await client.get(f"{fleet.url('deals')}/registrations", params={"limit": 500})
        ).json()
        balance = (
            await client.get(f"{fleet.url('incentives')}/partners/{alpine.partner_id}/balance")
        ).json()
    assert registrations, "the story registered deals for alpine"

    await sign_in(browser, portal, signs.partner_token)
    assert browser.current_url == f"{portal}/home"
    assert signs.person in browser.find_element(By.CSS_SELECTOR, ".who").text
    for path in PARTNER_PAGES:
        browser.get(f"{portal}{path}")
        assert browser.find_element(By.TAG_NAME, "h1").text, path
        screenshot(browser, "demo-" + path.strip("/"))

    browser.get(f"{portal}/home")
    await page_shows(browser, "#notifications", "", "the story's notifications")
    assert browser.find_elements(By.CSS_SELECTOR, "#notifications li")
    assert "data sales" in browser.find_element(By.ID, "expiring").text

    browser.get(f"{portal}/registrations")
    listed = browser.find_element(By.ID, "registrations").text
    for row in registrations:
        assert row["customer_name"] in listed, row["customer_name"]

    browser.get(f"{portal}/earnings")
    assert browser.find_element(By.ID, "balance-amount").text == (
        f"{balance['balance']} {balance['currency']}"
    )
    assert result.balances["alpine"]["balance"]["balance"] == balance["balance"]

    browser.get(f"{portal}/learning")
    mine = browser.find_element(By.CSS_SELECTOR, "#path-data-sales .progress.mine")
    assert "Your progress" in mine.text
    browser.get(f"{portal}/resources")
    assert f"[{result.run}]" in browser.find_element(By.ID, "resources").text


async def test_another_story_partner_sees_its_conflict_and_the_manager_the_console(
    fleet: Fleet, portal: str, demo: tuple[StoryResult, SignIns], browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    result, signs = demo
    birch = result.partners["birch"]
    await sign_in(browser, portal, birch.token)
    browser.get(f"{portal}/registrations")
    row = browser.find_element(
        By.ID, f"reg-{result.decisions['partner_conflict']['registration_id']}"
    )
    assert "rejected" in row.text
    assert "another partner" in row.text, row.text
    screenshot(browser, "demo-birch-registrations")

    with chromium() as manager:
        await sign_in(manager, portal, signs.manager_token)
        assert manager.current_url == f"{portal}/console"
        screenshot(manager, "demo-console")
