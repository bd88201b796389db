"""A pre-approval's activity lies within its campaign and its claim deadline is the campaign's
end + the claim window, as programme last announced that end, on a real Postgres schema: a
request outside the campaign's dates is a 422 naming both ranges (a probe asked for two years
of a ten-day campaign and, approved, could claim for two years); a moved end moves the
deadline of the campaign's approved pre-approvals (announced), also when the move and an
approval meet; claims past it are refused and the expiry job releases the rest; pre-approvals
stored before keep their window, counted from their campaign's end."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from services.incentives import handlers, mdf_preapprovals, preapproval_repository
from services.incentives.domain.preapprovals import PreapprovalConflict
from services.incentives.domain.programs import IncentivePrograms
from shared.consumer import HandlerContext
from shared.db import Connection, Pool, create_pool
from shared.errors import Unprocessable
from shared.events import Envelope, InvalidEvent
from shared.events.programme_service import CampaignChanged
from tests.support.incentives import (
    MIGRATIONS,
    OUTBOX,
    POLICY,
    ask,
    budget,
    campaign_changed,
    claim_on,
    decide,
    fund_state,
    funded_partner,
)
from tests.support.infra import (
    ScratchService,
    migrations_before,
    scratch_pool_fixture,
)
from tests.support.outbox import event_json
from tests.support.polling import eventually

pytestmark = pytest.mark.integration
D = Decimal


pool = scratch_pool_fixture("incentives", MIGRATIONS)


def today() -> date:
    return datetime.now(UTC).date()


def deadline(campaign_ends_on: date) -> datetime:
    """The end of the campaign's last day + POLICY's 30-day window."""
    return datetime.combine(campaign_ends_on + timedelta(days=31), time(), UTC)


def moved(partner: str, ends_on: date, **changes: Any) -> CampaignChanged:
    """Programme's newer word on camp-1 (running from today), its last day `ends_on`."""
    return campaign_changed(
        "camp-1", partner, ends_on=ends_on, **({"changed_at": datetime.now(UTC)} | changes)
    )


async def follow(conn: Connection, change: CampaignChanged) -> None:
    """The change as the campaigns consumer applies it, recording what it announces."""
    cause = Envelope.wrap(change, source="pollinate/programme", subject=change.campaign_id)
    await OUTBOX.publish_many(conn, await mdf_preapprovals.follow_campaigns(conn, [cause]))


async def followed(pool: Pool, change: CampaignChanged) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await follow(conn, change)


async def expires_at(pool: Pool, preapproval_id: str) -> datetime:
    found = await pool.fetchval(
        "SELECT expires_at FROM mdf_preapprovals WHERE preapproval_id = $1", preapproval_id
    )
    assert isinstance(found, datetime)
    return found


async def test_the_activity_lies_within_its_campaign_and_claims_run_to_the_campaigns_end(
    pool: Pool,
) -> None:
    programs = IncentivePrograms()
    partner = await funded_partner(pool, programs, "2000.00")  # camp-1: today .. today + 10
    first, last = today(), today() + timedelta(days=10)
    for n, (starts, ends) in enumerate(
        (
            (first - timedelta(days=200), first + timedelta(days=700)),  # the probe's
            (first - timedelta(days=1), first + timedelta(days=5)),
            (first + timedelta(days=5), last + timedelta(days=1)),
        )
    ):
        with pytest.raises(Unprocessable) as refused:
            await ask(
                pool, programs, partner, budget("10.00", f"out-{n}", starts_on=starts, ends_on=ends)
            )
        assert str(refused.value) == (
            f"the activity's dates {starts}..{ends} lie outside campaign camp-1's dates "
            f"{first}..{last}: a pre-approval is for spending within its campaign"
        )
    assert await pool.fetchval("SELECT count(*) FROM mdf_preapprovals") == 0

    # a three-day webinar inside it: claims are taken until the campaign's end + the window,
    # not the webinar's
    short = budget("300.00", starts_on=first + timedelta(days=1), ends_on=first + timedelta(days=3))
    pa = await ask(pool, programs, partner, short)
    assert (await decide(pool, pa, approve=True))["expires_at"] == deadline(last)
    whole = await ask(pool, programs, partner, budget("10.00", "edges"))  # its very dates
    assert (await decide(pool, whole, approve=True))["expires_at"] == deadline(last)


