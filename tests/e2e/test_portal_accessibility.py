"""Every portal page, in real headless Chromium at a phone's width (375 px): axe-core reports
no serious or critical violation, every form control has a label, nothing scrolls sideways;
and a person signs in and reaches every control with the keyboard alone, seeing where the
focus is. Screenshots of each page at 375 px go to .work/screenshots/."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from deploy.story import Partner
from tests.support.portal import (
    MANAGER_PAGES,
    PARTNER_PAGES,
    PHONE,
    check_page,
    chromium,
    session_cookies,
    sign_in_by_keyboard,
)
from tests.support.processes import ADMIN_TOKEN, Fleet

pytestmark = pytest.mark.e2e


@pytest.fixture
def phone() -> Iterator[Any]:
    with chromium(*PHONE) as session:
        yield session


def every_control_takes_the_focus_visibly(browser: Any) -> list[str]:
    """Tab through the page: each link, button and field gets the focus in turn, and the
    focused one shows an outline."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    controls = browser.execute_script(
        "return document.querySelectorAll('a[href], button, input:not([type=hidden]), "
        'select, textarea, [tabindex="0"]\').length'
    )
    reached: set[str] = set()
    problems = []
    keys = ActionChains(browser)
    for _ in range(controls + 2):
        keys.send_keys(Keys.TAB).perform()
        focused = browser.switch_to.active_element
        outline = focused.value_of_css_property("outline-style")
        key = browser.execute_script(
            "const e = document.activeElement; return e.outerHTML.slice(0, 80);"
        )
        if outline in ("none", "") and focused.tag_name != "body":
            problems.append(f"no visible focus on {key}")
        reached.add(key)
    if len(reached) < controls:
        problems.append(f"Tab reached {len(reached)} of {controls} controls")
    return problems


async def test_partner_pages_are_accessible_on_a_phone(
    fleet: Fleet, portal: str, referral_partner: Partner, phone: Any
) -> None:
    phone.get(f"{portal}/sign-in")
    problems = check_page(phone, "/sign-in")
    await sign_in_by_keyboard(phone, portal, referral_partner.token)
    for path in PARTNER_PAGES:
        phone.get(f"{portal}{path}")
        problems += check_page(phone, path)
    phone.get(f"{portal}/home")
    problems += every_control_takes_the_focus_visibly(phone)
    assert problems == []


async def test_console_pages_are_accessible_on_a_phone(
    fleet: Fleet, portal: str, phone: Any
) -> None:
    await sign_in_by_keyboard(phone, portal, ADMIN_TOKEN)
    problems: list[str] = []
    for path in MANAGER_PAGES:
        phone.get(f"{portal}{path}")
        problems += check_page(phone, path)
    assert problems == []


async def test_an_error_page_is_accessible_too(fleet: Fleet, portal: str, phone: Any) -> None:
    await sign_in_by_keyboard(phone, portal, ADMIN_TOKEN)
    phone.get(f"{portal}/home")  # a partner's page, refused to a manager
    async with httpx.AsyncClient() as client:
        refused = await client.get(f"{portal}/home", cookies=session_cookies(ADMIN_TOKEN))
    assert refused.status_code == 403
    assert check_page(phone, "/refused") == []
