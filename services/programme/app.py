"""Composition root of the programme service: the consumers that turn the other services'
events into the programme's facts, and the KPI routes."""

from __future__ import annotations

from pathlib import Path

from services.programme import (
    api,
    book_api,
    campaign_api,
    campaign_handlers,
    handlers,
    jobs,
    profiles,
)
from services.programme.settings import ProgrammeSettings
from shared.events.attribution import CreditIssued, CreditReversed, PartnerHealthScored
from shared.events.incentives import (
    CreditBooked,
    IncentiveEarned,
    IncentiveReversed,
    MdfAccrued,
    MdfClaimDecided,
    MdfPreapprovalChanged,
)
from shared.events.partners import PartnerStateChanged
from shared.events.programme import (
    AccountManagerAssigned,
    RequalificationAppealDecided,
    RequalificationDecided,
)
from shared.events.registrations import RegistrationDecided, RegistrationStatusChanged
from shared.service import Platform, ServiceDefinition
from shared.topics import (
    ATTRIBUTION_CREDITS,
    DEAL_REGISTRATIONS,
    INCENTIVE_LEDGER,
    PARTNER_HEALTH,
    PARTNER_LIFECYCLE,
    PARTNER_PROGRAMME,
)


def wire(platform: Platform) -> None:
    settings = ProgrammeSettings()
    platform.provide(settings)
    platform.every(settings.snapshot_seconds, jobs.publish_snapshot, name="kpi-snapshot")
    # One consumer group per source topic: each catches up (or lags) on its own.
    partners = platform.consumer("partners", [PARTNER_LIFECYCLE])
    partners.handles_batch(PartnerStateChanged)(handlers.on_partner_versions)
    partners.locks_first(handlers.revenue_locks)
    registrations = platform.consumer("registrations", [DEAL_REGISTRATIONS])
    registrations.handles_batch(RegistrationDecided)(handlers.on_registrations_decided)
    registrations.handles_batch(RegistrationStatusChanged)(handlers.on_registration_changes)
    credits = platform.consumer("credits", [ATTRIBUTION_CREDITS])
    credits.handles_batch(CreditIssued)(handlers.on_credits)
    credits.handles_batch(CreditReversed)(handlers.on_reversals)
    credits.locks_first(handlers.revenue_locks)
    ledger = platform.consumer("ledger", [INCENTIVE_LEDGER])
    ledger.handles_batch(CreditBooked)(handlers.on_bookings)
    ledger.handles_batch(IncentiveEarned)(handlers.on_earnings)
    ledger.handles_batch(IncentiveReversed)(handlers.on_clawbacks)
    ledger.handles_batch(MdfAccrued)(handlers.on_mdf_accruals)
    ledger.handles_batch(MdfClaimDecided)(handlers.on_mdf_claims)
    ledger.handles_batch(MdfPreapprovalChanged)(campaign_handlers.on_preapprovals)
    # The partner projection (profiles.py): account managers and annual reviews, health.
    programme = platform.consumer("programme", [PARTNER_PROGRAMME])
    programme.handles_batch(AccountManagerAssigned)(profiles.on_managers_assigned)
    programme.handles_batch(RequalificationDecided)(profiles.on_reviews_decided)
    programme.handles_batch(RequalificationAppealDecided)(profiles.on_appeals_decided)
    health = platform.consumer("health", [PARTNER_HEALTH])
    health.handles_batch(PartnerHealthScored)(profiles.on_health_scored)


definition = ServiceDefinition(
    name="programme",
    migrations=Path(__file__).parent / "migrations",
    routers=(api.router, book_api.partner_book, campaign_api.campaign_router),
    wire=wire,
)
