"""Enablement's pure rules: which statements certify, how a repeat is compared, which
membership a statement belongs to, and the exam configuration."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from services.onboarding.domain.config import OnboardingConfig
from services.onboarding.domain.enablement import (
    COMPLETED,
    FAILED,
    PASSED,
    Statement,
    account_key,
    certification_from,
    comparable,
    comparable_before_display_ignored,
    mbox_key,
    membership_for,
    reminder_due,
)
from services.onboarding.domain.learning import Completion, ModuleState, paths_for, progress
from services.onboarding.domain.programme import (
    EXAM_BASE,
    CertificationRole,
    ExamRule,
    LearningPath,
    Module,
    PersonRole,
)
from services.onboarding.domain.resources import (
    Engagement,
    PersonEnablement,
    ResourceKind,
    check_engagement,
    enablement_kpis,
    visible,
)
from shared.errors import Unprocessable
from shared.events.partners import PartnerType
from tests.support.onboarding import SMALL

AT = datetime(2026, 11, 1, 9, 30, tzinfo=UTC)
EXAM = f"{EXAM_BASE}data/technical"


def said(verb: str = PASSED, activity: str = EXAM, **overrides: Any) -> Statement:
    values: dict[str, Any] = {
        "statement_id": "s1",
        "actor_key": mbox_key("Tess@Example.org"),
        "verb": verb,
        "activity": activity,
        "success": True,
        "scaled_score": Decimal("0.8"),
        "occurred_at": AT,
    }
    values.update(overrides)
    return Statement(**values)


def test_a_passed_exam_certifies_from_its_own_moment_for_the_exams_validity() -> None:
    certification, outcome = certification_from(SMALL.certification_exams, said(), "tess@x.org")
    assert certification is not None
    assert (certification.role, certification.track) == (CertificationRole.TECHNICAL, "data")
    assert (certification.issued_at, certification.expires_at) == (AT, AT + timedelta(days=730))
    assert outcome == "certified: data technical"


@pytest.mark.parametrize(
    ("statement", "outcome"),
    [
        (said(FAILED, success=False), "recorded (failed: certifies nobody)"),
        (said(COMPLETED), "recorded (completed: certifies nobody)"),
        (said(activity="https://lms.example.org/m/1"), "recorded (not a certification exam)"),
        (said(success=False), "recorded (result.success false: certifies nobody)"),
    ],
)
def test_other_statements_certify_nobody(statement: Statement, outcome: str) -> None:
    assert certification_from(SMALL.certification_exams, statement, "t@x.org") == (None, outcome)


def test_a_pass_dated_too_far_ahead_is_kept_but_certifies_nobody() -> None:
    far = said(occurred_at=datetime(9999, 6, 1, tzinfo=UTC))
    certification, outcome = certification_from(SMALL.certification_exams, far, "t@x.org")
    assert certification is None
    assert outcome == "recorded (timestamp 9999-06-01T00:00:00+00:00 too far ahead to certify)"


def test_an_exam_with_a_pass_mark_needs_the_score() -> None:
    exams = (ExamRule(activity_id=EXAM, track="data", role="technical", min_scaled_score="0.7"),)
    assert certification_from(exams, said(), "t@x.org")[0] is not None
    low, why = certification_from(exams, said(scaled_score=Decimal("0.5")), "t@x.org")
    assert low is None
    assert "below the exam's pass mark 0.7" in why
    assert certification_from(exams, said(scaled_score=None), "t@x.org")[0] is None


def test_a_repeat_compares_equal_whatever_the_lrs_set_and_the_timestamps_zone() -> None:
    sent = {"id": "1", "verb": {"id": PASSED}, "timestamp": "2026-11-01T10:30:00+01:00"}
    again = {
        **sent,
        "timestamp": "2026-11-01T09:30:00Z",
        "stored": "2026-11-02T00:00:00Z",
        "authority": {"mbox": "mailto:lrs@x.org"},
        "version": "1.0.3",
    }
    assert comparable(sent) == comparable(again)
    assert comparable(sent) != comparable({**sent, "verb": {"id": FAILED}})


def test_a_repeat_compares_equal_whatever_xapi_says_to_ignore() -> None:
    """xAPI-Data 2.3.1: a verb's display, an activity's definition and a mailbox domain's case
    MUST be ignored; found in review: a retry after a course was renamed was a 409."""
    sent = {
        "id": "1",
        "actor": {"mbox": "mailto:ada@example.com"},
        "verb": {"id": PASSED, "display": {"en-US": "passed"}},
        "object": {"id": "https://lms.example/exam", "definition": {"name": {"en": "Exam"}}},
    }
    again = {
        **sent,
        "actor": {"mbox": "mailto:ada@Example.COM"},
        "verb": {"id": PASSED, "display": {"en-US": "passed it"}},
        "object": {"id": "https://lms.example/exam", "definition": {"name": {"en": "Exam 2"}}},
    }
    assert comparable(sent) == comparable(again)
    assert comparable(sent) != comparable({**sent, "actor": {"mbox": "mailto:Ada@example.com"}})
    assert comparable(sent) != comparable({**sent, "object": {"id": "https://lms.example/x"}})
    # A statement stored before keeps its text of the rule of its day: a repeat still matches.
    assert comparable_before_display_ignored(sent) != comparable(sent)


def person(email: str, joined: datetime, left: datetime | None, **more: Any) -> dict[str, Any]:
    return {"email": email, "lms_account": None, "joined_at": joined, "left_at": left, **more}


def test_a_statement_belongs_to_the_membership_of_its_moment_else_the_current_one() -> None:
    before = person("tess@example.org", AT - timedelta(days=100), AT + timedelta(days=1), n=1)
    now = person("tess@example.org", AT + timedelta(days=10), None, n=2)
    assert membership_for([before, now], said())["n"] == 1  # done while at the first partner
    late = said(occurred_at=AT + timedelta(days=5))  # between the two: the current one
    assert membership_for([before, now], late)["n"] == 2
    assert membership_for([before], late) is None  # after leaving, while nobody's
    by_account = said(actor_key="account:https://lms|t1")
    assert membership_for(
        [person("x@y.org", AT, None, lms_account="account:https://lms|t1")], by_account
    )
    assert membership_for([now], said(actor_key=mbox_key("other@example.org"))) is None


def test_accounts_never_share_a_key() -> None:
    assert account_key("https://lms.example.org/", "tess") == "account:https://lms.example.org|tess"
    assert account_key("https://a|b", "c") != account_key("https://a", "b|c")


def test_the_program_refuses_exams_on_unknown_tracks_or_listed_twice() -> None:
    assert len(SMALL.certification_exams) == 4  # a sales and a technical exam per competency
    exam = {"activity_id": EXAM, "track": "data", "role": "sales"}
    with pytest.raises(ValidationError, match="unknown competencies"):
        OnboardingConfig.model_validate({"exams": [{**exam, "track": "quantum"}]})
    with pytest.raises(ValidationError, match="listed twice"):
        OnboardingConfig.model_validate({"exams": [exam, exam]})
    for days in ([30, 30], [0]):
        with pytest.raises(ValidationError, match="distinct positive days"):
            OnboardingConfig.model_validate({"certification_reminder_days": days})


PATH = LearningPath(
    name="data-sales",
    role=PersonRole.SALES,
    partner_types=(PartnerType.GSI,),
    tiers=("silver", "gold"),
    modules=(
        Module(activity_id="m1", title="one"),
        Module(activity_id="m2", title="two"),
        Module(activity_id="m3", title="three"),
    ),
    leads_to=EXAM,
)


def done(activity: str, days: int, *, passed: bool = False) -> Completion:
    return Completion(activity, AT + timedelta(days=days), passed)


def test_modules_count_in_order_and_one_taken_too_early_is_taken_again() -> None:
    start = progress(PATH, [])
    assert [m.state for m in start.modules] == [
        ModuleState.NEXT,
        ModuleState.LOCKED,
        ModuleState.LOCKED,
    ]
    early = progress(PATH, [done("m2", 1), done("m1", 2)])
    assert [m.state for m in early.modules] == [
        ModuleState.DONE,
        ModuleState.OUT_OF_ORDER,
        ModuleState.LOCKED,
    ]
    assert (early.done, early.complete) == (1, False)
    whole = progress(
        PATH,
        [done("m2", 1), done("m1", 2), done("m2", 3), done("m3", 3), done(EXAM, 4, passed=True)],
    )
    assert (whole.done, whole.complete) == (3, True)
    assert whole.modules[1].completed_at == AT + timedelta(days=3)
    assert whole.exam_passed_at == AT + timedelta(days=4)


def test_a_path_applies_to_its_role_partner_types_and_tiers() -> None:
    assert paths_for([PATH], PersonRole.SALES, "gsi", "silver") == [PATH]
    assert paths_for([PATH], PersonRole.TECHNICAL, "gsi", "silver") == []
    assert paths_for([PATH], PersonRole.SALES, "msp", "silver") == []
    assert paths_for([PATH], PersonRole.SALES, "gsi", "registered") == []
    names = {p.name for p in SMALL.paths}
    assert names == {
        "data-sales",
        "data-technical",
        "ai-sales",
        "ai-technical",
        "customer-adoption",
    }


def test_the_program_refuses_paths_to_unknown_exams_or_tiers() -> None:
    path = PATH.model_dump(mode="json")
    with pytest.raises(ValidationError, match="unknown exam"):
        OnboardingConfig.model_validate({"learning_paths": [{**path, "leads_to": "x:nothing"}]})
    with pytest.raises(ValidationError, match="unknown tiers"):
        OnboardingConfig.model_validate({"learning_paths": [{**path, "tiers": ["mithril"]}]})


RENEWAL = f"{EXAM_BASE}data/technical/renewal"


def test_the_renewal_module_renews_only_a_certification_still_valid() -> None:
    exams = SMALL.certification_exams
    first, _ = certification_from(exams, said(), "t@x.org")
    assert first is not None
    renewal = said(COMPLETED, RENEWAL, occurred_at=AT + timedelta(days=700))
    renewed, outcome = certification_from(exams, renewal, "t@x.org", [first])
    assert outcome == "renewed: data technical"
    assert renewed is not None
    assert renewed.expires_at == AT + timedelta(days=1430)
    too_late = said(PASSED, RENEWAL, occurred_at=AT + timedelta(days=731))
    assert certification_from(exams, too_late, "t@x.org", [first]) == (
        None,
        "recorded (renewal of data technical: no valid certification to renew; the exam is needed)",
    )
    assert certification_from(exams, renewal, "t@x.org", [])[0] is None


@pytest.mark.parametrize(
    ("days_left", "sent", "due"),
    [
        (90, [], None),  # no window reached
        (45, [], 60),
        (45, [60], None),  # sent already
        (20, [60], 30),
        (5, [], 7),  # a late run sends only the most urgent
        (5, [7], None),
        (0, [], None),  # expired: nothing to remind of
    ],
)
def test_a_reminder_is_due_once_per_window_reached(
    days_left: int, sent: list[int], due: int | None
) -> None:
    expires = AT + timedelta(days=days_left)
    assert reminder_due((60, 30, 7), expires, AT, sent) == due


def test_resources_are_visible_to_the_types_and_tiers_they_are_meant_for() -> None:
    assert visible([], [], "msp", "registered")
    assert visible(["gsi"], [], "gsi", "registered")
    assert not visible(["gsi"], [], "msp", "registered")
    assert not visible([], ["gold"], "gsi", "silver")
    check_engagement(ResourceKind.EARLY_ACCESS, Engagement.SANDBOX_SIGNUP)
    check_engagement(ResourceKind.PLAYBOOK, Engagement.DOWNLOAD)
    with pytest.raises(Unprocessable, match="sandbox sign-up is for early-access programmes"):
        check_engagement(ResourceKind.PLAYBOOK, Engagement.SANDBOX_SIGNUP)


def test_enablement_health_weighs_completion_certification_and_engagement() -> None:
    people = [
        PersonEnablement(
            has_path=True, completed_a_path=True, certified_now=True, days_to_first_certification=10
        ),
        PersonEnablement(
            has_path=True,
            completed_a_path=False,
            certified_now=False,
            days_to_first_certification=30,
        ),
        PersonEnablement(
            has_path=False,
            completed_a_path=False,
            certified_now=False,
            days_to_first_certification=None,
        ),
    ]
    kpis = enablement_kpis(people, engaged_people=5)  # more subjects than people: all engaged
    assert (kpis.completion_rate, kpis.certified_share, kpis.engaged_share) == (
        Decimal("0.5000"),
        Decimal("0.3333"),
        Decimal("1.0000"),
    )
    assert kpis.median_days_to_first_certification == Decimal("20.0")
    assert kpis.score == Decimal("58.3")  # 100 * (0.5 * 0.5 + 0.25 * 0.3333 + 0.25 * 1)
    empty = enablement_kpis([], engaged_people=0)
    assert (empty.score, empty.completion_rate, empty.reasons) == (
        Decimal("0.0"),
        None,
        ("no people registered yet",),
    )


def test_a_stored_statement_gives_its_score_back_as_json_numbers() -> None:
    """Found in review: the score came back as text ("scaled": "0.9"); xAPI specifies numbers.
    The comparison with a repeat still reads the text, as statements stored before do."""
    from services.onboarding.domain.enablement import scores_as_numbers
    from services.onboarding.enablement_schemas import StatementIn

    statement = StatementIn.model_validate(
        {
            "actor": {"mbox": "mailto:ada@x.example"},
            "verb": {"id": PASSED},
            "object": {"id": "https://lms.example/exam/data"},
            "result": {"score": {"scaled": 0.9, "raw": 85, "min": 0, "max": 100}},
        }
    )
    content = statement.content("3f8e9a52-4c1e-4c55-9c3a-8d4f0e7b2a11")
    assert scores_as_numbers(content)["result"]["score"] == {
        "scaled": 0.9,
        "raw": 85,
        "min": 0,
        "max": 100,
    }
    assert '"scaled":"0.9"' in comparable(content)


@pytest.mark.parametrize(
    ("score", "why"),
    [
        ({"min": 10, "max": 10}, "score.min must be less than score.max"),
        ({"raw": 101, "min": 0, "max": 100}, "score.raw must not be above score.max"),
        ({"raw": -1, "min": 0}, "score.raw must not be below score.min"),
    ],
)
def test_a_score_outside_its_own_range_is_refused(score: dict[str, Any], why: str) -> None:
    from pydantic import ValidationError

    from services.onboarding.enablement_schemas import ScoreIn

    with pytest.raises(ValidationError, match=why):
        ScoreIn.model_validate(score)
    assert ScoreIn.model_validate({"raw": 100, "min": 0, "max": 100}).raw == 100


@pytest.mark.parametrize(
    ("account", "why"),
    [
        ({"homePage": "https://[x", "name": "ada"}, "not an IRI: Invalid IPv6 URL"),
        (
            {"homePage": "https://lms.p1.example/" + "\u4e2d" * 1970, "name": "\u4e2d" * 200},
            "at most 1000 bytes once percent-encoded",
        ),
    ],
)
def test_an_account_the_people_index_could_not_hold_is_refused(
    account: dict[str, Any], why: str
) -> None:
    """Found in review: a home page with an invalid IPv6 host, and an account whose encoded key
    (about 19 kB) no btree row holds, each answered 500 when a partner admin named them."""
    from pydantic import ValidationError

    from services.onboarding.enablement_schemas import PersonIn

    with pytest.raises(ValidationError, match=re.escape(why)):
        PersonIn.model_validate(
            {"email": "ada@p1.example", "role": "sales", "lms_account": account}
        )
