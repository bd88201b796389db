"""The next tier, read forwards for a partner: what it lacks (revenue to the cent, competencies
with the certified people each needs), and by when (grace, lapsing competencies, revenue leaving
the window, the agreement)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

from services.onboarding.domain.config import OnboardingConfig
from services.onboarding.domain.next_tier import NextTier, next_tier
from services.onboarding.domain.programme import CertificationRole
from services.onboarding.domain.tiers import Certification
from tests.support.onboarding import AGREEMENT, NOW, SMALL, SMALL_PROGRAM

DEFAULTS = OnboardingConfig()


def cert(person: str, track: str, role: str, issued: int, expires: int) -> Certification:
    return Certification(
        person,
        CertificationRole(role),
        track,
        NOW + timedelta(days=issued),
        NOW + timedelta(days=expires),
    )


# The data competency's two roles, certified 5 days ago: sales lapses in 40 days, technical in 90.
DATA_PAIR = [cert("ada", "data", "sales", -5, 40), cert("bo", "data", "technical", -5, 90)]


def days(*pairs: tuple[int, str]) -> dict[date, Decimal]:
    return {(NOW + timedelta(days=ago)).date(): Decimal(amount) for ago, amount in pairs}


def lacking(
    tier: str,
    revenue_days: dict[date, Decimal],
    certifications: list[Certification],
    *,
    program: OnboardingConfig = SMALL,
    grace_until: datetime | None = None,
    agreement_valid_until: datetime | None = AGREEMENT,
    partner_type: str | None = None,
) -> NextTier:
    """What a partner of `tier` (and `partner_type`) lacks at NOW under `program` (out of
    grace, its agreement valid until AGREEMENT unless said otherwise)."""
    return next_tier(
        program,
        tier=tier,
        partner_type=partner_type,
        revenue_days=revenue_days,
        certifications=certifications,
        grace_until=grace_until,
        agreement_valid_until=agreement_valid_until,
        as_of=NOW,
    )


def test_a_registered_partner_lacks_revenue_to_the_cent_and_a_competency() -> None:
    found = lacking(
        "registered",
        days((-10, "400.10"), (-400, "9000")),  # the second is out of the window
        [cert("ada", "data", "sales", -5, 300)],
    )
    assert found.next_tier == "silver"
    assert found.revenue == Decimal("400.10")
    assert found.revenue_short == Decimal("599.90")
    assert found.competencies == ()
    # data is one technical certification away, ai two: the closest first.
    assert [(g.competency, g.missing) for g in found.gaps] == [("data", 1), ("ai", 2)]
    assert found.gaps[0].reason == "data: 1 more technical certified person"
    assert found.gaps[1].reason == "ai: 1 more sales and 1 more technical certified people"
    assert found.unmet == (
        "attributed revenue 400.10 is below the silver minimum 1000",
        "0 competencies held (none), silver needs 1",
    )
    assert found.revenue_leaving is not None
    assert found.revenue_leaving.on == (NOW - timedelta(days=10)).date() + timedelta(days=365)
    assert found.revenue_leaving.amount == Decimal("400.10")


def test_at_the_top_nothing_is_needed_but_lapses_still_matter() -> None:
    found = lacking(
        "gold",
        days((-1, "6000")),
        [*DATA_PAIR, cert("cy", "data", "technical", -5, 20)],
    )
    assert found.next_tier is None
    assert found.revenue_short == Decimal(0)
    assert found.gaps == ()
    assert found.unmet == ()
    # cy's expiry leaves bo: data lapses when ada's sales certification does.
    assert [(x.competency, x.on) for x in found.lapses] == [("data", NOW + timedelta(days=40))]


def test_in_grace_the_current_tier_shortfall_and_its_deadline_are_named() -> None:
    found = lacking(
        "gold",
        days((-1, "3000")),
        DATA_PAIR,
        grace_until=NOW + timedelta(days=6),
    )
    assert found.keep_unmet == ("attributed revenue 3000 is below the gold minimum 5000",)
    assert found.grace_until == NOW + timedelta(days=6)
    # A grace period that ended is not a deadline any more.
    ended = lacking(
        "gold",
        {},
        [],
        grace_until=NOW - timedelta(days=1),
        agreement_valid_until=None,
    )
    assert ended.grace_until is None
    assert ended.keep_unmet == ()
    assert ended.revenue_leaving is None


def test_a_required_competency_is_named_first_and_alone_when_the_count_is_met() -> None:
    program = OnboardingConfig.model_validate(
        {
            **SMALL_PROGRAM,
            "tiers": [
                *SMALL_PROGRAM["tiers"],
                {
                    "name": "platinum",
                    "min_revenue": 9000,
                    "min_competencies": 1,
                    "required_competencies": ["ai"],
                },
            ],
        }
    )
    found = lacking(
        "gold",
        days((-1, "9500")),
        DATA_PAIR,
        program=program,
    )
    assert found.competencies == ("data",)
    assert [(g.competency, g.required) for g in found.gaps] == [("ai", True)]
    assert found.unmet == ("platinum requires competency ai",)


def test_the_default_ladder_reads_the_same() -> None:
    found = lacking(
        "bronze",
        days((-3, "300000")),
        [],
        program=DEFAULTS,
    )
    assert (found.next_tier, found.revenue_short, found.competencies_needed) == (
        "silver",
        Decimal(0),
        1,
    )
    assert found.unmet == ("0 competencies held (none), silver needs 1",)
    assert len(found.gaps) == len(DEFAULTS.competencies)


def test_a_partner_type_with_its_own_tiers_reads_its_own_bars() -> None:
    """Found in review: the next tier quoted the default ladder to a partner type with its own
    bars (as activation tiered it on them), so a GSI was told it lacked far less, or more."""
    program = OnboardingConfig.model_validate(
        {
            **SMALL_PROGRAM,
            "type_tiers": {
                "gsi": [
                    {"name": "registered", "min_revenue": 0},
                    {"name": "silver", "min_revenue": 20000, "min_competencies": 1},
                    {"name": "gold", "min_revenue": 90000, "min_competencies": 1},
                ]
            },
        }
    )
    revenue = days((-10, "2000"))
    assert lacking("registered", revenue, DATA_PAIR, program=program).revenue_needed == 1000
    gsi = lacking("registered", revenue, DATA_PAIR, program=program, partner_type="gsi")
    assert (gsi.next_tier, gsi.revenue_needed, gsi.revenue_short) == ("silver", 20000, 18000)
    in_grace = lacking(
        "silver",
        revenue,
        DATA_PAIR,
        program=program,
        partner_type="gsi",
        grace_until=NOW + timedelta(days=3),
    )
    assert in_grace.keep_unmet == ("attributed revenue 2000 is below the silver minimum 20000",)
