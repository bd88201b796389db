"""Enablement rules (pure): which learning-system statements certify whom, and how an xAPI
statement is compared with the one already stored under its id.

The learning system reports what people did as xAPI statements (actor, verb, object, result,
timestamp). A statement whose verb is `passed` on an activity the program lists as a
certification exam certifies its actor on that exam's track and role, issued at the moment the
statement says it happened (not when it arrived: statements may come late or out of order) and
expiring `valid_days` later. Every other statement is kept as a record of training (progress
on learning paths) and certifies nobody.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from services.onboarding.domain.programme import ExamRule
from services.onboarding.domain.programme import PersonRole as PersonRole
from services.onboarding.domain.tiers import Certification

VERBS = "http://adlnet.gov/expapi/verbs/"
PASSED = VERBS + "passed"
FAILED = VERBS + "failed"
COMPLETED = VERBS + "completed"
VOIDED = VERBS + "voided"
# The xAPI version this service speaks (X-Experience-API-Version on every answer); requests may
# name any 1.0.x patch level.
XAPI_VERSION = "1.0.3"
# Properties the LRS sets or that may legitimately differ between two sendings of one statement
# (xAPI statement comparison): left out when a repeat is compared with what is stored.
NOT_COMPARED = frozenset({"stored", "authority", "version"})


def actor_keys(email: str | None, account: tuple[str, str] | None) -> list[str]:
    """The keys a person is known by in statements: their mailbox and their learning-system
    account (home page and name), whichever they have."""
    keys = []
    if email is not None:
        keys.append(mbox_key(email))
    if account is not None:
        keys.append(account_key(*account))
    return keys


def mbox_key(email: str) -> str:
    return "mbox:" + email.lower()


def account_key(home_page: str, name: str) -> str:
    """Both parts percent-encoded, so the separator cannot occur in either: no two accounts
    share a key."""
    return f"account:{quote(home_page.rstrip('/'), safe=':/')}|{quote(name, safe='')}"


@dataclass(frozen=True)
class Statement:
    """What an xAPI statement says, as far as enablement is concerned."""

    statement_id: str
    actor_key: str
    verb: str
    activity: str | None  # the object's id when the object is an activity
    success: bool | None
    scaled_score: Decimal | None
    occurred_at: datetime  # its timestamp (the moment it was stored, when it has none)
    voids: str | None = None  # a voiding statement: the id of the statement it voids


def exam_of(exams: tuple[ExamRule, ...], activity: str | None) -> ExamRule | None:
    return next((e for e in exams if e.activity_id == activity), None)


def renewed_by(exams: tuple[ExamRule, ...], activity: str | None) -> ExamRule | None:
    return next((e for e in exams if activity and e.renewal_activity_id == activity), None)


def certification_from(
    exams: tuple[ExamRule, ...],
    statement: Statement,
    person: str,
    held: Iterable[Certification] = (),
) -> tuple[Certification | None, str]:
    """The certification a statement earns `person` (their lower-cased e-mail), if any, and
    why (the outcome recorded with the statement). `held`: their certifications so far (a
    renewal module renews only one still valid at the statement's moment)."""
    renewal = renewed_by(exams, statement.activity)
    exam = renewal or exam_of(exams, statement.activity)
    if exam is None:
        return None, "recorded (not a certification exam)"
    verbs = (PASSED, COMPLETED) if renewal is not None else (PASSED,)
    if statement.verb not in verbs:
        return None, f"recorded ({statement.verb.rsplit('/', 1)[-1]}: certifies nobody)"
    if statement.success is False:
        return None, "recorded (result.success false: certifies nobody)"
    if exam.min_scaled_score is not None and (
        statement.scaled_score is None or statement.scaled_score < exam.min_scaled_score
    ):
        return None, (
            f"recorded (scaled score {statement.scaled_score} below the exam's pass mark "
            f"{exam.min_scaled_score})"
        )
    if renewal is not None and not any(
        c.track == exam.track and c.role is exam.role and c.valid_at(statement.occurred_at)
        for c in held
    ):
        return None, (
            f"recorded (renewal of {exam.track} {exam.role.value}: no valid certification to "
            "renew; the exam is needed)"
        )
    issued = statement.occurred_at
    try:
        expires = issued + timedelta(days=exam.valid_days)
    except OverflowError:
        return None, f"recorded (timestamp {issued.isoformat()} too far ahead to certify)"
    certification = Certification(person, exam.role, exam.track, issued, expires)
    verb = "renewed" if renewal is not None else "certified"
    return certification, f"{verb}: {exam.track} {exam.role.value}"


def reminder_due(
    days_before: Iterable[int], expires_at: datetime, as_of: datetime, sent: Iterable[int]
) -> int | None:
    """The reminder to send now for a certification expiring at `expires_at`: the most urgent
    window reached (`expires_at - days <= as_of`) if not sent yet; none once it has expired.
    Earlier windows a late run skipped are not sent any more (they would say too much time
    is left)."""
    if as_of >= expires_at:
        return None
    reached = [d for d in days_before if expires_at - timedelta(days=d) <= as_of]
    if not reached:
        return None
    urgent = min(reached)
    return None if urgent in set(sent) else urgent


def lock_keys(statement: Statement) -> list[str]:
    """What receiving a statement serialises on: its actor (against the person's
    registration) and the statement it is or voids (a statement and its voiding never pass
    each other)."""
    return [statement.actor_key, "statement:" + (statement.voids or statement.statement_id)]


def scores_as_numbers(content: dict[str, Any]) -> dict[str, Any]:
    """The statement with its result's score as the JSON numbers xAPI specifies: the model
    writes its Decimals as text ("0.9"), as the comparison with a repeat still reads them
    (statements stored before compare so), but a learning system reading it back wants 0.9."""
    result = content.get("result")
    score = result.get("score") if isinstance(result, dict) else None
    if not isinstance(score, dict):
        return content
    numbers = {key: _number(value) for key, value in score.items()}
    return {**content, "result": {**result, "score": numbers}}  # type: ignore[dict-item]


def _number(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    exact = Decimal(value)
    return int(exact) if exact == exact.to_integral_value() else float(exact)


def comparable(content: dict[str, Any]) -> str:
    """A statement as compared with a repeat of its id: without what the LRS sets, its
    timestamp as a UTC instant, keys sorted; and without what xAPI says
    a comparison MUST ignore (xAPI-Data 2.3.1: a verb's display, an activity's definition,
    the case of a mailbox's domain): a learning system's retry after renaming a course was
    409 and, the request being all or nothing, the passes sent with it refused (found in
    review)."""
    kept = {k: v for k, v in content.items() if k not in NOT_COMPARED}
    if isinstance(kept.get("verb"), dict):
        kept["verb"] = {k: v for k, v in kept["verb"].items() if k != "display"}
    if isinstance(kept.get("object"), dict):
        kept["object"] = {k: v for k, v in kept["object"].items() if k != "definition"}
    actor = kept.get("actor")
    if isinstance(actor, dict) and isinstance(actor.get("mbox"), str):
        local, at, domain = actor["mbox"].rpartition("@")
        kept["actor"] = {**actor, "mbox": f"{local}{at}{domain.lower()}" if at else actor["mbox"]}
    return comparable_before_display_ignored(kept)


def comparable_before_display_ignored(content: dict[str, Any]) -> str:
    """The comparison's text as statements stored before session 37 keep it (their verb's
    display and activity's definition in it): a repeat of one of them matches either form."""
    kept = {k: v for k, v in content.items() if k not in NOT_COMPARED}
    if isinstance(kept.get("timestamp"), str):
        moment = datetime.fromisoformat(kept["timestamp"].replace("Z", "+00:00"))
        kept["timestamp"] = moment.astimezone(UTC).isoformat()
    return json.dumps(kept, sort_keys=True, separators=(",", ":"))


def membership_for(people: Sequence[Any], statement: Statement) -> Any:
    """The membership a statement belongs to, among those known by its actor key: the one whose
    time at the partner covers the statement's moment, else the person's current one (a
    learning system may report training done before the person was registered). A statement
    made after the person left, while they belong to no partner, belongs to nobody yet (None).

    `people`: membership rows (email, lms_account, joined_at, left_at)."""
    mine = [
        p
        for p in people
        if statement.actor_key in (mbox_key(p["email"]), p["lms_account"])
        and (p["left_at"] is None or statement.occurred_at < p["left_at"])
    ]
    covering = [p for p in mine if p["joined_at"] <= statement.occurred_at]
    if covering:
        return max(covering, key=lambda p: p["joined_at"])
    return next((p for p in mine if p["left_at"] is None), None)
