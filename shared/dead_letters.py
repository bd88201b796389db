"""Every service's dead letters over HTTP, for channel managers (the platform's admins): list
them with their reasons, page by page, and replay one or all after a fix.

A replay runs the letter's original record again, in this service, through the consumer that
dead-lettered it (`dlq.consumer`): the same checks, the same inbox and the same handler in one
transaction, as if it had just arrived from its origin topic. Nothing is published: a service
may not write the topics it consumes (shared/topics.py grants), and need not. So:
- a letter is replayed once: `dead_letter_replays` remembers it (who, when, the outcome), and
  replays of one service are serialised by an advisory lock, so two managers clicking at once
  replay it once;
- its event is applied once: an event the inbox already holds (replayed before by the CLI, or
  by a replay whose record of itself was lost in a crash) is a duplicate, and nothing changes;
- a letter failing again is parked again as a new letter (a new offset) with its new reason;
  the old one is marked replayed with that reason.
Each replay is written to the audit trail with the replay's record, in one transaction.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Literal

from aiokafka import ConsumerRecord
from aiokafka.errors import KafkaError
from fastapi import Path, Query
from faststream.exceptions import NackMessage
from pydantic import BaseModel, Field

from shared.audit import record_action
from shared.clock import now
from shared.consumer import EventConsumer, Outcome
from shared.db import Connection
from shared.dead_lettering import (
    DLQ_CONSUMER,
    DLQ_FAILED_AT,
    DLQ_HEADERS,
    DLQ_ORIGIN_OFFSET,
    DLQ_ORIGIN_PARTITION,
    DLQ_ORIGIN_TOPIC,
    DLQ_REPLAYED_FROM,
    dead_letter_id,
)
from shared.dlq import DeadLetter, Page, read_page
from shared.errors import Conflict, NotFound, RequestError
from shared.http import AdminDep, PlatformDep, api_router
from shared.identity import Caller
from shared.inputs import Integer, ListOrder
from shared.topics import dead_letter_topic

if TYPE_CHECKING:
    from shared.service import Platform

dead_letters = api_router(prefix="/admin/dead-letters", tags=["dead letters"])

State = Literal["all", "waiting", "replayed"]

PAGE_MAX = 200
SCAN_MAX = 5_000  # letters looked at per request when filtering by state
PREVIEW_CHARS = 2_000
REPLAY_ALL_MAX = 500  # letters replayed per request: a long run answers and is asked again


class Unavailable(RequestError):
    """Kafka or the database is out of reach for now: nothing was replayed; retry."""

    status = 503


class ReplayOut(BaseModel):
    at: datetime
    by: str = Field(description="the principal who replayed it")
    outcome: Outcome
    detail: str = Field(description="what happened (a failure's new reason)")


class DeadLetterOut(BaseModel):
    offset: int = Field(description="its offset in `<service>.dlq.v1`: its id here")
    consumer: str = Field(description="the consumer group that could not process it")
    origin_topic: str
    origin_partition: int | None
    origin_offset: int | None
    event_type: str = Field(description="the CloudEvents type, `?` when unreadable")
    key: str
    reason: str
    failed_at: str
    replayed_from: str | None = Field(
        default=None, description="the letter this one failed again as (`<topic>:<offset>`)"
    )
    value_preview: str = Field(description=f"the record's value, its first {PREVIEW_CHARS} chars")
    replay: ReplayOut | None = Field(default=None, description="null while it waits")


class DeadLettersOut(BaseModel):
    service: str
    topic: str
    letters: list[DeadLetterOut]
    next_after: int | None = Field(
        description="oldest first: pass as `after` for the next page; null when the end was "
        "reached (and always null newest first)"
    )
    next_before: int | None = Field(
        default=None,
        description="newest first: pass as `before` for the next (older) page; null when the "
        "oldest letter the topic keeps was reached (and always null oldest first)",
    )
    end_offset: int = Field(description="the offset the next dead letter will get")


class ReplayAllIn(BaseModel):
    through: Integer = Field(
        ge=0,
        description="replay every waiting letter up to this offset (the last one the caller "
        f"saw, so letters arriving meanwhile are not replayed unseen); {REPLAY_ALL_MAX} a call",
    )
    since: Integer | None = Field(
        default=None,
        ge=0,
        description="and from this offset on (the first one the caller saw, so older letters "
        "it did not see, left for a cause not yet fixed, are not replayed unseen either); "
        "none: from the topic's first",
    )


class ReplayedOut(BaseModel):
    offset: int
    outcome: Outcome
    detail: str


class SkippedOut(BaseModel):
    offset: int
    reason: str = Field(description="why it was left waiting (as replaying it alone answers)")


class ReplayAllOut(BaseModel):
    replayed: list[ReplayedOut]
    more: bool = Field(description=f"more letters wait up to `through` (over {REPLAY_ALL_MAX})")
    skipped: list[SkippedOut] = Field(
        default_factory=list,
        description="waiting letters in the range left waiting, each with why (its consumer or"
        " origin no longer fits); found in review: they were left without a word",
    )


def _header_int(letter: DeadLetter, name: str) -> int | None:
    value = letter.headers.get(name, "")
    return int(value) if value.lstrip("-").isdigit() else None


def _event_type(letter: DeadLetter) -> str:
    """The CloudEvents type: from the envelope (structured mode), else a `ce_type` header."""
    try:
        envelope = json.loads(letter.value)
    except ValueError:
        envelope = None
    named = envelope.get("type") if isinstance(envelope, dict) else None
    return str(named)[:200] if isinstance(named, str) else letter.headers.get("ce_type", "?")


def _shown(letter: DeadLetter, replay: ReplayOut | None) -> DeadLetterOut:
    h = letter.headers
    return DeadLetterOut(
        offset=letter.offset,
        consumer=h.get(DLQ_CONSUMER, ""),
        origin_topic=h.get(DLQ_ORIGIN_TOPIC, ""),
        origin_partition=_header_int(letter, DLQ_ORIGIN_PARTITION),
        origin_offset=_header_int(letter, DLQ_ORIGIN_OFFSET),
        event_type=_event_type(letter),
        key=(letter.key or b"").decode(errors="replace"),
        reason=letter.reason,
        failed_at=h.get(DLQ_FAILED_AT, ""),
        replayed_from=h.get(DLQ_REPLAYED_FROM),
        value_preview=letter.value[: PREVIEW_CHARS * 4].decode(errors="replace")[:PREVIEW_CHARS],
        replay=replay,
    )


async def _replays(conn: Connection, offsets: list[int]) -> dict[int, ReplayOut]:
    rows = await conn.fetch(
        """SELECT dlq_offset, replayed_at, principal, outcome, detail FROM dead_letter_replays
           WHERE dlq_offset = ANY($1::bigint[])""",
        offsets,
    )
    return {
        row["dlq_offset"]: ReplayOut(
            at=row["replayed_at"], by=row["principal"], outcome=row["outcome"], detail=row["detail"]
        )
        for row in rows
    }


async def _read(platform: Platform, start: int, limit: int) -> Page:
    try:
        return await read_page(platform.settings.kafka, platform.schema, start, limit)
    except KafkaError as error:
        raise Unavailable(f"Kafka is unavailable: {type(error).__name__}") from error


def _wanted(replay: ReplayOut | None, state: State) -> bool:
    return state == "all" or (replay is None) == (state == "waiting")


@dead_letters.get("", response_model=DeadLettersOut)
async def list_dead_letters(
    who: AdminDep,
    platform: PlatformDep,
    order: Annotated[
        ListOrder,
        Query(description="`newest` first is what an operator opening the list wants"),
    ] = "oldest",
    after: Annotated[
        int | None, Query(ge=0, description="oldest first: letters after this offset")
    ] = None,
    before: Annotated[
        int | None, Query(ge=0, description="newest first: letters before this offset")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 50,
    state: Annotated[State, Query()] = "all",
) -> DeadLettersOut:
    """The service's dead letters, oldest or newest first, with their reasons and whether (and
    how) each was replayed. The topic keeps them for its retention (a week)."""
    if order == "oldest" and before is not None:
        raise RequestError("`before` pages newest first: pass order=newest with it")
    if order == "newest" and after is not None:
        raise RequestError("`after` pages oldest first: pass order=oldest with it, or `before`")
    if order == "newest":
        shown, next_before, end = await _newest_first(platform, before, limit, state)
        next_after = None
    else:
        shown, next_after, end = await _oldest_first(platform, after, limit, state)
        next_before = None
    return DeadLettersOut(
        service=platform.schema,
        topic=dead_letter_topic(platform.schema).name,
        letters=shown,
        next_after=next_after,
        next_before=next_before,
        end_offset=end,
    )


async def _take(
    platform: Platform,
    letters: list[DeadLetter],
    state: State,
    shown: list[DeadLetterOut],
    limit: int,
) -> int:
    """Append to `shown`, in the order given, the letters the state filter wants, until it holds
    `limit`; how many letters were looked at."""
    async with platform.pool.acquire() as conn:
        replays = await _replays(conn, [letter.offset for letter in letters])
    for looked, letter in enumerate(letters, 1):
        replay = replays.get(letter.offset)
        if _wanted(replay, state):
            shown.append(_shown(letter, replay))
            if len(shown) == limit:
                return looked
    return len(letters)


async def _oldest_first(
    platform: Platform, after: int | None, limit: int, state: State
) -> tuple[list[DeadLetterOut], int | None, int]:
    """Letters after `after` (the topic's first when None), oldest first; with the cursor for
    the next page (None at the end) and the topic's end offset."""
    start = 0 if after is None else after + 1
    shown: list[DeadLetterOut] = []
    scanned, end = 0, start
    while len(shown) < limit and scanned < SCAN_MAX:
        want = limit if state == "all" else min(PAGE_MAX, SCAN_MAX - scanned)
        letters, _, end = await _read(platform, start, want)
        if not letters:
            # Nothing left to read up to the end (found in review: a topic whose letters had
            # all aged out answered `next_after` -1, or the caller's own `after` again).
            return shown, None, end
        looked = await _take(platform, letters, state, shown, limit)
        scanned += looked
        start = letters[looked - 1].offset + 1
    return shown, (start - 1 if start < end else None), end


async def _newest_first(
    platform: Platform, before: int | None, limit: int, state: State
) -> tuple[list[DeadLetterOut], int | None, int]:
    """Letters before `before` (the topic's end when None), newest first, read a window at a
    time backwards; with the cursor for the next older page and the topic's end offset."""
    _, first, end = await _read(platform, 0, 0)  # the topic's offsets, no letter read
    cursor = end if before is None else min(before, end)
    shown: list[DeadLetterOut] = []
    scanned = 0
    while cursor > first and len(shown) < limit and scanned < SCAN_MAX:
        start = max(first, cursor - PAGE_MAX)
        page = await _read(platform, start, cursor - start)
        letters = [letter for letter in reversed(page.letters) if letter.offset < cursor]
        looked = await _take(platform, letters, state, shown, limit)
        scanned += looked
        # Stopped at the limit: the next page starts before the last letter shown; otherwise
        # the whole window was looked at.
        cursor = letters[looked - 1].offset if len(shown) == limit else start
    return shown, (cursor if cursor > first else None), end


def _consumer_of(platform: Platform, letter: DeadLetter) -> EventConsumer:
    """The consumer that dead-lettered the letter, which must read its origin topic (a forged
    `dlq.origin.topic` header cannot make a consumer handle another topic's records)."""
    group = letter.headers.get(DLQ_CONSUMER, "")
    consumer = next((c for c in platform.consumers if c.group_id == group), None)
    if consumer is None:
        raise Conflict(f"dead letter {letter.offset}: this service has no consumer {group!r}")
    if letter.headers.get(DLQ_ORIGIN_TOPIC) not in {topic.name for topic in consumer.topics}:
        raise Conflict(
            f"dead letter {letter.offset}: its origin topic "
            f"{letter.headers.get(DLQ_ORIGIN_TOPIC, '')[:200]!r} is not one {group} reads"
        )
    return consumer


def _record(letter: DeadLetter, topic: str) -> ConsumerRecord[bytes, bytes]:
    """The original record again, at its original coordinates, naming the letter it was."""
    headers = [
        (name, value.encode())
        for name, value in letter.headers.items()
        if name not in DLQ_HEADERS and name != DLQ_REPLAYED_FROM
    ]
    headers.append((DLQ_REPLAYED_FROM, f"{topic}:{letter.offset}".encode()))
    return ConsumerRecord(
        topic=letter.headers[DLQ_ORIGIN_TOPIC],
        partition=_header_int(letter, DLQ_ORIGIN_PARTITION) or 0,
        offset=_header_int(letter, DLQ_ORIGIN_OFFSET) or 0,
        timestamp=int(now().timestamp() * 1000),
        timestamp_type=0,
        key=letter.key,
        value=letter.value,
        checksum=None,
        serialized_key_size=len(letter.key or b""),
        serialized_value_size=len(letter.value),
        headers=headers,
    )


DETAILS = {
    Outcome.PROCESSED: "processed",
    Outcome.DUPLICATE: "already processed before: nothing was done again",
    Outcome.IGNORED: "not an event its consumer handles: nothing to do",
}


async def _replay(
    platform: Platform, who: Caller, letter: DeadLetter, *, refuse_done: bool
) -> ReplayedOut | None:
    """Replay one letter once (None when it was replayed before and `refuse_done` is off)."""
    consumer = _consumer_of(platform, letter)
    topic = dead_letter_topic(platform.schema).name
    record = _record(letter, topic)
    # One replay at a time per service: the check below and the mark cannot race. Waiting is
    # in memory first, holding no connection: a replay needs a second one for its consumer,
    # and ten requests each holding one while waiting for the lock took the whole pool (the
    # holder never got its second, and the service stopped until restarted). The advisory
    # lock orders the instances; each waits there with one connection of its own pool.
    async with platform.replays, platform.transaction() as conn:
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"{topic}.replay")
        done = (await _replays(conn, [letter.offset])).get(letter.offset)
        if done is not None:
            if not refuse_done:
                return None
            raise Conflict(
                f"dead letter {letter.offset} was replayed at {done.at.isoformat()} by "
                f"{done.by} ({done.outcome.value})"
            )
        try:
            outcome = await consumer.process(record)
        except NackMessage as error:
            raise Unavailable(
                "the service's database is unavailable; nothing was replayed, retry later"
            ) from error
        detail = DETAILS.get(outcome, "")
        if outcome is Outcome.DEAD_LETTERED:
            reason = await conn.fetchval(
                "SELECT headers->>'dlq.reason' FROM outbox WHERE event_id = $1",
                dead_letter_id(consumer.group_id, record),
            )
            detail = f"failed again, parked as a new dead letter: {reason or 'see the list'}"
        await conn.execute(
            """INSERT INTO dead_letter_replays (dlq_offset, consumer, outcome, detail, principal)
               VALUES ($1, $2, $3, $4, $5)""",
            letter.offset,
            consumer.group_id,
            outcome.value,
            detail,
            who.subject,
        )
        await record_action(conn, who, "dead_letter.replay", f"{topic}:{letter.offset}")
    return ReplayedOut(offset=letter.offset, outcome=outcome, detail=detail)


