"""Re-evaluating partners: competencies and authorisations re-derived from certifications, then
requalification (tier, grace, demotion, suspension, expulsion) from attributed revenue, as of
one moment.

A `Reassessment` locks its partners together (in id order), loads what evaluating them needs
once, re-evaluates a partner in memory as many times as asked (each time with what earlier
steps left: revenue moved, versions written) and then writes the outcome in a few statements,
whatever the number of partners and steps. Credit runs (`credit_runs.py`) use it for many
partners and events; `refresh` is the same for one partner.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from services.onboarding import repository
from services.onboarding.announcements import announce
from services.onboarding.domain.config import OnboardingConfig
from services.onboarding.domain.lifecycle import IN_PROGRAM, NOT_EVALUATED, Change
from services.onboarding.domain.requalification import (
    VERDICT_CHANGES,
    Action,
    Standing,
    authorisation_change,
    evaluate,
    verdict_change,
)
from services.onboarding.domain.tiers import (
    Certification,
    authorised_products,
    derive_competencies,
    not_before_departure,
    revenue_in_window,
)
from services.onboarding.repository import SERVICE, PartnerRow
from shared.clock import now
from shared.db import Connection, from_row
from shared.errors import NotFound
from shared.events import Envelope
from shared.events.partners import PartnerStatus
from shared.outbox import Outbox, OutgoingEvent


def standing_of(row: PartnerRow, revenue: Decimal, competencies: frozenset[str]) -> Standing:
    return from_row(
        Standing,
        row,
        status=PartnerStatus(row["status"]),
        revenue=revenue,
        competencies=competencies,
    )


class Reassessment:
    """Partners locked together and re-evaluated in memory as of one moment; `write` stores the
    final rows and the audit trail and returns the events, in the order they happened.

    Loaded once: the partner rows, their certifications (partners that are evaluated) and
    their revenue per close date over the window (partners in the program)."""

    def __init__(
        self,
        config: OnboardingConfig,
        as_of: datetime,
        rows: dict[str, dict[str, Any]],
        certifications: dict[str, list[Certification]],
        revenue: dict[str, dict[date, Decimal]],
        acted_by: str = SERVICE,
    ) -> None:
        self.config = config
        self.acted_by = acted_by  # whom the audit trail names for this run's changes
        self.as_of = as_of
        self.rows = rows
        self.certifications = certifications
        self.revenue = revenue
        self.changed: set[str] = set()
        self.history: list[tuple[Any, ...]] = []
        self.events: list[OutgoingEvent] = []

    @classmethod
    async def start(
        cls,
        conn: Connection,
        config: OnboardingConfig,
        partner_ids: Collection[str],
        as_of: datetime,
        acted_by: str = SERVICE,
    ) -> Reassessment:
        """Lock the partners (those that exist) and load what evaluating them needs, as of
        `as_of`. Credits and reversals recorded afterwards are the caller's to add, in order
        (`move_revenue`)."""
        locked = await repository.lock_partners(conn, partner_ids)
        rows = {r["partner_id"]: dict(r) for r in locked}
        statuses = {p: PartnerStatus(r["status"]) for p, r in rows.items()}
        evaluated = [p for p, status in statuses.items() if status not in NOT_EVALUATED]
        in_program = [p for p, status in statuses.items() if status in IN_PROGRAM]
        certifications, departed = (
            await repository.certifications_of(conn, evaluated) if evaluated else ({}, None)
        )
        as_of = not_before_departure(as_of, departed)
        revenue = (
            await repository.revenue_days(conn, config, in_program, as_of) if in_program else {}
        )
        return cls(config, as_of, rows, certifications, revenue, acted_by)

    def knows(self, partner_id: str) -> bool:
        return partner_id in self.rows

    def move_revenue(self, partner_id: str, close_date: date, net: Decimal) -> None:
        """A credit (net of its reversals) or a reversal (negative) of `partner_id` recorded."""
        days = self.revenue.get(partner_id)
        if days is not None:
            days[close_date] = days.get(close_date, Decimal(0)) + net

    def reassess(self, partner_id: str, *, cause: Envelope[Any] | None = None) -> list[Change]:
        """Re-derive competencies and authorisations, then requalify, as of `self.as_of`.

        Returns the changes made (empty when the partner's standing did not move, or when
        onboarding does not know the partner or does not evaluate it)."""
        row = self.rows.get(partner_id)
        if row is None or PartnerStatus(row["status"]) in NOT_EVALUATED:
            return []
        changes: list[Change] = []
        competencies = derive_competencies(self.config, self.certifications[partner_id], self.as_of)
        products = authorised_products(self.config, row["products_applied"], competencies)
        moved = authorisation_change(
            frozenset(row["competencies"]), frozenset(row["products"]), competencies, products
        )
        if moved is not None:
            row = self._change(
                row,
                moved,
                reason=(
                    f"competencies now {', '.join(sorted(competencies)) or 'none'} (were "
                    f"{', '.join(sorted(row['competencies'])) or 'none'}); authorised products "
                    f"{', '.join(sorted(products)) or 'none'}"
                ),
                cause=cause,
                competencies=sorted(competencies),
                products=sorted(products),
            )
            changes.append(moved)
        if PartnerStatus(row["status"]) not in IN_PROGRAM:
            return changes
        revenue = revenue_in_window(self.config, self.revenue[partner_id], self.as_of)
        standing = standing_of(row, revenue, competencies)
        verdict = evaluate(self.config, standing, self.as_of)
        if verdict.action is Action.NONE:
            if Decimal(row["revenue"]) != revenue:
                row["revenue"] = revenue
                self.changed.add(partner_id)
            return changes
        change, fields = verdict_change(self.config, partner_id, standing, verdict, self.as_of)
        self._change(row, change, reason=verdict.reason, cause=cause, **fields)
        changes.append(VERDICT_CHANGES[verdict.action])
        return changes

    def _change(
        self,
        before: dict[str, Any],
        change: Change,
        *,
        reason: str,
        cause: Envelope[Any] | None,
        **fields: Any,
    ) -> dict[str, Any]:
        """A new version of the partner, in memory (see `announcements.record_version`)."""
        unwritten = set(fields) - set(repository.REASSESSED_COLUMNS)
        if unwritten:
            raise ValueError(f"not columns a reassessment writes: {sorted(unwritten)}")
        row = {
            **before,
            **fields,
            "version": before["version"] + 1,
            "reason": reason,
            "updated_at": now(),
        }
        self.rows[row["partner_id"]] = row
        self.changed.add(row["partner_id"])
        self.history.append(repository.history_row(row, change.published.value, self.acted_by))
        self.events.extend(announce(before, row, change, cause))
        return row

    async def write(self, conn: Connection) -> list[OutgoingEvent]:
        """Store the partners that changed and the audit rows (one statement each); returns
        the events to publish, in the order they happened."""
        await repository.write_reassessed(
            conn, [self.rows[partner_id] for partner_id in sorted(self.changed)]
        )
        await repository.insert_history(conn, self.history)
        return self.events


async def refresh(
    conn: Connection,
    outbox: Outbox,
    config: OnboardingConfig,
    partner_id: str,
    *,
    as_of: datetime,
    acted_by: str = SERVICE,
) -> list[Change]:
    """Re-derive competencies and authorisations, then requalify one partner, as of `as_of`,
    and publish what changed (in the audit trail as `acted_by`'s: the principal whose request
    caused it, or the service). Returns the changes (empty when its standing did not move)."""
    run = await Reassessment.start(conn, config, [partner_id], as_of, acted_by)
    if not run.knows(partner_id):
        raise NotFound(f"partner {partner_id} not found")
    changes = run.reassess(partner_id)
    await outbox.publish_many(conn, await run.write(conn))
    return changes
