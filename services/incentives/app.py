"""Composition root of the incentives service: its consumers and HTTP routes."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter

from shared.service import Platform, ServiceDefinition

NAME = "incentives"


def wire(platform: Platform) -> list[APIRouter]:
    return []


definition = ServiceDefinition(
    name=NAME, migrations=Path(__file__).parent / "migrations", wire=wire
)
