"""The portal as a real process in front of a Fleet's services, and a real headless Chromium
(Debian's `chromium` and `chromium-driver`, installed by deploy/test-tools.sh) driven with
Selenium to use it."""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from tests.support.infra import ROOT, missing_capability
from tests.support.processes import LOGS, Fleet, free_port, start_module, wait_ready

SCREENSHOTS = ROOT / ".work" / "screenshots"
CHROMIUM = ("chromium", "chromium-browser")
DRIVER = "chromedriver"


@asynccontextmanager
async def portal_process(fleet: Fleet, **extra: str) -> AsyncIterator[str]:
    """The portal on a free port, calling the fleet's services; yields its base URL."""
    import os

    port = free_port()
    env = {
        **os.environ,
        "HTTP_PORT": str(port),
        **{f"PORTAL_{service.upper()}_URL": url for service, url in fleet.urls.items()},
        **extra,
    }
    LOGS.mkdir(parents=True, exist_ok=True)
    with (LOGS / "portal-0.log").open("ab") as out:
        process = await start_module(
            "portal", env=env, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out
        )
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(f"{url}/health/ready", process)
        yield url
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), 30)


def _binary(names: tuple[str, ...]) -> str | None:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return None


@contextmanager
def chromium(width: int = 1280, height: int = 900) -> Iterator[Any]:
    """A headless Chromium under Selenium; skipped (failed under CI=true) when not installed."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing_capability("selenium is not installed (uv sync installs the dev group)")
    browser, driver = _binary(CHROMIUM), _binary((DRIVER,))
    if browser is None or driver is None:
        missing_capability("chromium and chromium-driver are not installed (deploy/test-tools.sh)")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    options.add_argument(f"--window-size={width},{height}")
    session = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    # axe-core runs as an async script: on a long page (a partner with a full suite's history)
    # on a loaded machine it can take longer than WebDriver's 30 s default.
    session.set_script_timeout(180)
    try:
        yield session
    finally:
        session.quit()


def form_csrf(client: Any, page: str = "/sign-in") -> str:
    """The CSRF value the portal's `page` puts in its forms (a test client's: once signed in,
    bound to the session, so the cookie's own value no longer passes)."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get(page).text)
    assert found, page
    return found.group(1)


def screenshot(browser: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    browser.save_screenshot(str(path))
    return path


# Every page of a partner person and of a channel manager, as the menus list them.
PARTNER_PAGES = (
    "/home",
    "/registrations",
    "/earnings",
    "/what-if",
    "/mdf",
    "/webhooks",
    "/learning",
    "/resources",
)
MANAGER_PAGES = (
    "/console",
    "/console/applications",
    "/console/mdf",
    "/console/crm-links",
    "/console/dead-letters",
    "/console/partners",
    "/finance/payouts",
    "/console/policy",
    "/console/dashboard",
)


def portal_routes() -> set[tuple[str, str]]:
    """Every (method, path) the portal serves: its routers' routes and its static mount."""
    from fastapi.routing import APIRoute
    from starlette.routing import Mount

    from services.portal.app import ROUTERS, create_app

    routes = {
        (method, route.path)
        for router in ROUTERS
        for route in router.routes
        if isinstance(route, APIRoute)
        for method in route.methods or ()
    }
    mounts = [r for r in create_app().routes if isinstance(r, Mount)]
    return routes | {("GET", f"{mount.path}/{{path}}") for mount in mounts}


AXE = ROOT / ".work" / "tools" / "axe"


def axe_script() -> str:
    """axe-core, as deploy/test-tools.sh installs it."""
    found = sorted(AXE.glob("*/axe.min.js"))
    if not found:
        missing_capability("axe-core is not installed (deploy/test-tools.sh fetches it with npm)")
    return found[-1].read_text()


def serious_violations(browser: Any) -> list[str]:
    """axe-core's serious and critical violations on the current page (WCAG 2.x A and AA)."""
    browser.execute_script(axe_script())
    result = browser.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a',
            'wcag21aa', 'best-practice']}})
          .then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact,
              nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 3)}))))
          .catch(e => done([{id: 'axe-error', impact: 'critical', nodes: [String(e)]}]));
        """
    )
    return [
        f"{v['id']} ({v['impact']}): {', '.join(v['nodes'])}"
        for v in result
        if v["impact"] in ("serious", "critical")
    ]


def unlabelled_inputs(browser: Any) -> list[str]:
    """Form controls a screen reader could not name: no <label for>, no aria-label."""
    found: list[str] = browser.execute_script(
        """
        return Array.from(document.querySelectorAll('input, select, textarea'))
          .filter(e => e.type !== 'hidden')
          .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
          .map(e => e.outerHTML.slice(0, 120));
        """
    )
    return found


def horizontal_overflow(browser: Any) -> int:
    """How many pixels the page is wider than the window (0: no sideways scrolling)."""
    width: int = browser.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    return width


async def page_shows(browser: Any, selector: str, text: str, what: str) -> None:
    """Wait (bounded) until an element matching `selector` shows `text`; a screenshot and the
    page's text when it never does."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
    from selenium.webdriver.common.by import By

    from tests.support.polling import NeverHappened, eventually

    async def shown() -> bool:
        try:
            found = browser.find_elements(By.CSS_SELECTOR, selector)
            return any(text in element.text for element in found)
        except StaleElementReferenceException:  # the page changed under the look: look again
            return False
        except WebDriverException as error:
            # The same race as Chromium sometimes words it (a form's answer replaced the
            # document between finding the element and reading it): look again.
            if "does not belong to the document" in str(error.msg):
                return False
            raise

    try:
        await eventually(shown, 30, what=what, every=0.2)
    except NeverHappened as error:
        screenshot(browser, "failed-" + "-".join(what.split()))
        raise NeverHappened(
            f"{what}; the page read: {browser.find_element(By.TAG_NAME, 'main').text}"
        ) from error


