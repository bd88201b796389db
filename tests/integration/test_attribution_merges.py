"""A CRM merge as attribution's deal-credits consumer sees it (real Kafka records, real
Postgres): deals announces the merged deal (deleted, `merged_into` the survivor), the survivor
with the registration that keeps it, the moved registration's link and the displaced one's
unlinking. Whatever order the two topics are read in, the merged deal's credits are reversed,
the touchpoint a partner reported on it follows the survivor, and the won survivor is credited
once: the sum of the active credits is its amount, the displaced partner holds none."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from services.attribution.app import NAME, definition
from services.attribution.domain.config import AttributionConfig
from shared.consumer import Outcome
from shared.db import Pool
from shared.events import Envelope
from shared.events.crm import CrmSource
from shared.events.opportunities import LinkedRegistration
from shared.events.registrations import RegistrationStatus
from tests.support.attribution import CrmDeal, closed_won, deal_credits_consumer, from_deals
from tests.support.factories import registration_status_changed
from tests.support.infra import Infra, migrated_pool, scratch_schema
from tests.support.kafka import as_records

pytestmark = pytest.mark.integration

CONFIG = AttributionConfig.model_validate({"version": "test-merge-1", "model": "linear"})
TODAY = datetime.now(UTC).date()


@pytest.fixture
async def pool(infra: Infra) -> AsyncIterator[Pool]:
    async with (
        scratch_schema(infra) as scratch,
        migrated_pool(scratch, NAME, definition.migrations) as pool,
    ):
        yield pool


def _linked(registration_id: str, partner: str, days_ago: int) -> LinkedRegistration:
    return LinkedRegistration(
        registration_id=registration_id,
        partner_id=partner,
        status=RegistrationStatus.APPROVED,
        submitted_at=datetime.now(UTC) - timedelta(days=days_ago),
    )


class Merge:
    """Deal L (registration K of partner A) and deal S (registration D of partner B), both won
    for 1,000.00 USD; partner C reported a co-sell meeting on L. Then L is merged into S: K
    was submitted first, so it keeps S; D is unlinked and goes to review."""

    def __init__(self) -> None:
        run = uuid.uuid4().hex[:8]
        self.loser = CrmDeal(f"{run}-L", CrmSource.HUBSPOT)
        self.survivor = CrmDeal(f"{run}-S", CrmSource.HUBSPOT)
        self.a, self.b, self.c = f"a-{run}", f"b-{run}", f"c-{run}"
        self.k, self.d = f"reg-k-{run}", f"reg-d-{run}"
        self.before = datetime.now(UTC) - timedelta(hours=2)
        self.at = datetime.now(UTC) - timedelta(hours=1)
        self.won = closed_won("1000.00", "USD", "", close_date=TODAY) | {"partner_ref": None}

    def _won(
        self,
        deal: CrmDeal,
        revision: int,
        moments: dict[str, datetime],
        *linked: LinkedRegistration,
        **fields: Any,
    ) -> Envelope[Any]:
        """Won `deal`'s `revision` as deals publishes it, changed at `moments`, listing the
        `linked` registrations."""
        state = deal.state(revision, registrations=linked, **moments, **self.won, **fields)
        return from_deals(state, deal.key)

    def _was_approved(
        self,
        registration_id: str,
        partner_id: str,
        status: RegistrationStatus,
        crm_deal_key: str | None,
    ) -> Envelope[Any]:
        """The approved registration's event at the merge, as deals publishes it."""
        changed = registration_status_changed(
            registration_id=registration_id,
            partner_id=partner_id,
            previous_status=RegistrationStatus.APPROVED,
            status=status,
            crm_deal_key=crm_deal_key,
            changed_at=self.at,
        )
        return from_deals(changed, registration_id)

    def initial(self) -> list[Envelope[Any]]:
        moments = {"changed_at": self.before, "ingested_at": self.before}
        return [
            self._won(self.loser, 1, moments, _linked(self.k, self.a, 20)),
            self._won(self.survivor, 1, moments, _linked(self.d, self.b, 10)),
        ]

    def merge(self) -> dict[str, Envelope[Any]]:
        """What deals publishes around the merge, by name: a change of each deal just before
        it (`L2`, `S2`: each still listing its own registration), the merge's states (`L3`:
        deleted, merged into S; `S3`: listing K) and the registrations' events (`K`: linked
        to S now; `D`: to review, linked to no deal)."""
        just_before = self.at - timedelta(minutes=1)
        earlier = {"changed_at": just_before, "ingested_at": just_before}
        moments = {"changed_at": self.at, "ingested_at": self.at}
        return {
            "L2": self._won(self.loser, 2, earlier, _linked(self.k, self.a, 20)),
            "S2": self._won(self.survivor, 2, earlier, _linked(self.d, self.b, 10)),
            "L3": self._won(self.loser, 3, moments, deleted=True, merged_into=self.survivor.key),
            "S3": self._won(self.survivor, 3, moments, _linked(self.k, self.a, 20)),
            "K": self._was_approved(self.k, self.a, RegistrationStatus.APPROVED, self.survivor.key),
            "D": self._was_approved(self.d, self.b, RegistrationStatus.PENDING_REVIEW, None),
        }


