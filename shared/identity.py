"""Who is calling: a short-lived signed token (a JWT, EdDSA over Ed25519) naming a principal,
its roles, the services it is for and, for a partner's people, the partner.

One place issues tokens with the platform's private key (`TOKEN_SIGNING_KEY`, a JWK): the
onboarding service for an admitted partner's users, and operators with this module's command
line for channel managers, finance and system clients:

    python -m shared.identity keys                       # a new signing key (a kid of its own)
    python -m shared.identity issue --subject alice@vendor --role channel_manager --ttl 28800

Every service verifies with the public keys (`TOKEN_VERIFICATION_KEYS`, a JWK set) and picks
the key by the token's `kid`: keys rotate by publishing the new public key, issuing with the
new private key, and dropping the old public key once the longest-lived token it signed has
expired. A token names its audiences (services); a service refuses one not meant for it.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm
from pydantic import BaseModel, ConfigDict

from shared.clock import now
from shared.inputs import IDENT_MAX, InputError, clean_ident
from shared.topics import SERVICES

ISSUER = "pollinate"
# A subject names a person or an app; a partner's is "<partner id>/<user>" (onboarding issues
# those), so it may be two identifiers long.
SUBJECT_MAX = 2 * IDENT_MAX + 1
ALGORITHM = "EdDSA"
# A token lives an hour unless asked otherwise, a day at most: a leaked token is worth little,
# and suspension reaches a partner's tokens sooner anyway (shared/access.py).
DEFAULT_TTL = timedelta(hours=1)
MAX_TTL = timedelta(hours=24)


class Role(StrEnum):
    PARTNER_USER = "partner_user"  # a partner's person: its own data
    PARTNER_ADMIN = "partner_admin"  # the same, and the partner's own settings
    CHANNEL_MANAGER = "channel_manager"  # the vendor's channel team: every partner
    FINANCE = "finance"  # payouts and statements
    SYSTEM = "system"  # a machine client (the enablement system, a CRM relay)


PARTNER_ROLES = frozenset({Role.PARTNER_USER, Role.PARTNER_ADMIN})


class InvalidToken(Exception):
    """Why a bearer token is refused (the 401's message)."""


class Caller(BaseModel):
    """The verified principal behind a request."""

    model_config = ConfigDict(frozen=True)

    subject: str
    roles: frozenset[Role]
    partner_id: str | None = None  # set exactly when a partner role is held
    token_id: str = ""
    expires_at: datetime | None = None  # the token's expiry, when it came from one
    issued_at: datetime | None = None  # when the token was issued, when it came from one

    @property
    def is_admin(self) -> bool:
        """A channel manager: sees and acts for every partner."""
        return Role.CHANNEL_MANAGER in self.roles

    @property
    def is_partner(self) -> bool:
        return self.partner_id is not None

    def has(self, *roles: Role) -> bool:
        return any(role in self.roles for role in roles)

    def may_see(self, partner_id: str) -> bool:
        """A partner's people see their own partner; the vendor's staff (every other role) see
        whichever partner the route lets them reach."""
        return self.partner_id is None or self.partner_id == partner_id

    @property
    def acting_as(self) -> str:
        """How the audit trail names this caller: the principal, and its partner if any."""
        return f"{self.subject} ({self.partner_id})" if self.partner_id else self.subject


class TokenIssuer:
    """Signs tokens with one private key (its `kid` travels in the token's header)."""

    def __init__(self, signing_jwk: dict[str, Any]) -> None:
        if "kid" not in signing_jwk or "d" not in signing_jwk:
            raise ValueError("the signing key must be a private JWK with a kid")
        self._kid = str(signing_jwk["kid"])
        self._key = jwt.PyJWK(signing_jwk, algorithm=ALGORITHM)

    @classmethod
    def from_json(cls, text: str) -> TokenIssuer:
        return cls(json.loads(text))

    def issue(
        self,
        subject: str,
        roles: Iterable[Role],
        *,
        partner_id: str | None = None,
        audiences: Iterable[str] = SERVICES,
        ttl: timedelta = DEFAULT_TTL,
    ) -> str:
        held = frozenset(roles)
        if not held:
            raise ValueError("a token carries at least one role")
        if bool(held & PARTNER_ROLES) != (partner_id is not None):
            raise ValueError("partner roles, and only they, name the partner")
        if not timedelta(0) < ttl <= MAX_TTL:
            raise ValueError(f"a token lives at most {MAX_TTL}")
        # What the verifier refuses is never issued.
        try:
            _identifier(subject, "subject", SUBJECT_MAX)
            if partner_id is not None:
                _identifier(partner_id, "partner", IDENT_MAX)
        except InvalidToken as error:
            raise ValueError(str(error)) from error
        issued = now()
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "sub": subject,
            "aud": sorted(set(audiences)),
            "iat": issued,
            "nbf": issued,
            "exp": issued + ttl,
            "jti": str(uuid.uuid4()),
            "roles": sorted(role.value for role in held),
        }
        if partner_id is not None:
            claims["partner_id"] = partner_id
        return jwt.encode(claims, self._key, algorithm=ALGORITHM, headers={"kid": self._kid})