async def sign_in(browser: Any, portal: str, token: str) -> None:
    """Sign in by pasting a platform token on the sign-in page."""
    from selenium.webdriver.common.by import By

    browser.get(f"{portal}/sign-in")
    browser.find_element(By.ID, "token").send_keys(token)
    browser.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
    await left_sign_in(browser, portal)


async def left_sign_in(browser: Any, portal: str) -> None:
    """Wait until the browser is on the page after signing in. (Any heading would not do: the
    sign-in page has one too, and a test going on from there opens its next page unsigned.)"""
    from tests.support.polling import eventually

    async def away() -> bool:
        return not browser.current_url.startswith(f"{portal}/sign-in")

    await eventually(away, 30, what="the page after signing in")


PHONE = (375, 812)  # a phone's screen, in CSS pixels


async def sign_in_by_keyboard(browser: Any, portal: str, token: str) -> None:
    """Signing in with the keyboard alone: Tab to the token field, type, Tab to the button,
    Enter."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.get(f"{portal}/sign-in")
    field = browser.find_element(By.ID, "token")
    keys = ActionChains(browser)
    for _ in range(10):
        if browser.switch_to.active_element == field:
            break
        keys.send_keys(Keys.TAB).perform()
    assert browser.switch_to.active_element == field, "the token field is not reachable by Tab"
    keys.send_keys(token).send_keys(Keys.TAB).perform()
    button = browser.switch_to.active_element
    assert button.tag_name == "button"
    assert button.text == "Sign in"
    keys.send_keys(Keys.ENTER).perform()
    await left_sign_in(browser, portal)  # the form's answer comes after Enter returns


def check_page(browser: Any, name: str) -> list[str]:
    """What axe-core, the form labels and the width say is wrong with the page at a phone's
    width (none: an empty list); a screenshot of it."""
    problems = [f"{name}: {v}" for v in serious_violations(browser)]
    problems += [f"{name}: unlabelled {html}" for html in unlabelled_inputs(browser)]
    overflow = horizontal_overflow(browser)
    if overflow > 0:
        problems.append(f"{name}: {overflow} px wider than the 375 px screen")
    screenshot(browser, f"375-{name.strip('/').replace('/', '-') or 'start'}")
    return problems


def fill(browser: Any, field: str, value: str) -> None:
    """Type `value` into the field of id `field`, in place of what it held."""
    from selenium.webdriver.common.by import By

    element = browser.find_element(By.ID, field)
    element.clear()
    element.send_keys(value)


def session_cookies(token: str) -> dict[str, str]:
    """The cookies of a development-mode portal session signed in with `token` and just used
    (a client that does not go through the sign-in form: the session and its mark of use)."""
    from datetime import UTC, datetime

    from services.portal.sessions import SEEN_COOKIE, SESSION_COOKIE, seen_value

    return {SESSION_COOKIE: token, SEEN_COOKIE: seen_value(token, datetime.now(UTC))}
