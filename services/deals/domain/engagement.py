"""Rules of engagement per partner type: what a partner's type (onboarding's `partner_type`,
kept in deals' partner projection) means when it registers a deal.

- `mode`: `register` (the type registers deals and earns a protection window) or `refer` (it
  refers deals, through attribution's referral touchpoints, and never registers one: its
  registration is rejected, saying so). Referral and influencer partners refer.
- `protection_days`: the type's protection window (none: the policy's `protection_days`).
- `precedence`: in a partner conflict under `first_come`, a registration whose type ranks
  strictly above the holder's goes to review (a channel manager weighs them) instead of being
  rejected; equal or lower rank: the policy's `partner_conflict` as for every partner.
- `exclusive`: whether a holding registration of the type excludes other partners from the
  customer and product. A non-exclusive holder (an alliance partner's co-sell interest) is no
  conflict: the later registration is decided alongside it, and the reason says so.

A partner whose type is unknown (deals has not heard it yet) or not in the table gets the
rules every partner had before types meant anything: the policy's window, no precedence, an
exclusive hold.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from shared.events.partners import PartnerType


class EngagementMode(StrEnum):
    REGISTER = "register"
    REFER = "refer"


@dataclass(frozen=True)
class TypeRules:
    mode: EngagementMode = EngagementMode.REGISTER
    protection_days: int | None = None  # None: the policy's protection_days
    precedence: int = 1
    exclusive: bool = True


DEFAULT_TYPE_RULES: dict[str, TypeRules] = {
    PartnerType.GSI.value: TypeRules(precedence=3),
    PartnerType.ISV.value: TypeRules(precedence=2),
    PartnerType.MSP.value: TypeRules(precedence=2),
    PartnerType.VAR_RESELLER.value: TypeRules(protection_days=60, precedence=1),
    PartnerType.TECHNOLOGY_ALLIANCE.value: TypeRules(
        protection_days=180, precedence=2, exclusive=False
    ),
    PartnerType.REFERRAL_AFFILIATE.value: TypeRules(mode=EngagementMode.REFER, precedence=0),
    PartnerType.CONSULTANT_INFLUENCER.value: TypeRules(mode=EngagementMode.REFER, precedence=0),
}

UNTYPED = TypeRules()


class ConflictTreatment(StrEnum):
    POLICY = "policy"  # the policy's partner_conflict, as for every partner
    REVIEW = "review"  # the later registration outranks the holder: a manager decides
    ALONGSIDE = "alongside"  # the holder is not exclusive: no conflict


def type_rules(table: Mapping[str, TypeRules], partner_type: str | None) -> TypeRules:
    if partner_type is None:
        return UNTYPED
    return table.get(partner_type, UNTYPED)


def refer_only_refusal(table: Mapping[str, TypeRules], partner_type: str | None) -> str | None:
    """Why a partner of this type may not register at all (None: it may)."""
    if type_rules(table, partner_type).mode is EngagementMode.REFER:
        return (
            f"{partner_type} partners refer deals rather than register them (rules of engagement"
            " by partner type): report the referral as a touchpoint to attribution instead"
        )
    return None


def protection_days(table: Mapping[str, TypeRules], partner_type: str | None, default: int) -> int:
    days = type_rules(table, partner_type).protection_days
    return default if days is None else days


def conflict_treatment(
    table: Mapping[str, TypeRules], requester_type: str | None, holder_type: str | None
) -> tuple[ConflictTreatment, str]:
    """How a registration of `requester_type` meets another partner's holding registration of
    `holder_type`, and why (empty when nothing about types changes it). A type the table does
    not list counts as unknown."""
    requester_type = requester_type if requester_type in table else None
    holder_type = holder_type if holder_type in table else None
    holder = type_rules(table, holder_type)
    if holder_type is not None and not holder.exclusive:
        return ConflictTreatment.ALONGSIDE, f"{holder_type} registrations are not exclusive"
    requester = type_rules(table, requester_type)
    if (
        requester_type is not None
        and holder_type is not None
        and requester.precedence > holder.precedence
    ):
        return ConflictTreatment.REVIEW, (
            f"precedence: {requester_type} ({requester.precedence}) over {holder_type}"
            f" ({holder.precedence})"
        )
    return ConflictTreatment.POLICY, ""


MAX_DAYS = 3660  # a protection window (the policy's or a type's): ten years at most


def type_rules_problem(table: Mapping[str, TypeRules]) -> str | None:
    """What makes a per-type table unusable (None: nothing)."""
    known = {t.value for t in PartnerType}
    unknown = sorted(set(table) - known)
    if unknown:
        return (
            f"partner_types names unknown partner type(s) {', '.join(unknown)}"
            f" (known: {', '.join(sorted(known))})"
        )
    for name, rules in sorted(table.items()):
        if rules.protection_days is not None and rules.protection_days <= 0:
            return f"partner_types.{name}.protection_days must be positive"
        if rules.protection_days is not None and rules.protection_days > MAX_DAYS:
            return f"partner_types.{name}.protection_days must be at most {MAX_DAYS}"
    return None
