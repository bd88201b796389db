"""Composition root of the programme service: the consumers that turn the other services'
events into the programme's facts, and the KPI routes."""

from __future__ import annotations

from pathlib import Path

from services.programme import api, campaign_api, campaign_handlers, handlers, jobs
from services.programme.settings import ProgrammeSettings
from shared.events.attribution import CreditIssued, CreditReversed
from shared.events.incentives import (
    IncentiveEarned,
    IncentiveReversed,
    MdfAccrued,
    MdfClaimDecided,
    MdfPreapprovalChanged,
)
from shared.events.partners import PartnerStateChanged
from shared.events.registrations import RegistrationDecided, RegistrationStatusChanged
from shared.service import Platform, ServiceDefinition
from shared.topics import (
    ATTRIBUTION_CREDITS,
    DEAL_REGISTRATIONS,
    INCENTIVE_LEDGER,
    PARTNER_LIFECYCLE,
)


def wire(platform: Platform) -> None:
    settings = ProgrammeSettings()
    platform.provide(settings)
    platform.every(settings.snapshot_seconds, jobs.publish_snapshot, name="kpi-snapshot")
    # One consumer group per source topic: each catches up (or lags) on its own.
    partners = platform.consumer("partners", [PARTNER_LIFECYCLE])
    partners.handles_batch(PartnerStateChanged)(handlers.on_partner_versions)
    registrations = platform.consumer("registrations", [DEAL_REGISTRATIONS])
    registrations.handles_batch(RegistrationDecided)(handlers.on_registrations_decided)
    registrations.handles_batch(RegistrationStatusChanged)(handlers.on_registration_changes)
    credits = platform.consumer("credits", [ATTRIBUTION_CREDITS])
    credits.handles_batch(CreditIssued)(handlers.on_credits)
    credits.handles_batch(CreditReversed)(handlers.on_reversals)
    ledger = platform.consumer("ledger", [INCENTIVE_LEDGER])
    ledger.handles_batch(IncentiveEarned)(handlers.on_earnings)
    ledger.handles_batch(IncentiveReversed)(handlers.on_clawbacks)
    ledger.handles_batch(MdfAccrued)(handlers.on_mdf_accruals)
    ledger.handles_batch(MdfClaimDecided)(handlers.on_mdf_claims)
    ledger.handles_batch(MdfPreapprovalChanged)(campaign_handlers.on_preapprovals)


definition = ServiceDefinition(
    name="programme",
    migrations=Path(__file__).parent / "migrations",
    routers=(api.router, campaign_api.campaign_router),
    wire=wire,
)
