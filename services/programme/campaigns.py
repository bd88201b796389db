"""Co-marketing campaigns: created by a channel manager (for its partners) or a partner (for
itself), results reported by its partners or their manager, cancelled by a manager; read with
its results (domain/campaigns.py), a partner seeing only its own campaigns and its own part
of their figures."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import date, datetime
from decimal import Decimal

import asyncpg

from services.programme import campaign_repository, campaign_views, views
from services.programme.campaign_schemas import (
    CampaignDetailOut,
    CampaignEditIn,
    CampaignIn,
    CampaignOut,
    CampaignResultsOut,
    CurrencyResultsOut,
    PreapprovalFactOut,
    ResultsIn,
)
from services.programme.domain.campaigns import (
    CampaignPlan,
    CampaignState,
    by_currency,
    check_cancellable,
    check_dates,
    check_edit,
    check_partners_new_campaign,
    state_of,
)
from shared.audit import record_action
from shared.clock import now
from shared.db import Connection, from_row
from shared.errors import Conflict, Forbidden, NotFound, Unprocessable
from shared.events.partners import PartnerStatus
from shared.events.programme_service import CampaignChanged
from shared.identity import Caller
from shared.outbox import Outbox, OutgoingEvent
from shared.topics import PROGRAMME_CAMPAIGNS

# Statuses whose approved amount is a budget granted to the campaign.
GRANTED = frozenset({"approved", "expired"})
# Partner statuses that may join a campaign already announced.
JOINS = frozenset({PartnerStatus.ACTIVE.value, PartnerStatus.GRACE.value})


async def create(conn: Connection, outbox: Outbox, who: Caller, body: CampaignIn) -> CampaignOut:
    """The campaign, announced in the same transaction (incentives checks the campaign an MDF
    pre-approval names against what it heard)."""
    if who.partner_id is not None:
        if any(p != who.partner_id for p in body.partner_ids):
            raise Forbidden("a partner creates campaigns only for itself")
        try:
            check_partners_new_campaign(body.ends_on, now().date())
        except ValueError as refusal:
            raise Unprocessable(str(refusal)) from None
        partners = [who.partner_id]
    else:
        if not body.partner_ids:
            raise Unprocessable("a channel manager must name partner_ids")
        partners = sorted(set(body.partner_ids))
    # As for joining one (`edit`): money and credit may follow a campaign from its start, so it
    # is run only by partners working with the programme (creation let an onboarding or a
    # suspended partner in, which an edit refused: found in review).
    await _check_partners(
        conn, partners, JOINS.__contains__, "only an active partner runs a campaign"
    )
    campaign_id = f"camp_{uuid.uuid4().hex[:20]}"
    at = now()
    await campaign_repository.insert_campaign(
        conn,
        campaign_id=campaign_id,
        name=body.name,
        kind=body.kind.value,
        description=body.description,
        starts_on=body.starts_on,
        ends_on=body.ends_on,
        partner_ids=partners,
        created_by=who.subject,
        at=at,
    )
    await record_action(conn, who, "campaign.create", campaign_id)
    found = await campaign_views.campaign(conn, campaign_id)
    assert found is not None
    record = _record(found, partners, at.date())
    await outbox.publish_many(conn, [_announced(record, at)])
    return record


async def _check_partners(
    conn: Connection, partners: Sequence[str], may: Callable[[str], bool], refusal: str
) -> None:
    """Partners the programme knows (404 otherwise) whose status `may` run the campaign (409
    with `refusal` otherwise)."""
    for partner in partners:
        status = await views.partner_status(conn, partner)
        if status is None:
            raise NotFound(f"partner {partner} not found")
        if not may(status):
            raise Conflict(f"partner {partner} is {status}: {refusal}")


async def edit(
    conn: Connection, outbox: Outbox, who: Caller, campaign_id: str, body: CampaignEditIn
) -> CampaignDetailOut:
    """Change a campaign that has not ended (domain/campaigns.py check_edit): a channel
    manager any of it; a partner a campaign it runs alone, but not its partners. A change is
    announced in the same transaction, so incentives and attribution check pre-approvals and
    touchpoints against the new dates and partners; an edit that changes nothing announces
    nothing. The campaign is locked before its partners are read: an edit waiting for another
    works from what that one wrote, never from a list it replaced."""
    found, partners = await visible(conn, who, campaign_id, lock=True)
    if who.partner_id is not None:
        if partners != [who.partner_id]:
            raise Forbidden("a partner changes only a campaign it runs alone")
        if body.partner_ids is not None:
            raise Forbidden("a partner cannot change a campaign's partners")
    at = now()
    before = CampaignPlan(found["starts_on"], found["ends_on"], frozenset(partners))
    wanted = CampaignPlan(
        body.starts_on if body.starts_on is not None else before.starts_on,
        body.ends_on if body.ends_on is not None else before.ends_on,
        frozenset(body.partner_ids) if body.partner_ids is not None else before.partner_ids,
    )
    try:
        check_dates(wanted.starts_on, wanted.ends_on)
    except ValueError as refused:
        raise Unprocessable(str(refused)) from None
    facts = await campaign_views.preapprovals(conn, campaign_id, None)
    budgeted = frozenset(f["partner_id"] for f in facts if f["status"] != "rejected")
    try:
        check_edit(
            campaign_id,
            _state(found, at.date()),
            before,
            wanted,
            budgeted=budgeted,
            today=at.date(),
            by_partner=who.partner_id is not None,
        )
    except ValueError as refused:
        raise Conflict(str(refused)) from None
    # A partner joins an announced campaign only while it works with the programme (active, or
    # in its grace period): money and credit may follow the campaign from then on.
    joining = sorted(wanted.partner_ids - before.partner_ids)
    await _check_partners(
        conn, joining, JOINS.__contains__, "only an active partner joins a campaign"
    )
    name = body.name if body.name is not None else found["name"]
    description = body.description if body.description is not None else found["description"]
    if (name, description) == (found["name"], found["description"]) and wanted == before:
        return await detail(conn, who, campaign_id)
    await campaign_repository.update_campaign(
        conn,
        campaign_id,
        name=name,
        description=description,
        starts_on=wanted.starts_on,
        ends_on=wanted.ends_on,
        partner_ids=sorted(wanted.partner_ids)
        if wanted.partner_ids != before.partner_ids
        else None,
    )
    await record_action(conn, who, "campaign.edit", campaign_id)
    changed = await campaign_views.campaign(conn, campaign_id)
    assert changed is not None
    record = _record(changed, sorted(wanted.partner_ids), at.date())
    await outbox.publish_many(conn, [_announced(record, at)])
    return await detail(conn, who, campaign_id)


async def visible(
    conn: Connection, who: Caller, campaign_id: str, *, lock: bool = False
) -> tuple[asyncpg.Record, list[str]]:
    """The campaign and its partners, if the caller may see it (another partner's is a 404,
    as a missing one). With `lock`, the campaign's row is locked before its partners are read."""
    read = campaign_repository.lock_campaign if lock else campaign_views.campaign
    found = await read(conn, campaign_id)
    partners = await campaign_views.partners_of(conn, campaign_id) if found else []
    if found is None or (who.partner_id is not None and who.partner_id not in partners):
        raise NotFound(f"campaign {campaign_id} not found")
    return found, partners


