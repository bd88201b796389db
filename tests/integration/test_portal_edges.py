"""The portal's edges, in process: sessions (the cookie's flags, expiry with the token, refused
tokens), CSRF on every form post, who reaches which pages, and a service that does not answer
(a 503 page naming it, never a 500). The services it calls are not running here: everything
checked happens before or instead of a call."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from services.portal.app import create_app
from services.portal.sessions import seen_value
from services.portal.settings import PortalSettings
from shared.identity import Role
from shared.topics import SERVICES
from tests.support.local_http import LocalServer, QuietHandler
from tests.support.polling import eventually
from tests.support.portal import form_csrf
from tests.support.portal_in_process import portal_settings, sign_in
from tests.support.processes import free_port
from tests.support.tokens import VERIFICATION_KEYS, expired, token

PARTNER = token("p/u", Role.PARTNER_USER, partner_id="ptn_edges")
MANAGER = token("cm", Role.CHANNEL_MANAGER)
WITHOUT_PROGRAMME = ("onboarding", "deals", "attribution", "incentives", "notifications")


def settings(development: bool) -> PortalSettings:
    # Nothing listens on this port: a call to a service fails to connect at once.
    nowhere = f"http://127.0.0.1:{free_port()}"
    return PortalSettings(
        token_verification_keys=VERIFICATION_KEYS,
        development_mode=development,
        **{f"portal_{s}_url": nowhere for s in ("onboarding", "deals", "notifications")},
    )


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(create_app(settings(True)), follow_redirects=False) as session:
        yield session


def csrf(client: TestClient, cookie: str = "pollinate_csrf") -> str:
    client.get("/sign-in")
    value = client.cookies.get(cookie)
    assert value
    return value


def test_anonymous_pages_go_to_sign_in_and_fragments_answer_401(client: TestClient) -> None:
    for path in ("/", "/home", "/registrations", "/console"):
        answer = client.get(path)
        assert (answer.status_code, answer.headers["location"]) == (303, "/sign-in?reason=required")
    assert client.get("/live/notifications").status_code == 401
    assert client.get("/home", headers={"HX-Request": "true"}).status_code == 401


def test_sign_in_sets_a_strict_httponly_cookie_for_the_browsers_session(
    client: TestClient,
) -> None:
    """Found in review: the cookie was kept for the token's life (up to a day), so a shared
    machine's next user opened the portal as the last one. It ends with the browser's session
    (the token's expiry still ends it sooner), and with the idle limit below."""
    short = token("p/u", Role.PARTNER_USER, partner_id="ptn_edges", ttl=timedelta(minutes=10))
    answer = client.post("/sign-in", data={"token": short, "csrf_token": csrf(client)})
    assert (answer.status_code, answer.headers["location"]) == (303, "/home")
    cookies = answer.headers.get_list("set-cookie")
    for name in ("pollinate_session", "pollinate_seen"):
        cookie = next(c for c in cookies if c.startswith(f"{name}="))
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie
        assert "Secure" not in cookie  # development mode: plain http on a developer's machine
        assert "Max-Age" not in cookie
        assert "expires" not in cookie.lower()


def test_a_session_idle_past_the_limit_is_over_and_a_forged_mark_changes_nothing() -> None:
    configured = settings(True).model_copy(update={"portal_session_idle_minutes": 30})
    with TestClient(create_app(configured), follow_redirects=False) as client:
        sign_in(client, PARTNER)
        assert client.get("/live/notifications", headers={"HX-Request": "true"}).status_code != 401
        idle = datetime.now(UTC) - timedelta(minutes=31)
        client.cookies.set("pollinate_seen", seen_value(PARTNER, idle))
        answer = client.get("/home")
        assert (answer.status_code, answer.headers["location"]) == (
            303,
            "/sign-in?reason=expired",
        )
        forged = seen_value("another token", datetime.now(UTC))
        client.cookies.set("pollinate_seen", forged)
        assert client.get("/home").status_code == 303
        client.cookies.set("pollinate_seen", seen_value(PARTNER, datetime.now(UTC)))
        assert client.get("/home").status_code != 303  # used within the limit: signed in


def test_outside_development_mode_the_cookies_are_secure_and_host_only() -> None:
    with TestClient(create_app(settings(False)), base_url="https://portal.test") as client:
        client.follow_redirects = False
        given = csrf(client, "__Host-pollinate_csrf")
        answer = client.post("/sign-in", data={"token": PARTNER, "csrf_token": given})
        assert (answer.status_code, answer.headers["location"]) == (303, "/home")
        cookies = answer.headers.get_list("set-cookie")
        assert [c.split("=")[0] for c in cookies] == [
            "__Host-pollinate_session",
            "__Host-pollinate_seen",
        ]
        # `__Host-`: a browser keeps it only Secure, for `/` and without a Domain, so no
        # sibling subdomain can plant one.
        assert all("Secure" in c and "Path=/" in c and "Domain" not in c for c in cookies)
        home = client.get("/home")  # signed in: the page, its services unreachable here
        assert (home.status_code, home.headers.get("location")) == (503, None)

    # A session planted under the plain name (as a sibling subdomain can) signs nobody in.
    with TestClient(create_app(settings(False)), base_url="https://portal.test") as planted:
        planted.follow_redirects = False
        planted.cookies.set("pollinate_session", PARTNER)
        answer = planted.get("/home")
        assert (answer.status_code, answer.headers["location"]) == (303, "/sign-in?reason=required")


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("not a token", "invalid token"),
        (expired("p/u", Role.PARTNER_USER, partner_id="p"), "token expired"),
        (token("x", Role.CHANNEL_MANAGER, audiences=("deals",)), "token not meant for"),
        # Found from outside: without programme's audience a sign-in worked, then the MDF page,
        # planning a campaign and the dashboard sent the person back to sign in.
        (
            token("p/u", Role.PARTNER_ADMIN, partner_id="p", audiences=WITHOUT_PROGRAMME),
            "token not meant for programme",
        ),
        (
            token("cm", Role.CHANNEL_MANAGER, audiences=WITHOUT_PROGRAMME),
            "token not meant for programme",
        ),
    ],
)
def test_refused_tokens_say_why(client: TestClient, value: str, says: str) -> None:
    answer = client.post("/sign-in", data={"token": value, "csrf_token": csrf(client)})
    assert answer.status_code == 401
    assert says in answer.text
    assert "pollinate_session" not in answer.headers.get("set-cookie", "")


