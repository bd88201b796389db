"""Settling deals' credits: keeps each deal's touchpoints and state and settles its credits
(through the pure domain) whenever either changes, in the caller's transaction.

Every path that can move a deal's credits (deal snapshots, a registration event, a reported
touchpoint) first takes the deals' advisory locks, so two instances never settle one deal at once
and a touchpoint reported while the deal closes is never missed.

One implementation serves one event and a run of many: a `DealBook` loads the deals it is given
(their rows, touchpoints and active credits) with a few queries, applies the changes in order in
memory (a later snapshot of a deal sees what an earlier one did), and writes the results back
with a few set-based statements; the events to publish are collected in order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.attribution import repository
from services.attribution.credit_events import (
    CreditIds,
    DealFacts,
    Occasion,
    issue_events,
    reversal_events,
)
from services.attribution.domain.config import AttributionConfig
from services.attribution.domain.corrections import (
    HeldCredit,
    Settlement,
    partner_reason,
    settle,
)
from services.attribution.domain.crm_links import CrmLinks
from services.attribution.domain.deals import (
    DealState,
    describe_change,
    settlement_trigger,
    wanted_attribution,
)
from services.attribution.domain.models import Attribution, Touchpoint, TouchpointKind
from services.attribution.domain.parking import Parked, Standing
from services.attribution.domain.registrations import (
    is_sourcing,
    lost_one_sources,
    newest_status,
)
from services.attribution.domain.touchpoints import (
    crm_counted_at,
    crm_partner_kind,
    crm_touchpoint_id,
    registration_touchpoint_id,
    reported_counts,
)
from services.attribution.records import (
    DealRow,
    NewCredit,
    Reversal,
    TouchpointRow,
    instant,
)
from shared.clock import now
from shared.db import Connection
from shared.events import Envelope
from shared.events.crm import CrmSource, Customer
from shared.events.opportunities import DealStateChanged
from shared.events.registrations import RegistrationStatus
from shared.outbox import OutgoingEvent


@dataclass
class DealBook:
    """Some deals of one transaction, locked: their rows, their touchpoints and their active
    credits, changed in memory by the rules and written back by `save` (a few statements)."""

    deals: dict[str, DealRow]
    touchpoints: dict[str, TouchpointRow]  # by touchpoint id
    held: dict[str, list[HeldCredit]]  # deal key -> active credits, by credit id
    links: CrmLinks = field(default_factory=lambda: CrmLinks({}, frozenset()))
    by_deal: dict[str, dict[str, TouchpointRow]] = field(default_factory=dict)
    issued: dict[str, NewCredit] = field(default_factory=dict)  # by credit id, in order
    reversed: dict[str, Reversal] = field(default_factory=dict)  # stored credits, by id
    events: list[OutgoingEvent] = field(default_factory=list)
    moved_from: set[str] = field(default_factory=set)  # deals a touchpoint left: settle them
    # Touchpoints the last settlement of their won deal left out, and why (after the win...).
    left_out: dict[str, str] = field(default_factory=dict)
    # The status of the deals' partners (partners.lifecycle.v1, as partner_access holds it).
    standings: dict[str, Standing] = field(default_factory=dict)
    parked: dict[str, tuple[Parked, ...]] = field(default_factory=dict)  # deals settled again

    def __post_init__(self) -> None:
        for touchpoint in self.touchpoints.values():
            self.by_deal.setdefault(touchpoint.deal_key, {})[touchpoint.touchpoint_id] = touchpoint

    @classmethod
    async def load(
        cls,
        conn: Connection,
        deal_keys: Iterable[str],
        registration_ids: Iterable[str] = (),
        references: Iterable[tuple[str, str]] = (),
        partner_ids: Iterable[str] = (),
    ) -> DealBook:
        """Lock the deals (in key order: no deadlocks between runs) and load what settling
        them needs, with the touchpoints of these registrations (they may name another deal),
        the confirmed CRM links of the deals' and these (source, reference) pairs, and the
        standing of every partner they name and of these (a registration about to link)."""
        keys = sorted(set(deal_keys))
        await repository.lock_deals(conn, keys)
        deals = await repository.load_deals(conn, keys)
        touchpoints = await repository.load_touchpoints(
            conn, keys, (registration_touchpoint_id(r) for r in registration_ids)
        )
        held = await repository.load_active_credits(conn, keys)
        named = [(d.source, d.partner_ref) for d in deals.values() if d.partner_ref]
        partners = [*(t.partner_id for t in touchpoints.values()), *partner_ids]
        links, standings = await repository.links_and_standings(
            conn, [*named, *references], partners
        )
        return cls(deals, touchpoints, held, CrmLinks.of(links), standings=standings)

    async def save(self, conn: Connection) -> None:
        """Write what changed: at most one statement per table and kind of change."""
        deals = self.deals.values()
        await repository.save_snapshots(conn, [d for d in deals if d.snapshot])
        await repository.save_settlements(conn, [d for d in deals if d.settled and not d.snapshot])
        await repository.save_touchpoints(conn, [t for t in self.touchpoints.values() if t.changed])
        await repository.save_reversals(conn, self.reversed)
        await repository.save_new_credits(conn, list(self.issued.values()))
        # Only deals that parked something, before (`had_parked`) or now, are written.
        await repository.save_parked(
            conn,
            {
                key: parked
                for key, parked in self.parked.items()
                if parked or (key in self.deals and self.deals[key].had_parked)
            },
        )

    # -- changes, in memory ----------------------------------------------------------------

    def apply_snapshot(
        self,
        config: AttributionConfig,
        event: DealStateChanged,
        ingested_at: datetime | None,
        cause: Envelope[Any] | None = None,
    ) -> Settlement | None:
        """Take a deal snapshot (newer revisions only), sync its touchpoints, settle its credits.

        Raises CannotAttribute when the deal is won but cannot be split."""
        old = self.deals.get(event.deal_key)
        if old is not None and old.revision >= event.revision:
            return None  # an older or repeated snapshot: the deal already moved past it
        trigger = describe_change(None if old is None else old.state, DealState.of_snapshot(event))
        self.deals[event.deal_key] = DealRow.of_snapshot(event, ingested_at, old)
        for linked in event.registrations:
            self.merge_registration(
                registration_id=linked.registration_id,
                partner_id=linked.partner_id,
                deal_key=event.deal_key,
                status=linked.status,
                occurred_at=linked.submitted_at,
                authoritative_time=True,
                linked_at=event.changed_at,
            )
        self._sync_crm_partner(self.deals[event.deal_key])
        if event.merged_into is not None:
            self._follow_merge(event.deal_key, event.merged_into)
        settlement = self.recalculate(
            config,
            event.deal_key,
            at=event.changed_at,
            trigger=trigger,
            ingested_at=ingested_at,
            cause=cause,
        )
        if event.merged_into is not None:
            self.recalculate(
                config,
                event.merged_into,
                at=event.changed_at,
                trigger=f"deal {event.deal_key} was merged into it",
                ingested_at=ingested_at,
                cause=cause,
            )
        self.settle_moved(
            config,
            {event.deal_key, event.merged_into},
            at=event.changed_at,
            trigger=f"a touchpoint moved to deal {event.deal_key}",
            ingested_at=ingested_at,
            cause=cause,
        )
        return settlement

    def settle_moved(
        self,
        config: AttributionConfig,
        settled: set[str | None],
        *,
        at: datetime,
        trigger: str,
        ingested_at: datetime | None,
        cause: Envelope[Any] | None,
    ) -> None:
        """Settle again the deals a touchpoint left (a CRM merge moved or unlinked it), other
        than those just settled: what they held for it is reversed."""
        for deal_key in sorted(self.moved_from - {k for k in settled if k}):
            self.recalculate(
                config, deal_key, at=at, trigger=trigger, ingested_at=ingested_at, cause=cause
            )
        self.moved_from.clear()

    def _follow_merge(self, merged: str, survivor: str) -> None:
        """A deal merged into another in the CRM: the touchpoints partners reported on it
        (co-sell meetings, validations...) follow the survivor, except where the survivor has
        one of the same partner and kind (one per partner, deal and kind). Sourcing
        touchpoints move by their registration's events (ordered per registration); the
        CRM-named partner is the survivor's own. The merged deal holds nothing any more (it is
        deleted), so its credits are reversed and the survivor's settled once."""
        at_survivor = {
            (r.partner_id, r.kind)
            for r in self.by_deal.get(survivor, {}).values()
            if r.origin == "api" and r.active
        }
        for row in list(self.by_deal.get(merged, {}).values()):
            if row.origin != "api":
                continue
            if row.active and (row.partner_id, row.kind) in at_survivor:
                row.active = False  # the survivor's own report of the same work stands
            self._move(row, survivor)

    def _move(self, row: TouchpointRow, deal_key: str) -> None:
        """A touchpoint now belongs to another deal."""
        self.by_deal.get(row.deal_key, {}).pop(row.touchpoint_id, None)
        self.moved_from.add(row.deal_key)
        row.deal_key = deal_key
        row.changed = True
        self.by_deal.setdefault(deal_key, {})[row.touchpoint_id] = row

    def _add_touchpoint(self, touchpoint: TouchpointRow) -> None:
        touchpoint.changed = True
        self.touchpoints[touchpoint.touchpoint_id] = touchpoint
        self.by_deal.setdefault(touchpoint.deal_key, {})[touchpoint.touchpoint_id] = touchpoint

    def merge_registration(
        self,
        *,
        registration_id: str,
        partner_id: str,
        deal_key: str | None,
        status: RegistrationStatus,
        occurred_at: datetime,
        authoritative_time: bool,
        linked_at: datetime,
    ) -> bool:
        """Record a registration's link as a deal's sourcing touchpoint; True if it changed.
        (Its id must have been given to `load`.)

        Every snapshot listing it and every registration event says which deal it is linked to
        at a moment (`deal_key`; None: none, a CRM merge gave its deal to another). The newest
        such moment decides its deal (`linked_at`): deal snapshots and registration events
        travel on two topics and may be read in any order, so an older one never moves it
        back. Its status is the newest word's too: deals sends an approved registration back to
        review (a CRM merge displaced it, a link disagreed with the CRM), so a status does not
        only move forward (at the same moment, the more advanced wins)."""
        touchpoint_id = registration_touchpoint_id(registration_id)
        row = self.touchpoints.get(touchpoint_id)
        if row is None:
            if deal_key is None:
                return False
            merged = status
            self._add_touchpoint(
                TouchpointRow(
                    touchpoint_id,
                    deal_key,
                    partner_id,
                    TouchpointKind.SOURCED_REGISTRATION.value,
                    "deals",
                    "registration",
                    instant(occurred_at),
                    merged.value,
                    is_sourcing(merged),
                    linked_at=linked_at,
                )
            )
            return is_sourcing(merged)
        held_at = row.linked_at
        relinked = self._relink(row, deal_key, linked_at)
        if relinked is None:
            return False  # an older word on another deal: the newer one stands
        merged = newest_status(row.status, held_at, status, linked_at)
        active = is_sourcing(merged) and not row.unlinked
        # Only the snapshot knows the submission time; registration events know the decision time.
        when = instant(occurred_at) if authoritative_time else row.occurred_at
        if (row.registration_status, row.active, row.occurred_at) == (merged.value, active, when):
            return relinked
        row.registration_status, row.active, row.occurred_at = merged.value, active, when
        row.changed = True
        return True

    def _relink(self, row: TouchpointRow, deal_key: str | None, at: datetime) -> bool | None:
        """Apply what a snapshot or event says of the registration's link at `at`: True when
        the touchpoint moved or was unlinked, False when nothing changed, None when the word is
        older than the one held and names another deal (ignored)."""
        newer = row.linked_at is None or at >= row.linked_at
        if not newer:
            return None if deal_key != row.deal_key or row.unlinked else False
        changed = row.linked_at != at
        row.linked_at = at
        if deal_key is None:
            if not row.unlinked:
                row.unlinked, row.active = True, False
                self.moved_from.add(row.deal_key)
                changed = True
        elif deal_key != row.deal_key or row.unlinked:
            row.unlinked = False
            self._move(row, deal_key)
            changed = True
        row.changed = row.changed or changed
        return changed

    def _sync_crm_partner(self, deal: DealRow) -> None:
        """The partner the CRM names, through a confirmed link, is a touchpoint; naming another
        partner (or an unmatched reference) retires the old one."""
        partner_id = self.links.partner_for(deal.source, deal.partner_ref)
        for row in self.by_deal.get(deal.deal_key, {}).values():
            if row.origin == "crm" and row.partner_id != partner_id and row.active:
                row.active = False
                row.changed = True
        if partner_id is None:
            return
        touchpoint_id = crm_touchpoint_id(deal.deal_key, partner_id)
        existing = self.touchpoints.get(touchpoint_id)
        if existing is None:
            self._add_touchpoint(
                TouchpointRow(
                    touchpoint_id,
                    deal.deal_key,
                    partner_id,
                    crm_partner_kind(CrmSource(deal.source)).value,
                    deal.source,
                    "crm",
                    instant(deal.created_at or deal.changed_at),
                    None,
                    True,
                )
            )
        elif not existing.active:
            existing.active = True
            existing.changed = True

    def resync_crm_partner(
        self, config: AttributionConfig, deal_key: str, *, at: datetime, trigger: str
    ) -> Settlement | None:
        """A CRM link changed: the deal's CRM-named partner is resolved again and its credits
        settled (a credit parked as unmatched is issued once its reference is linked)."""
        deal = self.deals.get(deal_key)
        if deal is None:
            return None
        self._sync_crm_partner(deal)
        return self.recalculate(config, deal_key, at=at, trigger=trigger, ingested_at=at)

    def linked_partners(self, deal_key: str) -> set[str]:
        """The partners linked to the deal: an approved registration, or the CRM names them."""
        rows = self.by_deal.get(deal_key, {}).values()
        return {r.partner_id for r in rows if r.active and r.origin in ("registration", "crm")}

    def counts(self, touchpoint_id: str) -> bool:
        """Whether a touchpoint of these deals counts towards its deal's credits now."""
        row = self.touchpoints[touchpoint_id]
        if not row.active:
            return False
        if row.origin == "registration" and row.registration_status == RegistrationStatus.LOST:
            others = self.by_deal.get(row.deal_key, {}).values()
            return lost_one_sources(
                RegistrationStatus(other.registration_status)
                for other in others
                if other is not row and other.active and other.registration_status is not None
            )
        if row.origin != "api":
            return True
        linked = self.linked_partners(row.deal_key)
        deal = self.deals.get(row.deal_key)
        return reported_counts(
            row.partner_id,
            approved=row.approved,
            linked_partners=linked,
            reported_at=row.received_at,
            won_at=deal.won_at if deal is not None else None,
        )

    def _active_touchpoints(self, deal: DealRow) -> list[Touchpoint]:
        touchpoints = []
        for r in self.by_deal.get(deal.deal_key, {}).values():
            if not self.counts(r.touchpoint_id):
                continue
            occurred = (
                crm_counted_at(r.occurred_at, deal.close_date, deal.won_at)
                if r.origin == "crm"
                else r.occurred_at
            )
            touchpoints.append(
                Touchpoint(
                    r.touchpoint_id,
                    r.partner_id,
                    TouchpointKind(r.kind),
                    occurred,
                    r.source,
                    r.campaign_id,
                )
            )
        return touchpoints

    def recalculate(
        self,
        config: AttributionConfig,
        deal_key: str,
        *,
        at: datetime,
        trigger: str,
        ingested_at: datetime | None,
        cause: Envelope[Any] | None = None,
    ) -> Settlement | None:
        """Settle the deal's credits with what it should hold now. `ingested_at` None: the
        events take the cause's (stamped when recorded).

        Returns None when the deal is not known yet (its touchpoints wait for it)."""
        deal = self.deals.get(deal_key)
        if deal is None:
            return None
        state = deal.state
        touchpoints = self._active_touchpoints(deal)
        wanted, parked = wanted_attribution(config, state, touchpoints, self.standings)
        if wanted is not None:
            self.left_out.update((tp.touchpoint_id, why) for tp, why in wanted.excluded)
        held = tuple(self.held.get(deal_key, ()))
        settlement = settle(config, held, wanted, at, settlement_trigger(state, trigger))
        deal.calculation += 1 if settlement.changes else 0
        deal.last_note = settlement.explanation
        deal.settled = True
        if not settlement.locked:  # final credits keep what was parked with them
            self.parked[deal_key] = parked
        if not settlement.changes:
            return settlement
        occasion = Occasion(deal_key, deal.revision, now(), ingested_at, cause)
        ids = CreditIds(deal_key, deal.calculation, occasion.moment)
        self._reverse(occasion, ids, settlement)
        gone = {credit.credit_id for credit in settlement.reverse}
        still_held = [credit for credit in held if credit.credit_id not in gone]
        if settlement.issue:
            assert wanted is not None
            still_held += self._issue(occasion, ids, deal, wanted, settlement)
        # Active credits are read by credit id: the order settle() sees them in.
        self.held[deal_key] = sorted(still_held, key=lambda credit: credit.credit_id)
        return settlement

    def _reverse(self, occasion: Occasion, ids: CreditIds, settlement: Settlement) -> None:
        reason = settlement.explanation
        for credit in settlement.reverse:
            reversal = Reversal(ids.reversal(credit.credit_id), reason, occasion.moment)
            if credit.credit_id in self.issued:
                self.issued[credit.credit_id].reversal = reversal
            else:
                self.reversed[credit.credit_id] = reversal
            told = partner_reason(settlement, credit)
            self.events += reversal_events(occasion, credit, reversal.reversal_id, told)

    def _issue(
        self,
        occasion: Occasion,
        ids: CreditIds,
        deal: DealRow,
        wanted: Attribution,
        settlement: Settlement,
    ) -> list[HeldCredit]:
        facts = DealFacts(Customer.model_validate_json(deal.customer), deal.products, deal.co_sell)
        new_credits = []
        for line in settlement.issue:
            credit_id = ids.credit(line.partner_id, line.kind)
            replaces = settlement.replaces.get(line.partner_id)
            new = HeldCredit(
                credit_id,
                line.partner_id,
                line.kind,
                line.amount,
                wanted.currency,
                line.original_amount,
                wanted.original_currency,
                wanted.close_date,
            )
            new_credits.append(new)
            self.issued[credit_id] = NewCredit(
                deal.deal_key,
                new,
                line.share,
                wanted.fx_rate,
                wanted.model.value,
                wanted.config_version,
                line.reasons,
                deal.revision,
                replaces,
                occasion.moment,
            )
            known = self.standings.get(line.partner_id)
            self.events += issue_events(
                occasion,
                facts,
                wanted,
                line,
                credit_id,
                replaces,
                partner_version=known.version if known else None,
            )
        return new_credits
