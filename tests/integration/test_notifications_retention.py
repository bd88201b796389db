"""Retention of what notifications keeps for its logs, on a scratch notifications schema: the
deliveries delivered and the mails finished longer ago than the retention go (a delivery's
attempts with it); pending ones, and recent ones, stay."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from services.notifications.repository import purge_delivered
from shared.clock import now
from shared.db import Pool
from tests.support.infra import Infra
from tests.support.notifications import queued_endpoint, scratch_notifications

pytestmark = pytest.mark.integration


@pytest.fixture
async def pool(infra: Infra) -> AsyncIterator[Pool]:
    async with scratch_notifications(infra, max_size=2) as scratch:
        yield scratch


async def test_finished_deliveries_and_mails_go_after_the_retention_and_pending_ones_stay(
    pool: Pool,
) -> None:
    """Found in review: every delivery (a signed payload per message per endpoint), every
    attempt and every mail (address and body) was kept for ever."""
    endpoint = await queued_endpoint(
        pool, "https://hooks.example/x", ["old", "recent", "waiting", "old-too"]
    )
    long_ago, lately = now() - timedelta(days=40), now() - timedelta(days=2)
    subjects = {"old": long_ago, "recent": lately, "old-too": long_ago}
    for subject, at in subjects.items():
        await pool.execute(
            """UPDATE webhook_deliveries SET status = 'delivered', delivered_at = $2
               WHERE payload LIKE '%' || $1 || '"}}'""",
            subject,
            at,
        )
    await pool.execute(
        """INSERT INTO webhook_attempts (delivery_id, attempt, attempted_at, duration_ms)
           SELECT delivery_id, 1, now(), 5 FROM webhook_deliveries"""
    )
    await pool.executemany(
        """INSERT INTO emails (email_id, recipient_kind, recipient, address, subject, body,
               positions, status, sent_at, next_attempt_at)
           VALUES (gen_random_uuid(), 'partner', 'ptn_runs', 'a@partner.example', $1, 'b',
               '{}', $2, $3, coalesce($3, now()))""",
        [
            ("sent long ago", "sent", long_ago),
            ("sent lately", "sent", lately),
            ("still pending", "pending", None),
        ],
    )
    purged = await purge_delivered(pool, now() - timedelta(days=30), batch_size=1)
    assert purged == 3  # two deliveries, one mail
    kept = await pool.fetch(
        "SELECT payload, status FROM webhook_deliveries WHERE endpoint_id = $1 ORDER BY position",
        endpoint.endpoint_id,
    )
    assert [("recent" in r["payload"] or "waiting" in r["payload"], r["status"]) for r in kept] == [
        (True, "delivered"),
        (True, "pending"),
    ]
    assert await pool.fetchval("SELECT count(*) FROM webhook_attempts") == 2
    mails = await pool.fetch("SELECT subject FROM emails ORDER BY subject")
    assert [m["subject"] for m in mails] == ["sent lately", "still pending"]
    assert await purge_delivered(pool, now() - timedelta(days=30)) == 0
