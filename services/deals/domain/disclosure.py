"""Need to know: what a partner is told of a decision's conflicts and reasons. A partner hears
"conflict with another partner" or "direct sales" with the policy reason, never the competing
partner, its registration or its time, nor the direct rep or the rep's deal; channel managers
see the whole evidence.

No I/O: the routes and notifications ask these rules with what they loaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.deals.domain.rules import CONFLICT_SUMMARIES
from shared.events.registrations import ConflictInfo


@dataclass(frozen=True)
class ConflictSeen:
    """A conflict as the caller may see it: its kind, summary and how it matched for everyone;
    the evidence (reference, party, similarity, time) only for channel managers."""

    kind: str
    summary: str
    matched_on: str
    reference: str | None = None
    party: str | None = None
    similarity: float | None = None
    registered_at: datetime | None = None


def summary_of(kind: str) -> str:
    return CONFLICT_SUMMARIES.get(kind, "conflict")


def conflicts_seen(conflicts: Sequence[ConflictInfo], *, partner: bool) -> list[ConflictSeen]:
    """The conflicts as a partner (kind and summary) or a channel manager (everything) sees
    them."""
    if partner:
        return [ConflictSeen(c.kind, summary_of(c.kind), c.matched_on) for c in conflicts]
    return [
        ConflictSeen(
            c.kind,
            summary_of(c.kind),
            c.matched_on,
            c.reference,
            c.party,
            c.similarity,
            c.registered_at,
        )
        for c in conflicts
    ]


def reasons_seen(
    reasons: Sequence[str],
    partner_reasons: Sequence[str] | None,
    conflicts: Sequence[ConflictInfo],
    *,
    partner: bool,
) -> list[str]:
    """The reasons a caller sees: a channel manager the full ones; a partner what it was told
    (for a decision stored before partners were told apart: with conflicts, only their kinds)."""
    if not partner:
        return list(reasons)
    if partner_reasons is not None:
        return list(partner_reasons)
    if conflicts:
        return list(dict.fromkeys(summary_of(c.kind) for c in conflicts))
    return list(reasons)


# What a partner never sees of a decision's inputs: the direct opportunities looked at (their
# reps and deals), and the registration a merged deal's survivor is held by (found in review:
# a displaced partner read the winner's registration id in its history).
NOT_A_PARTNERS = frozenset({"opportunities", "held_by"})


def inputs_seen(inputs: dict[str, Any], *, partner: bool) -> dict[str, Any]:
    """A decision's stored inputs: a partner sees its own request, and only the kinds of the
    conflicts considered; never NOT_A_PARTNERS."""
    if not partner:
        return inputs
    seen = {k: v for k, v in inputs.items() if k not in NOT_A_PARTNERS}
    if "conflicts_considered" not in inputs:
        return seen
    considered = [
        {"kind": c.get("kind"), "summary": summary_of(str(c.get("kind")))}
        for c in inputs["conflicts_considered"]
        if isinstance(c, dict)
    ]
    return {**seen, "conflicts_considered": considered}
