"""The scripted story through the five real service processes, every outcome asserted."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

import httpx
import pytest

from deploy.story import tell_story
from tests.support.infra import Infra
from tests.support.polling import eventually
from tests.support.processes import ADMIN, ADMIN_TOKEN, Fleet

pytestmark = pytest.mark.e2e


async def test_the_scripted_story(fleet: Fleet, infra: Infra, admin_db: Any) -> None:
    result, _ = await tell_story(fleet.urls, ADMIN_TOKEN)
    alpine, delta, ember = (result.partners[k] for k in ("alpine", "delta", "ember"))

    # Rules of engagement.
    clean = result.decisions["clean"]
    assert clean["status"] == "approved"
    conflict = result.decisions["partner_conflict"]
    assert conflict["status"] == "rejected"
    # A partner hears the kind of conflict, never who or which registration it is with.
    assert [
        (c["kind"], c["reference"], c["party"], c["matched_on"]) for c in conflict["conflicts"]
    ] == [("partner", None, None, "name")]
    direct = result.decisions["direct_conflict"]
    assert direct["status"] == "pending_review"
    assert [(c["kind"], c["party"]) for c in direct["conflicts"]] == [("direct_sales", None)]
    assert result.rep not in str(direct)

    # Attribution: a three-partner split that sums exactly, corrected after close.
    def split(view: dict[str, Any]) -> dict[str, tuple[str, Decimal]]:
        return {c["partner_id"]: (c["kind"], Decimal(c["amount"])) for c in view["credits"]}

    before, after = split(result.credits_before), split(result.credits_after)
    assert sum(amount for _, amount in before.values()) == result.won_amount
    assert sum(amount for _, amount in after.values()) == result.corrected_amount
    assert before[alpine.partner_id][0] == "sourced"
    assert {before[delta.partner_id][0], before[ember.partner_id][0]} == {"influenced"}
    assert set(before) == set(after) == {alpine.partner_id, delta.partner_id, ember.partner_id}
    assert len(result.credits_after["history"]) == 3  # every original credit reversed in full

    # Incentives: each reversed credit's entries cancel exactly; the balance is the sum.
    for key in ("alpine", "delta", "ember"):
        partner = result.partners[key]
        entries = await admin_db.fetch(
            "SELECT credit_id, entry_type, amount FROM incentives.ledger_entries WHERE partner_id = $1",
            partner.partner_id,
        )
        per_credit: dict[str, Decimal] = defaultdict(Decimal)
        for entry in entries:
            per_credit[entry["credit_id"]] += entry["amount"]
        reversed_ids = {c["credit_id"] for c in result.credits_after["history"]}
        active_ids = {c["credit_id"] for c in result.credits_after["credits"]}
        mine_reversed = [cid for cid in per_credit if cid in reversed_ids]
        mine_active = [cid for cid in per_credit if cid in active_ids]
        assert len(mine_reversed) == 1
        assert len(mine_active) == 1
        assert per_credit[mine_reversed[0]] == 0
        assert per_credit[mine_active[0]] > 0
        balance = Decimal(result.balances[key]["balance"]["balance"])
        assert balance == sum((e["amount"] for e in entries), Decimal(0))
        assert balance == per_credit[mine_active[0]]

    # Expiry.
    status = await admin_db.fetchval(
        "SELECT status FROM deals.registrations WHERE registration_id = $1",
        result.expired_registration,
    )
    assert status == "expired"

    # Notifications, as each partner reads its inbox in the notifications service; the rep's
    # message is in the rep's inbox, never in the partner's.
    names = {p.partner_id: k for k, p in result.partners.items()}
    notifications = fleet.url("notifications")

    async def inbox_of(path: str, headers: dict[str, str]) -> list[dict[str, Any]]:
        async with httpx.AsyncClient(timeout=10) as client:
            page = await client.get(
                f"{notifications}{path}", params={"limit": 200}, headers=headers
            )
            assert page.status_code == 200, page.text
            items: list[dict[str, Any]] = page.json()["items"]
            return items

    async def everything_filed() -> dict[str, list[str]] | None:
        kinds = {
            key: [
                m["kind"] for m in await inbox_of(f"/partners/{p.partner_id}/notifications", p.auth)
            ]
            for key, p in result.partners.items()
        }
        settled = all(kinds[k].count("clawback") == 1 for k in ("alpine", "delta", "ember"))
        return kinds if settled and "expired" in kinds["delta"] else None

    received = await eventually(everything_filed, 45, what="every partner's notifications")

    def kinds(key: str) -> list[str]:
        return received[key]

    for key in names.values():
        assert kinds(key)[:3] == ["partner_status"] * 3  # qualified, onboarding, active
    assert "registration_approved" in kinds("alpine")
    assert "conflict" in kinds("birch")
    assert "direct_sales_conflict" not in kinds("cobalt")
    assert "pending_review" in kinds("cobalt")
    rep = await inbox_of(f"/owners/{result.rep}/notifications", ADMIN)
    assert [(m["kind"], names[m["partner_id"]]) for m in rep] == [
        ("direct_sales_conflict", "cobalt")
    ]
    for key in ("alpine", "delta", "ember"):
        assert kinds(key).count("credit_issued") == 2
        assert kinds(key).count("credit_reversed") == 1
        assert kinds(key).count("earning") == 2
        assert kinds(key).count("clawback") == 1
    assert kinds("delta").count("expired") == 1
    assert "earning" not in kinds("birch") + kinds("cobalt")


async def test_metrics_show_progress_and_the_lag_drains(fleet: Fleet) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        for service in ("deals", "attribution", "incentives", "onboarding", "notifications"):

            async def drained(service: str = service) -> Any:
                metrics = (await client.get(f"{fleet.url(service)}/metrics.json")).json()
                lags = metrics["consumer_lag"]
                done = lags and all(lag.get("total") == 0 for lag in lags.values())
                return metrics if done and metrics["outbox_backlog"] == 0 else None

            metrics = await eventually(drained, 45, what=f"{service}'s consumers to catch up")
            assert set(metrics["consumer_lag"]) == set(metrics["consumers"])
            assert all("processed" in counts for counts in metrics["consumers"].values())
            assert metrics["outbox_published_total"] >= 0
