"""The earnings page's charts in real headless Chromium, in front of the five real services: a
partner's deal closes won in the CRM, and the charts of earnings by quarter and of sourced and
influenced revenue by quarter (server-drawn SVG) carry exactly the numbers incentives and
attribution answer, in the bars and in the tables beside them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from deploy.story import Partner, Story
from tests.support.polling import NeverHappened, eventually
from tests.support.portal import screenshot, sign_in
from tests.support.processes import ADMIN_TOKEN, Fleet

pytestmark = pytest.mark.e2e


async def won_deal(fleet: Fleet) -> Partner:
    """A partner registers a customer (approved at once: the amount is within its tier's
    limit), the CRM's opportunity is linked to it and closes won:
    attribution credits it (sourced) and incentives books the earnings."""
    async with httpx.AsyncClient(timeout=30) as client:
        story = Story(client, fleet.urls, ADMIN_TOKEN)
        partner = Partner("saffron", "Saffron Analytics", "isv")
        await story.onboard(partner, ["data"])
        await story.known_to_deals(partner)
        customer, domain = f"Tamarind {story.run} Mills", f"tamarind-{story.run}.example"
        decision = await story.register(partner, "charted", story.registration(customer, domain))
        record, now = f"006TM{story.run}", datetime.now(UTC)
        await story.crm(
            record,
            "CREATE",
            now - timedelta(days=5),
            {
                "Name": f"{customer} - data",
                "StageName": "Qualification",
                "Amount": 18000,
                "CurrencyIsoCode": "USD",
                "CloseDate": now.date().isoformat(),
                "Account_Name__c": customer,
                "Account_Website__c": f"https://{domain}",
                "Products__c": "data",
                "CreatedDate": (now - timedelta(days=5)).isoformat().replace("+00:00", "Z"),
            },
        )
        assert decision["status"] == "approved", decision
        link = f"{fleet.url('deals')}/registrations/{decision['registration_id']}/crm-link"
        refusals: list[str] = []

        async def linked() -> bool:
            answer = await client.post(
                link, headers=partner.auth, json={"crm_deal_key": f"salesforce:{record}"}
            )
            refusals.append(answer.text)
            return answer.status_code == 200

        try:
            await eventually(linked, 60, what="deals to link the registration to the CRM deal")
        except NeverHappened as error:  # say why deals kept refusing
            raise NeverHappened(f"{error}; deals last answered {refusals[-1:]}") from error
        await story.crm(
            record,
            "UPDATE",
            now - timedelta(seconds=5),
            {"StageName": "Closed Won", "Amount": 20000},
        )
        earnings = f"{fleet.url('incentives')}/partners/{partner.partner_id}/earnings"

        async def booked() -> bool:
            answer = (await client.get(earnings, headers=partner.auth)).json()
            return any(Decimal(q["net"]) > 0 for q in answer["quarters"])

        await eventually(booked, 60, what="the won deal's earnings booked")
        return partner


async def test_the_charts_show_exactly_the_services_numbers_by_quarter(
    fleet: Fleet, portal: str, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    partner = await won_deal(fleet)
    pid = partner.partner_id
    async with httpx.AsyncClient(timeout=30, headers=partner.auth) as client:
        earnings = (await client.get(f"{fleet.url('incentives')}/partners/{pid}/earnings")).json()
        quarters = [q["quarter"] for q in earnings["quarters"]]
        since = f"{quarters[0][:4]}-{(int(quarters[0][-1]) - 1) * 3 + 1:02d}-01"
        revenue = (
            await client.get(
                f"{fleet.url('attribution')}/partners/{pid}/revenue",
                params={"period": "quarter", "since": since},
            )
        ).json()
    assert Decimal(revenue["sourced"]) > 0

    await sign_in(browser, portal, partner.token)
    browser.get(f"{portal}/earnings")
    screenshot(browser, "earnings-charts")

    def bars(chart: str, series: str) -> dict[str, str]:
        return {
            rect.get_attribute("data-category"): rect.get_attribute("data-value")
            for rect in browser.find_elements(
                By.CSS_SELECTOR, f"#{chart} rect[data-series='{series}']"
            )
        }

    def table(table_id: str, column: int) -> dict[str, str]:
        return {
            row.get_attribute("data-quarter"): row.find_elements(By.CSS_SELECTOR, "td")[column].text
            for row in browser.find_elements(By.CSS_SELECTOR, f"#{table_id} tbody tr")
        }

    net = {q["quarter"]: q["net"] for q in earnings["quarters"]}
    assert bars("earnings-chart", "Net earnings") == net
    assert table("earnings-by-quarter", 2) == net
    assert table("earnings-by-quarter", 0) == {
        q["quarter"]: q["earned"] for q in earnings["quarters"]
    }

    stated = {row["period"]: row for row in revenue["by_period"]}
    sourced = {q: stated[q]["sourced"] if q in stated else "0" for q in quarters}
    influenced = {q: stated[q]["influenced"] if q in stated else "0" for q in quarters}
    assert bars("revenue-chart", "Sourced") == sourced
    assert bars("revenue-chart", "Influenced") == influenced
    assert table("revenue-by-quarter", 0) == sourced
    assert table("revenue-by-quarter", 1) == influenced
    # The chart is an image with a name, for a screen reader as for the eye.
    svg = browser.find_element(By.CSS_SELECTOR, "#revenue-chart svg")
    assert svg.get_attribute("role") == "img"
    assert "Sourced and influenced revenue" in browser.find_element(
        By.ID, "revenue-chart-title"
    ).get_attribute("textContent")