async def test_the_deadline_follows_programmes_moves_of_the_campaigns_end(pool: Pool) -> None:
    programs = IncentivePrograms()
    partner = await funded_partner(pool, programs, "2000.00")
    pa = await ask(pool, programs, partner, budget("500.00"))
    await decide(pool, pa, approve=True)
    requested = await ask(pool, programs, partner, budget("20.00", "later"))
    assert await expires_at(pool, pa) == deadline(today() + timedelta(days=10))

    await followed(pool, moved(partner, today() + timedelta(days=20)))  # extended
    assert await expires_at(pool, pa) == deadline(today() + timedelta(days=20))
    stale = moved(partner, today(), changed_at=datetime.now(UTC) - timedelta(hours=1))
    await followed(pool, stale)  # an older word read late moves nothing
    assert await expires_at(pool, pa) == deadline(today() + timedelta(days=20))
    await followed(pool, moved(partner, today() + timedelta(days=2)))  # shortened
    assert await expires_at(pool, pa) == deadline(today() + timedelta(days=2))
    # approved later, a pre-approval counts from the end as it stands
    assert (await decide(pool, requested, approve=True))["expires_at"] == deadline(
        today() + timedelta(days=2)
    )
    await claim_on(pool, programs, partner, pa, "100.00")  # inside the window: pending

    # programme's word read late: the campaign ended 40 days ago, so its window has closed
    long_ago = today() - timedelta(days=40)
    await followed(pool, moved(partner, long_ago, starts_on=long_ago))
    closed = deadline(long_ago)
    assert await expires_at(pool, pa) == closed
    reason = (
        f"pre-approval {pa} stopped accepting claims at {closed.isoformat()}: its campaign's "
        "last day plus the claim window"
    )
    with pytest.raises(PreapprovalConflict) as refused:
        await claim_on(pool, programs, partner, pa, "1.00")
    assert str(refused.value) == reason
    async with pool.acquire() as conn:  # the expiry job releases what no claim awaits
        assert await mdf_preapprovals.expire_due(conn, OUTBOX) == 2
    assert (await fund_state(pool, partner))["available"] == "1900.00"  # the claim's 100 held
    with pytest.raises(PreapprovalConflict) as refused:  # the same reason once expired
        await claim_on(pool, programs, partner, pa, "1.00")
    assert str(refused.value) == reason

    rows = await pool.fetch(
        """SELECT value, value_codec FROM outbox WHERE event_type = 'incentive.mdf_preapproval_changed.v1'
           ORDER BY position"""
    )
    changes = [event_json(r) for r in rows]
    ends = [today() + timedelta(days=d) for d in (10, 20, 2)] + [long_ago]
    assert [
        (c["data"]["status"], c["data"]["expires_at"])
        for c in changes
        if c["data"]["preapproval_id"] == pa
    ] == [
        ("requested", None),
        *[("approved", deadline(end).isoformat().replace("+00:00", "Z")) for end in ends],
        ("expired", closed.isoformat().replace("+00:00", "Z")),
    ]


async def test_a_budget_of_a_campaign_ending_too_late_for_a_deadline_is_refused(
    pool: Pool,
) -> None:
    """Programme refuses such an end now and the consumer refuses a word carrying one; a
    campaign stored with one before answers 422 when its budget is approved (it answered 500:
    61 days after 9999-12-30 has no date) and when one is asked for."""
    programs = IncentivePrograms()
    partner = await funded_partner(pool, programs, "2000.00")
    pa = await ask(pool, programs, partner, budget("500.00"))
    reason = (
        "campaign camp-1 ends on 9999-12-30: after 9998-12-30 its claims' deadline would have "
        "no date"
    )
    too_late = moved(partner, date(9999, 12, 30))
    word = Envelope.wrap(too_late, source="pollinate/programme", subject="camp-1")
    async with pool.acquire() as conn, conn.transaction():
        context = HandlerContext(conn, OUTBOX, "programme.campaigns.v1", 0, 0)
        with pytest.raises(InvalidEvent) as invalid:
            await handlers.on_campaigns(context, [word])
    assert str(invalid.value) == reason  # dead-lettered with it
    assert (
        await pool.fetchval("SELECT ends_on FROM campaigns WHERE campaign_id = 'camp-1'")
        != too_late.ends_on
    )
    await followed(pool, too_late)  # stored by a version before the check
    with pytest.raises(Unprocessable) as refused:
        await decide(pool, pa, approve=True)
    assert str(refused.value) == reason
    with pytest.raises(Unprocessable) as refused:
        await ask(pool, programs, partner, budget("20.00", "later"))
    assert str(refused.value) == reason
    assert (await decide(pool, pa, approve=False, note="no deadline"))["status"] == "rejected"


