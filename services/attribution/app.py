"""Composition root of attribution: its policy, its consumers, the daily health job and its
HTTP routes."""

from __future__ import annotations

from pathlib import Path

from services.attribution import api, handlers, health_api, jobs
from services.attribution.settings import AttributionSettings, load_config
from shared.events.opportunities import DealStateChanged
from shared.events.programme import PartnerEnablementMeasured
from shared.events.programme_service import CampaignChanged, SurveyAnswered
from shared.events.registrations import RegistrationDecided, RegistrationStatusChanged
from shared.service import Platform, ServiceDefinition
from shared.topics import (
    DEAL_OPPORTUNITIES,
    DEAL_REGISTRATIONS,
    PARTNER_PROGRAMME,
    PROGRAMME_CAMPAIGNS,
    PROGRAMME_VOICE,
)

NAME = "attribution"
DEAL_TOPICS = [DEAL_OPPORTUNITIES, DEAL_REGISTRATIONS]


def wire(platform: Platform) -> None:
    settings = AttributionSettings()
    platform.provide(load_config(settings.config_file))

    deals = platform.consumer("deal-credits", DEAL_TOPICS)
    deals.handles_batch(DealStateChanged)(handlers.on_deal_states)
    deals.handles(RegistrationDecided)(handlers.on_registration_decided)
    deals.handles(RegistrationStatusChanged)(handlers.on_registration_status_changed)
    deals.locks_first(handlers.batch_locks)

    programme = platform.consumer("programme", [PARTNER_PROGRAMME])
    programme.handles_batch(PartnerEnablementMeasured)(handlers.on_enablement)

    # Partner voice: survey answers are the health score's voice signal.
    voice = platform.consumer("voice", [PROGRAMME_VOICE])
    voice.handles_batch(SurveyAnswered)(handlers.on_survey_answers)

    # Programme's campaigns: a campaign touchpoint names only one of them (domain/campaigns.py).
    campaigns = platform.consumer("campaigns", [PROGRAMME_CAMPAIGNS])
    campaigns.handles_batch(CampaignChanged)(handlers.on_campaigns)

    # Health is stored per day: each run replaces today's row, announcing only a moved score.
    period = settings.health_every_seconds
    platform.every(period, jobs.score_health, name="health", first_run_after=period)


definition = ServiceDefinition(
    name=NAME,
    migrations=Path(__file__).parent / "migrations",
    routers=(api.router, health_api.health_scores),
    wire=wire,
)
