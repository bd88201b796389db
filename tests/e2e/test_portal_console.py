"""The channel-manager console's operations and oversight pages in real headless Chromium, in
front of the five real services: each page shows what the services' APIs answer, a partner's
person cannot open any of them, and screenshots go to .work/screenshots/."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from deploy.story import Partner
from shared.identity import Role
from shared.topics import ATTRIBUTION_CREDITS
from tests.support.crm import salesforce_delivery, salesforce_won_deal
from tests.support.factories import credit_issued
from tests.support.infra import Infra
from tests.support.kafka import publish
from tests.support.polling import eventually
from tests.support.portal import (
    PHONE,
    check_page,
    chromium,
    fill,
    page_shows,
    screenshot,
    session_cookies,
    sign_in,
    sign_in_by_keyboard,
)
from tests.support.processes import ADMIN, ADMIN_TOKEN, Fleet
from tests.support.tokens import bearer, token

FINANCE_TOKEN = token("finance@tests", Role.FINANCE)

pytestmark = pytest.mark.e2e

CONSOLE_PAGES = (
    "/console/dead-letters",
    "/console/partners",
    "/console/partners/ptn_any",
    "/finance/payouts",
    "/console/policy",
    "/console/dashboard",
)


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


async def api(fleet: Fleet, service: str, path: str, **params: Any) -> Any:
    async with httpx.AsyncClient(timeout=30) as client:
        answer = await client.get(f"{fleet.url(service)}{path}", params=params, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.fixture(scope="module")
async def won_revenue(fleet: Fleet, referral_partner: Partner) -> dict[str, Any]:
    """A deal the referral partner sourced, closed won in Salesforce, once attribution has
    credited it: the partner's revenue as attribution answers then."""
    record = f"006C{uuid.uuid4().hex[:10]}"
    async with httpx.AsyncClient(timeout=30) as client:
        answer = await client.post(
            f"{fleet.url('deals')}/crm/salesforce",
            **salesforce_delivery(
                [salesforce_won_deal(record, Decimal("4200.00"), referral_partner.partner_id)]
            ),
        )
        assert answer.status_code == 202, answer.text
    path = f"/partners/{referral_partner.partner_id}/revenue"

    async def credited() -> dict[str, Any] | None:
        revenue: dict[str, Any] = await api(fleet, "attribution", path, period="quarter")
        return revenue if Decimal(revenue["total"]) > 0 else None

    found: dict[str, Any] = await eventually(credited, 60, what="the won deal credited")
    statement = f"/partners/{referral_partner.partner_id}/statement"

    async def booked() -> bool:
        entries = (await api(fleet, "incentives", statement))["entries"]
        return any(e["deal_key"] == f"salesforce:{record}" for e in entries)

    await eventually(booked, 60, what="incentives to book the won deal's earnings")
    return found