async def report_results(
    conn: Connection, who: Caller, campaign_id: str, body: ResultsIn
) -> CampaignDetailOut:
    _campaign, partners = await visible(conn, who, campaign_id)
    if who.partner_id is not None:
        if body.partner_id not in (None, who.partner_id):
            raise Forbidden("a partner reports results only for itself")
        partner = who.partner_id
    elif body.partner_id is None:
        raise Unprocessable("a channel manager must name partner_id")
    else:
        partner = body.partner_id
    if partner not in partners:
        raise Unprocessable(f"partner {partner} is not one of campaign {campaign_id}'s partners")
    await campaign_repository.insert_report(
        conn,
        campaign_id=campaign_id,
        partner_id=partner,
        leads=body.leads,
        pipeline=body.pipeline,
        currency=body.currency,
        by=who.subject,
        at=now(),
    )
    await record_action(conn, who, "campaign.results", f"{campaign_id}/{partner}")
    return await detail(conn, who, campaign_id)


async def cancel(
    conn: Connection, outbox: Outbox, who: Caller, campaign_id: str, reason: str
) -> CampaignDetailOut:
    """Cancel a campaign that has not ended, announced in the same transaction."""
    found = await campaign_repository.lock_campaign(conn, campaign_id)
    if found is None:
        raise NotFound(f"campaign {campaign_id} not found")
    at = now()
    state = _state(found, at.date())
    try:
        check_cancellable(state, campaign_id)
    except ValueError as refused:
        raise Conflict(str(refused)) from None
    await campaign_repository.cancel(conn, campaign_id, who.subject, reason, at)
    await record_action(conn, who, "campaign.cancel", campaign_id)
    cancelled = await campaign_views.campaign(conn, campaign_id)
    assert cancelled is not None
    partners = await campaign_views.partners_of(conn, campaign_id)
    record = _record(cancelled, partners, at.date())
    await outbox.publish_many(conn, [_announced(record, at)])
    return await detail(conn, who, campaign_id)


