"""Two health runs of one day at once (the hourly job runs on every instance): each reads all
its partners' inputs first, then stores them a partner a transaction over the run's length, so
the runs may store in either order. The day's row must end with the inputs read last, and the
older run must neither replace it nor announce a move from a score nobody stored."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from services.attribution import health_repository as store
from services.attribution.domain.config import AttributionConfig
from services.attribution.domain.health import health_score
from services.attribution.health_scoring import run_health
from services.attribution.health_views import health_inputs_of
from shared.db import Pool
from shared.outbox import Outbox
from tests.support.infra import ROOT, ScratchService, migrated_pool
from tests.support.locks import waiter_of
from tests.support.outbox import event_json

pytestmark = pytest.mark.integration
MIGRATIONS = ROOT / "services" / "attribution" / "migrations"
PARTNER = "p-health"
AS_OF = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
CONFIG = AttributionConfig()


@pytest.fixture
async def pool(scratch_service: ScratchService) -> AsyncIterator[Pool]:
    async with migrated_pool(scratch_service, "attribution", MIGRATIONS) as pool:
        await pool.execute(
            """INSERT INTO partner_access (partner_id, status, version, changed_at)
               VALUES ($1, 'active', 1, now())""",
            PARTNER,
        )
        yield pool


def outbox() -> Outbox:
    return Outbox("attribution", "pollinate/attribution")


async def add_credit(pool: Pool, credit_id: str, amount: str) -> None:
    """A credit of the partner closed the day before: revenue its next read sees."""
    await pool.execute(
        """INSERT INTO credits (credit_id, deal_key, partner_id, kind, amount, currency,
               original_amount, original_currency, fx_rate, share, model, config_version,
               reasons, close_date, deal_revision, issued_at)
           VALUES ($1, 'd-' || $1, $2, 'sourced', $3::numeric, 'USD', $3::numeric, 'USD', 1, 1,
               'm', 'v', '[]', $4, 1, now())""",
        credit_id,
        PARTNER,
        amount,
        AS_OF.date() - timedelta(days=1),
    )


async def stored_revenue(pool: Pool) -> Decimal:
    inputs = await pool.fetchval(
        "SELECT inputs ->> 'revenue' FROM health_scores WHERE partner_id = $1 AND day = $2",
        PARTNER,
        AS_OF.date(),
    )
    return Decimal(inputs)


async def announced_scores(pool: Pool) -> list[tuple[str | None, str]]:
    """(previous_score, score) of each health announcement in the outbox, in order."""
    rows = await pool.fetch(
        "SELECT value, value_codec FROM outbox WHERE event_type = $1 ORDER BY position",
        "partner.health_scored.v1",
    )
    return [(event_json(r)["data"]["previous_score"], event_json(r)["data"]["score"]) for r in rows]


async def test_an_older_read_stored_last_leaves_the_newer_day_and_announces_nothing(
    pool: Pool,
) -> None:
    await add_credit(pool, "c-1", "1000")
    first = await run_health(pool, outbox(), CONFIG, AS_OF)
    assert first.done == {PARTNER: ["scored", "announced"]}
    assert await stored_revenue(pool) == Decimal("1000")

    # The older run: it reads (revenue 1000 with a second credit yet to come), then waits for
    # the partner's day, held here while a newer run's result is stored and committed.
    key = store.partner_day_key(PARTNER, AS_OF.date())
    async with pool.acquire() as holder, holder.transaction():
        await holder.execute("SELECT pg_advisory_xact_lock($1)", key)
        older = asyncio.create_task(run_health(pool, outbox(), CONFIG, AS_OF))
        async with pool.acquire() as observer:
            await waiter_of(observer, key, what="the older run waiting for the partner's day")
        await add_credit(pool, "c-2", "500")
        # What a run that began to read now stores (and announces: published).
        read_later = await store.database_clock(holder)
        newer = (await health_inputs_of(holder, CONFIG, [PARTNER], AS_OF.date()))[PARTNER]
        assert newer.revenue == Decimal("1500")
        newer_score = health_score(CONFIG.health, newer)
        stored = await store.save_scores(
            holder,
            [
                store.ScoredDay(
                    PARTNER,
                    AS_OF.date(),
                    newer,
                    newer_score,
                    CONFIG.version,
                    AS_OF,
                    published=True,
                    inputs_read_at=read_later,
                )
            ],
        )
        assert stored == {(PARTNER, AS_OF.date())}
    run = await older

    assert run.done == {PARTNER: ["superseded"]}
    assert run.announced == {}
    assert await stored_revenue(pool) == Decimal("1500")
    assert len(await announced_scores(pool)) == 1  # the first run's only

    # A run that reads after both replaces the day, and announces a move only from the score
    # the day holds.
    again = await run_health(pool, outbox(), CONFIG, AS_OF)
    assert again.done == {PARTNER: ["scored"]}  # the same inputs: the same score, no move
    assert await stored_revenue(pool) == Decimal("1500")


async def read_at_held(pool: Pool) -> datetime:
    """When the inputs the day holds were read."""
    held: datetime = await pool.fetchval(
        "SELECT inputs_read_at FROM health_scores WHERE partner_id = $1 AND day = $2",
        PARTNER,
        AS_OF.date(),
    )
    return held


async def test_a_newer_read_stored_last_replaces_the_day(pool: Pool) -> None:
    await add_credit(pool, "c-1", "1000")
    await run_health(pool, outbox(), CONFIG, AS_OF)
    first_read = await read_at_held(pool)
    await add_credit(pool, "c-2", "99000")
    later = await run_health(pool, outbox(), CONFIG, AS_OF)
    assert later.done[PARTNER][0] == "scored"
    assert await stored_revenue(pool) == Decimal("100000")
    assert await read_at_held(pool) > first_read


async def test_a_score_that_moves_back_and_forth_in_a_day_announces_every_move(
    pool: Pool,
) -> None:
    await add_credit(pool, "c-1", "1000")
    await run_health(pool, outbox(), CONFIG, AS_OF)
    for step, reversed_ in enumerate((False, True, False, True)):
        await add_credit(pool, f"c-big-{step}", "990000")
        if reversed_:
            await pool.execute(
                """UPDATE credits SET reversed_at = now(), reversal_id = 'rv-' || credit_id
                   WHERE credit_id LIKE 'c-big-%' AND reversed_at IS NULL"""
            )
        run = await run_health(pool, outbox(), CONFIG, AS_OF)
        assert run.done == {PARTNER: ["scored", "announced"]}
    moves = await announced_scores(pool)
    assert len(moves) == 5
    assert moves[3] == moves[1]  # the same move as the second, announced again
