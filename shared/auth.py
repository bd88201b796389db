"""Who is calling a service's HTTP API: a partner (signed token) or a channel manager (admin).

One scheme for every service, so a partner app holds one token for the whole platform:
`partner.<partner_id>.<hex hmac-sha256 of partner_id>` signed with PARTNER_TOKEN_SECRET, and the
channel managers' ADMIN_TOKEN. A partner only ever sees its own data; each service enforces that
with `Caller.partner_id`.
"""

import hashlib
import hmac

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
