"""Composition root of the incentives service: its programs, consumers, MDF expiry job and
HTTP routes."""

from __future__ import annotations

import logging
from pathlib import Path

from services.incentives import api, handlers, jobs, payout_api, preapproval_api
from services.incentives.ledger_events import LedgerAnnouncements
from services.incentives.mdf_preapprovals import PreapprovalPolicy
from services.incentives.settings import IncentivesSettings
from shared.events.attribution import CreditIssued, CreditReversed
from shared.events.partners import PartnerStateChanged
from shared.events.programme_service import CampaignChanged
from shared.service import Platform, ServiceDefinition
from shared.topics import ATTRIBUTION_CREDITS, PARTNER_LIFECYCLE, PROGRAMME_CAMPAIGNS

log = logging.getLogger(__name__)


def wire(platform: Platform) -> None:
    settings = IncentivesSettings()
    programs = settings.programs()
    log.info("incentive programs loaded", extra={"programs_version": programs.version})
    platform.provide(programs)
    platform.provide(PreapprovalPolicy(settings.preapproval_claim_window_days))
    platform.provide(LedgerAnnouncements(entries_alone=settings.ledger_entries_alone))

    ledger = platform.consumer("ledger", [ATTRIBUTION_CREDITS])
    ledger.handles_batch(CreditIssued)(handlers.on_credits)
    ledger.handles(CreditReversed)(handlers.on_reversal)
    ledger.locks_first(handlers.batch_locks)

    partners = platform.consumer("partner-projection", [PARTNER_LIFECYCLE])
    partners.handles(PartnerStateChanged)(handlers.on_partner)
    partners.locks_first(handlers.batch_locks)

    campaigns = platform.consumer("campaigns", [PROGRAMME_CAMPAIGNS])
    campaigns.handles_batch(CampaignChanged)(handlers.on_campaigns)

    platform.every(settings.mdf_expiry_check_seconds, jobs.expire_mdf_lots, name="mdf-expiry")
    platform.every(
        settings.mdf_expiry_check_seconds, jobs.expire_preapprovals, name="mdf-preapproval-expiry"
    )


definition = ServiceDefinition(
    name="incentives",
    migrations=Path(__file__).parent / "migrations",
    routers=(api.router, payout_api.finance, preapproval_api.preapprovals),
    wire=wire,
)
