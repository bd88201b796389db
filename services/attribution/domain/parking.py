"""Credits a won deal does not pay out for now, and why: channel managers see them parked
(`GET /credits/parked`), as they see deals whose CRM partner no link resolves.

- A partner out of the programme (expelled, or its application rejected: `partners.lifecycle.v1`
  as attribution's partner projection holds it) when the deal was won earns no credit on it:
  its share is **withheld**, not given to the deal's other partners. Their shares are what the
  model gave them with every touchpoint counted; the won amount is not fully credited. Giving
  the share to the others would pay them for a compliance decision about someone else, and
  would move their credits again should the expulsion be undone on appeal.
- A won deal without an amount (the CRM cleared it) holds no credit: the deal is parked until
  an amount arrives, and credited then.

A partner whose status changed after the win keeps what it earned (a later expulsion does not
reach back); one attribution has not heard of is credited (lifecycle and deal events travel on
different topics: not known is not out). Suspended partners are still in the programme (the
suspension is temporary): they are credited, and incentives decides what they earn."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from services.attribution.domain.models import Attribution
from shared.events.attribution import CreditKind
from shared.events.partners import PartnerStatus

OUT_OF_PROGRAMME = frozenset({PartnerStatus.EXPELLED, PartnerStatus.REJECTED})
NO_AMOUNT = "won without an amount: no credit until the CRM gives the deal one"


@dataclass(frozen=True)
class Standing:
    """A partner's status as the partner projection holds it, and since when (onboarding's
    `changed_at` of the change that set it)."""

    status: PartnerStatus
    since: datetime
    version: int | None = None  # the lifecycle version that set it


@dataclass(frozen=True)
class Parked:
    """A credit not paid out: a partner's withheld share, or (no partner) the whole deal."""

    partner_id: str | None
    kind: CreditKind | None
    amount: Decimal | None  # in the reporting currency; None when there is nothing to split
    currency: str | None
    reason: str


def out_when_won(standing: Standing | None, won_at: datetime | None) -> bool:
    """Whether the partner was out of the programme when the deal was won (`won_at` None: not
    known, so now)."""
    if standing is None or standing.status not in OUT_OF_PROGRAMME:
        return False
    return won_at is None or standing.since <= won_at


def withhold(
    attribution: Attribution, standings: Mapping[str, Standing], won_at: datetime | None
) -> tuple[Attribution, tuple[Parked, ...]]:
    """The split without the lines of partners out of the programme when the deal was won, and
    those lines, parked with the reason (the other lines are unchanged: see the module)."""
    kept, parked = [], []
    for line in attribution.lines:
        standing = standings.get(line.partner_id)
        if standing is None or not out_when_won(standing, won_at):
            kept.append(line)
            continue
        when = "" if won_at is None else f" when the deal was won at {won_at.isoformat()}"
        reason = (
            f"partner {line.partner_id} was {standing.status.value} (since "
            f"{standing.since.isoformat()}){when}: its {line.kind.value} share "
            f"({line.share * 100:.2f}%, {line.amount} {attribution.currency}) is withheld, "
            "not given to the deal's other partners"
        )
        parked.append(Parked(line.partner_id, line.kind, line.amount, attribution.currency, reason))
    return replace(attribution, lines=tuple(kept)), tuple(parked)
