"""A KPI snapshot's fingerprint: the figures alone (not when they were computed), so the same
figures computed again publish nothing."""

from __future__ import annotations

import hashlib
import json

from shared.events.programme_service import KpiSnapshot


def fingerprint(snapshot: KpiSnapshot) -> str:
    figures = snapshot.model_dump(mode="json", exclude={"computed_at"})
    return hashlib.sha256(json.dumps(figures, sort_keys=True).encode()).hexdigest()
