"""A partner's enablement in the portal, in real headless Chromium in front of the five real
services: the learning system's xAPI statements for two people become their progress along the
learning paths (the signed-in person's own first, a module done out of order shown as such,
the certification each path leads to), a certification about to lapse is on home, and the
resource library shows only what the partner's type and tier may see, with a download and a
sandbox sign-up recorded as engagement by onboarding."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from deploy.story import Partner, Story
from services.onboarding.domain.programme import MODULE_BASE
from services.portal.domain.pages import money
from tests.support.onboarding import (
    exam_passed,
    learner,
    publish_resource,
    send_statements,
    xapi_statement,
)
from tests.support.polling import eventually
from tests.support.portal import page_shows, screenshot, sign_in
from tests.support.processes import ADMIN, ADMIN_TOKEN, Fleet

pytestmark = pytest.mark.e2e


async def call(client: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> Any:
    answer = await client.request(method, url, **kwargs)
    assert answer.status_code < 300, (url, answer.status_code, answer.text)
    return answer.json() if answer.content else None


@pytest.fixture(scope="module")
async def enabled(fleet: Fleet) -> dict[str, Any]:
    """An ISV partner with two people: Ada (sales) took the data path in order and passed its
    exam 700 days ago (the certification lapses in 30 days); Bo (technical) took the technical
    module before the fundamentals. Three resources: one for ISVs, one for GSIs only, and an
    early-access programme for everyone."""
    onboarding = fleet.url("onboarding")
    async with httpx.AsyncClient(timeout=30) as client:
        story = Story(client, fleet.urls, ADMIN_TOKEN)
        partner = Partner("quill", "Quill Software", "isv")
        await story.onboard(partner, ["data"])
        pid = partner.partner_id
        ada, bo = f"ada@quill-{story.run}.example", f"bo@quill-{story.run}.example"
        for email, role in ((ada, "sales"), (bo, "technical")):
            await call(
                client,
                "POST",
                f"{onboarding}/partners/{pid}/people",
                headers=ADMIN,
                json={"email": email, "name": email.split("@")[0].title(), "role": role},
            )
        start = datetime.now(UTC) - timedelta(days=702)
        statements = [
            xapi_statement(learner(ada), "completed", f"{MODULE_BASE}data/fundamentals", start),
            xapi_statement(
                learner(ada), "completed", f"{MODULE_BASE}data/sales", start + timedelta(days=1)
            ),
            exam_passed(ada, "data", "sales", start + timedelta(days=2)),
            xapi_statement(learner(bo), "completed", f"{MODULE_BASE}data/technical", start),
        ]
        await send_statements(client, onboarding, statements)
        resources = {}
        for key, kind, types in (
            ("playbook", "playbook", ["isv"]),
            ("gsi-guide", "technical_guide", ["gsi"]),
            ("sdk", "early_access", []),
        ):
            title = f"Quill {key} {story.run}"
            address = f"https://library.vendor.example/{key}-{story.run}.pdf"
            resources[key] = await publish_resource(
                client, onboarding, kind, title, address, partner_types=types
            )
        issued = await call(
            client,
            "POST",
            f"{onboarding}/admin/partner-tokens/{pid}",
            headers=ADMIN,
            params={"user": ada, "role": "partner_user"},
        )
        return {"partner": partner, "ada": ada, "bo": bo, "token": issued["token"], **resources}


async def test_a_person_sees_their_learning_progress_and_the_certification_about_to_lapse(
    fleet: Fleet, portal: str, enabled: dict[str, Any], browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    partner: Partner = enabled["partner"]
    base = f"{fleet.url('onboarding')}/partners/{partner.partner_id}"
    async with httpx.AsyncClient(timeout=30, headers=partner.auth) as client:
        learning = await call(client, "GET", f"{base}/learning")
        next_tier = await call(client, "GET", f"{base}/next-tier")
    await sign_in(browser, portal, enabled["token"])

    # Home: the next tier and what it still needs, as onboarding computes it.
    panel = browser.find_element(By.ID, "next-tier").text
    assert f"Next tier: {next_tier['next_tier']}" in panel, panel
    short = browser.find_element(By.ID, "revenue-short").text
    # In the currency's minor units (onboarding keeps four places: "125000.0000" was shown).
    currency = next_tier["currency"]
    assert short == f"{money(next_tier['revenue_short'], currency)} {currency}"
    assert browser.find_element(By.ID, "revenue").text.endswith(f" {currency}")
    assert next_tier["agreement_valid_until"][:10] in panel

    # Home: Ada's data sales certification lapses within the reminder window.
    await page_shows(browser, "#expiring", "data sales", "the certification expiring soon")
    expiring = browser.find_element(By.ID, "expiring").text
    assert "Ada" in expiring, expiring
    assert "expires in" in expiring, expiring
    screenshot(browser, "partner-home-expiring")

    browser.get(f"{portal}/learning")
    sales = browser.find_element(By.ID, "path-data-sales")
    assert "Leads to the data sales certification" in sales.text
    mine = sales.find_element(By.CSS_SELECTOR, ".progress")  # the person's own comes first
    assert "Your progress" in mine.text
    assert "2 of 2 done, complete" in mine.text
    assert "Certified until" in mine.text
    technical = browser.find_element(By.ID, "path-data-technical")
    bo = technical.find_element(By.CSS_SELECTOR, f"[data-person='{enabled['bo']}']")
    states = [li.get_attribute("class") for li in bo.find_elements(By.CSS_SELECTOR, "li")]
    assert states == ["module module-next", "module module-out_of_order"], states
    assert "take it again" in bo.text
    # Every path and every person's count is onboarding's answer.
    shown = {
        section.get_attribute("id").removeprefix("path-")
        for section in browser.find_elements(By.CSS_SELECTOR, "section.path")
    }
    assert shown == {p["name"] for p in learning["paths"]}
    for path in learning["paths"]:
        section = browser.find_element(By.ID, f"path-{path['name']}")
        for person in path["people"]:
            block = section.find_element(By.CSS_SELECTOR, f"[data-person='{person['email']}']")
            assert f"{person['done']} of {path['modules']} done" in block.text
    screenshot(browser, "learning")


async def test_the_library_shows_what_the_partner_may_see_and_records_engagement(
    fleet: Fleet, portal: str, enabled: dict[str, Any], browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    partner: Partner = enabled["partner"]
    onboarding = fleet.url("onboarding")
    kpis = f"{onboarding}/partners/{partner.partner_id}/enablement"
    async with httpx.AsyncClient(timeout=30, headers=ADMIN) as client:
        before = await call(client, "GET", kpis)
    await sign_in(browser, portal, enabled["token"])
    browser.get(f"{portal}/resources")
    library = browser.find_element(By.ID, "resources").text
    assert enabled["playbook"]["title"] in library
    assert enabled["sdk"]["title"] in library
    assert enabled["gsi-guide"]["title"] not in library  # meant for GSIs only
    screenshot(browser, "resources")

    sdk = browser.find_element(By.ID, f"resource-{enabled['sdk']['resource_id']}")
    sdk.find_element(By.CSS_SELECTOR, "form[action$='/sandbox'] button").click()
    await page_shows(browser, "#message", "Signed up for", "the sandbox sign-up's answer")
    sdk = browser.find_element(By.ID, f"resource-{enabled['sdk']['resource_id']}")
    sdk.find_element(By.CSS_SELECTOR, "form[action$='/sandbox'] button").click()
    await page_shows(browser, "#message", "already signed up", "a second sign-up, counted once")
    playbook = browser.find_element(By.ID, f"resource-{enabled['playbook']['resource_id']}")
    assert not playbook.find_elements(By.CSS_SELECTOR, "form[action$='/sandbox']")
    playbook.find_element(By.CSS_SELECTOR, "form[action$='/download'] button").click()

    # The download is recorded, then the browser goes to the resource itself (outside the
    # portal, allowed by the library page's form-action policy; nothing answers there).
    async def left_the_portal() -> bool:
        return not browser.current_url.startswith(portal)

    await eventually(left_the_portal, 30, what="the browser sent on to the resource")
    assert browser.current_url == enabled["playbook"]["url"], browser.current_url
    async with httpx.AsyncClient(timeout=30, headers=ADMIN) as client:
        after = await call(client, "GET", kpis)
    assert after["downloads"] == before["downloads"] + 1
    assert after["sandbox_signups"] == before["sandbox_signups"] + 1