async def test_an_approval_meeting_a_move_of_the_end_counts_from_the_moved_end(
    pool: Pool,
) -> None:
    """The consumer moving the end holds the campaign until it commits; an approval under way
    waits for it rather than computing its deadline from the end being replaced (which no
    later move would correct: the move found it still requested)."""
    programs = IncentivePrograms()
    partner = await funded_partner(pool, programs, "2000.00")
    pa = await ask(pool, programs, partner, budget("500.00"))
    later = today() + timedelta(days=30)
    async with pool.acquire() as moving, pool.acquire() as approving:
        async with moving.transaction():
            await follow(moving, moved(partner, later))
            pid = approving.get_server_pid()

            async def approve() -> Any:
                async with approving.transaction():
                    return await mdf_preapprovals.decide(
                        approving, OUTBOX, POLICY, pa, approve=True, note=""
                    )

            approval = asyncio.create_task(approve())

            async def waiting() -> bool:
                state = await pool.fetchval(
                    "SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1", pid
                )
                return approval.done() or state == "Lock"  # done: it did not wait

            await eventually(waiting, what="the approval to wait for the campaign's move")
            assert not approval.done(), approval.result()
        assert (await approval)["expires_at"] == deadline(later)


async def test_approved_pre_approvals_stored_before_count_their_window_from_the_campaign(
    scratch_service: ScratchService, tmp_path: Path
) -> None:
    """Before the check, a pre-approval could run past its campaign and its deadline counted
    from its own end: an approved one keeps the window it was approved with (60 days here),
    from the campaign's last day, and one whose deadline thereby passed is expired by the next
    run of the job; one still requested, and the dates asked, stay as they were."""
    before = migrations_before(
        MIGRATIONS, "0010_preapproval_campaign_deadlines.sql", tmp_path / "migrations"
    )
    await scratch_service.migrate("incentives", before)
    pool = await create_pool(scratch_service.dsn, scratch_service.schema, max_size=2)
    ended = {"camp-old": today() - timedelta(days=30), "camp-gone": today() - timedelta(days=70)}
    try:
        for campaign_id, last in ended.items():
            await pool.execute(
                "INSERT INTO campaigns VALUES ($1, '{p-old}', $2, $3, NULL, now())",
                campaign_id,
                last - timedelta(days=9),
                last,
            )
        await pool.execute(
            "INSERT INTO mdf_funds (partner_id, created_at, reserved) VALUES ('p-old', now(), 35)"
        )
        rows = (  # id, campaign, status, reserved, its last day from today
            ("pa-far", "camp-old", "approved", D("10.00"), 700),  # the probe's
            ("pa-near", "camp-old", "approved", D("20.00"), -35),  # ended before its campaign
            ("pa-gone", "camp-gone", "approved", D("5.00"), 700),
            ("pa-asked", "camp-old", "requested", D("0.00"), 700),
        )
        for preapproval_id, campaign_id, status, reserved, last_day in rows:
            ends_on = today() + timedelta(days=last_day)
            await pool.execute(
                """INSERT INTO mdf_preapprovals (preapproval_id, partner_id, reference,
                       campaign_id, activity_kind, description, starts_on, ends_on, amount,
                       currency, status, reserved, expires_at, requested_at)
                   VALUES ($1, 'p-old', $1, $2, 'webinar', 'booth', $3, $4, 50, 'USD', $5, $6,
                       $7, now())""",
                preapproval_id,
                campaign_id,
                today() - timedelta(days=200),
                ends_on,
                status,
                reserved,
                deadline(ends_on + timedelta(days=30)) if status == "approved" else None,
            )
        await scratch_service.migrate("incentives", MIGRATIONS)
        found = {
            r["preapproval_id"]: (r["ends_on"], r["expires_at"])
            for r in await pool.fetch("SELECT * FROM mdf_preapprovals")
        }
        old_end = deadline(ended["camp-old"] + timedelta(days=30))
        gone_end = deadline(ended["camp-gone"] + timedelta(days=30))
        assert found == {
            "pa-far": (today() + timedelta(days=700), old_end),  # was two years away
            "pa-near": (today() - timedelta(days=35), old_end),
            "pa-gone": (today() + timedelta(days=700), gone_end),  # passed 9 days ago
            "pa-asked": (today() + timedelta(days=700), None),
        }
        async with pool.acquire() as conn:
            assert await mdf_preapprovals.expire_due(conn, OUTBOX) == 1
            gone = await preapproval_repository.row(conn, "pa-gone")
            assert gone is not None
            assert gone["status"] == "expired"
            after = old_end + timedelta(seconds=1)
            assert await mdf_preapprovals.expire_due(conn, OUTBOX, at=after) == 2
        assert await pool.fetchval("SELECT reserved FROM mdf_funds") == D("0.00")
    finally:
        await pool.close()
