"""Query plans as the real planner makes them, for tests that hold a lookup to its index."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any


def plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from plan_nodes(child)


async def explain(conn: Any, sql: str, *args: object) -> list[dict[str, Any]]:
    """Every node of `sql`'s plan, run (ANALYZE, BUFFERS) with `args`."""
    raw = await conn.fetchval(f"EXPLAIN (FORMAT JSON, ANALYZE, BUFFERS) {sql}", *args)
    document = json.loads(raw) if isinstance(raw, str) else raw
    return list(plan_nodes(document[0]["Plan"]))
