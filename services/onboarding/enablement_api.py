"""HTTP API of enablement: the xAPI statement resource the learning system (a system client)
sends statements to, and a partner's people (the person registry statements are mapped to)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import Body, Header, Query, Response, status
from pydantic import Field

from services.onboarding import enablement_repository as store
from services.onboarding import enablement_views, views
from services.onboarding.api import ConfigDep
from services.onboarding.domain.enablement import XAPI_VERSION, comparable
from services.onboarding.enablement_schemas import (
    EnablementOut,
    EngagementIn,
    EngagementOut,
    LearningOut,
    LeaveIn,
    PersonIn,
    PersonOut,
    PersonRecordOut,
    ReminderOut,
    RemindersIn,
    RemindersOut,
    ResourceIn,
    ResourceOut,
    StatementIn,
    WaitingActorOut,
)
from services.onboarding.library import engage
from services.onboarding.people import add_person, leave
from services.onboarding.reminders import send_reminders
from services.onboarding.statements import receive
from shared.audit import record_run_asked
from shared.clock import now
from shared.errors import NotFound, RequestError, Unprocessable
from shared.http import (
    AdminDep,
    CallerDep,
    PlatformDep,
    acting_partner,
    api_router,
    own_partner,
    require_role,
    run_moment,
)
from shared.identity import Caller, Role

xapi = api_router(prefix="/xapi", tags=["xapi"])
people = api_router(tags=["people"])
library = api_router(tags=["resources"])
admin = api_router(prefix="/admin", tags=["admin"])

SystemDep = Annotated[Caller, require_role(Role.SYSTEM)]
# Who registers people and records their leaving: the partner's own admins, channel managers
# and system clients (an HR or identity feed).
PeopleWriterDep = Annotated[
    Caller, require_role(Role.PARTNER_ADMIN, Role.CHANNEL_MANAGER, Role.SYSTEM)
]
VersionHeader = Annotated[
    str | None,
    Header(
        alias="X-Experience-API-Version",
        description="the xAPI version the client speaks (1.0.x)",
    ),
]
StatementId = Annotated[uuid.UUID, Query(alias="statementId")]
MAX_BATCH = 500


def _speaks_xapi(version: str | None, response: Response) -> None:
    """Every xAPI request names its version; this service answers in 1.0.3."""
    response.headers["X-Experience-API-Version"] = XAPI_VERSION
    if version is None or not (version == "1.0" or version.startswith("1.0.")):
        raise RequestError(
            f"X-Experience-API-Version 1.0.x required (got {version!r}); this LRS speaks "
            f"{XAPI_VERSION}"
        )


def _batch(statements: list[StatementIn]) -> list[tuple[StatementIn, str]]:
    """Each statement with its id (the LRS gives one to a statement that has none); an id
    twice in one request is refused unless both are the same statement (then it is one)."""
    seen: dict[str, str] = {}
    batch = []
    for statement in statements:
        statement_id = str(statement.id or uuid.uuid4())
        sent = comparable(statement.content(statement_id))
        if statement_id in seen:
            if seen[statement_id] != sent:
                raise RequestError(f"statement {statement_id} appears twice with other content")
            continue
        seen[statement_id] = sent
        batch.append((statement, statement_id))
    return batch


async def _store(
    platform: PlatformDep, config: ConfigDep, who: Caller, statements: list[StatementIn]
) -> list[str]:
    at = now()
    batch = _batch(statements)
    async with platform.transaction() as conn:
        await receive(
            conn,
            platform.outbox,
            config,
            [(s.parsed(i, at), s.content(i)) for s, i in batch],
            at=at,
            by=who.acting_as,
            by_subject=who.subject,
        )
    return [i for _, i in batch]


@xapi.put("/statements", status_code=204, response_class=Response)
async def put_statement(
    statement_id: StatementId,
    body: StatementIn,
    who: SystemDep,
    platform: PlatformDep,
    config: ConfigDep,
    response: Response,
    version: VersionHeader = None,
) -> Response:
    """Store one statement under `statementId` (204). The same statement again: 204, nothing
    happens twice; other content under a stored id: 409."""
    _speaks_xapi(version, response)
    if body.id is not None and body.id != statement_id:
        raise RequestError(f"the statement's id {body.id} is not statementId {statement_id}")
    await _store(platform, config, who, [body.model_copy(update={"id": statement_id})])
    return Response(status_code=status.HTTP_204_NO_CONTENT, headers=dict(response.headers))


@xapi.post("/statements")
async def post_statements(
    body: Annotated[
        StatementIn | Annotated[list[StatementIn], Field(max_length=MAX_BATCH)], Body()
    ],
    who: SystemDep,
    platform: PlatformDep,
    config: ConfigDep,
    response: Response,
    version: VersionHeader = None,
) -> list[str]:
    """Store a statement or a list of them (at most 500), together or not at all; answers
    their ids in order (given to those without one)."""
    _speaks_xapi(version, response)
    statements = body if isinstance(body, list) else [body]
    if not statements:
        raise Unprocessable("no statements")
    return await _store(platform, config, who, statements)


@xapi.get("/statements")
async def get_statement(
    who: Annotated[Caller, require_role(Role.SYSTEM, Role.CHANNEL_MANAGER)],
    platform: PlatformDep,
    response: Response,
    statement_id: Annotated[uuid.UUID | None, Query(alias="statementId")] = None,
    voided_statement_id: Annotated[uuid.UUID | None, Query(alias="voidedStatementId")] = None,
    version: VersionHeader = None,
) -> dict[str, Any]:
    """One stored statement, with `stored` and `authority` as this LRS set them: by
    `statementId` unless it was voided, a voided one by `voidedStatementId` (xAPI: a voided
    statement is returned only so; it was returned by its id like any other)."""
    _speaks_xapi(version, response)
    if (statement_id is None) == (voided_statement_id is None):
        raise RequestError("name exactly one of statementId and voidedStatementId")
    voided = voided_statement_id is not None
    wanted = str(voided_statement_id if voided else statement_id)
    return await views.statement(platform.pool, wanted, voided=voided)


@people.post(
    "/partners/{partner_id}/people",
    status_code=201,
    response_model_exclude_unset=True,
    responses={200: {"model": PersonOut, "description": "registered before: as it is"}},
)
async def register_person(
    partner_id: str,
    body: PersonIn,
    who: PeopleWriterDep,
    platform: PlatformDep,
    config: ConfigDep,
    response: Response,
) -> PersonOut:
    """Register one of the partner's people (201); the learning system's statements naming
    their mailbox or account apply from then on, those already received included. The same
    person again: 200, unchanged; a current person of another partner: 409. The partner's own
    admin names only addresses in the domain the partner holds (verified), or under it, and a
    learning-system account only on that domain: 403 naming the rule otherwise; a channel
    manager or system feed registers anyone (recorded as `added_by`)."""
    own_partner(who, partner_id)
    async with platform.transaction() as conn:
        row, created = await add_person(
            conn,
            platform.outbox,
            config,
            partner_id,
            body,
            now(),
            by=who.acting_as,
            as_partner=who.is_partner,
        )
    if not created:
        response.status_code = status.HTTP_200_OK
    return views.person_out(row, full=who.is_admin)


@people.get("/partners/{partner_id}/people", response_model_exclude_unset=True)
async def list_people(partner_id: str, who: CallerDep, platform: PlatformDep) -> list[PersonOut]:
    own_partner(who, partner_id)
    return await views.people(platform.pool, partner_id, full=who.is_admin)


@people.get("/partners/{partner_id}/people/{person_id}", response_model_exclude_unset=True)
async def person_record(
    partner_id: str, person_id: str, who: CallerDep, platform: PlatformDep
) -> PersonRecordOut:
    """One of the partner's people: their certifications and what each of the latest 200
    statements the learning system sent about them did."""
    own_partner(who, partner_id)
    return await enablement_views.person_record(
        platform.pool, partner_id, person_id, full=who.is_admin
    )


@people.get("/partners/{partner_id}/learning")
async def learning_paths(
    partner_id: str, who: CallerDep, platform: PlatformDep, config: ConfigDep
) -> LearningOut:
    """The learning paths for the partner's type and tier (the program in force), and how far
    each of its current people of the path's role has come."""
    own_partner(who, partner_id)
    return await enablement_views.learning(platform.pool, config, partner_id)