def _announced(record: CampaignOut, at: datetime) -> OutgoingEvent:
    changed = CampaignChanged(
        campaign_id=record.campaign_id,
        partner_ids=tuple(record.partner_ids),
        kind=record.kind,
        starts_on=record.starts_on,
        ends_on=record.ends_on,
        state=record.state.value,
        cancelled_at=record.cancelled_at,
        changed_at=at,
    )
    return OutgoingEvent(PROGRAMME_CAMPAIGNS, changed, record.campaign_id)


async def listing(
    conn: Connection,
    who: Caller,
    partner_id: str | None,
    limit: int,
    offset: int,
    after: str | None = None,
) -> list[CampaignOut]:
    """The campaigns, newest first; a partner's are its own, each showing only itself among
    the partners running it, as `detail` does (a joint campaign's others are not its to see)."""
    only = who.partner_id
    scope = only if only is not None else partner_id
    today = now().date()
    return [
        _record(
            row,
            await campaign_views.partners_of(conn, row["campaign_id"]) if only is None else [only],
            today,
            only,
        )
        for row in await campaign_views.campaigns(conn, scope, limit, offset, after)
    ]


async def detail(conn: Connection, who: Caller, campaign_id: str) -> CampaignDetailOut:
    """The campaign with its pre-approvals and results; a partner's view holds only its own
    part of them (a joint campaign's other partners' money is not its to see)."""
    found, partners = await visible(conn, who, campaign_id)
    only = who.partner_id
    facts = await campaign_views.preapprovals(conn, campaign_id, only)
    leads, pipeline = await campaign_views.leads_and_pipeline(conn, campaign_id, only)
    figures = by_currency(
        pipeline=pipeline,
        revenue=await campaign_views.attributed_revenue(conn, campaign_id, only),
        approved=_sum([f for f in facts if f["status"] in GRANTED], "amount"),
        reserved=_sum(facts, "reserved"),
        claimed=await campaign_views.mdf_claimed(conn, campaign_id, only),
    )
    record = _record(found, partners if only is None else [only], now().date(), only)
    return CampaignDetailOut(
        **record.model_dump(),
        preapprovals=[PreapprovalFactOut.model_validate(dict(f)) for f in facts],
        results=CampaignResultsOut(
            leads=leads,
            by_currency=[
                CurrencyResultsOut(
                    currency=f.currency,
                    pipeline=f.pipeline,
                    attributed_revenue=f.attributed_revenue,
                    mdf_approved=f.mdf_approved,
                    mdf_reserved=f.mdf_reserved,
                    mdf_claimed=f.mdf_claimed,
                    return_per_dollar=f.return_per_dollar,
                )
                for f in figures
            ],
        ),
    )


def _sum(rows: Sequence[asyncpg.Record], column: str) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = {}
    for row in rows:
        totals[row["currency"]] = totals.get(row["currency"], Decimal("0.00")) + row[column]
    return totals


def _state(row: asyncpg.Record, today: date) -> CampaignState:
    return state_of(
        row["starts_on"], row["ends_on"], cancelled=row["cancelled_at"] is not None, today=today
    )


# Who created a campaign, as a partner other than the creator's is shown it.
CREATED_ELSEWHERE = "someone outside your partner"


def _record(
    row: asyncpg.Record, partners: list[str], today: date, viewer: str | None = None
) -> CampaignOut:
    """The campaign as shown; to a partner (`viewer`) that another partner's person or the
    channel team created it for, without naming who (a joint campaign's others are not its to
    see, and a partner token's subject is `<partner>/<person>`)."""
    created_by = row["created_by"]
    if viewer is not None and not created_by.startswith(f"{viewer}/"):
        created_by = CREATED_ELSEWHERE
    return from_row(
        CampaignOut, row, state=_state(row, today), partner_ids=partners, created_by=created_by
    )
