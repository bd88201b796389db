"""What tests of attribution share: its deal-credits consumer under test (built on a scratch
schema and wired by the service's own `wire()`, with the policy the test chooses), and CRM
deals published as deals publishes them: their snapshots, closed won, with the registrations
linked to them; the policy the service's process tests run with, a run's deal published to the
real broker, and its credits read back from the schema and from the credits topic."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

import asyncpg

from services.attribution.app import DEAL_TOPICS, NAME, definition
from services.attribution.domain.config import AttributionConfig
from shared.consumer import EventConsumer
from shared.db import Pool
from shared.events import Envelope, EventPayload
from shared.events.attribution import CreditIssued, CreditReversed
from shared.events.crm import CrmSource, Customer, DealStage, DealStatus
from shared.events.opportunities import DealStateChanged, LinkedRegistration
from shared.events.registrations import RegistrationStatus
from shared.outbox import Outbox
from shared.service import Platform
from shared.topics import ATTRIBUTION_CREDITS, DEAL_OPPORTUNITIES, Topic
from tests.support.factories import deal_state_changed
from tests.support.infra import Infra
from tests.support.kafka import publish, wait_for_keyed
from tests.support.paging import every_page


class _SetAsideConsumer:
    """A consumer group `wire()` declares that is not the one under test: its handlers are
    registered nowhere."""

    def __init__(self, name: str) -> None:
        self.name = name

    def handles(self, model: type[object]) -> Callable[[Any], Any]:
        return lambda handler: handler

    handles_batch = handles


class _ConsumerWiring:
    """What attribution's `wire()` asks of a platform, for one consumer under test: the
    consumer group it declares is `consumer` (its other groups and its periodic jobs are set
    aside); the policy it provides is the test's (the one `wire()` loads from the environment
    is set aside)."""

    def __init__(self, consumer: EventConsumer, config: AttributionConfig) -> None:
        consumer.provisions.provide(config)
        self._consumer = consumer
        self.set_aside: list[object] = []

    def consumer(self, name: str, topics: list[Topic]) -> EventConsumer:
        if name != self._consumer.name:
            other = _SetAsideConsumer(name)
            self.set_aside.append(other)
            return cast(EventConsumer, other)
        assert topics == self._consumer.topics
        return self._consumer

    def every(self, seconds: float, job: object, **options: object) -> None:
        self.set_aside.append(job)

    def provide(self, value: object, *, as_type: type[object] | None = None) -> None:
        assert isinstance(value, as_type or AttributionConfig)
        self.set_aside.append(value)


def deal_credits_consumer(
    pool: Pool, config: AttributionConfig, *, backoff_initial_seconds: float = 0.01
) -> EventConsumer:
    """The real deal-credits consumer group and outbox of attribution (its topics, its
    dead-letter topic) writing through `pool`; nothing relays that outbox."""
    consumer = EventConsumer(
        name="deal-credits",
        service=NAME,
        topics=DEAL_TOPICS,
        pool=pool,
        outbox=Outbox(NAME, source=f"pollinate/{NAME}"),
        backoff_initial_seconds=backoff_initial_seconds,
    )
    definition.wire(cast(Platform, _ConsumerWiring(consumer, config)))
    return consumer


def from_deals(payload: EventPayload, key: str) -> Envelope[Any]:
    """`payload` in an envelope as deals publishes it, keyed by `key`."""
    return Envelope.wrap(payload, source="pollinate/deals", subject=key)


class CrmDeal:
    """One CRM opportunity of a test run and its snapshots: open at proposal for Contoso with
    no amount yet, unless a test says otherwise."""

    def __init__(self, source_id: str, source: CrmSource) -> None:
        self.source_id = source_id
        self.key = f"{source.value}:{source_id}"
        self.source = source

    def state(self, revision: int, /, **fields: Any) -> DealStateChanged:
        values: dict[str, Any] = {
            "deal_key": self.key,
            "source": self.source,
            "source_id": self.source_id,
            "revision": revision,
            "customer": Customer(name="Contoso", domain="contoso.example"),
            "products": ("data",),
            "stage": DealStage.PROPOSAL,
            "status": DealStatus.OPEN,
            "amount": None,
            "currency": None,
            "close_date": None,
        }
        return deal_state_changed(**(values | fields))


def closed_won(
    amount: str, currency: str, partner_ref: str, *, close_date: date, **fields: Any
) -> dict[str, Any]:
    """The fields of a snapshot of a deal won on `close_date` for `amount`, sold through the
    CRM partner `partner_ref`; `fields` add to them or override them."""
    values: dict[str, Any] = {
        "status": DealStatus.WON,
        "amount": Decimal(amount),
        "currency": currency,
        "close_date": close_date,
        "partner_ref": partner_ref,
    }
    return values | fields


def approved_registration(
    registration_id: str, partner_id: str, *, days_ago: int
) -> LinkedRegistration:
    """A registration linked to a deal: `partner_id`'s, submitted `days_ago` days ago and
    approved."""
    return LinkedRegistration(
        registration_id=registration_id,
        partner_id=partner_id,
        status=RegistrationStatus.APPROVED,
        submitted_at=datetime.now(UTC) - timedelta(days=days_ago),
    )


async def confirmed_links(pool: Pool, source: CrmSource, *partner_ids: str) -> None:
    """Links a channel manager confirmed: each partner id, as the CRM's partner reference,
    stands for that partner (the identity shortcut)."""
    await pool.executemany(
        """INSERT INTO crm_links (source, external_id, partner_id, status, proposed_by,
               proposed_at, confirmed_by, confirmed_at)
           VALUES ($1, $2, $2, 'confirmed', 'manager', now(), 'manager', now())""",
        [(source.value, partner_id) for partner_id in partner_ids],
    )


# Attribution as the service tests run it: a linear split, 90 days of lock, one EUR rate.
TODAY = datetime.now(UTC).date()
CONFIG = {
    "version": "test-linear-1",
    "model": "linear",
    "lock_period_days": 90,
    "rates": {"EUR": {(TODAY - timedelta(days=400)).isoformat(): "1.10"}},
}


class Deal(CrmDeal):
    """One CRM opportunity of a test run, published as successive merged snapshots."""

    def __init__(self, run: str, source: CrmSource = CrmSource.AWS_ACE) -> None:
        super().__init__(f"opp-{run}", source)
        self.revision = 0
        self.started = datetime.now(UTC)
        self.ingested_at = self.started - timedelta(seconds=1)

    def snapshot(self, **fields: Any) -> DealStateChanged:
        self.revision += 1
        moments = {"changed_at": datetime.now(UTC), "ingested_at": self.ingested_at}
        return self.state(self.revision, **(moments | fields))

    def closed(
        self,
        amount: str,
        partner_ref: str,
        *,
        currency: str = "USD",
        close_date: date = TODAY,
        **fields: Any,
    ) -> DealStateChanged:
        """The next snapshot: won today for `amount` through the CRM partner `partner_ref`,
        unless `fields` say otherwise (another status, say)."""
        won = closed_won(amount, currency, partner_ref, close_date=close_date, **fields)
        return self.snapshot(**won)

    async def publish(self, infra: Infra, *snapshots: DealStateChanged) -> None:
        """Publish snapshots of this deal as deals does (keyed by the deal)."""
        await publish(infra, DEAL_OPPORTUNITIES, list(snapshots), subject=self.key, source="deals")


async def active_credits(admin_db: asyncpg.Connection, deal_key: str) -> list[Any]:
    return list(
        await admin_db.fetch(
            """SELECT partner_id, kind, amount, original_amount, credit_id, replaces
               FROM attribution.credits WHERE deal_key = $1 AND reversed_at IS NULL
               ORDER BY partner_id""",
            deal_key,
        )
    )


async def credit_events(infra: Infra, deal: Deal, count: int) -> list[Envelope[Any]]:
    """This deal's events on the credits topic, once there are `count` of them."""
    raw = await wait_for_keyed(
        infra.kafka,
        ATTRIBUTION_CREDITS.name,
        deal.key,
        lambda events: len(events) >= count,
        since=deal.started,
    )
    return [
        Envelope[CreditIssued].model_validate(r)
        if r["type"] == "credit.issued.v1"
        else Envelope[CreditReversed].model_validate(r)
        for r in raw
    ]


async def parked_pages(client: Any, limit: int = 500) -> list[list[Any]]:
    """Every page of `GET /credits/parked`, a deal's rows together on one."""
    return await every_page(client, "/credits/parked", lambda row: row["deal_key"], limit)


def link_key(link: Any) -> str:
    """A listed link's place in `GET /crm-links`' order, as its `after` spells it."""
    return f"{link['source']}:{link['external_id']}"
