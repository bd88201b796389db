"""Rules of engagement: a versioned, configurable policy and the pure conflict check.

No I/O: the service layer loads the candidates (registrations and CRM opportunities on the same
customer) and the partner's projected state, and this module decides.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Any, Protocol

from pydantic import Field, TypeAdapter, ValidationError

from services.deals.domain import bounds
from services.deals.domain.customers import Customer
from services.deals.domain.engagement import (
    DEFAULT_TYPE_RULES,
    ConflictTreatment,
    TypeRules,
    conflict_treatment,
    protection_days,
    refer_only_refusal,
    type_rules_problem,
)
from services.deals.domain.sla import OverdueOutcome
from shared.events.crm import CrmSource
from shared.events.partners import PartnerStatus
from shared.events.registrations import ConflictInfo, RegistrationStatus


class MissingCountryPolicy(StrEnum):
    """A registration without a country for a partner authorised for some regions only."""

    REVIEW = "review"  # a channel manager checks the region
    REFUSE = "refuse"  # rejected: the partner must name the country


class PartnerConflictPolicy(StrEnum):
    FIRST_COME = "first_come"  # the earlier registration wins; the later one is rejected
    ESCALATE = "escalate"  # the later one goes to manual review


@dataclass(frozen=True)
class RulesOfEngagement:
    version: Annotated[str, Field(pattern=bounds.VERSION_PATTERN)] = "2026-11-roe-1"
    protection_days: bounds.Days = 90
    extension_days: bounds.Days = 30
    max_extensions: Annotated[int, Field(le=bounds.MAX_EXTENSIONS)] = 1
    # After its registration expires, a partner waits this long to register the customer again.
    reregistration_cooldown_days: bounds.CooldownDays = 30  # domain/cooldown.py; 0: none
    expiry_warning_days: bounds.Days = 7  # partners hear this long before their protection ends
    # Registrations above the limit for the partner's tier go to manual review.
    auto_approve_limits: dict[str, bounds.Limit] = field(
        default_factory=lambda: {
            "registered": Decimal("25000"),
            "bronze": Decimal("50000"),
            "silver": Decimal("150000"),
            "gold": Decimal("500000"),
            "platinum": Decimal("2000000"),
        }
    )
    name_similarity_threshold: float = 0.88
    # A CRM link whose amount differs from the declared one by more than this share of the
    # CRM's amount (or in another currency) goes to review instead of being trusted.
    link_amount_tolerance: Annotated[Decimal, Field(ge=0, le=1)] = Decimal("0.05")
    partner_conflict: PartnerConflictPolicy = PartnerConflictPolicy.FIRST_COME
    direct_conflict_reviews: bool = True  # False: direct-sales conflicts reject outright
    overlap_hints: bool = True
    enforce_product_authorisation: bool = True
    enforce_region_authorisation: bool = True
    # Region rules hold when the country is left out: never silently through.
    missing_country: MissingCountryPolicy = MissingCountryPolicy.REVIEW
    # A partner in its requalification grace period keeps registering until the deadline.
    statuses_allowed_to_register: frozenset[PartnerStatus] = frozenset(
        {PartnerStatus.ACTIVE, PartnerStatus.GRACE}
    )
    # Review deadlines in business days per situation (services/deals/domain/sla.py).
    review_days: dict[str, Annotated[int, Field(le=bounds.MAX_BUSINESS_DAYS)]] = field(
        default_factory=lambda: {"partner_conflict": 2, "direct_sales": 3, "other": 3}
    )
    business_weekdays: frozenset[int] = frozenset({1, 2, 3, 4, 5})  # ISO: Monday is 1
    holidays: frozenset[date] = frozenset()
    review_reminder_hours: bounds.Hours = 24  # reviewers are reminded this long before the deadline
    review_overdue_outcome: OverdueOutcome = OverdueOutcome.STAY
    review_overdue_grace_hours: bounds.Hours = 0  # after the deadline, before the outcome applies
    review_auto_approve_limit: bounds.Limit = Decimal("25000")  # for approve_under_limit
    # Hyperscaler referrals (by CRM source) must be accepted within these hours of referral.
    hyperscaler_acceptance_hours: dict[str, Annotated[int, Field(le=bounds.MAX_HOURS)]] = field(
        default_factory=lambda: {CrmSource.AWS_ACE.value: 72, CrmSource.MICROSOFT.value: 48}
    )
    # What a partner's type means here: refer only, its window, precedence, exclusivity
    # (services/deals/domain/engagement.py); a type not listed is treated as an unknown one.
    partner_types: dict[str, TypeRules] = field(default_factory=lambda: dict(DEFAULT_TYPE_RULES))


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
    if any(days <= 0 for days in policy.review_days.values()):
        raise InvalidPolicy("review_days must be positive")
    if not policy.business_weekdays or not policy.business_weekdays <= set(range(1, 8)):
        raise InvalidPolicy("business_weekdays must name ISO weekdays 1 (Monday) to 7")
    if policy.review_reminder_hours < 0 or policy.review_overdue_grace_hours < 0:
        raise InvalidPolicy(
            "review_reminder_hours and review_overdue_grace_hours cannot be negative"
        )
    if any(hours <= 0 for hours in policy.hyperscaler_acceptance_hours.values()):
        raise InvalidPolicy("hyperscaler_acceptance_hours must be positive")
    sources = {s.value for s in CrmSource}
    unknown_sources = sorted(set(policy.hyperscaler_acceptance_hours) - sources)
    if unknown_sources:
        raise InvalidPolicy(
            f"hyperscaler_acceptance_hours names unknown CRM source(s) {', '.join(unknown_sources)}"
            f" (known: {', '.join(sorted(sources))})"
        )
    problem = type_rules_problem(policy.partner_types)
    if problem is not None:
        raise InvalidPolicy(problem)
    return policy


class StoredFields(Protocol):
    """A stored record read by field name (a database row, a decoded JSON object)."""

    def __getitem__(self, key: str, /) -> Any: ...

    def get(self, key: str, /) -> Any: ...


@dataclass(frozen=True)
class PartnerView:
    partner_id: str
    status: PartnerStatus
    tier: str
    regions: frozenset[str]
    products: frozenset[str]
    partner_type: str | None = None  # None: deals has not heard it (rules for any partner)

    @classmethod
    def of(cls, partner: StoredFields) -> PartnerView:
        """From a stored partner: a `partners` row, or the snapshot a decision kept of it."""
        return cls(
            partner["partner_id"],
            PartnerStatus(partner["status"]),
            partner["tier"],
            frozenset(partner["regions"]),
            frozenset(partner["products"]),
            # A snapshot kept before deals heard partner types has no such field.
            partner.get("partner_type"),
        )


@dataclass(frozen=True)
class RegistrationRequest:
    """A registration as the partner asked for it (kept as the decision's inputs), with its
    customer parsed once, here, into the value every rule and lookup uses."""

    partner_id: str
    customer_name: str
    customer_domain: str | None
    customer_country: str | None
    products: frozenset[str]
    amount: Decimal
    currency: str
    submitted_at: datetime
    customer: Customer = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        customer = Customer.parse(self.customer_name, self.customer_domain, self.customer_country)
        object.__setattr__(self, "customer", customer)

    def as_asked(self) -> dict[str, Any]:
        """The request as the partner gave it, for the stored decision inputs."""
        return {
            "partner_id": self.partner_id,
            "customer_name": self.customer_name,
            "customer_domain": self.customer_domain,
            "customer_country": self.customer_country,
            "products": sorted(self.products),
            "amount": self.amount,
            "currency": self.currency,
            "submitted_at": self.submitted_at,
        }


class _NamesACustomer:
    """A stored candidate for a conflict: its customer, parsed (by name and domain) when a
    rule first compares it."""

    customer_name: str | None
    customer_domain: str | None

    @cached_property
    def customer(self) -> Customer:
        return Customer.parse(self.customer_name, self.customer_domain)


@dataclass(frozen=True)
class ExistingRegistration(_NamesACustomer):
    registration_id: str
    partner_id: str
    customer_name: str
    customer_domain: str | None
    products: frozenset[str]
    status: RegistrationStatus
    registered_at: datetime
    expires_at: datetime | None


@dataclass(frozen=True)
class OpenOpportunity(_NamesACustomer):
    deal_key: str
    owner: str
    customer_name: str | None
    customer_domain: str | None
    created_at: datetime


@dataclass(frozen=True)
class Decision:
    """A decision with its full evidence (`reasons`, `conflicts`: for channel managers) and what
    the partner is told (`partner_reasons`: never another partner, its registration or a rep)."""

    status: RegistrationStatus
    reasons: tuple[str, ...]
    conflicts: tuple[ConflictInfo, ...]
    policy_version: str
    expires_at: datetime | None
    partner_reasons: tuple[str, ...] = ()

    @property
    def direct_conflict(self) -> ConflictInfo | None:
        return next((c for c in self.conflicts if c.kind == "direct_sales"), None)


# What a partner hears of a conflict: its kind, never who or what it is with.
PARTNER_CONFLICT = "conflict with another partner"
DIRECT_SALES = "direct sales"
CONFLICT_SUMMARIES = {"partner": PARTNER_CONFLICT, "direct_sales": DIRECT_SALES}

HOLDING = (
    RegistrationStatus.APPROVED,
    RegistrationStatus.PENDING_REVIEW,
    RegistrationStatus.SUBMITTED,
)


@dataclass
class _Findings:
    """What the check found so far: its reasons, the conflicts (with evidence) and whether
    something sends the registration to review."""

    reasons: list[str] = field(default_factory=list)
    partner_reasons: list[str] = field(default_factory=list)
    conflicts: list[ConflictInfo] = field(default_factory=list)
    review: bool = False

    def say(self, reason: str, to_partner: str | None = None) -> None:
        """Record a reason; `to_partner` is what the partner hears instead (default: the same)."""
        self.reasons.append(reason)
        self.partner_reasons.append(reason if to_partner is None else to_partner)

    def conflict(
        self,
        policy: RulesOfEngagement,
        request: RegistrationRequest,
        candidate: _NamesACustomer,
        *,
        kind: str,
        reference: str,
        party: str,
        since: datetime,
    ) -> ConflictInfo | None:
        """The conflict with `candidate` (kept with its evidence) when it is on the request's
        customer; None when it is another customer."""
        match = request.customer.matches(candidate.customer, policy.name_similarity_threshold)
        if match is None:
            return None
        conflict = ConflictInfo(
            kind=kind,
            reference=reference,
            party=party,
            matched_on=match[0],
            similarity=match[1],
            registered_at=since,
        )
        self.conflicts.append(conflict)
        return conflict


def check_registration(
    policy: RulesOfEngagement,
    request: RegistrationRequest,
    partner: PartnerView | None,
    registrations: list[ExistingRegistration],
    opportunities: list[OpenOpportunity],
    holder_types: Mapping[str, str | None] | None = None,
) -> Decision:
    """Decide a registration. Rejections short-circuit; review triggers accumulate.
    `holder_types`: the partner type of each other partner holding a candidate registration
    (missing: unknown)."""
    found = _Findings()
    own_type = partner.partner_type if partner is not None else None
    window = protection_days(policy.partner_types, own_type, policy.protection_days)

    def decide(status: RegistrationStatus) -> Decision:
        expires = (
            request.submitted_at + timedelta(days=window)
            if status in (RegistrationStatus.APPROVED, RegistrationStatus.PENDING_REVIEW)
            else None
        )
        return Decision(
            status,
            tuple(found.reasons),
            tuple(found.conflicts),
            policy.version,
            expires,
            tuple(found.partner_reasons),
        )

    refusal = partner_refusal(policy, request, partner)
    if refusal is not None:
        found.say(refusal)
        return decide(RegistrationStatus.REJECTED)
    assert partner is not None  # an unknown partner is refused above
    if _region_unknown(policy, request, partner):
        found.say(
            "customer_country is missing and the partner is authorised for"
            f" {', '.join(sorted(partner.regions))} only: manual review of the region"
        )
        found.review = True
    types = _Types(own_type, holder_types or {})
    if _partner_conflicts(policy, request, registrations, found, types):
        return decide(RegistrationStatus.REJECTED)
    if _direct_conflicts(policy, request, opportunities, found):
        return decide(RegistrationStatus.REJECTED)
    limit = policy.auto_approve_limits.get(partner.tier)
    if limit is None:
        found.say(f"no auto-approval limit for tier {partner.tier!r}: manual review")
        found.review = True
    elif request.amount > limit:
        found.say(
            f"amount {request.amount} {request.currency} exceeds the {partner.tier} auto-approval limit {limit}"
        )
        found.review = True

    if found.review:
        return decide(RegistrationStatus.PENDING_REVIEW)
    found.say("no conflicts, partner active and authorised, amount within the auto-approval limit")
    return decide(RegistrationStatus.APPROVED)


def partner_refusal(
    policy: RulesOfEngagement, request: RegistrationRequest, partner: PartnerView | None
) -> str | None:
    """Why this partner may not register this deal at all (None: it may); an approval after a
    review and an extension ask it again (found in review: a partner that lost a product meanwhile
    had its registration approved and extended)."""
    if partner is None:
        return f"partner {request.partner_id} is unknown to deals (no lifecycle event received)"
    if partner.status not in policy.statuses_allowed_to_register:
        allowed = ", ".join(sorted(s.value for s in policy.statuses_allowed_to_register))
        return f"partner {partner.partner_id} is {partner.status.value}; partners that may register: {allowed}"
    refers = refer_only_refusal(policy.partner_types, partner.partner_type)
    if refers is not None:
        return refers
    unauthorised = sorted(request.products - partner.products)
    if policy.enforce_product_authorisation and unauthorised:
        return f"partner is not authorised for product(s) {', '.join(unauthorised)}"
    country = request.customer.country
    if (
        policy.enforce_region_authorisation
        and country
        and partner.regions
        and country not in partner.regions
    ):
        return f"partner is not authorised for region {country}"
    if _region_unknown(policy, request, partner) and (
        policy.missing_country is MissingCountryPolicy.REFUSE
    ):
        return (
            "customer_country is required: the partner is authorised for"
            f" {', '.join(sorted(partner.regions))} only"
        )
    return None


def _region_unknown(
    policy: RulesOfEngagement, request: RegistrationRequest, partner: PartnerView
) -> bool:
    """No country given for a partner whose authorisation is regional: the rule cannot be
    checked, so it must not pass silently."""
    return bool(
        policy.enforce_region_authorisation and partner.regions and not request.customer.country
    )


@dataclass(frozen=True)
class _Types:
    """The requesting partner's type and the holders' (None or missing: unknown)."""

    own: str | None
    holders: Mapping[str, str | None]


def _partner_conflicts(
    policy: RulesOfEngagement,
    request: RegistrationRequest,
    registrations: list[ExistingRegistration],
    found: _Findings,
    types: _Types,
) -> bool:
    """Other partners' registrations holding the same customer and product inside the window.
    True when one rejects the request outright (first come, first served)."""
    window_start = request.submitted_at - timedelta(days=policy.protection_days)
    for other in sorted(registrations, key=lambda r: (r.registered_at, r.registration_id)):
        if other.partner_id == request.partner_id or other.status not in HOLDING:
            continue
        # A registration holds its customer until its protection ends: its stored expiry (an
        # extension moves it; a later policy does not shorten a window already granted), or,
        # without one, the policy's window from its submission.
        if other.expires_at is not None:
            if other.expires_at <= request.submitted_at:
                continue
        elif other.registered_at < window_start:
            continue
        if other.products and request.products and not (other.products & request.products):
            continue  # different products on the same customer do not conflict
        treatment, why = conflict_treatment(
            policy.partner_types, types.own, types.holders.get(other.partner_id)
        )
        if treatment is ConflictTreatment.ALONGSIDE:
            _alongside(policy, request, other, why, found)
            continue
        conflict = found.conflict(
            policy,
            request,
            other,
            kind="partner",
            reference=other.registration_id,
            party=other.partner_id,
            since=other.registered_at,
        )
        if conflict is None:
            continue
        evidence = (
            f"registration {other.registration_id} by {other.partner_id}"
            f" at {other.registered_at.isoformat()}, matched on {conflict.matched_on}"
        )
        if treatment is ConflictTreatment.REVIEW:
            found.say(
                f"possible partner conflict with {evidence}; {why}: escalated for review",
                f"possible {PARTNER_CONFLICT}: escalated for review",
            )
            found.review = True
            continue
        if _other_domains(request.customer, other.customer, conflict.matched_on):
            # Alike names on two domains (Deutsche Bank, Deutsche Bahn): a person tells.
            found.say(
                f"possible partner conflict with {evidence}, though the customers' domains "
                f"differ ({request.customer.domain}, {other.customer.domain}): escalated for "
                "review",
                f"possible {PARTNER_CONFLICT}: escalated for review",
            )
            found.review = True
            continue
        if policy.partner_conflict is PartnerConflictPolicy.FIRST_COME:
            found.say(
                f"customer already registered inside the protection window ({evidence})",
                f"{PARTNER_CONFLICT}: the customer is already registered inside the protection"
                " window (first come, first served)",
            )
            return True
        found.say(
            f"possible partner conflict with {evidence}: escalated for review",
            f"possible {PARTNER_CONFLICT}: escalated for review",
        )
        found.review = True
    return False


def conflicts_at_approval(
    policy: RulesOfEngagement,
    request: RegistrationRequest,
    at: datetime,
    registrations: list[ExistingRegistration],
    types: tuple[str | None, Mapping[str, str | None]],
    considered: Collection[str],
    held_until: datetime | None,
) -> tuple[ConflictInfo, ...]:
    """Other partners' registrations on the customer at `at`, when a review approves `request`,
    that came in after its window ended (`held_until`; None: it had none) and its decision did
    not weigh (`considered`: their ids). Found in review: a registration whose window ran out
    while it waited held nothing, another partner's registration was approved on the customer
    meanwhile, and the review's approval made two exclusive holders. One registered while it
    still held the customer met it in its own decision: the manager weighs the two.
    `types`: the requester's partner type and the holders' (as `check_registration` takes them)."""
    found = _Findings()
    unweighed = [
        r
        for r in registrations
        if r.registration_id not in considered
        and (held_until is None or r.registered_at >= held_until)
    ]
    moment = replace(request, submitted_at=at)
    _partner_conflicts(policy, moment, unweighed, found, _Types(*types))
    return tuple(found.conflicts)


def _other_domains(mine: Customer, theirs: Customer, matched_on: str) -> bool:
    """Two customers whose names are alike but whose registrable domains both given differ."""
    both = mine.domain is not None and theirs.domain is not None
    return matched_on == "name" and both and mine.domain != theirs.domain


def _alongside(
    policy: RulesOfEngagement,
    request: RegistrationRequest,
    other: ExistingRegistration,
    why: str,
    found: _Findings,
) -> None:
    """A non-exclusive holder on the same customer: said, not a conflict."""
    if request.customer.matches(other.customer, policy.name_similarity_threshold) is None:
        return
    found.say(
        f"alongside registration {other.registration_id} by {other.partner_id} ({why}):"
        " no conflict",
        "another partner's non-exclusive (co-sell) registration is on this customer: no conflict",
    )


def _direct_conflicts(
    policy: RulesOfEngagement,
    request: RegistrationRequest,
    opportunities: list[OpenOpportunity],
    found: _Findings,
) -> bool:
    """Open direct-sales opportunities on the same customer, created before the request. True
    when one rejects the request outright (policy: direct conflicts are not reviewed)."""
    for opportunity in opportunities:
        if opportunity.created_at >= request.submitted_at:
            continue
        conflict = found.conflict(
            policy,
            request,
            opportunity,
            kind="direct_sales",
            reference=opportunity.deal_key,
            party=opportunity.owner,
            since=opportunity.created_at,
        )
        if conflict is None:
            continue
        text = (
            f"open direct opportunity {opportunity.deal_key} owned by {opportunity.owner}"
            f" since {opportunity.created_at.isoformat()}"
        )
        told = f"{DIRECT_SALES}: the vendor's own sales team already works this customer"
        if not policy.direct_conflict_reviews:
            found.say(
                f"direct-sales conflict: {text}", f"{told}; direct conflicts are not reviewed"
            )
            return True
        found.say(
            f"direct-sales conflict: {text}: escalated for review", f"{told}: escalated for review"
        )
        found.review = True
    return False