@dead_letters.post("/{offset}/replay", response_model=ReplayedOut)
async def replay_one(
    offset: Annotated[int, Path(ge=0, le=2**63 - 1)], who: AdminDep, platform: PlatformDep
) -> ReplayedOut:
    """Run one dead letter's record again through its consumer (after a fix). 409 when it was
    replayed before (each letter once); a failure again is a new dead letter."""
    letters = (await _read(platform, offset, 1)).letters
    if not letters or letters[0].offset != offset:
        raise NotFound(f"no dead letter at offset {offset} (the topic keeps them for a week)")
    replayed = await _replay(platform, who, letters[0], refuse_done=True)
    assert replayed is not None
    return replayed


@dead_letters.post("/replay", response_model=ReplayAllOut)
async def replay_all(body: ReplayAllIn, who: AdminDep, platform: PlatformDep) -> ReplayAllOut:
    """Replay every letter still waiting, oldest first, from `since` up to `through`. A letter
    whose consumer or origin no longer fits is left waiting, and listed in `skipped` with why."""
    replayed: list[ReplayedOut] = []
    skipped: list[SkippedOut] = []
    start = body.since or 0
    through = body.through
    end: int | None = None
    while start <= through and len(replayed) < REPLAY_ALL_MAX:
        page = await _read(platform, start, min(PAGE_MAX, through - start + 1))
        if end is None:
            # Up to the end as it stands now: a letter this call parks again is a new one
            # after it, left for the next call (a `through` past the end replayed them over
            # and over, each failure a new letter, to the 500 a call).
            end = page.end
            through = min(through, end - 1)
        letters = page.letters
        # None left at or below `through` (retention may have deleted every letter up to
        # it: the first kept one lies beyond, and the loop read that page again forever).
        if not letters or letters[0].offset > through:
            break
        async with platform.pool.acquire() as conn:
            done_before = await _replays(conn, [letter.offset for letter in letters])
        for letter in letters:
            if letter.offset > through or len(replayed) == REPLAY_ALL_MAX:
                break
            start = letter.offset + 1
            if letter.offset in done_before:
                continue
            try:
                done = await _replay(platform, who, letter, refuse_done=False)
            except Conflict as refused:
                skipped.append(SkippedOut(offset=letter.offset, reason=refused.message))
                continue
            if done is not None:
                replayed.append(done)
    return ReplayAllOut(
        replayed=replayed,
        more=len(replayed) == REPLAY_ALL_MAX and start <= through,
        skipped=skipped,
    )
