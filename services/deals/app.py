"""Composition root of the deals service: its policy, consumers, expiry job and HTTP routes."""

from __future__ import annotations

import logging
from pathlib import Path

from services.deals import api, handlers, jobs
from services.deals.crm_at_intake import ProjectionAtIntake, left_to_consumer_counter
from services.deals.crm_ingestion import CRM_PROJECTION
from services.deals.crm_reconcile import DriftGauge
from services.deals.crm_writeback import WRITEBACK_GROUP
from services.deals.policy import PolicyStore, load_policy
from services.deals.settings import DealsSettings
from services.deals.verification import MicrosoftCertificates
from shared.events.crm import CrmDealChanged
from shared.events.partners import PartnerStateChanged
from shared.events.registrations import RegistrationDecided, RegistrationStatusChanged
from shared.service import Platform, ServiceDefinition
from shared.topics import CRM_DEALS, DEAL_REGISTRATIONS, PARTNER_LIFECYCLE

log = logging.getLogger(__name__)


def wire(platform: Platform) -> None:
    settings = DealsSettings()
    policy = load_policy(settings.policy_file)
    log.info("rules of engagement", extra={"policy_version": policy.version})
    platform.provide(settings)
    platform.provide(policy)
    policies = PolicyStore(policy)
    platform.provide(policies)
    # Stored and activated before a request or a CRM change asks for the policy in force.
    platform.on_start(policies.seed)
    platform.provide(MicrosoftCertificates(settings))
    closed = settings.closed_sources()
    if closed:
        log.warning(
            "CRM sources closed (no credential configured; their routes answer 401): %s",
            ", ".join(closed),
            extra={"closed_sources": closed},
        )
    else:
        log.info("CRM sources open: salesforce, hubspot, aws-ace, microsoft")

    crm = platform.consumer(CRM_PROJECTION, [CRM_DEALS])
    crm.handles_batch(CrmDealChanged)(handlers.on_crm_changes)
    crm.locks_first(handlers.crm_batch_locks)
    # Webhook deliveries are projected where they are recorded; the group skips those.
    intake = ProjectionAtIntake(
        crm.group_id,
        policies,
        left_to_consumer_counter(platform.metrics.registry),
    )
    platform.provide(intake)

    if settings.write_back:
        # Its own group, which only queues: the job sends each write on its own, so a CRM
        # outage holds back that CRM's write-backs only, never the projection nor another CRM.
        writeback = platform.consumer(WRITEBACK_GROUP, [DEAL_REGISTRATIONS])
        writeback.handles(RegistrationDecided)(handlers.on_registration_for_crm)
        writeback.handles(RegistrationStatusChanged)(handlers.on_registration_for_crm)
        platform.every(
            settings.writeback_every_seconds, jobs.write_back_to_crms, name="crm-writeback"
        )

    partners = platform.consumer("partner-projection", [PARTNER_LIFECYCLE])
    partners.handles(PartnerStateChanged)(handlers.on_partner)

    platform.every(settings.expiry_check_seconds, jobs.expire_registrations, name="expiry")
    platform.every(
        settings.crm_retention_check_seconds,
        jobs.purge_crm_bookkeeping,
        name="crm-retention",
        first_run_after=settings.crm_retention_check_seconds,
    )
    if settings.ace_pull:
        platform.every(settings.pull_every_seconds, jobs.pull_aws_ace, name="ace-pull")
    if settings.microsoft_pull:
        platform.every(
            settings.pull_every_seconds, jobs.pull_microsoft_referrals, name="microsoft-pull"
        )
    platform.provide(DriftGauge(platform.metrics.registry))
    if (
        settings.salesforce_rest
        or settings.hubspot_tokens
        or settings.ace_pull
        or settings.microsoft_pull
    ):
        platform.every(settings.resync_every_seconds, jobs.resync_crm_records, name="crm-resync")
    else:
        log.warning("no CRM API configured: resyncs wait in the queue (crm_resyncs)")
    if settings.salesforce_rest or settings.hubspot_tokens:
        # Checked ten times a period, so a source is reconciled about on time on some instance.
        check = max(settings.reconcile_every_seconds / 10, 0.2)
        platform.every(check, jobs.reconcile_crms, name="crm-reconcile", first_run_after=check)


definition = ServiceDefinition(
    name="deals",
    migrations=Path(__file__).parent / "migrations",
    routers=(api.router,),
    wire=wire,
    production_problems=lambda: DealsSettings().production_problems(),
)
