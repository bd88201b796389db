"""The portal's enablement rules: whose progress is the signed-in person's, which certifications
are expiring soon, who holds the certification a path leads to, and which origins the
library's forms may lead to."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from services.portal.domain import enablement

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def cert(person: str, track: str, role: str, issued: int, expires: int, **extra: Any) -> dict:
    return {
        "person": person,
        "track": track,
        "role": role,
        "issued_at": (NOW + timedelta(days=issued)).isoformat(),
        "expires_at": (NOW + timedelta(days=expires)).isoformat(),
        **extra,
    }


def test_the_person_of_a_partner_token_is_its_user_without_case() -> None:
    assert enablement.person_of("ptn_1/Ada@Example.com", "ptn_1") == "ada@example.com"
    assert enablement.person_of("ada@example.com", "ptn_1") == "ada@example.com"
    # Another partner's prefix is not stripped: it is nobody of this partner.
    assert enablement.person_of("ptn_2/ada@example.com", "ptn_1") == "ptn_2/ada@example.com"
    assert enablement.is_me(" ADA@example.com", "ada@example.com")
    assert not enablement.is_me("ada@example.com", "")


def test_expiring_soon_is_what_lapses_within_the_widest_reminder_window_soonest_first() -> None:
    found = enablement.expiring_soon(
        [
            cert("b@x", "data", "sales", -300, 59),
            cert("a@x", "ai", "technical", -300, 7),
            cert("c@x", "data", "technical", -300, 61),  # beyond the window
            cert("d@x", "data", "technical", -700, -1),  # lapsed: no longer counts
            cert("e@x", "cloud", "sales", -10, 5, voided_at=NOW.isoformat()),  # voided
            cert("f@x", "cloud", "sales", 1, 20),  # not valid yet
        ],
        NOW,
    )
    assert [(e.person, e.days_left) for e in found] == [("a@x", 7), ("b@x", 59)]
    assert found[0].when == "expires in 7 days"
    assert enablement.expiring_soon([cert("a@x", "ai", "sales", -1, 1)], NOW)[0].when == (
        "expires in 1 day"
    )
    hours = {**cert("a@x", "ai", "sales", -1, 0), "expires_at": (NOW + timedelta(hours=3))}
    assert enablement.expiring_soon([hours], NOW)[0].when == "expires today"
    # Calendar days, as the date beside it reads: late in the day, tomorrow is 1 day away.
    late = datetime(2026, 3, 1, 23, 0, tzinfo=UTC)
    issued = {**hours, "issued_at": datetime(2025, 3, 1, tzinfo=UTC)}
    next_morning = {**issued, "expires_at": datetime(2026, 3, 2, 10, 0, tzinfo=UTC)}
    two_days = {**issued, "expires_at": datetime(2026, 3, 3, 22, 0, tzinfo=UTC)}
    assert [e.when for e in enablement.expiring_soon([next_morning, two_days], late)] == [
        "expires in 1 day",
        "expires in 2 days",
    ]


def test_the_home_page_lists_only_the_certifications_that_count_now() -> None:
    """It listed every certification ever recorded, a voided one as if held."""
    held = enablement.valid_now(
        [
            cert("a@x", "ai", "technical", -300, 7),
            cert("d@x", "data", "technical", -700, -1),  # lapsed
            cert("e@x", "cloud", "sales", -10, 5, voided_at=NOW.isoformat()),  # voided
            cert("f@x", "cloud", "sales", 1, 20),  # not valid yet
            cert("g@x", "data", "sales", -1, 900),
        ],
        NOW,
    )
    assert [c["person"] for c in held] == ["a@x", "g@x"]


def test_holds_is_the_latest_valid_certification_on_the_track_and_role() -> None:
    certs = [
        cert("Ada@x", "data", "sales", -400, 30),
        cert("ada@x", "data", "sales", -10, 700),  # renewed
        cert("ada@x", "data", "technical", -10, 700),
        cert("ada@x", "ai", "sales", -800, -70),  # lapsed
    ]
    assert enablement.holds(certs, "ada@x", "data", "sales", NOW) == NOW + timedelta(days=700)
    assert enablement.holds(certs, "ada@x", "ai", "sales", NOW) is None
    assert enablement.holds(certs, "bob@x", "data", "sales", NOW) is None
    assert enablement.holds(certs, "ada@x", None, None, NOW) is None


def test_forms_may_lead_only_to_plain_https_origins() -> None:
    assert enablement.form_targets(
        [
            "https://cdn.vendor.example/guides/a.pdf",
            "https://cdn.vendor.example/guides/b.pdf",
            "https://sdk.vendor.example:8443/signup?x=1",
            "http://plain.example/a",
            "https://user:pw@creds.example/a",
            "javascript:alert(1)",
            "https://bad host.example/",
        ]
    ) == ["https://cdn.vendor.example", "https://sdk.vendor.example:8443"]


def test_a_stored_address_no_browser_opens_is_left_out_not_a_500() -> None:
    """Found from outside: onboarding stored these (its check was a pattern), and every
    library page and sandbox sign-up answered 500 reading their port."""
    bad = [
        "https://res.example:abc/a",
        "https://[::1/a",
        "https://res.example:99999/a",
        "https://res.example:0/a",
        "https://res.example/\u202eexe.pdf",
    ]
    assert not any(enablement.openable(url) for url in bad)
    good = ["https://b\u00fccher.example/a", "https://[2001:db8::1]/a", "https://res.example./a"]
    assert all(enablement.openable(url) for url in good)
    # an IDN host as its A-label (a policy names ASCII hosts); an IPv6 origin has no such name
    assert enablement.form_targets([*bad, *good]) == [
        "https://res.example",
        "https://xn--bcher-kva.example",
    ]


def test_states_and_kinds_read_as_words() -> None:
    assert enablement.module_state("out_of_order").startswith("done before an earlier module")
    assert enablement.module_state("brand_new") == "brand new"
    assert enablement.resource_kind("early_access") == "SDK/API early access"
    assert enablement.resource_kind("webinar_kit") == "Webinar kit"
