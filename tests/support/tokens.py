"""Bearer tokens for tests, signed like the platform's (shared/identity.py): with the local
stack's key (TOKEN_SIGNING_KEY, which its services verify) when the environment has it, else
with a key made for this run (in-process apps are given its public set)."""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from shared.identity import MAX_TTL, Role, TokenIssuer, new_signing_key
from shared.topics import SERVICES

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
    audiences: tuple[str, ...] = SERVICES,
    ttl: timedelta = MAX_TTL,
) -> str:
    return ISSUER.issue(subject, roles, partner_id=partner_id, audiences=audiences, ttl=ttl)


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


ADMIN_TOKEN = token("channel-manager@tests", Role.CHANNEL_MANAGER)
ADMIN = bearer(ADMIN_TOKEN)
FINANCE = bearer(token("finance@tests", Role.FINANCE))
ENABLEMENT_SYSTEM = bearer(token("enablement-system", Role.SYSTEM))


def auth(partner_id: str) -> dict[str, str]:
    """The bearer header of one of the partner's users."""
    return bearer(token(f"{partner_id}/tests", Role.PARTNER_USER, partner_id=partner_id))


def partner_admin(partner_id: str) -> dict[str, str]:
    """Headers of the partner's own administrator (subject `<partner>/admin`)."""
    return bearer(token(f"{partner_id}/admin", Role.PARTNER_ADMIN, partner_id=partner_id))


def expired(subject: str, *roles: Role, partner_id: str | None = None) -> str:
    """A token the platform's key signed two hours ago for one hour, made with PyJWT itself
    (not the platform's issuer, which refuses to make one)."""
    past = datetime.now(UTC) - timedelta(hours=2)
    return signed(
        subject, *roles, partner_id=partner_id, iat=past, nbf=past, exp=past + timedelta(hours=1)
    )


def signed(subject: str, *roles: Role, partner_id: str | None = None, **claims: Any) -> str:
    """A token the platform's key signed for an hour, with `claims` in place of the usual ones
    (a shape the platform's issuer would never make: roles that are no list, an expiry past
    any date), made with PyJWT itself."""
    moment = datetime.now(UTC)
    made: dict[str, Any] = {
        "iss": "pollinate",
        "sub": subject,
        "aud": list(SERVICES),
        "jti": str(uuid.uuid4()),
        "iat": moment,
        "nbf": moment,
        "exp": moment + timedelta(hours=1),
        "roles": [role.value for role in roles],
    }
    if partner_id is not None:
        made["partner_id"] = partner_id
    key = jwt.PyJWK(SIGNING_KEY, algorithm="EdDSA")
    return jwt.encode(
        {**made, **claims}, key, algorithm="EdDSA", headers={"kid": SIGNING_KEY["kid"]}
    )
