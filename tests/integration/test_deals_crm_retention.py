"""Retention of deals' CRM bookkeeping on a scratch schema: refused items, finished resync
requests and reconciliation reports older than the retention are deleted in batches; a
pending resync request is never deleted, however old, and nothing younger is."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.deals.jobs import purge
from tests.support.deals import deals_pool
from tests.support.infra import Infra

pytestmark = pytest.mark.integration


async def test_old_refused_items_finished_resyncs_and_reports_are_purged_in_batches(
    infra: Infra,
) -> None:
    now = datetime.now(UTC)
    old, young = now - timedelta(days=40), now - timedelta(days=2)
    async with deals_pool(infra) as pool:
        await pool.executemany(
            """INSERT INTO crm_refused (source, received_at, item_index, reason, item)
               VALUES ('hubspot', $1, 0, $2, '\\x7b7d')""",
            [(old, "old-1"), (old, "old-2"), (old, "old-3"), (young, "young")],
        )
        await pool.executemany(
            """INSERT INTO crm_resyncs (source, record_id, reason, requested_at, due_at, done_at)
               VALUES ('salesforce', $1, 'gap', $2, $2, $3)""",
            [("done-old", old, old), ("pending-old", old, None), ("done-young", young, young)],
        )
        await pool.executemany(
            """INSERT INTO crm_reconciliations (source, started_at, finished_at, since, checked,
                   in_sync, missing_here, stale_here, deleted_upstream, resyncs_queued, drift)
               VALUES ('salesforce', $1, $1, $1, 0, 0, 0, 0, 0, 0, '{}')""",
            [(old,), (young,)],
        )
        purged = await purge(pool, now - timedelta(days=30), batch_size=2)
        again = await purge(pool, now - timedelta(days=30), batch_size=2)
        refused = [r["reason"] for r in await pool.fetch("SELECT reason FROM crm_refused")]
        resyncs = sorted(
            r["record_id"] for r in await pool.fetch("SELECT record_id FROM crm_resyncs")
        )
        reports = await pool.fetchval("SELECT count(*) FROM crm_reconciliations")
    assert (purged.refused, purged.resyncs, purged.reconciliations) == (3, 1, 1)
    assert not again
    assert refused == ["young"]
    assert resyncs == ["done-young", "pending-old"]
    assert reports == 1
