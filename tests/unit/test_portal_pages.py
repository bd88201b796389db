"""The portal's page rules: where a person lands, which registrations are open and extendable,
how a protection window's countdown reads, which notifications are the latest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.portal.domain import pages
from shared.identity import Caller, Role

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def caller(*roles: Role, partner_id: str | None = None) -> Caller:
    return Caller(subject="x", roles=frozenset(roles), partner_id=partner_id)


def test_partners_land_at_home_managers_at_the_console_others_nowhere() -> None:
    assert pages.landing_page(caller(Role.PARTNER_USER, partner_id="p")) == "/home"
    assert pages.landing_page(caller(Role.PARTNER_ADMIN, partner_id="p")) == "/home"
    assert pages.landing_page(caller(Role.CHANNEL_MANAGER)) == "/console"
    assert pages.landing_page(caller(Role.FINANCE)) == "/finance/payouts"
    assert pages.landing_page(caller(Role.SYSTEM)) is None


@pytest.mark.parametrize(
    ("left", "reads"),
    [
        (None, "no expiry"),
        (timedelta(0), "expired"),
        (-timedelta(days=3), "expired"),
        (timedelta(seconds=20), "1 min left"),
        (timedelta(minutes=59, seconds=59), "59 min left"),
        (timedelta(hours=5, minutes=7), "5 h 7 min left"),
        (timedelta(days=1, hours=2), "1 day 2 h left"),
        (timedelta(days=90), "90 days 0 h left"),
    ],
)
def test_the_countdown_reads_at_a_glance(left: timedelta | None, reads: str) -> None:
    assert pages.countdown(None if left is None else NOW + left, NOW) == reads


def test_open_registrations_are_those_still_in_play() -> None:
    statuses = ["submitted", "approved", "pending_review", "rejected", "won", "lost", "expired"]
    assert [s for s in statuses if pages.is_open(s)] == ["submitted", "approved", "pending_review"]
    assert pages.open_first([("approved", 1), ("won", 2), ("pending_review", 3)]) == [1, 3]


def test_only_an_approved_registration_with_an_extension_left_offers_one() -> None:
    now = datetime(2026, 12, 2, 12, tzinfo=UTC)
    later = now + timedelta(days=3)
    assert pages.may_extend("approved", 1, later, now)
    assert pages.may_extend("approved", 3, later, now)
    assert not pages.may_extend("approved", 0, later, now)
    assert not pages.may_extend("pending_review", 1, later, now)
    assert not pages.may_extend("expired", 1, later, now)
    # Its window over, before the expiry job marks it: deals would refuse it.
    assert not pages.may_extend("approved", 1, now, now)


def test_the_latest_notifications_are_the_newest_first() -> None:
    assert pages.latest([1, 2, 3, 4, 5], 3) == [5, 4, 3]
    assert pages.latest([1, 2], 10) == [2, 1]
    assert pages.latest([1, 2], 0) == []
    assert pages.latest([], 3) == []


def test_statement_periods_are_this_quarter_and_the_ones_before() -> None:
    assert pages.quarter_of(NOW) == "2026-Q4"
    assert pages.quarter_of(datetime(2026, 1, 1, tzinfo=UTC)) == "2026-Q1"
    assert pages.recent_quarters(NOW, 6) == [
        "2026-Q4",
        "2026-Q3",
        "2026-Q2",
        "2026-Q1",
        "2025-Q4",
        "2025-Q3",
    ]


def test_ledger_entries_read_as_a_statement_names_them() -> None:
    assert pages.entry_label("spiff") == "SPIFF"
    assert pages.entry_label("clawback") == "Clawback"
    assert pages.entry_label("mdf_accrued") == "Mdf accrued"


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [
        ("4200.0000", "USD", "4200.00"),  # a CRM deal's amount at the projection's four places
        ("4200", "USD", "4200.00"),
        ("1E+3", "EUR", "1000.00"),  # written out, never in exponent form
        ("12.0000", "JPY", "12"),
        ("0.5", "BHD", "0.500"),
        ("4200.1234", "USD", "4200.1234"),  # more places than USD has: shown, not rounded
        ("12.5", "JPY", "12.5"),
        ("1.50", None, "1.50"),  # no currency to read places from: as it came
        ("1.50", "XXX", "1.50"),  # a code with no minor unit
        ("99999999999999999999999999999.5", "USD", "99999999999999999999999999999.50"),
        ("9" * 40, "USD", "9" * 40 + ".00"),  # more digits than Decimal's default context
        ("1E+999999", "USD", "1E+999999"),  # a million digits if written out
        ("0E-50", "USD", "0.00"),
        ("-0", "JPY", "0"),
        ("NaN", "USD", "NaN"),
        ("twelve", "USD", "twelve"),
        (None, "USD", ""),
    ],
)
def test_an_amount_shows_its_currencys_places_when_nothing_is_lost(
    amount: str | None, currency: str | None, shown: str
) -> None:
    assert pages.money(amount, currency) == shown
