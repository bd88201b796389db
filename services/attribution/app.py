"""Composition root of attribution: its policy, its consumer and its HTTP routes."""

from __future__ import annotations

from pathlib import Path

from services.attribution import api, handlers, health_api
from services.attribution.settings import AttributionSettings, load_config
from shared.events.opportunities import DealStateChanged
from shared.events.registrations import RegistrationDecided, RegistrationStatusChanged
from shared.service import Platform, ServiceDefinition
from shared.topics import DEAL_OPPORTUNITIES, DEAL_REGISTRATIONS

NAME = "attribution"
DEAL_TOPICS = [DEAL_OPPORTUNITIES, DEAL_REGISTRATIONS]


def wire(platform: Platform) -> None:
    platform.provide(load_config(AttributionSettings().config_file))

    deals = platform.consumer("deal-credits", DEAL_TOPICS)
    deals.handles_batch(DealStateChanged)(handlers.on_deal_states)
    deals.handles(RegistrationDecided)(handlers.on_registration_decided)
    deals.handles(RegistrationStatusChanged)(handlers.on_registration_status_changed)


definition = ServiceDefinition(
    name=NAME,
    migrations=Path(__file__).parent / "migrations",
    routers=(api.router, health_api.health_scores),
    wire=wire,
)
