"""CRM account -> partner links, kept by channel managers: a link is proposed, then confirmed;
confirming or removing one settles again every deal whose CRM reference it resolves (a credit
parked as unmatched is issued, or a removed link's credits are reversed inside the lock
period), in one transaction with the link. The reference's lock, taken before any deal's,
keeps a deal snapshot naming it from slipping between the two (see `deal_states`)."""

from __future__ import annotations

from dataclasses import dataclass

from services.attribution import repository
from services.attribution.crediting import DealBook
from services.attribution.domain.config import AttributionConfig
from services.attribution.domain.crm_links import (
    CrmLink,
    LinkStatus,
    check_confirmation,
    check_proposal,
)
from services.attribution.domain.models import CannotAttribute
from services.attribution.touchpoints import DealCannotBeAttributed
from shared.audit import record_action
from shared.clock import now
from shared.db import Connection
from shared.errors import NotFound
from shared.identity import Caller
from shared.outbox import Outbox


class LinkNotFound(NotFound):
    def __init__(self, source: str, external_id: str) -> None:
        super().__init__(f"no link for {source} reference {external_id!r}")


@dataclass(frozen=True)
class LinkChange:
    link: CrmLink
    changed: bool  # False: confirmed before
    deals_settled: list[str]


async def propose(conn: Connection, link: CrmLink, acting: Caller) -> None:
    """Within the caller's transaction (its answer is read there: a link re-read after the
    commit could already be another's, or gone)."""
    await repository.lock_references(conn, [link.external_id])
    check_proposal(await repository.crm_link(conn, link.source, link.external_id), link.partner_id)
    await repository.propose_link(conn, link, acting.subject, now())
    await record_action(conn, acting, "crm_link.propose", link.label)


async def confirm(
    conn: Connection,
    outbox: Outbox,
    config: AttributionConfig,
    source: str,
    external_id: str,
    approved: str,
    acting: Caller,
) -> LinkChange:
    """Confirm the link for `approved`, the partner the manager read it proposed for; within
    the caller's transaction. The confirmation that releases credits is audited."""
    link = await _locked_link(conn, source, external_id)
    check_confirmation(link, approved)
    if not await repository.confirm_link(conn, source, external_id, acting.subject, now()):
        return LinkChange(link, False, [])
    await record_action(conn, acting, "crm_link.confirm", link.label)
    confirmed = CrmLink(source, external_id, link.partner_id, LinkStatus.CONFIRMED)
    trigger = f"CRM link {link.label} confirmed"
    settled = await _settle_naming(conn, outbox, config, confirmed, trigger)
    return LinkChange(confirmed, True, settled)


async def _locked_link(conn: Connection, source: str, external_id: str) -> CrmLink:
    """The link, with every deal naming its reference locked (a snapshot being settled waits),
    or LinkNotFound."""
    await repository.lock_references(conn, [external_id])
    link = await repository.crm_link(conn, source, external_id)
    if link is None:
        raise LinkNotFound(source, external_id)
    return link


async def remove(
    conn: Connection,
    outbox: Outbox,
    config: AttributionConfig,
    source: str,
    external_id: str,
    acting: Caller,
) -> LinkChange:
    """Within the caller's transaction."""
    link = await _locked_link(conn, source, external_id)
    await repository.remove_link(conn, source, external_id)
    await record_action(conn, acting, "crm_link.remove", link.label)
    trigger = f"CRM link {link.label} removed"
    settled = await _settle_naming(conn, outbox, config, link, trigger)
    return LinkChange(link, True, settled)


async def _settle_naming(
    conn: Connection, outbox: Outbox, config: AttributionConfig, link: CrmLink, trigger: str
) -> list[str]:
    keys = await repository.deals_naming(conn, link)
    if not keys:
        return []
    book = await DealBook.load(conn, keys)
    at = now()
    for key in keys:
        try:
            book.resync_crm_partner(config, key, at=at, trigger=trigger)
        except CannotAttribute as error:
            raise DealCannotBeAttributed(key, error) from error
    await book.save(conn)
    await outbox.publish_many(conn, book.events)
    return keys
