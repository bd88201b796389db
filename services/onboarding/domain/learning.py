"""Learning paths (pure): which paths a person follows, and how far they are along one.

A person follows the paths of their role that apply to their partner's type and tier. Modules
are taken in order: a module counts once completed (a `completed` or `passed` statement not
marked unsuccessful) at or after the moment the module before it counted, so a module done
before its predecessors is shown as done out of order and has to be taken again. A path is
complete when every module counts; it leads to its exam, passed or not yet.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from services.onboarding.domain.programme import LearningPath, PersonRole


class ModuleState(StrEnum):
    DONE = "done"
    NEXT = "next"  # the one to take now
    LOCKED = "locked"  # an earlier module comes first
    OUT_OF_ORDER = "out_of_order"  # completed before an earlier module: to be taken again


@dataclass(frozen=True)
class Completion:
    activity: str
    at: datetime
    passed: bool  # the verb was `passed` (an exam passed, not only a module completed)


@dataclass(frozen=True)
class ModuleProgress:
    activity_id: str
    title: str
    state: ModuleState
    completed_at: datetime | None


@dataclass(frozen=True)
class PathProgress:
    modules: tuple[ModuleProgress, ...]
    done: int
    complete: bool
    exam_passed_at: datetime | None


def paths_for(
    paths: Iterable[LearningPath], role: PersonRole, partner_type: str, tier: str
) -> list[LearningPath]:
    return [p for p in paths if p.role == role and p.applies_to(partner_type, tier)]


def progress(path: LearningPath, completions: Iterable[Completion]) -> PathProgress:
    """How far along `path` a person's completions (any order, repeats allowed) take them."""
    times: dict[str, list[datetime]] = {}
    exam_passes: list[datetime] = []
    for c in completions:
        times.setdefault(c.activity, []).append(c.at)
        if c.passed and c.activity == path.leads_to:
            exam_passes.append(c.at)
    modules: list[ModuleProgress] = []
    counted_since: datetime | None = None
    blocked = False
    for module in path.modules:
        done = sorted(times.get(module.activity_id, []))
        in_order = [t for t in done if counted_since is None or t >= counted_since]
        if not blocked and in_order:
            counted_since = in_order[0]
            modules.append(
                ModuleProgress(module.activity_id, module.title, ModuleState.DONE, in_order[0])
            )
            continue
        modules.append(
            ModuleProgress(module.activity_id, module.title, _waiting(done, blocked), None)
        )
        blocked = True
    counted = sum(1 for m in modules if m.state is ModuleState.DONE)
    return PathProgress(
        modules=tuple(modules),
        done=counted,
        complete=counted == len(path.modules),
        exam_passed_at=min(exam_passes) if exam_passes else None,
    )


def _waiting(completed: list[datetime], blocked: bool) -> ModuleState:
    """A module that does not count (yet)."""
    if completed:
        return ModuleState.OUT_OF_ORDER
    return ModuleState.LOCKED if blocked else ModuleState.NEXT
