"""A partner's people: registered (then the learning system's statements naming them apply,
including those that arrived before), and leaving (their certifications stop counting from
that moment: competencies, authorisations and the tier follow through the requalification
rules, a shortfall starting grace)."""

from __future__ import annotations

import logging
from datetime import datetime
from urllib.parse import urlsplit

from pydantic import ValidationError

from services.onboarding import enablement_repository as store
from services.onboarding import repository
from services.onboarding.domain.config import OnboardingConfig
from services.onboarding.domain.enablement import PersonRole, Statement, account_key, mbox_key
from services.onboarding.domain.lifecycle import check_may_be_certified
from services.onboarding.domain.verification import address_host, check_may_name, domains_above
from services.onboarding.enablement_schemas import PersonIn, StatementIn
from services.onboarding.reassessment import refresh
from services.onboarding.repository import Row
from services.onboarding.statements import apply
from shared.db import Connection
from shared.errors import Conflict, Forbidden, NotFound, Unprocessable
from shared.events.partners import PartnerStatus
from shared.outbox import Outbox

log = logging.getLogger(__name__)


async def add_person(
    conn: Connection,
    outbox: Outbox,
    config: OnboardingConfig,
    partner_id: str,
    person: PersonIn,
    at: datetime,
    *,
    by: str,
    as_partner: bool,
) -> tuple[Row, bool]:
    """Register one of the partner's people. Returns the membership and whether it is new (the
    same person again at the same partner: theirs, unchanged). A person belongs to one partner
    at a time: 409 while they are another partner's. `as_partner`: the partner's own admin is
    registering, so only addresses in the domain it holds (`check_own_addresses`)."""
    email = person.email.lower()
    account = (
        account_key(person.lms_account.home_page, person.lms_account.name)
        if person.lms_account
        else None
    )
    keys = person.keys()
    # The statements waiting for them are locked with them, as receiving a statement or its
    # voiding locks it: a voiding arriving meanwhile (another actor's: the learning system's
    # administrator) waits, or is seen (it committed unseen, and the voided pass certified).
    waiting_ids = [s["statement_id"] for s in await store.unmatched_statements(conn, keys)]
    await store.lock_actors(conn, [*keys, *(f"statement:{i}" for i in waiting_ids)])
    partner = await repository.lock_partner(conn, partner_id)
    check_may_be_certified(partner_id, PartnerStatus(partner["status"]))
    if as_partner:
        # Before anything about the mailbox is looked up: a partner learns nothing (not even
        # "another partner's") about addresses that are not its own.
        await check_own_addresses(conn, partner, person)
    current = await store.current_person(conn, email, account)
    if current is not None:
        if current["partner_id"] != partner_id:
            raise Conflict(
                f"{email} (or their learning-system account) belongs to another partner; they "
                "must leave it before joining this one"
            )
        if current["email"] != email or account not in (None, current["lms_account"]):
            raise Conflict(
                f"person {current['person_id']} already holds this mailbox or account with "
                "another mailbox or account"
            )
        return current, False
    row = await store.insert_person(
        conn,
        partner_id,
        email=email,
        name=person.name,
        role=PersonRole(person.role).value,
        lms_account=account,
        at=at,
        by=by,
    )
    await store.claim_certifications(conn, row)
    waiting = await store.unmatched_statements(conn, keys)
    statements = [parsed for s in waiting if (parsed := _stored_statement(s)) is not None]
    await apply(conn, outbox, config, statements, at, by)
    return row, True


async def check_own_addresses(conn: Connection, partner: Row, person: PersonIn) -> None:
    """The mailbox, and the learning-system account's home page if one is named, are in the
    domain the partner holds (`domain/verification.py`, `check_may_name`). An account on a
    shared learning system (the vendor's) proves nothing about whose it is: a partner names
    only accounts on its own domain's learning system, a channel manager the others."""
    named = [(address_host(person.email.rsplit("@", 1)[1], "email"), person.email)]
    if person.lms_account is not None:
        home_page = person.lms_account.home_page
        host = urlsplit(home_page).hostname
        if host is None:
            raise Forbidden(
                f"the learning-system account's home page {home_page} names no host: a channel "
                "manager registers people with such accounts"
            )
        named.append(
            (address_host(host, "lms_account.homePage"), f"learning-system account at {host}")
        )
    holders = await store.domain_holders(conn, [d for h, _ in named for d in domains_above(h)])
    for host, what in named:
        check_may_name(
            partner["partner_id"],
            partner["domain"],
            partner["domain_verified_at"],
            host,
            holders,
            what,
        )


def _stored_statement(stored: Row) -> Statement | None:
    """A statement stored while waiting for its person, as the rules take it; None (logged,
    left waiting) for one stored before a check it fails now (a \u000b in a response, say),
    which would otherwise make registering its person a 500 every time (found by review)."""
    try:
        statement = StatementIn.model_validate_json(stored["content"])
    except ValidationError as error:
        log.warning(
            "a stored xAPI statement no longer reads as one: left waiting",
            extra={"statement_id": str(stored["statement_id"]), "error": str(error)[:500]},
        )
        return None
    return statement.parsed(stored["statement_id"], stored["occurred_at"])


async def leave(
    conn: Connection,
    outbox: Outbox,
    config: OnboardingConfig,
    partner_id: str,
    person_id: str,
    left_at: datetime,
    *,
    at: datetime,
    by: str,
) -> Row:
    """The person leaves the partner at `left_at` (not in the future): their certifications
    stop counting then, and the partner is re-evaluated as of now. Leaving again: unchanged."""
    if left_at > at:
        raise Unprocessable("left_at must not be in the future")
    known = await store.lock_person(conn, partner_id, person_id, lock=False)
    if known is None:
        raise NotFound(f"person {person_id} not found")
    # Their statements being applied meanwhile would still see them as current: the same
    # actor locks as statements take, before the partner's (the one order everywhere).
    await store.lock_actors(conn, person_keys(known))
    await repository.lock_partner(conn, partner_id)
    person = await store.lock_person(conn, partner_id, person_id)
    assert person is not None  # people are never deleted
    if person["left_at"] is not None:
        return person
    if left_at < person["joined_at"]:
        raise Unprocessable(
            f"left_at must not be before the person joined ({person['joined_at'].isoformat()})"
        )
    row = await store.mark_left(conn, person_id, left_at, by)
    await refresh(conn, outbox, config, partner_id, as_of=at, acted_by=by)
    return row


def person_keys(person: Row) -> list[str]:
    """The actor keys a registered person's statements carry."""
    keys = [mbox_key(person["email"])]
    if person["lms_account"] is not None:
        keys.append(person["lms_account"])
    return keys
