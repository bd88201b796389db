"""Loading the rules of engagement the service runs under (DEALS_POLICY_FILE)."""

from __future__ import annotations

import json
from pathlib import Path

from services.deals.domain.rules import InvalidPolicy, RulesOfEngagement, rules_from_mapping


def load_policy(path: str) -> RulesOfEngagement:
    """The policy in the JSON file at `path`, or the defaults when no file is named. An
    unreadable or invalid file stops the service with the exact reason."""
    if not path:
        return RulesOfEngagement()
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise InvalidPolicy(f"cannot read DEALS_POLICY_FILE {path}: {error}") from error
    if not isinstance(data, dict):
        raise InvalidPolicy(f"DEALS_POLICY_FILE {path} must hold a JSON object")
    return rules_from_mapping(data)
