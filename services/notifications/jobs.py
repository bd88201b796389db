"""Periodic work of notifications."""

from __future__ import annotations
