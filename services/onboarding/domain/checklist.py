"""The onboarding checklist: which items a partner may tick when, what ticking one sets, and
when the checklist is complete (the partner becomes active).

Evidence items (`config.evidence_items`: the agreement, the enablement) are never completed by
the partner's own tick: the partner submits evidence (a reference: the signed agreement's
envelope id, the enablement record), and a channel manager or a system client (the enablement
system) completes the item, confirming that evidence or giving its own."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from services.onboarding.domain.config import OnboardingConfig
from services.onboarding.domain.lifecycle import IN_PROGRAM
from shared.errors import Conflict, Forbidden, Unprocessable
from shared.events.partners import PartnerStatus as S

# Agreements without a term never lapse: stored as a far-future validity.
NEVER = datetime(9999, 1, 1, tzinfo=UTC)


def checklist_item(config: OnboardingConfig, item: str) -> str:
    """`item` as one of the program's checklist items (422 naming them otherwise)."""
    if item not in config.checklist:
        raise Unprocessable(
            f"unknown checklist item {item!r}; items are {', '.join(config.checklist)}"
        )
    return item


# An evidence record as stored: reference, submitted_by, submitted_at, confirmed_by, confirmed_at.
Evidence = Mapping[str, Mapping[str, str]]


@dataclass(frozen=True)
class Tick:
    """What ticking an item does to a partner."""

    completed: dict[str, str]  # item -> when (ISO), the whole checklist after the tick
    fields: dict[str, object]  # the partner fields it sets
    done: int  # items completed, of len(config.checklist)
    activates: bool  # the last item of an onboarding partner: it becomes active
    renewal: bool  # the agreement signed again while in the program


def _may_change(config: OnboardingConfig, partner_id: str, status: S, item: str) -> bool:
    """Items change while onboarding; the agreement may also be signed again while in the
    program (a renewal: returns True)."""
    renewal = item == config.agreement_item and status in IN_PROGRAM
    if status is not S.ONBOARDING and not renewal:
        raise Conflict(
            f"partner {partner_id} is {status.value}: checklist items are completed while "
            f"onboarding (the {config.agreement_item} item can be renewed while in the program)"
        )
    return renewal


def submit_evidence(
    config: OnboardingConfig,
    partner_id: str,
    status: S,
    completed: Mapping[str, str],
    evidence: Evidence,
    item: str,
    *,
    reference: str,
    by: str,
    at: datetime,
) -> dict[str, dict[str, str]] | None:
    """The partner's evidence for an evidence item, waiting for confirmation (a new submission
    replaces one not yet confirmed). Returns the whole evidence record after it, or None when
    it changes nothing: the item was completed while onboarding with this very evidence (other
    evidence for it then is a conflict: a submission replaced the confirmed record, leaving a
    completed item whose evidence nobody had confirmed; found from outside). The agreement
    signed again while in the program takes new evidence for its renewal."""
    if item not in config.evidence_items:
        raise Unprocessable(f"{item} needs no evidence: it is completed directly")
    renewal = _may_change(config, partner_id, status, item)
    if not renewal and item in completed:
        kept = evidence.get(item, {}).get("reference")
        if kept == reference:
            return None
        raise _completed_once(completed, item, kept)
    submitted = {"reference": reference, "submitted_by": by, "submitted_at": at.isoformat()}
    return {**{k: dict(v) for k, v in evidence.items()}, item: submitted}


def _confirmed(
    config: OnboardingConfig,
    evidence: Evidence,
    item: str,
    *,
    confirms: bool,
    reference: str | None,
    by: str,
    at: datetime,
) -> dict[str, dict[str, str]] | None:
    """The evidence record once `by` completes an evidence item (None: `item` needs none)."""
    if item not in config.evidence_items:
        return None
    if not confirms:
        raise Forbidden(
            f"{item} is completed by a channel manager or the enablement system once they "
            "have confirmed its evidence; submit the evidence reference (body: evidence)"
        )
    record = dict(evidence.get(item, {}))
    if reference is None and _already_confirmed(record):
        # Found in review: renewing the agreement with no body confirmed the evidence of the
        # term before (its old envelope) for a whole new term.
        raise Unprocessable(
            f"{item}: its evidence {record.get('reference')} was confirmed on "
            f"{str(record.get('confirmed_at'))[:10]}; this needs new evidence: the partner "
            "submits a reference, or the confirmer gives one"
        )
    if reference is not None:
        record["reference"] = reference
    if not record.get("reference"):
        raise Unprocessable(
            f"{item} has no evidence: the partner submits a reference, or the confirmer gives one"
        )
    record.update(confirmed_by=by, confirmed_at=at.isoformat())
    return {**{k: dict(v) for k, v in evidence.items()}, item: record}


def _already_confirmed(record: Mapping[str, str]) -> bool:
    """Whether the evidence on record was confirmed and nothing was submitted since."""
    confirmed = record.get("confirmed_at")
    submitted = record.get("submitted_at")
    if not confirmed:
        return False
    return not submitted or datetime.fromisoformat(submitted) <= datetime.fromisoformat(confirmed)


def tick(
    config: OnboardingConfig,
    partner_id: str,
    status: S,
    completed: Mapping[str, str],
    item: str,
    at: datetime,
    *,
    by: str,
    confirms: bool,
    evidence: Evidence | None = None,
    reference: str | None = None,
) -> Tick:
    """Complete `item` as `by`: items are completed while onboarding; the agreement may also be
    signed again while in the program, which renews it for another term. An evidence item
    needs a confirming caller (`confirms`: a channel manager or a system client) and evidence
    (the partner's submitted reference, or `reference`)."""
    renewal = _may_change(config, partner_id, status, item)
    if not renewal and item in completed:
        return _repeat(config, completed, evidence or {}, item, reference)
    confirmed = _confirmed(
        config, evidence or {}, item, confirms=confirms, reference=reference, by=by, at=at
    )
    checklist = {**completed, item: at.isoformat()}
    fields: dict[str, object] = {"checklist": checklist}
    if confirmed is not None:
        fields["checklist_evidence"] = confirmed
    if item == config.agreement_item:
        fields["agreement_valid_until"] = (
            at + timedelta(days=config.agreement_term_days) if config.agreement_term_days else NEVER
        )
    done = len([i for i in config.checklist if i in checklist])
    activates = status is S.ONBOARDING and done == len(config.checklist)
    return Tick(checklist, fields, done, activates, renewal)


def _repeat(
    config: OnboardingConfig,
    completed: Mapping[str, str],
    evidence: Evidence,
    item: str,
    reference: str | None,
) -> Tick:
    """An item completed again while onboarding changes nothing (each repeat made a new
    version and event, and overwrote the first confirmation's evidence: found from outside);
    one naming other evidence than the item was completed with is a conflict."""
    kept = evidence.get(item, {}).get("reference")
    if reference is not None and kept is not None and reference != kept:
        raise _completed_once(completed, item, kept)
    done = len([i for i in config.checklist if i in completed])
    return Tick(dict(completed), {}, done, activates=False, renewal=False)


def _completed_once(completed: Mapping[str, str], item: str, kept: str | None) -> Conflict:
    with_evidence = f" with evidence {kept}" if kept is not None else ""
    return Conflict(
        f"{item} was completed at {completed[item]}{with_evidence}: while onboarding an item "
        "is completed once"
    )
