"""Bearer tokens for tests, signed like the platform's (shared/identity.py): with the local
stack's key (TOKEN_SIGNING_KEY, which its services verify) when the environment has it, else
with a key made for this run (in-process apps are given its public set)."""

from __future__ import annotations

import json
import os
from datetime import timedelta

from shared.identity import MAX_TTL, Role, TokenIssuer, new_signing_key

if os.environ.get("TOKEN_SIGNING_KEY") and os.environ.get("TOKEN_VERIFICATION_KEYS"):
    SIGNING_KEY = json.loads(os.environ["TOKEN_SIGNING_KEY"])
    VERIFICATION_KEYS = os.environ["TOKEN_VERIFICATION_KEYS"]
else:
    _private, _public = new_signing_key("tests")
    SIGNING_KEY, VERIFICATION_KEYS = _private, json.dumps(_public)

ISSUER = TokenIssuer(SIGNING_KEY)


def token(
    subject: str,
    *roles: Role,
    partner_id: str | None = None,
    audiences: tuple[str, ...] | None = None,
    ttl: timedelta = MAX_TTL,
) -> str:
    if audiences is None:
        return ISSUER.issue(subject, roles, partner_id=partner_id, ttl=ttl)
    return ISSUER.issue(subject, roles, partner_id=partner_id, audiences=audiences, ttl=ttl)


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


ADMIN_TOKEN = token("channel-manager@tests", Role.CHANNEL_MANAGER)
ADMIN = bearer(ADMIN_TOKEN)


def auth(partner_id: str) -> dict[str, str]:
    """The bearer header of one of the partner's users."""
    return bearer(token(f"{partner_id}/tests", Role.PARTNER_USER, partner_id=partner_id))