async def test_a_manager_lists_filters_and_opens_partners_as_the_services_answer(
    fleet: Fleet,
    portal: str,
    referral_partner: Partner,
    won_revenue: dict[str, Any],
    browser: Any,
) -> None:
    from selenium.webdriver.common.by import By

    partner_id = referral_partner.partner_id
    base = f"/partners/{partner_id}"
    known = await api(fleet, "onboarding", base)
    health = await api(fleet, "attribution", f"{base}/health")
    await sign_in(browser, portal, ADMIN_TOKEN)

    # Searched for: on a database holding many resellers it need not be on the first page.
    browser.get(f"{portal}/console/partners")
    fill(browser, "f-q", known["company_name"])
    browser.find_element(By.ID, "f-type").send_keys("var_reseller")
    browser.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]").click()
    await page_shows(browser, "#partners", partner_id, "the partner searched for")
    row = browser.find_element(By.ID, f"partner-{partner_id}")
    assert row.find_element(By.CSS_SELECTOR, ".tier").text == known["tier"]
    assert row.find_element(By.CSS_SELECTOR, ".status").text == known["status"]
    assert row.find_element(By.CSS_SELECTOR, ".health").text == health["score"]
    signals = row.find_element(By.CSS_SELECTOR, ".signals").text
    assert f"win rate {health['components']['win_rate']}" in signals
    listed = await api(
        fleet, "onboarding", "/admin/partners", partner_type="var_reseller", q=known["company_name"]
    )
    assert str(listed["total"]) in browser.find_element(By.ID, "count").text
    screenshot(browser, "console-partners")

    # Health below its score leaves it out; above its score keeps it.
    score = Decimal(health["score"])
    searched = f"{portal}/console/partners?partner_type=var_reseller&q={partner_id}"
    browser.get(f"{searched}&below={score}")
    assert browser.find_elements(By.ID, f"partner-{partner_id}") == []
    if score < 100:
        browser.get(f"{searched}&below=100")
        assert browser.find_elements(By.ID, f"partner-{partner_id}") != []

    browser.get(searched)
    browser.find_element(By.CSS_SELECTOR, f"#partner-{partner_id} a").click()
    await page_shows(browser, "h1", known["company_name"], "the partner's page")
    revenue = await api(fleet, "attribution", f"{base}/revenue", period="quarter")
    balance = await api(fleet, "incentives", f"{base}/balance")
    certifications = await api(fleet, "onboarding", f"{base}/certifications")
    assert browser.find_element(By.ID, "tier").text == known["tier"]
    assert browser.find_element(By.ID, "health-score").text == health["score"]
    history = browser.find_elements(By.CSS_SELECTOR, "#history tbody tr")
    assert len(history) == len(known["history"])
    assert revenue["by_period"]  # the won deal at least
    assert browser.find_element(By.ID, "sourced").text == revenue["sourced"]
    assert browser.find_element(By.ID, "influenced").text == revenue["influenced"]
    rows = browser.find_elements(By.CSS_SELECTOR, "#revenue tbody tr")
    assert [r.find_element(By.CSS_SELECTOR, "td").text for r in rows] == [
        p["period"] for p in revenue["by_period"]
    ]
    assert (
        browser.find_element(By.ID, "balance").text == f"{balance['balance']} {balance['currency']}"
    )
    shown = browser.find_elements(By.CSS_SELECTOR, "#certifications li")
    assert len(shown) == len(certifications)
    screenshot(browser, "console-partner")


async def test_finance_reads_payouts_as_incentives_answers_and_pays_a_partner(
    fleet: Fleet,
    portal: str,
    referral_partner: Partner,
    won_revenue: dict[str, Any],
    browser: Any,
) -> None:
    from selenium.webdriver.common.by import By

    partner_id = referral_partner.partner_id
    view = await api(fleet, "incentives", "/payouts", limit=25)
    await sign_in(browser, portal, FINANCE_TOKEN)
    assert browser.current_url == f"{portal}/finance/payouts"
    for name in ("earned", "reversed", "paid", "owed"):
        assert browser.find_element(By.ID, f"total-{name}").text == view["totals"][name]
    rows = browser.find_elements(By.CSS_SELECTOR, "#payout-partners tbody tr")
    assert [r.get_attribute("id") for r in rows] == [
        f"payee-{p['partner_id']}" for p in view["partners"]
    ]
    screenshot(browser, "finance-payouts")

    # Owed: finance looks the partner up; its row offers a payout; finance pays part of the
    # balance with a reference.
    browser.get(f"{portal}/finance/payouts?state=owed")
    fill(browser, "f-partner", partner_id)
    browser.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]").click()
    owed = await api(fleet, "incentives", "/payouts", state="owed", partner=partner_id)
    [mine] = owed["partners"]
    assert mine["partner_id"] == partner_id
    assert owed["total_partners"] == 1
    await page_shows(browser, "#payout-partners tbody", partner_id, "the partner looked up")
    shown = browser.find_elements(By.CSS_SELECTOR, "#payout-partners tbody tr")
    assert [r.get_attribute("id") for r in shown] == [f"payee-{partner_id}"]
    reference = f"PAY-{uuid.uuid4().hex[:8]}"
    fill(browser, f"ref-{partner_id}", reference)
    fill(browser, f"amt-{partner_id}", "1.00")
    browser.find_element(By.CSS_SELECTOR, f"#payee-{partner_id} button").click()
    await page_shows(browser, "#message", f"({reference})", "the payout's answer")
    after = Decimal(mine["balance"]) - Decimal("1.00")
    assert f"balance after: {after}" in browser.find_element(By.ID, "message").text
    made = await api(fleet, "incentives", "/payouts", limit=1)
    assert [(p["reference"], p["amount"]) for p in made["payouts"][:1]] == [(reference, "1.00")]
    screenshot(browser, "finance-payouts-paid")

    # A page of payouts made is 25: the one paid above is on the second page for this partner.
    async with httpx.AsyncClient(timeout=30) as client:
        for n in range(25):
            answer = await client.post(
                f"{fleet.url('incentives')}/partners/{partner_id}/payouts",
                json={"reference": f"NEWER-{n}-{uuid.uuid4().hex[:8]}", "amount": "0.01"},
                headers=bearer(FINANCE_TOKEN),
            )
            assert answer.status_code == 201, answer.text
    browser.get(f"{portal}/finance/payouts?partner={partner_id}")
    newest = browser.find_elements(By.CSS_SELECTOR, "#payouts-made tbody tr")
    assert len(newest) == 25
    assert all(row.text.split()[-1].startswith("NEWER-") for row in newest)
    browser.find_element(By.ID, "older-payouts").click()
    await page_shows(browser, "#payouts-made", reference, "the older page of payouts")
    older = browser.find_elements(By.CSS_SELECTOR, "#payouts-made tbody tr")
    assert [row.text.split()[-1] for row in older] == [reference]
    assert not browser.find_elements(By.ID, "older-payouts")