def key_set_problem(verification_keys: str, signing_key: str = "") -> str | None:
    """What makes `verification_keys` (TOKEN_VERIFICATION_KEYS) unusable, None when nothing:
    not a JWK set, a private key in it, a key that is no EdDSA public key, none with a `kid`,
    or (with this instance's `signing_key`) a set without the signing key's `kid`. Found in
    review: the private key, a lone JWK or a whole `keys` output passed the start-up check, and
    the service then refused every token ("signed with an unknown key")."""
    if not verification_keys.strip():
        return "empty"
    try:
        document = json.loads(verification_keys)
    except json.JSONDecodeError as error:
        return f"not JSON ({error})"
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list):
        return 'not a JWK set ({"keys": [...]})'
    published: set[str] = set()
    for key in keys:
        if not isinstance(key, dict) or "kid" not in key:
            continue
        if "d" in key:
            return f"key {key['kid']} is a private key: publish the public half only"
        try:
            jwt.PyJWK(key, algorithm=ALGORITHM)
        except jwt.PyJWTError as error:
            return f"key {key['kid']} is no {ALGORITHM} public key ({error})"
        if str(key["kid"]) in published:
            # Found in review: two rotations on one day (the former default kid was the date)
            # gave two keys one kid; a verifier keeps one, and every token of the other failed.
            return (
                f"two keys share the kid {key['kid']!r}: a verifier keeps one of them and"
                " refuses every token the other signed; give each key its own kid"
            )
        published.add(str(key["kid"]))
    if not published:
        return "no public key with a kid"
    if signing_key.strip():
        try:
            signing = json.loads(signing_key)
        except json.JSONDecodeError:
            return None  # the issuer says what is wrong with it, at its first use
        kid = signing.get("kid") if isinstance(signing, dict) else None
        if str(kid) not in published:
            return (
                f"the signing key's kid {kid!r} is not in it: every token this instance issues"
                " would be refused"
            )
    return None


class TokenVerifier:
    """Verifies tokens for one service (its audience) against the published public keys."""

    def __init__(self, audience: str, public_jwks: dict[str, Any]) -> None:
        self.audience = audience
        usable = [
            key
            for key in public_jwks.get("keys", [])
            if "kid" in key and "d" not in key  # a private key never verifies
        ]
        self._keys = {str(key["kid"]): jwt.PyJWK(key, algorithm=ALGORITHM) for key in usable}
        if len(self._keys) < len(usable):
            raise ValueError(
                "TOKEN_VERIFICATION_KEYS has two keys with one kid: tokens of one of them would"
                " all be refused; give each key its own kid"
            )

    @classmethod
    def from_json(cls, audience: str, text: str) -> TokenVerifier:
        try:
            document = json.loads(text) if text.strip() else {"keys": []}
        except json.JSONDecodeError as error:
            raise ValueError(f"TOKEN_VERIFICATION_KEYS is not a JWK set: {error}") from error
        return cls(audience, document)

    def verify(self, token: str) -> Caller:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as error:
            raise InvalidToken("invalid token") from error
        key = self._keys.get(str(header.get("kid")))
        if key is None or header.get("alg") != ALGORITHM:
            raise InvalidToken("token signed with an unknown key")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=ISSUER,
                options={"require": ["exp", "iat", "nbf", "sub", "aud", "iss", "jti"]},
                leeway=5,
            )
        except jwt.ExpiredSignatureError as error:
            raise InvalidToken("token expired") from error
        except jwt.InvalidAudienceError as error:
            raise InvalidToken(f"token not meant for {self.audience}") from error
        except jwt.InvalidTokenError as error:
            raise InvalidToken("invalid token") from error
        return _caller(claims)