async def _consume(infra: Infra, pool: Pool, envelopes: list[Envelope[Any]]) -> None:
    consumer = deal_credits_consumer(pool, CONFIG)
    for record in await as_records(infra, envelopes):  # one at a time: the order given
        assert await consumer.process_batch([record]) == [Outcome.PROCESSED]


async def _report_meeting(pool: Pool, merge: Merge) -> None:
    """C's co-sell meeting on L, as `POST /touchpoints` by a channel manager stores it."""
    await pool.execute(
        """INSERT INTO touchpoints (touchpoint_id, deal_key, partner_id, kind, occurred_at,
               source, origin, active, approved, reported_by)
           VALUES ($1, $2, $3, 'co_sell_meeting', $4, 'crm', 'api', true, true, 'admin')""",
        f"tp_{merge.c}",
        merge.loser.key,
        merge.c,
        datetime.now(UTC) - timedelta(days=5),
    )


# Orders the merge's records can be read in: per deal (one key, one partition) in order, the
# two topics and the registrations' keys interleaved any way. Those where a registration's
# event comes before an older snapshot listing it on its old deal are the hard ones.
ORDERS = [
    ("L2", "L3", "S2", "S3", "K", "D"),  # every snapshot first
    ("K", "D", "L2", "S2", "L3", "S3"),  # the registrations' events first
    ("D", "S2", "K", "L2", "S3", "L3"),
    ("S2", "S3", "K", "L2", "D", "L3"),
    ("L2", "K", "S2", "D", "L3", "S3"),
    ("S2", "D", "S3", "L2", "L3", "K"),
]


@pytest.mark.parametrize("order", ORDERS, ids="-".join)
async def test_a_merge_moves_touchpoints_and_credits_the_won_survivor_once(
    infra: Infra, pool: Pool, order: tuple[str, ...]
) -> None:
    merge = Merge()
    await _consume(infra, pool, merge.initial())
    await _report_meeting(pool, merge)
    before = await pool.fetch(
        "SELECT deal_key, partner_id, amount FROM credits WHERE reversed_at IS NULL"
    )
    assert {(r["deal_key"], r["partner_id"]) for r in before} == {
        (merge.loser.key, merge.a),
        (merge.survivor.key, merge.b),
    }
    events = merge.merge()
    await _consume(infra, pool, [events[name] for name in order])
    active = await pool.fetch(
        "SELECT deal_key, partner_id, kind, amount FROM credits WHERE reversed_at IS NULL"
    )
    touchpoints = {
        r["touchpoint_id"]: (r["deal_key"], r["active"])
        for r in await pool.fetch("SELECT touchpoint_id, deal_key, active FROM touchpoints")
    }
    assert {r["deal_key"] for r in active} == {merge.survivor.key}
    assert sum(r["amount"] for r in active) == Decimal("1000.00")
    assert {(r["partner_id"], r["kind"]) for r in active} == {
        (merge.a, "sourced"),
        (merge.c, "influenced"),
    }
    assert touchpoints[f"registration:{merge.k}"] == (merge.survivor.key, True)
    assert touchpoints[f"registration:{merge.d}"][1] is False
    assert touchpoints[f"tp_{merge.c}"] == (merge.survivor.key, True)
