"""The resource library and enablement KPIs (pure).

A resource is visible to a partner whose type and tier it is meant for (an empty list: all).
Engagement (downloads, sandbox sign-ups for early-access programmes) and learning make one
enablement health signal per partner, with its reasons:

score = 100 * (0.5 * completion + 0.25 * certified + 0.25 * engaged)

- completion: the training completion rate, people who completed at least one of their
  learning paths over the current people who have one;
- certified: current people holding a valid certification over current people;
- engaged: distinct people who engaged with resources in the window over current people
  (capped at 1; engagement is recorded by the person's token, not their registration).

Time to first certification (days from joining to the person's first certification, 0 when
they were certified before being registered) is reported as the median, a programme KPI.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum
from statistics import median

from shared.errors import Unprocessable


class ResourceKind(StrEnum):
    COLLATERAL = "collateral"
    PLAYBOOK = "playbook"
    TECHNICAL_GUIDE = "technical_guide"
    EARLY_ACCESS = "early_access"  # an SDK/API early-access programme: partners sign up


class Engagement(StrEnum):
    DOWNLOAD = "download"
    SANDBOX_SIGNUP = "sandbox_signup"


def visible(
    partner_types: Collection[str], tiers: Collection[str], partner_type: str, tier: str
) -> bool:
    return (not partner_types or partner_type in partner_types) and (not tiers or tier in tiers)


def check_engagement(kind: ResourceKind, action: Engagement) -> None:
    """Sandbox sign-ups are for early-access programmes only."""
    if action is Engagement.SANDBOX_SIGNUP and kind is not ResourceKind.EARLY_ACCESS:
        raise Unprocessable(
            f"a sandbox sign-up is for early-access programmes; this resource is a {kind.value}"
        )


@dataclass(frozen=True)
class PersonEnablement:
    has_path: bool
    completed_a_path: bool
    certified_now: bool
    days_to_first_certification: int | None  # None: never certified


@dataclass(frozen=True)
class EnablementKpis:
    people: int
    completion_rate: Decimal | None  # None: nobody has a path
    certified_share: Decimal | None  # None: no people
    engaged_share: Decimal | None
    median_days_to_first_certification: Decimal | None
    score: Decimal
    reasons: tuple[str, ...]


def _q(value: Decimal, places: str = "0.0001") -> Decimal:
    return value.quantize(Decimal(places), ROUND_HALF_EVEN)


def _share(part: int, whole: int) -> Decimal | None:
    return _q(Decimal(part) / whole) if whole else None


def enablement_kpis(people: Collection[PersonEnablement], engaged_people: int) -> EnablementKpis:
    """`engaged_people`: distinct people (token subjects) who engaged with resources in the
    window; more than the registered people counts as all of them."""
    with_path = [p for p in people if p.has_path]
    completed = sum(1 for p in with_path if p.completed_a_path)
    certified = sum(1 for p in people if p.certified_now)
    engaged = min(engaged_people, len(people))
    days = [
        p.days_to_first_certification for p in people if p.days_to_first_certification is not None
    ]
    completion = _share(completed, len(with_path))
    certified_share = _share(certified, len(people))
    engaged_share = _share(engaged, len(people))
    score = 100 * (
        Decimal("0.5") * (completion or 0)
        + Decimal("0.25") * (certified_share or 0)
        + Decimal("0.25") * (engaged_share or 0)
    )
    reasons = (
        f"training completion {completed}/{len(with_path)} people with a learning path",
        f"certified now {certified}/{len(people)} people",
        f"engaged with resources {engaged}/{len(people)} people",
    )
    return EnablementKpis(
        people=len(people),
        completion_rate=completion,
        certified_share=certified_share,
        engaged_share=engaged_share,
        median_days_to_first_certification=_q(Decimal(median(days)), "0.1") if days else None,
        score=_q(score, "0.1"),
        reasons=reasons if people else ("no people registered yet",),
    )
