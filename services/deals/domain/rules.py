"""Rules of engagement: a versioned, configurable policy and the pure conflict check.

No I/O: the service layer loads the candidates (registrations and CRM opportunities on the same
customer) and the partner's projected state, and this module decides.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import TypeAdapter, ValidationError

from services.deals.domain.customers import name_similarity, normalise_domain
from shared.events.partners import PartnerStatus
from shared.events.registrations import ConflictInfo, RegistrationStatus


class PartnerConflictPolicy(StrEnum):
    FIRST_COME = "first_come"  # the earlier registration wins; the later one is rejected
    ESCALATE = "escalate"  # the later one goes to manual review


@dataclass(frozen=True)
class RulesOfEngagement:
    version: str = "2026-11-roe-1"
    protection_days: int = 90
    extension_days: int = 30
    max_extensions: int = 1
    expiry_warning_days: int = 7  # partners hear this long before their protection ends
    # Registrations above the limit for the partner's tier go to manual review.
    auto_approve_limits: dict[str, Decimal] = field(
        default_factory=lambda: {
            "registered": Decimal("25000"),
            "bronze": Decimal("50000"),
            "silver": Decimal("150000"),
            "gold": Decimal("500000"),
            "platinum": Decimal("2000000"),
        }
    )
    name_similarity_threshold: float = 0.88
    partner_conflict: PartnerConflictPolicy = PartnerConflictPolicy.FIRST_COME
    direct_conflict_reviews: bool = True  # False: direct-sales conflicts reject outright
    overlap_hints: bool = True
    enforce_product_authorisation: bool = True
    enforce_region_authorisation: bool = True
    # A partner in its requalification grace period keeps registering until the deadline.
    statuses_allowed_to_register: frozenset[PartnerStatus] = frozenset(
        {PartnerStatus.ACTIVE, PartnerStatus.GRACE}
    )


class InvalidPolicy(ValueError):
    """A rules-of-engagement configuration that cannot be used, with the exact reason."""


def rules_from_mapping(data: Mapping[str, Any]) -> RulesOfEngagement:
    """Build a policy from configuration (e.g. a JSON file); unset fields keep their defaults.

    Unknown keys are refused: a misspelt setting must not silently fall back to a default.
    """
    known = {f.name for f in fields(RulesOfEngagement)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InvalidPolicy(f"unknown rules-of-engagement setting(s): {', '.join(unknown)}")
    if "version" not in data:
        raise InvalidPolicy("a configured policy must name its version")
    try:
        policy = TypeAdapter(RulesOfEngagement).validate_python(dict(data))
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            for e in error.errors(include_url=False)
        )
        raise InvalidPolicy(f"invalid rules of engagement: {problems}") from error
    if policy.protection_days <= 0 or policy.extension_days < 0 or policy.max_extensions < 0:
        raise InvalidPolicy("protection_days must be positive; extensions cannot be negative")
    if policy.expiry_warning_days < 0:
        raise InvalidPolicy("expiry_warning_days cannot be negative")
    if not 0 < policy.name_similarity_threshold <= 1:
        raise InvalidPolicy("name_similarity_threshold must be in (0, 1]")
    return policy


@dataclass(frozen=True)
class PartnerView:
    partner_id: str
    status: PartnerStatus
    tier: str
    regions: frozenset[str]
    products: frozenset[str]


@dataclass(frozen=True)
class RegistrationRequest:
    partner_id: str
    customer_name: str
    customer_domain: str | None
    customer_country: str | None
    products: frozenset[str]
    amount: Decimal
    currency: str
    submitted_at: datetime


@dataclass(frozen=True)
class ExistingRegistration:
    registration_id: str
    partner_id: str
    customer_name: str
    customer_domain: str | None
    products: frozenset[str]
    status: RegistrationStatus
    registered_at: datetime
    expires_at: datetime | None


@dataclass(frozen=True)
class OpenOpportunity:
    deal_key: str
    owner: str
    customer_name: str | None
    customer_domain: str | None
    created_at: datetime


@dataclass(frozen=True)
class Decision:
    status: RegistrationStatus
    reasons: tuple[str, ...]
    conflicts: tuple[ConflictInfo, ...]
    policy_version: str
    expires_at: datetime | None

    @property
    def direct_conflict(self) -> ConflictInfo | None:
        return next((c for c in self.conflicts if c.kind == "direct_sales"), None)


_HOLDING = (
    RegistrationStatus.APPROVED,
    RegistrationStatus.PENDING_REVIEW,
    RegistrationStatus.SUBMITTED,
)


def _same_customer(
    policy: RulesOfEngagement,
    name: str,
    domain: str | None,
    other_name: str | None,
    other_domain: str | None,
) -> tuple[str, float] | None:
    if domain and other_domain and normalise_domain(domain) == normalise_domain(other_domain):
        return "domain", 1.0
    similarity = name_similarity(name, other_name)
    if similarity >= policy.name_similarity_threshold:
        return "name", similarity
    return None


def check_registration(
    policy: RulesOfEngagement,
    request: RegistrationRequest,
    partner: PartnerView | None,
    registrations: list[ExistingRegistration],
    opportunities: list[OpenOpportunity],
) -> Decision:
    """Decide a registration. Rejections short-circuit; review triggers accumulate."""
    reasons: list[str] = []
    conflicts: list[ConflictInfo] = []

    def decide(status: RegistrationStatus) -> Decision:
        expires = (
            request.submitted_at + timedelta(days=policy.protection_days)
            if status in (RegistrationStatus.APPROVED, RegistrationStatus.PENDING_REVIEW)
            else None
        )
        return Decision(status, tuple(reasons), tuple(conflicts), policy.version, expires)

    if partner is None:
        reasons.append(
            f"partner {request.partner_id} is unknown to deals (no lifecycle event received)"
        )
        return decide(RegistrationStatus.REJECTED)
    if partner.status not in policy.statuses_allowed_to_register:
        allowed = ", ".join(sorted(s.value for s in policy.statuses_allowed_to_register))
        reasons.append(
            f"partner {partner.partner_id} is {partner.status.value}; partners that may register: {allowed}"
        )
        return decide(RegistrationStatus.REJECTED)
    unauthorised = sorted(request.products - partner.products)
    if policy.enforce_product_authorisation and unauthorised:
        reasons.append(f"partner is not authorised for product(s) {', '.join(unauthorised)}")
        return decide(RegistrationStatus.REJECTED)
    country = (request.customer_country or "").upper()
    if (
        policy.enforce_region_authorisation
        and country
        and partner.regions
        and country not in partner.regions
    ):
        reasons.append(f"partner is not authorised for region {country}")
        return decide(RegistrationStatus.REJECTED)

    review = False
    window_start = request.submitted_at - timedelta(days=policy.protection_days)
    for other in sorted(registrations, key=lambda r: (r.registered_at, r.registration_id)):
        if other.partner_id == request.partner_id or other.status not in _HOLDING:
            continue
        if other.registered_at < window_start or (
            other.expires_at and other.expires_at <= request.submitted_at
        ):
            continue
        if other.products and request.products and not (other.products & request.products):
            continue  # different products on the same customer do not conflict
        match = _same_customer(
            policy,
            request.customer_name,
            request.customer_domain,
            other.customer_name,
            other.customer_domain,
        )
        if match is None:
            continue
        conflicts.append(
            ConflictInfo(
                kind="partner",
                reference=other.registration_id,
                party=other.partner_id,
                matched_on=match[0],
                similarity=match[1],
                registered_at=other.registered_at,
            )
        )
        evidence = f"registration {other.registration_id} by {other.partner_id} at {other.registered_at.isoformat()}"
        if policy.partner_conflict is PartnerConflictPolicy.FIRST_COME:
            reasons.append(
                f"customer already registered inside the protection window ({evidence}, matched on {match[0]})"
            )
            return decide(RegistrationStatus.REJECTED)
        reasons.append(
            f"possible partner conflict with {evidence}, matched on {match[0]}: escalated for review"
        )
        review = True

    for opportunity in opportunities:
        if opportunity.created_at >= request.submitted_at:
            continue
        match = _same_customer(
            policy,
            request.customer_name,
            request.customer_domain,
            opportunity.customer_name,
            opportunity.customer_domain,
        )
        if match is None:
            continue
        conflicts.append(
            ConflictInfo(
                kind="direct_sales",
                reference=opportunity.deal_key,
                party=opportunity.owner,
                matched_on=match[0],
                similarity=match[1],
                registered_at=opportunity.created_at,
            )
        )
        text = (
            f"open direct opportunity {opportunity.deal_key} owned by {opportunity.owner}"
            f" since {opportunity.created_at.isoformat()}"
        )
        if not policy.direct_conflict_reviews:
            reasons.append(f"direct-sales conflict: {text}")
            return decide(RegistrationStatus.REJECTED)
        reasons.append(f"direct-sales conflict: {text}: escalated for review")
        review = True

    limit = policy.auto_approve_limits.get(partner.tier)
    if limit is None:
        reasons.append(f"no auto-approval limit for tier {partner.tier!r}: manual review")
        review = True
    elif request.amount > limit:
        reasons.append(
            f"amount {request.amount} {request.currency} exceeds the {partner.tier} auto-approval limit {limit}"
        )
        review = True

    if review:
        return decide(RegistrationStatus.PENDING_REVIEW)
    reasons.append(
        "no conflicts, partner active and authorised, amount within the auto-approval limit"
    )
    return decide(RegistrationStatus.APPROVED)


def extend(
    policy: RulesOfEngagement,
    expires_at: datetime,
    extensions_used: int,
    status: RegistrationStatus,
) -> tuple[datetime | None, str]:
    """A protection-window extension under policy: the new expiry, or None and why not."""
    if status is not RegistrationStatus.APPROVED:
        return None, f"only approved registrations can be extended (this one is {status.value})"
    if extensions_used >= policy.max_extensions:
        return None, f"the policy allows {policy.max_extensions} extension(s) and none are left"
    return expires_at + timedelta(
        days=policy.extension_days
    ), f"extended by {policy.extension_days} days"