def test_roles_without_pages_are_refused_at_sign_in(client: TestClient) -> None:
    answer = client.post(
        "/sign-in", data={"token": token("s", Role.SYSTEM), "csrf_token": csrf(client)}
    )
    assert answer.status_code == 403
    assert "partners, channel managers and finance only" in answer.text


@pytest.mark.parametrize(
    "path",
    [
        "/sign-in",
        "/sign-out",
        "/registrations",
        "/registrations/check",
        "/mdf/campaigns",
        "/mdf/preapprovals",
    ],
)
def test_every_form_post_needs_its_csrf_token(client: TestClient, path: str) -> None:
    sign_in(client, PARTNER)
    form = {"token": PARTNER, "customer_name": "Acme", "amount": "1", "products": "data"}
    missing = client.post(path, data=form)
    wrong = client.post(path, data={**form, "csrf_token": "x" * 43})
    for answer in (missing, wrong):
        assert answer.status_code == 403, answer.text
        assert "not sent by this portal" in answer.text


def test_a_csrf_cookie_and_field_planted_together_pass_only_without_a_session(
    client: TestClient,
) -> None:
    """Found from outside: the field was compared with the cookie alone, so whoever could
    set a cookie for the portal (a sibling domain can) chose both. Signed in, the forms carry
    the cookie's value bound to the session's token, which no one else can read."""
    planted = "A" * 43
    form = {"customer_name": "Acme", "amount": "1", "products": "data"}
    client.cookies.set("pollinate_csrf", planted)
    answer = client.post("/sign-in", data={"token": PARTNER, "csrf_token": planted})
    assert answer.status_code == 303  # the sign-in form has no session to bind to
    refused = client.post("/registrations", data={**form, "csrf_token": planted})
    assert refused.status_code == 403
    assert "not sent by this portal" in refused.text
    bound = form_csrf(client)
    assert bound != planted
    sent = client.post("/registrations", data={**form, "csrf_token": bound})
    assert sent.status_code == 503, sent.text  # past the checks: deals does not answer here
    header = client.post("/registrations", data=form, headers={"X-CSRF-Token": bound})
    assert header.status_code == 503, header.text


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://testserver.evil.example"},
        {"Referer": "https://evil.example/page"},
    ],
)
def test_a_form_posted_from_another_origin_is_refused(
    client: TestClient, headers: dict[str, str]
) -> None:
    sign_in(client, PARTNER)
    form = {"customer_name": "Acme", "amount": "1", "csrf_token": form_csrf(client)}
    answer = client.post("/registrations", data=form, headers=headers)
    assert answer.status_code == 403, answer.text
    assert "this form was sent from another site" in answer.text
    own = {"Origin": "http://testserver", "Referer": "http://testserver/registrations"}
    for name, value in own.items():
        passed = client.post("/registrations", data=form, headers={name: value})
        assert passed.status_code == 503, passed.text  # past the checks


