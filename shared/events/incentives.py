"""Incentive ledger events produced by incentives (topic incentives.ledger.v1, key: partner id).

The incentives service defines the payloads here as it builds its ledger; consumers (partner
apps, reporting) read them from the topic.
"""

from __future__ import annotations