@people.post("/partners/{partner_id}/people/{person_id}/leave", response_model_exclude_unset=True)
async def person_leaves(
    partner_id: str,
    person_id: str,
    who: PeopleWriterDep,
    platform: PlatformDep,
    config: ConfigDep,
    body: LeaveIn | None = None,
) -> PersonOut:
    """The person has left the partner (at `left_at`, default now): their certifications no
    longer count towards its competencies; the tier consequences follow the grace rules."""
    own_partner(who, partner_id)
    at = now()
    left_at = body.left_at if body is not None and body.left_at is not None else at
    async with platform.transaction() as conn:
        row = await leave(
            conn, platform.outbox, config, partner_id, person_id, left_at, at=at, by=who.acting_as
        )
    return views.person_out(row, full=who.is_admin)


@admin.post("/certification-reminders/run")
async def run_reminders(
    who: AdminDep, platform: PlatformDep, config: ConfigDep, body: RemindersIn | None = None
) -> RemindersOut:
    """Send the certification reminders due now, or as of `as_of` (drives time
    deterministically); each window of each certification is sent once."""
    as_of = run_moment(body.as_of if body is not None else None, platform)
    await record_run_asked(platform.pool, who, "certification_reminders.run", as_of.isoformat())
    sent = await send_reminders(platform.pool, platform.outbox, config, as_of)
    return RemindersOut(
        as_of=as_of.isoformat(),
        sent=[ReminderOut(certification_id=c, days_before=d) for c, d in sent],
    )


