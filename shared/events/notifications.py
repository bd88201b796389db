"""Partner notifications (topic notifications.partner.v1, key: partner id).

Every service that has something to tell a partner (decisions, conflicts, credits, earnings,
tier changes) emits this one contract; partner apps subscribe to the topic and filter by key.

Versions 1 to 4 each name every kind of the one before and add their own (a consumer refuses
a value of `kind` its version does not name, so a new kind needed a new version). Their kinds
are listed once, newest version last (NotificationKindV4); each older version's enum is the
leading part of that list, built by `_kinds_through`, so a committed version cannot drift.

Version 5 ends that: its `kind` is an open string (KIND_PATTERN), so a new kind is a new member
of NotificationKindV5 and never a new version. The kinds known today are KNOWN_KINDS (documented
in the v5 schema's description and examples); a consumer shows a kind it does not know by its
subject and body. A kind an older version names still goes out in that version
(`shared.notify`), so older consumers keep working.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

from pydantic import Field

from shared.events.envelope import EventPayload, UtcDatetime, event_type


class NotificationKindV4(StrEnum):
    """Every v2 kind, and what v2 cannot name (a v2 consumer would refuse a new value of
    `kind`, so these travel as `notification.partner.v4` on the same topic)."""

    # v1 -- deals
    REGISTRATION_APPROVED = "registration_approved"
    REGISTRATION_REJECTED = "registration_rejected"
    CONFLICT = "conflict"
    PENDING_REVIEW = "pending_review"
    EXPIRING_SOON = "expiring_soon"
    EXPIRED = "expired"
    DIRECT_SALES_CONFLICT = "direct_sales_conflict"
    CO_SELL = "co_sell"
    OVERLAP_HINT = "overlap_hint"
    # v1 -- attribution
    CREDIT_ISSUED = "credit_issued"
    CREDIT_REVERSED = "credit_reversed"
    # v1 -- incentives
    EARNING = "earning"
    CLAWBACK = "clawback"
    MDF_CLAIM = "mdf_claim"
    # v1 -- onboarding
    PARTNER_STATUS = "partner_status"
    TIER_CHANGED = "tier_changed"
    REQUALIFICATION = "requalification"
    # v2 -- deals
    REGISTRATION_EXTENDED = "registration_extended"
    REGISTRATION_WON = "registration_won"
    REGISTRATION_LOST = "registration_lost"
    REVIEW_REMINDER = "review_reminder"  # to channel managers: a review's deadline nears
    REVIEW_ESCALATED = "review_escalated"  # a review's deadline passed
    # v3 -- onboarding
    CERTIFICATION_EXPIRING = "certification_expiring"  # to the partner, naming a person: renew
    PARTNER_MANAGER = "partner_manager"  # the partner's account manager assigned or changed
    # v4 -- programme
    SURVEY = "survey"  # a satisfaction survey the partner's people are asked to answer


def _kinds_through(name: str, last: NotificationKindV4, doc: str) -> type[StrEnum]:
    """The kinds of an older version: those of NotificationKindV4 up to and including `last`,
    in the same order (the order the committed contract lists them in)."""
    kinds = list(NotificationKindV4)
    older = StrEnum(  # type: ignore[misc]  # members from a list: mypy sees the alias below
        name, [(kind.name, kind.value) for kind in kinds[: kinds.index(last) + 1]], module=__name__
    )
    older.__doc__ = doc
    return older


if TYPE_CHECKING:
    # mypy cannot see the members of an enum built from a list; every older kind is also a
    # newest kind (same name, same value), and `notify` picks the version by value.
    NotificationKind = NotificationKindV4
    NotificationKindV2 = NotificationKindV4
    NotificationKindV3 = NotificationKindV4
else:
    NotificationKind = _kinds_through(
        "NotificationKind",
        NotificationKindV4.REQUALIFICATION,
        "What a notification is about, by the service that tells it.",
    )
    NotificationKindV2 = _kinds_through(
        "NotificationKindV2",
        NotificationKindV4.REVIEW_ESCALATED,
        """Every v1 kind, and the registration changes v1 cannot name (its consumers would refuse
    a new value of `kind`, so these travel as `notification.partner.v2` on the same topic).""",
    )
    NotificationKindV3 = _kinds_through(
        "NotificationKindV3",
        NotificationKindV4.PARTNER_MANAGER,
        """Every v2 kind, and what v2 cannot name (a v2 consumer would refuse a new value of
    `kind`, so these travel as `notification.partner.v3` on the same topic).""",
    )


class NotificationKindV5(StrEnum):
    """The kinds no enum version names: they travel as `notification.partner.v5`, whose `kind`
    is an open string. A new kind is a new member here (and nothing else in the contract)."""

    # incentives -- a campaign's MDF pre-approval decided, or expired with its rest released
    MDF_PREAPPROVAL_APPROVED = "mdf_preapproval_approved"
    MDF_PREAPPROVAL_REJECTED = "mdf_preapproval_rejected"
    MDF_PREAPPROVAL_EXPIRED = "mdf_preapproval_expired"


# The one list of the platform's notification kinds (what webhook subscriptions may name).
KNOWN_KINDS: tuple[str, ...] = (
    *(kind.value for kind in NotificationKindV4),
    *(kind.value for kind in NotificationKindV5),
)
KIND_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"


class _PartnerNotificationFields(EventPayload):
    """The fields every version carries; versions 1-4 name their own enum of kinds."""

    notification_id: str
    partner_id: str
    recipient: str
    kind: str
    subject: str
    body: str
    registration_id: str | None = None
    deal_key: str | None = None
    created_at: UtcDatetime
    ingested_at: UtcDatetime | None = Field(
        default=None, description="when the upstream change behind this message entered Pollinate"
    )


@event_type("notification.partner.v1")
class PartnerNotification(_PartnerNotificationFields):
    """A message for a partner app (key: partner id). `recipient` may be the partner or, for
    approvals and direct-sales conflicts, the direct account owner (addressed via the partner)."""

    kind: NotificationKind


@event_type("notification.partner.v2")
class PartnerNotificationV2(_PartnerNotificationFields):
    """`notification.partner.v1` with the kinds v1 cannot carry (NotificationKindV2). Emitted
    only for those kinds: a v1 consumer ignores the type, a v2 consumer reads both."""

    kind: NotificationKindV2


@event_type("notification.partner.v3")
class PartnerNotificationV3(_PartnerNotificationFields):
    """`notification.partner.v2` with the kinds v2 cannot carry (NotificationKindV3). Emitted
    only for those kinds: a v2 consumer ignores the type, a v3 consumer reads all three."""

    kind: NotificationKindV3


@event_type("notification.partner.v4")
class PartnerNotificationV4(_PartnerNotificationFields):
    """`notification.partner.v3` with the kinds v3 cannot carry (NotificationKindV4). Emitted
    only for those kinds: older consumers ignore the type, a v4 consumer reads all four."""

    kind: NotificationKindV4


OpenKind = Annotated[
    str,
    Field(
        pattern=KIND_PATTERN,
        description="What the notification is about: an open set of names (a consumer shows "
        "one it does not know by its subject and body). Known today: " + ", ".join(KNOWN_KINDS),
        examples=list(KNOWN_KINDS),
    ),
]


@event_type("notification.partner.v5")
class PartnerNotificationV5(_PartnerNotificationFields):
    """`notification.partner.v4` with an open `kind` (any name matching KIND_PATTERN), so a new
    kind never needs a new version. Emitted only for kinds v4 cannot carry: older consumers
    ignore the type, a v5 consumer reads all five."""

    kind: OpenKind


# What the notifications service files: any version (the same fields; each version's kinds
# are a superset of the one before).
AnyPartnerNotification = (
    PartnerNotification
    | PartnerNotificationV2
    | PartnerNotificationV3
    | PartnerNotificationV4
    | PartnerNotificationV5
)
AnyNotificationKind = (
    NotificationKind
    | NotificationKindV2
    | NotificationKindV3
    | NotificationKindV4
    | NotificationKindV5
)
