"""How long the webhook deliverer's claim takes (`claim_endpoints`: lease the endpoints whose
head delivery is due) with many registered endpoints and few of them with work, as a platform
with thousands of partners has: on a scratch notifications schema, `--endpoints` endpoints of
which `--busy` have a pending delivery; each claim's leases are released before the next.
Prints the claim's wall time percentiles and Postgres' CPU per claim (with the release: one
statement on the claimed endpoints' keys).

    eval "$(deploy/local-stack.sh env)"
    python -m benchmarks.webhook_claims [--endpoints 5000] [--busy 20] [--claims 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
import uuid
from typing import Any

from benchmarks.cpu_meter import CpuMeter
from services.notifications.webhook_repository import claim_endpoints
from shared.db import Pool
from tests.support.infra import ROOT, Infra, migrated_pool, scratch_schema
from tests.support.notifications import queued_endpoint

MIGRATIONS = ROOT / "services" / "notifications" / "migrations"


async def register(pool: Pool, endpoints: int, busy: int) -> None:
    """`endpoints` endpoints with nothing queued but a delivered history of one delivery each,
    and `busy` more with one pending delivery each."""
    await pool.execute(
        """INSERT INTO webhook_endpoints (endpoint_id, partner_id, url, secret)
           SELECT gen_random_uuid(), 'ptn_idle_' || n, 'http://127.0.0.1:9/idle', 'whsec_x'
           FROM generate_series(1, $1) AS n""",
        endpoints,
    )
    await pool.execute(
        """INSERT INTO webhook_deliveries (delivery_id, endpoint_id, partner_id, position,
               message_id, event_type, payload, status)
           SELECT gen_random_uuid(), endpoint_id, partner_id, 1, gen_random_uuid(),
                  'notification.other', '{}', 'delivered'
           FROM webhook_endpoints"""
    )
    for _ in range(busy):
        await queued_endpoint(pool, "http://127.0.0.1:9/busy", ["waiting"])
    await pool.execute("ANALYZE")


async def run(endpoints: int, busy: int, claims: int) -> dict[str, Any]:
    infra = Infra.from_env(os.environ)
    async with (
        scratch_schema(infra) as scratch,
        migrated_pool(scratch, "notifications", MIGRATIONS, max_size=1) as pool,
    ):
        await register(pool, endpoints, busy)
        owner = uuid.uuid4()
        meter = CpuMeter(infra.admin_dsn, {})
        times: list[float] = []
        await meter.start()
        for _ in range(claims):
            started = time.perf_counter()
            claimed = await claim_endpoints(pool, owner, 32, 60.0)
            times.append((time.perf_counter() - started) * 1000)
            assert len(claimed) == min(busy, 32), len(claimed)
            await pool.execute(
                """UPDATE webhook_endpoints SET lease_until = NULL, lease_owner = NULL
                   WHERE endpoint_id = ANY($1::uuid[])""",
                [endpoint.endpoint_id for endpoint in claimed],
            )
        await meter.stop()
    return {
        "endpoints": endpoints + busy,
        "with_work": busy,
        "claim_ms_p50": round(statistics.median(times), 2),
        "claim_ms_p99": round(statistics.quantiles(times, n=100)[98], 2),
        "postgres_cpu_ms_per_claim": meter.per_deal(claims)["cpu_ms_per_deal"].get("postgres"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoints", type=int, default=5000)
    parser.add_argument("--busy", type=int, default=20)
    parser.add_argument("--claims", type=int, default=300)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.endpoints, args.busy, args.claims))))


if __name__ == "__main__":
    main()
