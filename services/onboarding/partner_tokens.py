"""Partner tokens: the platform's one issuing place for a partner's people (shared/identity.py),
for a partner once it is admitted and for as long as it is not suspended or expelled."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from services.onboarding import repository, views
from services.onboarding.domain.lifecycle import check_may_hold_token
from shared.db import Pool
from shared.errors import RequestError
from shared.events.partners import PartnerStatus
from shared.identity import Role, TokenIssuer
from shared.settings import ServiceSettings


class IssuingUnavailable(RequestError):
    status = 503


@dataclass(frozen=True)
class TokenIssuing:
    """The platform's signing key on this instance, if it holds one (TOKEN_SIGNING_KEY)."""

    issuer: TokenIssuer | None

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> TokenIssuing:
        key = settings.token_signing_key.get_secret_value()
        return cls(TokenIssuer.from_json(key) if key.strip() else None)


async def issue_partner_token(
    pool: Pool,
    issuing: TokenIssuing,
    partner_id: str,
    *,
    user: str,
    role: Role,
    ttl: timedelta,
    by: str,
) -> str:
    """A token for `user` of `partner_id`, recorded (its id, holder, role, expiry) with `by`,
    the principal who had it issued."""
    if issuing.issuer is None:
        raise IssuingUnavailable("this instance issues no tokens: TOKEN_SIGNING_KEY is not set")
    row = await views.partner_row(pool, partner_id)
    check_may_hold_token(partner_id, PartnerStatus(row["status"]))
    token = issuing.issuer.issue(user, [role], partner_id=partner_id, ttl=ttl)
    # Our own token, just signed: its claims are read back, not verified.
    claims = jwt.decode(token, options={"verify_signature": False})
    await repository.insert_token_grant(
        pool,
        token_id=str(claims["jti"]),
        partner_id=partner_id,
        subject=user,
        role=role.value,
        issued_by=by,
        issued_at=datetime.fromtimestamp(claims["iat"], UTC),
        expires_at=datetime.fromtimestamp(claims["exp"], UTC),
    )
    return token
