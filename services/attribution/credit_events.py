"""What a settlement announces: `credit.reversed.v1` / `credit.issued.v1` on the deal's key and
a notification to each partner concerned. Its ids are named by the settlement (the deal and its
`calculation`) and begin with the moment it is made, which its credits keep as `issued_at` and
its events carry: they are made once, stored with the credits and never derived again, so the
same events redelivered name the same rows downstream."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.attribution.domain.corrections import HeldCredit
from services.attribution.domain.models import Attribution, CreditLine
from shared.events import Envelope
from shared.events.attribution import CreditIssued, CreditKind, CreditReversed
from shared.events.crm import Customer
from shared.events.notifications import NotificationKind
from shared.name_ids import NameIds
from shared.notify import notify
from shared.outbox import OutgoingEvent
from shared.topics import ATTRIBUTION_CREDITS

CREDIT_IDS = NameIds(uuid.UUID("9d7a4c1e-6f2b-4e0a-8c55-3a1b2d4e6f70"))


@dataclass(frozen=True)
class CreditIds:
    """The ids of one settlement of one deal, named by the settlement and ordered by its
    moment (the credits' `issued_at`, the reversals' `reversed_at`): every service keys its
    copy of a credit by this id, and a key of ids that grow with time takes each insert at
    its right edge instead of at a random page (written whole into the WAL after a
    checkpoint)."""

    deal_key: str
    calculation: int
    moment: datetime

    def credit(self, partner_id: str, kind: CreditKind) -> str:
        seed = f"{self.deal_key}/{self.calculation}/{partner_id}/{kind.value}"
        return f"cr_{CREDIT_IDS.ordered(self.moment, seed).hex}"

    def reversal(self, credit_id: str) -> str:
        seed = f"{self.deal_key}/{self.calculation}/reversal/{credit_id}"
        return f"rv_{CREDIT_IDS.ordered(self.moment, seed).hex}"


@dataclass(frozen=True)
class Occasion:
    """What every event of one settlement shares: the deal, when, and what caused it."""

    deal_key: str
    deal_revision: int
    moment: datetime
    ingested_at: datetime | None  # None: the platform stamps the cause's
    cause: Envelope[Any] | None  # the consumed event; None for an HTTP request

    def announce(
        self,
        event: CreditIssued | CreditReversed,
        kind: NotificationKind,
        *,
        about: str,
        subject: str,
        body: str,
    ) -> list[OutgoingEvent]:
        """A credit event on the deal's key, and the notification to its partner."""
        return [
            OutgoingEvent(ATTRIBUTION_CREDITS, event, self.deal_key, cause=self.cause),
            notify(
                event.partner_id,
                kind,
                about=about,
                subject=subject,
                body=body,
                deal_key=self.deal_key,
                created_at=self.moment,
                ingested_at=self.ingested_at,
                cause=self.cause,
                # The credit or reversal it is about carries this moment as its own.
                ordered_by=self.moment,
            ),
        ]


def reversal_events(
    occasion: Occasion, credit: HeldCredit, reversal_id: str, reason: str
) -> list[OutgoingEvent]:
    deal_key = occasion.deal_key
    reversed_ = CreditReversed(
        reversal_id=reversal_id,
        credit_id=credit.credit_id,
        deal_key=deal_key,
        partner_id=credit.partner_id,
        kind=credit.kind,
        amount=credit.amount,
        currency=credit.currency,
        reason=reason,
        deal_revision=occasion.deal_revision,
        reversed_at=occasion.moment,
        ingested_at=occasion.ingested_at,
    )
    return occasion.announce(
        reversed_,
        NotificationKind.CREDIT_REVERSED,
        about=reversal_id,
        subject=f"Credit of {credit.amount} {credit.currency} on deal {deal_key} reversed",
        body=reason,
    )


@dataclass(frozen=True)
class DealFacts:
    """What a credit repeats about its deal."""

    customer: Customer
    products: tuple[str, ...]
    co_sell: bool


def campaign_of(wanted: Attribution, partner_id: str) -> str | None:
    """The campaign the partner touched the deal through: its earliest campaign touchpoint
    that counts in this attribution (None: none)."""
    return next(
        (
            tp.campaign_id
            for tp in wanted.considered
            if tp.partner_id == partner_id and tp.campaign_id is not None
        ),
        None,
    )


def issue_events(
    occasion: Occasion,
    facts: DealFacts,
    wanted: Attribution,
    line: CreditLine,
    credit_id: str,
    replaces: str | None,
    *,
    partner_version: int | None = None,
) -> list[OutgoingEvent]:
    deal_key = occasion.deal_key
    issued = CreditIssued(
        credit_id=credit_id,
        deal_key=deal_key,
        partner_id=line.partner_id,
        kind=line.kind,
        amount=line.amount,
        currency=wanted.currency,
        original_amount=line.original_amount,
        original_currency=wanted.original_currency,
        fx_rate=wanted.fx_rate,
        share=line.share,
        model=wanted.model.value,
        reasons=line.reasons,
        customer=facts.customer,
        products=facts.products,
        co_sell=facts.co_sell,
        close_date=wanted.close_date,
        deal_revision=occasion.deal_revision,
        replaces=replaces,
        issued_at=occasion.moment,
        ingested_at=occasion.ingested_at,
        config_version=wanted.config_version,
        rate_date=wanted.rate_date,
        campaign_id=campaign_of(wanted, line.partner_id),
        partner_version=partner_version,
    )
    return occasion.announce(
        issued,
        NotificationKind.CREDIT_ISSUED,
        about=credit_id,
        subject=f"{line.kind.value.capitalize()} credit of {line.amount} "
        f"{wanted.currency} on deal {deal_key}",
        body="; ".join(line.reasons),
    )
