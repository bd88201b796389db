"""Who is calling a service's HTTP API: a partner (signed token) or a channel manager (admin).

One scheme for every service, so a partner app holds one token for the whole platform:
`partner.<partner_id>.<hex hmac-sha256 of partner_id>` signed with PARTNER_TOKEN_SECRET, and the
channel managers' ADMIN_TOKEN. A partner only ever sees its own data; each service enforces that
with `Caller.partner_id`.
"""

import hashlib
import hmac
from collections.abc import Callable
from typing import Annotated

from fastapi import Header, HTTPException, status
from pydantic import BaseModel


class Caller(BaseModel):
    partner_id: str | None  # None: a channel manager (admin)

    @property
    def is_admin(self) -> bool:
        return self.partner_id is None

    def may_see(self, partner_id: str) -> bool:
        return self.is_admin or self.partner_id == partner_id


def partner_token(secret: str, partner_id: str) -> str:
    signature = hmac.new(secret.encode(), partner_id.encode(), hashlib.sha256).hexdigest()
    return f"partner.{partner_id}.{signature}"


def caller_dependency(token_secret: str, admin_token: str) -> Callable[..., Caller]:
    """A FastAPI dependency resolving the bearer token to a Caller (401 when missing/invalid)."""

    def caller(authorization: Annotated[str | None, Header()] = None) -> Caller:
        if not authorization or not authorization.startswith("Bearer "):
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing bearer token")
        token = authorization.removeprefix("Bearer ").strip()
        if hmac.compare_digest(token, admin_token):
            return Caller(partner_id=None)
        parts = token.split(".")
        if (
            len(parts) == 3
            and parts[0] == "partner"
            and hmac.compare_digest(token, partner_token(token_secret, parts[1]))
        ):
            return Caller(partner_id=parts[1])
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid token")

    return caller


def require_admin(who: Caller) -> None:
    if not who.is_admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "channel manager (admin) token required")