async def test_a_manager_validates_stores_and_schedules_a_policy_version(
    fleet: Fleet, portal: str, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    in_force = await api(fleet, "deals", "/policy")
    history = await api(fleet, "deals", "/admin/policy/history")
    await sign_in(browser, portal, ADMIN_TOKEN)
    browser.get(f"{portal}/console/policy")
    assert browser.find_element(By.ID, "in-force-version").text == in_force["version"]
    listed = browser.find_elements(By.CSS_SELECTOR, "#versions > li")
    assert len(listed) == len(history["versions"])
    screenshot(browser, "console-policy")

    version = f"console-{uuid.uuid4().hex[:8]}"
    hours = in_force["document"]["review_reminder_hours"] + 1
    draft = {**in_force["document"], "version": version, "review_reminder_hours": hours}
    area = browser.find_element(By.ID, "document")
    area.clear()
    area.send_keys(json.dumps(draft))
    fill(browser, "policy-note", "remind a day and an hour after submission")
    browser.find_element(By.CSS_SELECTOR, "#draft button[type=submit]").click()
    await page_shows(browser, "#message", f"{version} is valid", "the validation")
    rows = browser.find_elements(By.CSS_SELECTOR, "#changes tbody tr")
    cells = [[c.text for c in r.find_elements(By.TAG_NAME, "td")] for r in rows]
    assert cells == [["review_reminder_hours", str(hours - 1), str(hours)]]

    # Over days of the manager's choosing, kept on the page it answers (found in review: the
    # page fell back to the last 90 days, so a backtest again ran over other days unsaid).
    since = (datetime.now(UTC).date() - timedelta(days=400)).isoformat()
    browser.execute_script("document.getElementById('since').value = arguments[0]", since)
    browser.find_element(By.CSS_SELECTOR, "button[formaction='/console/policy/backtest']").click()
    await page_shows(browser, "#message", f"submitted from {since} to", "the backtest")
    assert browser.find_element(By.ID, "backtest").is_displayed()
    assert browser.find_element(By.ID, "since").get_attribute("value") == since

    browser.find_element(By.CSS_SELECTOR, "button[formaction='/console/policy/versions']").click()
    await page_shows(browser, "#message", f"Version {version} stored", "the version stored")
    stored = await api(fleet, "deals", "/admin/policy/history")
    assert stored["versions"][-1]["version"] == version
    assert stored["versions"][-1]["note"] == "remind a day and an hour after submission"

    # Scheduled far ahead: it decides nothing in this run. (A datetime-local field takes its
    # value as the browser's picker would set it.)
    card = browser.find_element(By.ID, f"version-{version}")
    browser.execute_script(
        "arguments[0].value = '2030-01-01T00:00'",
        card.find_element(By.CSS_SELECTOR, "input[name=at]"),
    )
    card.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    await page_shows(
        browser, "#message", f"Version {version} in force from 2030-01-01", "scheduling"
    )
    now_in_force = await api(fleet, "deals", "/policy")
    assert now_in_force["version"] == in_force["version"]
    # ours among the scheduled (another run of the suite on this database may have scheduled
    # a later one)
    scheduled = [(s["version"], s["active_from"][:16]) for s in now_in_force["scheduled"]]
    assert (version, "2030-01-01T00:00") in scheduled
    assert version in browser.find_element(By.ID, "scheduled").text
    screenshot(browser, "console-policy-scheduled")

    # A document deals refuses is shown with deals' reason, the draft kept as typed.
    area = browser.find_element(By.ID, "document")
    area.clear()
    area.send_keys(json.dumps({**draft, "version": f"{version}-b", "protection_days": -3}))
    browser.find_element(By.CSS_SELECTOR, "#draft button[type=submit]").click()
    await page_shows(browser, "#message", "protection_days", "deals' refusal")
    assert f"{version}-b" in browser.find_element(By.ID, "document").get_attribute("value")


def dashboard_figures(browser: Any) -> dict[str, Any]:
    """What the dashboard page shows, read from its tables and figures."""
    from selenium.webdriver.common.by import By

    def rows(table: str) -> list[list[str]]:
        return [
            [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
            for row in browser.find_elements(By.CSS_SELECTOR, f"#{table} tbody tr")
        ]

    revenue: dict[tuple[str, str], Decimal] = {}
    for quarter, _, currency, _, _, total in rows("revenue-table"):
        revenue[(quarter, currency)] = revenue.get((quarter, currency), Decimal(0)) + Decimal(total)
    return {
        "revenue": revenue,
        "registrations": browser.find_element(By.ID, "registrations-approved-rejected").text,
        "onboarding": browser.find_element(By.ID, "onboarding-approved-rejected").text,
        "spend": {row[0]: (Decimal(row[1]), Decimal(row[2])) for row in rows("spend-table")},
        "top": [(row[2], Decimal(row[5])) for row in rows("top-table")],
        "top_links": [
            (a.get_attribute("href").rsplit("/", 1)[-1], a.text)
            for a in browser.find_elements(By.CSS_SELECTOR, "#top-table tbody a")
        ],
        "approval_rate": browser.find_element(By.ID, "registrations-approval-rate").text,
        "paid": browser.find_element(By.ID, "paid-out").text,
    }


def report_figures(
    report: dict[str, Any], payouts: dict[str, Any], names: dict[str, str]
) -> dict[str, Any]:
    """The same figures from programme's KPI report, incentives' payouts and onboarding's
    partners (`names`), summed and spelt here."""
    revenue: dict[tuple[str, str], Decimal] = {}
    for row in report["revenue"]:
        key = (row["quarter"], row["currency"])
        revenue[key] = revenue.get(key, Decimal(0)) + Decimal(row["sourced"])
        revenue[key] += Decimal(row["influenced"])
    spend: dict[str, tuple[Decimal, Decimal]] = {}
    for row in report["spend"]:
        income, incentives = spend.get(row["currency"], (Decimal(0), Decimal(0)))
        spend[row["currency"]] = (
            income + Decimal(row["attributed_revenue"]),
            incentives + Decimal(row["incentives"]),
        )
    automation = report["automation"]
    return {
        "revenue": revenue,
        "registrations": "{approved} / {rejected}".format(**automation["registrations"]),
        "onboarding": "{approved} / {rejected}".format(**automation["onboarding"]),
        "spend": spend,
        "top": [(t["currency"], Decimal(t["total"])) for t in report["top_partners"]],
        "top_links": [
            (t["partner_id"], names.get(t["partner_id"], t["partner_id"]))
            for t in report["top_partners"]
        ],
        "approval_rate": percent(automation["registrations"]["approval_share"]),
        "paid": f"{payouts['totals']['paid']} {payouts['currency']}",
    }


def percent(ratio: str | None) -> str:
    if ratio is None:
        return "none decided"
    return f"{(Decimal(ratio) * 100).quantize(Decimal('0.1'))} %"


async def company_names(fleet: Fleet, partner_ids: list[str]) -> dict[str, str]:
    names = {}
    async with httpx.AsyncClient(timeout=30) as client:
        for partner_id in partner_ids:
            answer = await client.get(
                f"{fleet.url('onboarding')}/partners/{partner_id}", headers=ADMIN
            )
            if answer.status_code == 200:
                names[partner_id] = answer.json()["company_name"]
    return names


async def test_the_dashboard_shows_programmes_kpi_report(
    fleet: Fleet,
    portal: str,
    won_revenue: dict[str, Any],
    referral_partner: Partner,
    browser: Any,
) -> None:
    from selenium.webdriver.common.by import By

    # Programme has counted the won deal once its report credits the partner with what
    # attribution credits it with (read at the same moment: earlier tests credit this partner
    # too, some perhaps still on their way).
    async def counted() -> bool:
        credited = await api(
            fleet, "attribution", f"/partners/{referral_partner.partner_id}/revenue"
        )
        mine = await api(fleet, "programme", "/kpis", partner_id=referral_partner.partner_id)
        counted = sum(
            (
                Decimal(t["sourced"]) + Decimal(t["influenced"])
                for t in mine["revenue_totals"]
                if t["currency"] == credited["currency"]
            ),
            Decimal(0),
        )
        return counted == Decimal(credited["total"]) >= Decimal(won_revenue["total"])

    await eventually(counted, 60, what="programme to count the won deal")
    await sign_in(browser, portal, ADMIN_TOKEN)

    # The page against the report asked for just after it (the two agree once no event lands
    # between them; events of earlier tests may still be arriving).
    async def agree() -> dict[str, Any] | None:
        browser.get(f"{portal}/console/dashboard")
        shown = dashboard_figures(browser)
        report = await api(fleet, "programme", "/kpis")
        payouts = await api(fleet, "incentives", "/payouts", limit=1)
        names = await company_names(fleet, [t["partner_id"] for t in report["top_partners"]])
        return shown if shown == report_figures(report, payouts, names) else None

    shown = await eventually(agree, 60, what="the dashboard to show the KPI report")
    assert any(total > 0 for total in shown["revenue"].values())  # the won deal at least
    assert shown["top"], "a partner with revenue is a top partner"
    assert any(pid != name for pid, name in shown["top_links"]), "onboarding's names shown"
    for chart in ("revenue-chart", "spend-chart", "top-chart"):
        svg = browser.find_element(By.ID, chart)
        assert svg.get_attribute("role") == "img"
    screenshot(browser, "console-dashboard")

    # One quarter: the report's own filter, and its refusal shown as the page's.
    browser.get(f"{portal}/console/dashboard?from_quarter=1900-Q1&to_quarter=1900-Q1")
    assert browser.find_element(By.ID, "revenue-table").text == "No attributed revenue yet."
    assert browser.find_element(By.ID, "registrations-decisions").text == "0"
    browser.get(f"{portal}/console/dashboard?from_quarter=1899-Q4")
    assert "1900-Q1" in browser.find_element(By.TAG_NAME, "main").text


@pytest.mark.parametrize("path", CONSOLE_PAGES)
async def test_a_partner_cannot_open_the_console_pages(
    portal: str, referral_partner: Partner, browser: Any, path: str
) -> None:
    from selenium.webdriver.common.by import By

    await sign_in(browser, portal, referral_partner.token)
    browser.get(f"{portal}{path}")
    refused = browser.find_element(By.TAG_NAME, "main").text
    assert "this page needs the role" in refused
    assert "channel_manager" in refused
    cookies = session_cookies(referral_partner.token)
    async with httpx.AsyncClient(cookies=cookies) as client:
        answer = await client.get(f"{portal}{path}")
    assert answer.status_code == 403


async def test_console_pages_about_one_partner_are_accessible_on_a_phone(
    fleet: Fleet, portal: str, referral_partner: Partner
) -> None:
    with chromium(*PHONE) as phone:
        await sign_in_by_keyboard(phone, portal, ADMIN_TOKEN)
        page = f"{portal}/console/partners/{referral_partner.partner_id}"
        phone.get(page)
        # the partner's page itself (its sign-in page, unsigned, would pass the checks too)
        assert phone.current_url == page
        assert check_page(phone, "/console/partner") == []