def test_a_configured_public_origin_is_the_only_one_taken() -> None:
    public = settings(True).model_copy(update={"portal_public_origin": "https://portal.example"})
    with TestClient(create_app(public), follow_redirects=False) as client:
        token_value = csrf(client)
        data = {"token": PARTNER, "csrf_token": token_value}
        # the address the request reached (behind a proxy) is not what the browser names
        elsewhere = client.post("/sign-in", data=data, headers={"Origin": "http://testserver"})
        assert elsewhere.status_code == 403
        answer = client.post("/sign-in", data=data, headers={"Origin": "https://portal.example"})
        assert answer.status_code == 303, answer.text


def test_a_partner_cannot_open_the_console_nor_a_manager_the_partner_pages() -> None:
    with TestClient(create_app(settings(True)), follow_redirects=False) as partner:
        sign_in(partner, PARTNER)
        answer = partner.get("/console")
        assert answer.status_code == 403
        assert "this page needs the role channel_manager" in answer.text
    with TestClient(create_app(settings(True)), follow_redirects=False) as manager:
        sign_in(manager, MANAGER)
        for path in ("/home", "/registrations", "/live/notifications"):
            answer = manager.get(path)
            assert answer.status_code == 403, path
            assert "for a partner&#39;s people" in answer.text


def test_a_service_that_does_not_answer_is_a_503_naming_it(client: TestClient) -> None:
    sign_in(client, PARTNER)
    answer = client.get("/registrations")
    assert answer.status_code == 503
    assert "deals is unavailable" in answer.text


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("/registrations/%00", "the path must not contain control characters"),
        ("/registrations/a%0Ab", "the path must not contain control characters"),
        ("/console/dashboard?to_quarter=%00", "the query string must not contain control"),
        ("/registrations/%FF", "the path is not valid UTF-8"),
    ],
)
def test_a_page_address_with_a_control_character_is_a_400(
    client: TestClient, path: str, problem: str
) -> None:
    """Found from outside: the value went into the service's URL, which the HTTP client
    refused with an error the portal did not expect (500). Refused now before any route, as
    every service refuses such an address."""
    sign_in(client, PARTNER)
    answer = client.get(path)
    assert answer.status_code == 400
    assert answer.headers["content-type"].startswith("text/html")  # the portal's page
    assert problem in answer.text
    assert answer.headers["X-Frame-Options"] == "DENY"