@admin.post("/resources", status_code=201, tags=["resources"])
async def publish_resource(
    body: ResourceIn, who: AdminDep, platform: PlatformDep, config: ConfigDep
) -> ResourceOut:
    """Publish a resource (collateral, playbook, technical guide, SDK/API early-access
    programme) to the partner types and tiers it is meant for (none listed: all)."""
    tiers = body.checked_tiers(config)
    async with platform.transaction() as conn:
        row = await store.insert_resource(
            conn,
            kind=body.kind.value,
            title=body.title,
            url=body.url,
            partner_types=sorted({t.value for t in body.partner_types}),
            tiers=tiers,
            by=who.acting_as,
            at=now(),
        )
    return enablement_views.resource_out(row, full=True)


@admin.post("/resources/{resource_id}/withdraw", tags=["resources"])
async def withdraw_resource(resource_id: str, _: AdminDep, platform: PlatformDep) -> ResourceOut:
    """Withdraw a resource: partners no longer see it (its engagement stays counted)."""
    async with platform.transaction() as conn:
        row = await store.withdraw_resource(conn, resource_id, now())
    if row is None:
        raise NotFound(f"resource {resource_id} not found")
    return enablement_views.resource_out(row, full=True)


@library.get("/resources", response_model_exclude_unset=True)
async def list_resources(who: CallerDep, platform: PlatformDep) -> list[ResourceOut]:
    """A partner's people: the resources meant for their partner's type and tier; channel
    managers: every resource, withdrawn ones included."""
    return await enablement_views.resources(platform.pool, who.partner_id)


@library.post(
    "/resources/{resource_id}/engagements",
    status_code=201,
    response_model_exclude_unset=True,
    responses={200: {"model": EngagementOut, "description": "recorded before: as it is"}},
)
async def engage_with_resource(
    resource_id: str,
    body: EngagementIn,
    who: Annotated[Caller, require_role(Role.PARTNER_USER, Role.PARTNER_ADMIN)],
    platform: PlatformDep,
    response: Response,
) -> EngagementOut:
    """One of the partner's people downloads a resource or signs up for an early-access
    sandbox (201; a download again the same day or a sign-up again: 200, counted once). A
    resource not meant for the partner: 404."""
    partner_id = acting_partner(who, None)
    async with platform.transaction() as conn:
        row, created = await engage(
            conn, partner_id, resource_id, body.action, subject=who.subject, at=now()
        )
    if not created:
        response.status_code = status.HTTP_200_OK
    return EngagementOut(
        resource=enablement_views.resource_out(row, full=False),
        action=body.action.value,
        recorded=created,
    )


@people.get("/partners/{partner_id}/enablement")
async def partner_enablement(
    partner_id: str, who: CallerDep, platform: PlatformDep, config: ConfigDep
) -> EnablementOut:
    """The partner's enablement KPIs (training completion rate, time to first certification,
    resource engagement) and its enablement health, with reasons."""
    own_partner(who, partner_id)
    return await enablement_views.enablement(platform.pool, config, partner_id, now())


@admin.get("/enablement")
async def programme_enablement(
    _: AdminDep, platform: PlatformDep, config: ConfigDep
) -> EnablementOut:
    """The programme's enablement KPIs over every partner in evaluation."""
    return await enablement_views.enablement(platform.pool, config, None, now())


@admin.get("/xapi/waiting", tags=["xapi"])
async def statements_waiting(_: AdminDep, platform: PlatformDep) -> list[WaitingActorOut]:
    """Actors of stored statements that are nobody's yet (no person registered with that
    mailbox or account), with how many statements wait for them: who to register (the 1,000
    with the most waiting)."""
    return await enablement_views.waiting_actors(platform.pool)
