"""The portal in a real headless Chromium, in front of the five real services: a partner's
person signs in with the token onboarding issued, sees the partner's tier, open registrations
and latest notifications, and sees a new notification arrive live (the notifications stream,
through the portal) without reloading. Screenshots go to .work/screenshots/."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from deploy.story import Partner
from tests.support.crm import salesforce_delivery, salesforce_won_deal
from tests.support.deals import registration_request
from tests.support.notifications import WebhookReceiver
from tests.support.onboarding import strong_application
from tests.support.onboarding_story import dealing_partner
from tests.support.polling import eventually
from tests.support.portal import chromium, fill, left_sign_in, page_shows, screenshot
from tests.support.processes import ADMIN, ADMIN_TOKEN, Fleet

pytestmark = pytest.mark.e2e


def registration(customer: str, domain: str) -> dict[str, Any]:
    return registration_request(customer, domain, amount="18000.00")


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


async def sign_in(browser: Any, portal: str, token: str) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{portal}/home")
    assert browser.current_url.startswith(f"{portal}/sign-in"), browser.current_url
    screenshot(browser, "sign-in")
    browser.find_element(By.ID, "token").send_keys(token)
    browser.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
    await left_sign_in(browser, portal)


async def sign_out(browser: Any) -> None:
    from selenium.webdriver.common.by import By

    browser.find_element(By.CSS_SELECTOR, ".sign-out button").click()
    await page_shows(browser, "h1", "Sign in", "the sign-in page after signing out")


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
                params: dict[str, str | int] = {"limit": 200, **({"after": after} if after else {})}
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


@pytest.fixture(scope="module")
async def rival(fleet: Fleet) -> Partner:
    """Another active partner, whose registrations the referral partner can run into."""
    return await dealing_partner(fleet, Partner("juniper", "Juniper Integrators", "gsi"))


async def test_a_partner_registers_with_the_conflict_hint_and_sees_the_review_arrive_live(
    fleet: Fleet, portal: str, referral_partner: Partner, rival: Partner, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    taken = f"Maple {uuid.uuid4().hex[:6]} Holdings"
    await register(fleet, rival, taken)
    await sign_in(browser, portal, referral_partner.token)

    # The dry-run answer appears as the customer's name is typed: another partner holds it.
    browser.get(f"{portal}/registrations")
    fill(browser, "customer_country", "US")  # where the customer is: region rules need it
    fill(browser, "customer_name", taken)
    await page_shows(browser, "#check-answer", "rejected", "the dry-run conflict answer")
    hint = browser.find_element(By.ID, "check-answer").text
    assert "another partner" in hint, hint
    screenshot(browser, "register-conflict-hint")

    # A free customer, above every tier's auto-approval limit (the partner may have been
    # promoted by the revenue other tests credited it): it waits for review.
    free = f"Larch {uuid.uuid4().hex[:6]} Freight"
    fill(browser, "customer_name", free)
    await page_shows(browser, "#check-answer", "approved", "the dry-run answer for a free name")
    fill(browser, "products", "data")
    fill(browser, "amount", "2500000.00")
    browser.find_element(By.CSS_SELECTOR, "#register button[type=submit]").click()
    await page_shows(browser, "#message", "pending_review", "the registration's decision")
    await page_shows(browser, "#registrations", free, "the new registration in the list")
    screenshot(browser, "registrations")
    browser.get(f"{portal}/home")
    await page_shows(browser, "#open-registrations", free, "the open registration at home")

    # A channel manager approves it in the console; the partner's open home page hears it live.
    with chromium() as manager:
        await sign_in(manager, portal, ADMIN_TOKEN)
        assert manager.current_url == f"{portal}/console"
        await page_shows(manager, "#queue", free, "the registration in the review queue")
        screenshot(manager, "console-review-queue")
        item = next(
            li for li in manager.find_elements(By.CSS_SELECTOR, "#queue > li") if free in li.text
        )
        item.find_element(By.CSS_SELECTOR, "input[name=note]").send_keys("checked with the rep")
        item.find_element(By.CSS_SELECTOR, "button[value=approve]").click()
        await page_shows(manager, "#message", "approved", "the review's answer")
        assert free not in manager.find_element(By.ID, "main").text.split("\n", 1)[1]
    await page_shows(browser, "#notifications .fresh", free, "the approval, live")
    screenshot(browser, "partner-home-approved-live")

    # The approved registration counts down its protection window and offers an extension.
    browser.get(f"{portal}/registrations")
    row = next(
        tr
        for tr in browser.find_elements(By.CSS_SELECTOR, "#registrations tbody tr")
        if free in tr.text
    )
    assert "approved" in row.text
    assert "days" in row.text  # the countdown
    row.find_element(By.CSS_SELECTOR, "a").click()
    await page_shows(browser, "#registration-status", "approved", "the registration's page")
    history = browser.find_element(By.ID, "history").text
    assert "pending_review" in history, history
    assert "approved" in history, history
    screenshot(browser, "registration-history")
    browser.back()
    row = next(
        tr
        for tr in browser.find_elements(By.CSS_SELECTOR, "#registrations tbody tr")
        if free in tr.text
    )
    row.find_element(By.CSS_SELECTOR, "button").click()
    await page_shows(browser, "#message", "xtended", "the extension's answer")


async def test_a_partner_reads_its_earnings_asks_what_if_and_claims_mdf(
    fleet: Fleet, portal: str, referral_partner: Partner, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    incentives = fleet.url("incentives")
    partner_id = referral_partner.partner_id
    async with httpx.AsyncClient(timeout=30, headers=referral_partner.auth) as client:
        balance = (await client.get(f"{incentives}/partners/{partner_id}/balance")).json()
        statement = (await client.get(f"{incentives}/partners/{partner_id}/statement")).json()
        what_if = (await client.post(f"{incentives}/what-if", json={"amount": "120000.00"})).json()

    await sign_in(browser, portal, referral_partner.token)
    browser.get(f"{portal}/earnings")
    amount = browser.find_element(By.ID, "balance-amount").text
    assert amount == f"{balance['balance']} {balance['currency']}"
    closing = browser.find_element(By.ID, "closing-balance").text
    assert closing == f"{statement['closing_balance']} {statement['currency']}"
    screenshot(browser, "earnings")

    browser.get(f"{portal}/what-if")
    fill(browser, "amount", "120000.00")
    browser.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
    await page_shows(browser, "#what-if-total", what_if["total"], "the what-if answer")
    assert browser.find_element(By.ID, "what-if-total").text == (
        f"{what_if['total']} {what_if['currency']}"
    )
    screenshot(browser, "what-if")

    browser.get(f"{portal}/mdf")
    fill(browser, "claim-amount", "250.00")
    fill(browser, "description", "Joint webinar with the vendor")
    fill(browser, "proof_reference", f"INV-{uuid.uuid4().hex[:6]}")
    browser.find_element(By.CSS_SELECTOR, "#claim button[type=submit]").click()
    await page_shows(browser, "#message", "laim", "the claim's answer")
    async with httpx.AsyncClient(timeout=30, headers=referral_partner.auth) as client:
        claims = (await client.get(f"{incentives}/mdf/claims")).json()
    message = browser.find_element(By.ID, "message").text
    if message.startswith("Claim "):
        assert any(c["claim_id"] in message for c in claims), (message, claims)
        await page_shows(browser, "#claims", "Joint webinar with the vendor", "the claim listed")
    screenshot(browser, "mdf")


async def test_a_partner_plans_a_campaign_and_asks_for_its_budget(
    fleet: Fleet, portal: str, referral_partner: Partner, browser: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.select import Select

    name = f"Lakehouse roadshow {uuid.uuid4().hex[:6]}"
    today = datetime.now(UTC).date()
    partner_id = referral_partner.partner_id

    async def programme_knows() -> bool:  # programme hears of partners from onboarding
        async with httpx.AsyncClient(timeout=30, headers=ADMIN) as client:
            answer = await client.get(
                f"{fleet.url('programme')}/kpis", params={"partner_id": partner_id}
            )
        return bool(answer.json()["partners"]["active"])

    await eventually(programme_knows, 60, what="programme to know the partner")
    await sign_in(browser, portal, referral_partner.token)
    browser.get(f"{portal}/mdf")
    fill(browser, "campaign-name", name)
    Select(browser.find_element(By.ID, "campaign-kind")).select_by_value("event")
    for field, day in (("campaign-starts", today), ("campaign-ends", today + timedelta(days=14))):
        # A date field types in the browser's locale: set the ISO value as a date picker does.
        element = browser.find_element(By.ID, field)
        browser.execute_script("arguments[0].value = arguments[1]", element, day.isoformat())
    browser.find_element(By.CSS_SELECTOR, "#plan button[type=submit]").click()
    await page_shows(browser, "#message", "planned from", "the campaign's answer")
    campaign_id = browser.find_element(By.ID, "message").text.split("(")[1].split(")")[0]
    assert name in browser.find_element(By.ID, f"campaign-{campaign_id}").text

    async def asked() -> str | None:
        # Incentives hears of the campaign from programme a moment later: until then the
        # page shows its 409 beside the form, and the partner asks again.
        browser.get(f"{portal}/mdf")
        Select(browser.find_element(By.ID, "budget-campaign")).select_by_value(campaign_id)
        fill(browser, "budget-description", "venue and catering")
        fill(browser, "budget-amount", "400.00")
        browser.find_element(By.CSS_SELECTOR, "#budget button[type=submit]").click()
        await page_shows(browser, "#message", "campaign", "the budget's answer")
        message: str = browser.find_element(By.ID, "message").text
        if "is not known (yet)" in message:
            return None
        return message

    message = await eventually(asked, 60, what=f"incentives to take a budget for {campaign_id}")
    assert message.startswith(f"Budget of 400.00 USD for campaign {campaign_id}: requested"), (
        message
    )
    shown = browser.find_element(By.ID, f"campaign-{campaign_id}").text
    assert "400.00 USD for venue and catering: requested" in shown
    async with httpx.AsyncClient(timeout=30, headers=referral_partner.auth) as client:
        answer = await client.get(
            f"{fleet.url('incentives')}/mdf/preapprovals", params={"campaign_id": campaign_id}
        )
    [asked_for] = answer.json()
    assert (asked_for["amount"], asked_for["status"]) == ("400.00", "requested")
    screenshot(browser, "mdf-campaigns")

    # A channel manager decides it in the console: a rejection says why, and the partner sees it.
    budget = asked_for["preapproval_id"]
    await sign_out(browser)
    await sign_in(browser, portal, ADMIN_TOKEN)
    browser.get(f"{portal}/console/mdf")
    card = browser.find_element(By.ID, f"budget-{budget}")
    assert campaign_id in card.text
    assert "400.00 USD" in card.text
    fill(browser, f"note-{budget}", "the venue is outside the plan")
    card.find_element(By.CSS_SELECTOR, "button[value=reject]").click()
    await page_shows(browser, "#message", f"Budget {budget}: rejected", "the decision")
    screenshot(browser, "console-mdf-budgets")
    await sign_out(browser)
    await sign_in(browser, portal, referral_partner.token)
    browser.get(f"{portal}/mdf")
    shown = browser.find_element(By.ID, f"campaign-{campaign_id}").text
    assert "400.00 USD for venue and catering: rejected the venue is outside the plan" in shown


async def partner_admin_token(fleet: Fleet, partner: Partner) -> str:
    """A token for the partner's admin, issued by onboarding as a channel manager asks."""
    async with httpx.AsyncClient(timeout=30) as client:
        answer = await client.post(
            f"{fleet.url('onboarding')}/admin/partner-tokens/{partner.partner_id}",
            params={"user": "admin", "role": "partner_admin"},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
    assert answer.status_code == 200, answer.text
    issued: str = answer.json()["token"]
    return issued


async def test_a_partner_admin_adds_a_webhook_and_reads_its_delivery_log(
    fleet: Fleet, portal: str, rival: Partner, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    receiver = WebhookReceiver()
    receiver.start()
    try:
        await sign_in(browser, portal, await partner_admin_token(fleet, rival))
        browser.get(f"{portal}/webhooks")
        fill(browser, "url", receiver.url("/portal-hook"))
        fill(browser, "webhook-description", "our CRM bridge")
        browser.find_element(By.CSS_SELECTOR, "#add-endpoint button[type=submit]").click()
        await page_shows(browser, "#message", "Added", "the endpoint added")
        receiver.secrets["/portal-hook"] = browser.find_element(By.ID, "secret").text
        screenshot(browser, "webhooks")

        customer = f"Hook {uuid.uuid4().hex[:6]} Logistics"
        await register(fleet, rival, customer)

        async def delivered() -> bool:
            return any(customer in str(r.body) for r in receiver.received)

        await eventually(delivered, 30, what="the signed delivery at the receiver")
        browser.find_element(By.CSS_SELECTOR, "#endpoints a").click()

        async def logged() -> bool:
            browser.refresh()
            log = browser.find_element(By.ID, "deliveries").text
            return "delivered" in log

        await eventually(logged, 30, what="the delivery in the log", every=0.5)
        screenshot(browser, "webhook-delivery-log")
    finally:
        receiver.stop()


async def test_a_manager_works_applications_claims_links_and_held_credits(
    fleet: Fleet, portal: str, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    domain = f"portal-{uuid.uuid4().hex[:8]}.example"
    async with httpx.AsyncClient(timeout=30) as client:
        applied = await client.post(
            f"{fleet.url('onboarding')}/applications", json=strong_application(domain)
        )
        assert applied.status_code == 201, applied.text
        partner_id = applied.json()["partner_id"]
        held = (
            await client.get(
                f"{fleet.url('incentives')}/credits/held",
                params={"limit": 200},  # as many as the console asks for
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            )
        ).json()

    await sign_in(browser, portal, ADMIN_TOKEN)
    browser.get(f"{portal}/console/applications")
    await page_shows(browser, "#applications", domain, "the application waiting")
    screenshot(browser, "console-applications")
    item = browser.find_element(By.ID, f"application-{partner_id}")
    item.find_element(By.CSS_SELECTOR, "input[name=note]").send_keys("references checked")
    item.find_element(By.CSS_SELECTOR, "button[value=approve]").click()
    await page_shows(browser, "#message", f"{partner_id}: approved", "the decision's answer")
    assert not browser.find_elements(By.ID, f"application-{partner_id}")
    async with httpx.AsyncClient(timeout=30) as client:
        state = (
            await client.get(
                f"{fleet.url('onboarding')}/partners/{partner_id}",
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            )
        ).json()
    assert state["status"] != "applied", state

    browser.get(f"{portal}/console/mdf")
    assert browser.find_element(By.TAG_NAME, "h1").text == "MDF claims to decide"
    screenshot(browser, "console-mdf")
    browser.get(f"{portal}/console/crm-links")
    shown = browser.find_elements(By.CSS_SELECTOR, "#held > li")
    assert len(shown) == len(held)
    screenshot(browser, "console-crm-links")


async def test_a_manager_links_an_unmatched_crm_reference_and_its_deal_credits_the_partner(
    fleet: Fleet, portal: str, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    run = uuid.uuid4().hex[:8].upper()
    reference, deal_key = f"0015gLK{run}", f"salesforce:006LK{run}"
    partner = await dealing_partner(fleet, Partner("linked", f"Linked {run} Systems", "isv"))
    async with httpx.AsyncClient(timeout=30) as client:
        won = await client.post(
            f"{fleet.url('deals')}/crm/salesforce",
            **salesforce_delivery(
                [salesforce_won_deal(f"006LK{run}", Decimal("4200.00"), reference)]
            ),
        )
        assert won.status_code == 202, won.text

        async def listed() -> bool:
            unmatched = await client.get(
                f"{fleet.url('attribution')}/crm-links/unmatched", headers=ADMIN
            )
            return ("salesforce", reference) in {
                (u["source"], u["partner_ref"]) for u in unmatched.json()
            }

        await eventually(listed, 60, what="the deal's reference listed as unmatched")

    await sign_in(browser, portal, ADMIN_TOKEN)
    browser.get(f"{portal}/console/crm-links")
    [card] = [
        c for c in browser.find_elements(By.CSS_SELECTOR, "#unmatched > li") if reference in c.text
    ]
    assert "1 deal, 1 won" in card.text, card.text
    assert "4200.00 USD" in card.text  # deals projects it with four places: shown with two
    card.find_element(By.CSS_SELECTOR, "input[name=partner_id]").send_keys(partner.partner_id)
    card.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    await page_shows(browser, "#message", f"Proposed: salesforce {reference}", "the proposal")
    [proposed] = [
        c for c in browser.find_elements(By.CSS_SELECTOR, "#proposed > li") if reference in c.text
    ]
    assert partner.partner_id in proposed.text
    proposed.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    await page_shows(browser, "#message", f"Confirmed: salesforce {reference}", "the confirmation")
    assert reference not in browser.find_element(By.ID, "unmatched").text
    screenshot(browser, "console-crm-link-confirmed")
    async with httpx.AsyncClient(timeout=30) as client:
        attributed = await client.get(
            f"{fleet.url('attribution')}/deals/{deal_key}/attribution", headers=ADMIN
        )
    credits = [(c["partner_id"], c["amount"]) for c in attributed.json()["credits"]]
    assert credits == [(partner.partner_id, "4200.00")], attributed.text