@pytest.mark.parametrize("sent", ["\u00e9".encode(), b"abc\xff", b"n" * 41, b"a/b?c"])
def test_a_resume_cursor_the_service_never_hands_out_is_a_422(
    client: TestClient, sent: bytes
) -> None:
    """Found from outside: a non-ASCII Last-Event-ID could not be written into the request to
    the notifications service (UnicodeEncodeError, a 500). A cursor is checked at the edge."""
    sign_in(client, PARTNER)
    answer = client.get("/live/notifications", headers={"Last-Event-ID": sent})
    assert answer.status_code == 422, answer.text
    assert "Last-Event-ID" in answer.text
    after = client.get("/live/notifications", params={"after": sent.decode("latin-1")})
    assert after.status_code == 422, after.text
    assert "after" in after.text
    # a cursor as notifications writes them goes on (nothing answers here: 503 naming it)
    good = client.get("/live/notifications", headers={"Last-Event-ID": "bjE6MTIz"})
    assert good.status_code == 503, good.text
    assert "notifications is unavailable" in good.text


def test_a_body_over_the_bound_is_a_413_before_the_form_is_read() -> None:
    """One anonymous sign-in post of 360 MB in 1 MB fields (each under the form parser's own
    limit) held 450 MB of the portal's memory; the bound refuses it, declared or streamed."""
    bounded = settings(True).model_copy(update={"http_max_body_bytes": 64 * 1024})
    with TestClient(create_app(bounded), follow_redirects=False) as client:
        token_value = csrf(client)
        fields = "&".join(f"f{i}={'a' * 1000}" for i in range(70))
        body = f"csrf_token={token_value}&token=x&{fields}".encode()
        declared = client.post(
            "/sign-in",
            content=body,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert declared.status_code == 413
        assert "request body over 65536 bytes" in declared.text

        def chunks() -> Iterator[bytes]:  # no Content-Length: the bound counts what arrives
            for start in range(0, len(body), 8192):
                yield body[start : start + 8192]

        streamed = client.post(
            "/sign-in",
            content=chunks(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert streamed.status_code == 413
        assert "request body over 65536 bytes" in streamed.text
        # under the bound, the same form is read (and its token refused as invalid)
        small = client.post("/sign-in", data={"csrf_token": token_value, "token": "x"})
        assert small.status_code == 401


def test_hostile_form_input_is_a_422_page(client: TestClient) -> None:
    sign_in(client, PARTNER)
    token_value = form_csrf(client)
    answer = client.post(
        "/registrations",
        data={"csrf_token": token_value, "customer_name": "x" * 201, "amount": "1"},
    )
    assert answer.status_code == 422
    assert "customer_name" in answer.text
    # a campaign id goes into programme's path: nothing but an id's characters reaches it
    for campaign_id in ("../admin", "camp/1", "camp?x=1", ""):
        refused = client.post(
            "/mdf/preapprovals",
            data={
                "csrf_token": token_value,
                "campaign_id": campaign_id,
                "activity_kind": "webinar",
                "description": "joint webinar",
                "amount": "10.00",
                "reference": "r-1",
            },
        )
        assert refused.status_code == 422, (campaign_id, refused.text)
        assert "campaign_id" in refused.text


def test_pages_load_nothing_from_elsewhere(client: TestClient) -> None:
    answer = client.get("/sign-in")
    policy = answer.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "http" not in answer.text.split("<main", 1)[0].replace("http-equiv", "")


class NotTheService(QuietHandler):
    """What answers where deals should: a proxy's HTML page, or JSON of another shape."""

    def do_GET(self) -> None:
        if self.path.split("?")[0] == "/registrations":
            self.send_json(200, {"not": "a list of registrations"})
        else:
            body = b"<html><body>Bad gateway</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)


def test_an_answer_the_portal_cannot_read_is_a_page_with_its_headers_never_a_bare_500() -> None:
    """Found in review: a service answering HTML (a proxy, a wrong URL) or another shape made a
    plain-text 500 without the security headers (Starlette answers an unexpected exception
    outside every middleware); a 404 under /static/ was marked cacheable for an hour."""
    with LocalServer(NotTheService) as deals:
        configured = settings(True).model_copy(update={"portal_deals_url": deals.url})
        app = create_app(configured)
        with TestClient(app, follow_redirects=False, raise_server_exceptions=False) as client:
            sign_in(client, PARTNER)
            unreadable = client.get(f"/registrations/{'r-1'}")
            assert unreadable.status_code == 503
            assert "deals is unavailable: answered something other than JSON" in unreadable.text
            broken = client.get("/registrations")
            assert broken.status_code == 500
            assert "the page could not be shown" in broken.text
            for answer in (unreadable, broken):
                assert answer.headers["X-Frame-Options"] == "DENY"
                assert "default-src" in answer.headers["Content-Security-Policy"]
                assert answer.headers["Cache-Control"] == "no-store"
            missing = client.get("/static/nope.css")
            assert missing.status_code == 404
            assert missing.headers["Cache-Control"] == "no-store"


def test_signing_in_over_another_session_keeps_the_new_one() -> None:
    """Signing in again while a session is open (another person on a shared machine) answers
    the new session's mark of use, not the old one's, so the new session holds."""
    with TestClient(create_app(settings(True)), follow_redirects=False) as client:
        sign_in(client, PARTNER)
        again = client.post(
            "/sign-in", data={"token": MANAGER, "csrf_token": form_csrf(client, "/sign-in")}
        )
        assert again.status_code == 303, again.text
        answer = client.get("/console")
        assert answer.status_code != 303, answer.headers.get("location")


async def answers(url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            return (await client.get(url)).status_code == 200
    except httpx.HTTPError:
        return False


class HeldStreams(QuietHandler):
    """Every service: a live stream opens and stays open until the test ends (`release`), and
    any other call is answered with an empty page of JSON."""

    release = threading.Event()

    def do_GET(self) -> None:
        if self.path.endswith("/notifications/stream"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            self.wfile.write(b"retry: 1000\n\n")
            self.wfile.flush()
            self.release.wait(60)
            return
        self.send_json(200, [])


async def test_open_live_streams_leave_the_pages_their_connections_and_are_bounded() -> None:
    """Found in review: streams used the pages' connection pool, so a hundred open home pages
    left every page call waiting for a connection and then answering 503. Streams have
    connections of their own, at most `portal_max_streams`; one more is refused at once."""
    with LocalServer(HeldStreams) as services:
        configured = portal_settings(dict.fromkeys(SERVICES, services.url)).model_copy(
            update={"portal_max_streams": 2}
        )
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(create_app(configured), host="127.0.0.1", port=port, log_level="error")
        )
        serving = asyncio.create_task(server.serve())
        portal = f"http://127.0.0.1:{port}"
        try:
            await eventually(lambda: answers(f"{portal}/health/ready"), what="the portal answers")
            async with httpx.AsyncClient(base_url=portal, timeout=10) as browser:
                await browser.get("/sign-in")
                signed = await browser.post(
                    "/sign-in",
                    data={"token": PARTNER, "csrf_token": browser.cookies["pollinate_csrf"]},
                )
                assert signed.status_code == 303, signed.text
                async with (
                    browser.stream("GET", "/live/notifications") as first,
                    browser.stream("GET", "/live/notifications") as second,
                ):
                    assert (first.status_code, second.status_code) == (200, 200)
                    third = await browser.get("/live/notifications")
                    assert third.status_code == 503
                    page = await browser.get("/registrations")
                    assert page.status_code == 200, page.text
                    HeldStreams.release.set()
        finally:
            HeldStreams.release.set()
            server.should_exit = True
            await serving