def _caller(claims: dict[str, Any]) -> Caller:
    # A signature vouches for who issued the claims, not for their shapes: anything but a list
    # of role names, or an expiry no date can hold, is refused like any other bad token.
    listed = claims.get("roles", [])
    if not isinstance(listed, list) or not all(isinstance(role, str) for role in listed):
        raise InvalidToken("token roles are not a list of role names")
    try:
        roles = frozenset(Role(role) for role in listed)
    except ValueError as error:
        raise InvalidToken("token names an unknown role") from error
    partner_id = claims.get("partner_id")
    if not roles or bool(roles & PARTNER_ROLES) != (partner_id is not None):
        raise InvalidToken("token roles and partner do not agree")
    try:
        expires_at = datetime.fromtimestamp(int(claims["exp"]), UTC)
    except (OverflowError, OSError, ValueError) as error:
        raise InvalidToken("token expiry out of range") from error
    try:
        issued_at = datetime.fromtimestamp(int(claims["iat"]), UTC)
    except (OverflowError, OSError, ValueError) as error:
        raise InvalidToken("token issue time out of range") from error
    return Caller(
        subject=_identifier(claims["sub"], "subject", SUBJECT_MAX),
        roles=roles,
        partner_id=None if partner_id is None else _identifier(partner_id, "partner", IDENT_MAX),
        token_id=_identifier(claims["jti"], "id", IDENT_MAX),
        expires_at=expires_at,
        issued_at=issued_at,
    )


def _identifier(value: object, what: str, limit: int) -> str:
    """A claim that names something (stored in audit rows, compared with partner ids): text of
    at most `limit` characters without control characters or lone surrogates."""
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        raise InvalidToken(f"token {what} is not an identifier of 1 to {limit} characters")
    try:
        return clean_ident(value)
    except InputError as error:
        raise InvalidToken(f"token {what} is not an identifier: {error}") from error


def new_signing_key(kid: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A fresh Ed25519 key: (the private JWK for the issuer, the public JWK set for everyone)."""
    private = OKPAlgorithm.to_jwk(Ed25519PrivateKey.generate(), as_dict=True)
    private.update(kid=kid, alg=ALGORITHM, use="sig")
    public = {name: value for name, value in private.items() if name != "d"}
    return private, {"keys": [public]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Signing keys and tokens of the platform.")
    commands = parser.add_subparsers(dest="command", required=True)
    keys = commands.add_parser("keys", help="print a new private signing JWK and its public set")
    # Unique by default: two rotations on one day must not give two keys one kid.
    keys.add_argument("--kid", default=f"key-{now():%Y%m%dT%H%M%S}-{secrets.token_hex(3)}")
    issue = commands.add_parser("issue", help="issue a token with TOKEN_SIGNING_KEY")
    issue.add_argument("--subject", required=True)
    issue.add_argument("--role", action="append", required=True, choices=[r.value for r in Role])
    issue.add_argument("--partner")
    issue.add_argument("--audience", action="append", choices=SERVICES)
    issue.add_argument("--ttl", type=int, default=int(DEFAULT_TTL.total_seconds()))
    args = parser.parse_args(argv)
    if args.command == "keys":
        private, public = new_signing_key(args.kid)
        print(json.dumps({"signing_key": private, "verification_keys": public}))
        return
    signing = os.environ.get("TOKEN_SIGNING_KEY", "")
    if not signing:
        raise SystemExit("set TOKEN_SIGNING_KEY (the private JWK) to issue tokens")
    token = TokenIssuer.from_json(signing).issue(
        args.subject,
        [Role(role) for role in args.role],
        partner_id=args.partner,
        audiences=args.audience or SERVICES,
        ttl=timedelta(seconds=args.ttl),
    )
    sys.stdout.write(token + "\n")


if __name__ == "__main__":
    main()
