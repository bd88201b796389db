"""HTTP models of enablement: xAPI statements as the learning system sends them (the xAPI
statement resource's shapes: camelCase properties, an actor identified by exactly one of mbox,
mbox_sha1sum, openid or account), and a partner's people."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from services.onboarding.domain.config import OnboardingConfig
from services.onboarding.domain.enablement import (
    VOIDED,
    PersonRole,
    Statement,
    account_key,
    actor_keys,
    mbox_key,
)
from services.onboarding.domain.resources import Engagement, ResourceKind
from services.onboarding.schemas import CertificationOut, Email, ManagersOnly
from shared.errors import Unprocessable
from shared.events.partners import PartnerType
from shared.inputs import (
    AsOf,
    Code,
    HttpsUrl,
    Instant,
    JsonObject,
    Name,
    as_ident,
    as_text,
    check_email,
    storable_json,
)


def _parsable(value: str) -> str:
    try:
        urlsplit(value)
    except ValueError as error:  # "https://[x": an invalid IPv6 host answered 500 downstream
        raise ValueError(f"not an IRI: {error}") from None
    return value


# An IRI (verb, activity, account home page): exact, no controls, bounded, parsable.
Iri = Annotated[
    str,
    Field(min_length=3, max_length=2000, pattern=r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$"),
    AfterValidator(as_ident),
    AfterValidator(_parsable),
]
# A person's key (an account's home page and name, percent-encoded; an openid) is indexed:
# 2,000 CJK characters encode to about 18 kB, past what a btree row holds (a 500 on insert).
ACTOR_KEY_MAX = 1000


def _fits(key: str, what: str) -> None:
    if len(key.encode()) > ACTOR_KEY_MAX:
        raise ValueError(f"{what} is too long: at most {ACTOR_KEY_MAX} bytes once percent-encoded")


LanguageMap = dict[
    Annotated[str, Field(max_length=35), AfterValidator(as_ident)],
    Annotated[str, Field(max_length=2000), AfterValidator(as_text)],
]
Json = JsonObject  # free xAPI objects (context, definition, extensions): kept as sent


def _mailbox(value: str) -> str:
    return "mailto:" + check_email(value.removeprefix("mailto:"), "mbox", mailbox=False)


def _is_uuid(value: str | None) -> bool:
    try:
        uuid.UUID(value or "")
    except ValueError:
        return False
    return True


class _Xapi(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        """Every key and string of the object, the ones kept as sent included, is one Postgres
        can store (a NUL or lone surrogate anywhere answered 500) and every number finite. The
        numbers are the doubles xAPI means (the platform reads a JSON body's as Decimals)."""
        return _doubles(storable_json(data, cls.__name__.removesuffix("In").lower()))


def _doubles(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {key: _doubles(inner) for key, inner in value.items()}
    if isinstance(value, list):
        return [_doubles(inner) for inner in value]
    return value


class AccountIn(_Xapi):
    home_page: Iri = Field(alias="homePage")
    name: Annotated[str, Field(min_length=1, max_length=200), AfterValidator(as_ident)]

    @model_validator(mode="after")
    def _key_fits(self) -> AccountIn:
        _fits(account_key(self.home_page, self.name), "the account (homePage and name)")
        return self


class AgentIn(_Xapi):
    """The actor: one person (a Group certifies nobody and is refused)."""

    object_type: Literal["Agent"] = Field(default="Agent", alias="objectType")
    name: Annotated[str, Field(max_length=200), AfterValidator(as_text)] | None = None
    mbox: (
        Annotated[str, Field(pattern=r"^mailto:", max_length=261), AfterValidator(_mailbox)] | None
    ) = None
    mbox_sha1sum: str | None = Field(default=None, pattern=r"^[0-9a-f]{40}$")
    openid: Iri | None = None
    account: AccountIn | None = None

    @model_validator(mode="after")
    def _one_identifier(self) -> AgentIn:
        given = [k for k in ("mbox", "mbox_sha1sum", "openid", "account") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(
                "an actor is identified by exactly one of mbox, mbox_sha1sum, openid, account "
                f"(got {', '.join(given) or 'none'})"
            )
        _fits(self.key, "the actor's identifier")
        return self

    @property
    def key(self) -> str:
        if self.mbox is not None:
            return mbox_key(self.mbox.removeprefix("mailto:"))
        if self.account is not None:
            return account_key(self.account.home_page, self.account.name)
        if self.openid is not None:
            return "openid:" + self.openid
        return f"mbox_sha1sum:{self.mbox_sha1sum}"


class VerbIn(_Xapi):
    id: Iri
    display: LanguageMap | None = None


class ObjectIn(_Xapi):
    """The object: an activity (a module, an exam), or another xAPI object kept as sent."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)
    object_type: Literal["Activity", "Agent", "Group", "StatementRef", "SubStatement"] = Field(
        default="Activity", alias="objectType"
    )
    id: Annotated[str, Field(max_length=2000), AfterValidator(as_ident)] | None = None
    definition: Json | None = None

    @model_validator(mode="after")
    def _activity_has_id(self) -> ObjectIn:
        if self.object_type == "Activity" and not self.id:
            raise ValueError("an Activity object needs its id (an IRI)")
        return self


class ScoreIn(_Xapi):
    scaled: Decimal | None = Field(default=None, ge=-1, le=1)
    raw: Decimal | None = Field(default=None, allow_inf_nan=False)
    min: Decimal | None = Field(default=None, allow_inf_nan=False)
    max: Decimal | None = Field(default=None, allow_inf_nan=False)

    @model_validator(mode="after")
    def _in_its_range(self) -> ScoreIn:
        """xAPI: `min` below `max`, `raw` between them (both were taken as sent)."""
        if self.min is not None and self.max is not None and self.min >= self.max:
            raise ValueError("score.min must be less than score.max")
        if self.raw is not None and self.min is not None and self.raw < self.min:
            raise ValueError("score.raw must not be below score.min")
        if self.raw is not None and self.max is not None and self.raw > self.max:
            raise ValueError("score.raw must not be above score.max")
        return self


class ResultIn(_Xapi):
    score: ScoreIn | None = None
    success: bool | None = None
    completion: bool | None = None
    response: Annotated[str, Field(max_length=2000), AfterValidator(as_text)] | None = None
    duration: (
        Annotated[str, Field(max_length=100, pattern=r"^P"), AfterValidator(as_ident)] | None
    ) = None
    extensions: Json | None = None


class StatementIn(_Xapi):
    """An xAPI statement. `stored`, `authority` and `version` may be sent but are the LRS's:
    this service sets them (authority: the system client that sent it)."""

    id: uuid.UUID | None = None
    actor: AgentIn
    verb: VerbIn
    object: ObjectIn
    result: ResultIn | None = None
    context: Json | None = None
    timestamp: Instant | None = None
    stored: datetime | None = None
    authority: Json | None = None
    version: Annotated[str, Field(pattern=r"^1\.0(\.\d+)?$")] | None = None
    attachments: list[Json] | None = Field(default=None, max_length=20)

    @model_validator(mode="after")
    def _actor_matchable(self) -> StatementIn:
        """Found in review: an actor named by a hashed mailbox or an OpenID was stored (200)
        and waited for good: people are registered by mailbox and learning-system account,
        so such a statement could never reach anyone's certification."""
        if self.actor.mbox is None and self.actor.account is None:
            given = "mbox_sha1sum" if self.actor.mbox_sha1sum else "openid"
            raise ValueError(
                f"the actor is identified by {given}: people are known here by their mailbox"
                " (mbox) or their learning-system account (account), so it could never be"
                " matched to anyone; send one of those"
            )
        return self

    @model_validator(mode="after")
    def _voiding(self) -> StatementIn:
        if self.verb.id == VOIDED and (
            self.object.object_type != "StatementRef" or not _is_uuid(self.object.id)
        ):
            raise ValueError(
                "a voided statement's object is a StatementRef naming the statement's id"
            )
        return self

    def content(self, statement_id: str) -> dict[str, Any]:
        """The statement as stored (before the LRS's own properties are added)."""
        body = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        body["id"] = statement_id
        return body

    def parsed(self, statement_id: str, stored: datetime) -> Statement:
        activity = self.object.id if self.object.object_type == "Activity" else None
        score = self.result.score if self.result is not None else None
        return Statement(
            statement_id=statement_id,
            actor_key=self.actor.key,
            verb=self.verb.id,
            activity=activity,
            success=self.result.success if self.result is not None else None,
            scaled_score=score.scaled if score is not None else None,
            occurred_at=self.timestamp or stored,
            voids=str(uuid.UUID(self.object.id))
            if self.verb.id == VOIDED and self.object.id
            else None,
        )


class PersonIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    email: Email
    name: Name | None = None
    role: PersonRole
    lms_account: AccountIn | None = Field(
        default=None,
        description="the person's account in the learning system, if statements "
        "name them by account rather than mailbox",
    )

    def keys(self) -> list[str]:
        account = (self.lms_account.home_page, self.lms_account.name) if self.lms_account else None
        return actor_keys(self.email.lower(), account)


class PersonOut(BaseModel):
    person_id: str
    partner_id: str
    email: str
    name: str | None
    role: str
    lms_account: str | None
    joined_at: str
    left_at: str | None
    added_by: ManagersOnly = None
    left_by: ManagersOnly = None


class LeaveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    left_at: Instant | None = Field(
        default=None, description="when the person left (default: now; never in the future)"
    )


class ModuleOut(BaseModel):
    activity_id: str
    title: str
    state: Literal["done", "next", "locked", "out_of_order"]
    completed_at: str | None


class PersonProgressOut(BaseModel):
    person_id: str
    email: str
    name: str | None
    modules: list[ModuleOut]
    done: int
    complete: bool
    exam_passed_at: str | None


class PathOut(BaseModel):
    name: str
    role: str
    leads_to: str | None = Field(description="the certification exam the path leads to")
    certification_track: str | None = Field(
        default=None, description="the competency track of the certification the exam gives"
    )
    certification_role: str | None = Field(
        default=None, description="the role (sales, technical) of the certification it gives"
    )
    modules: int
    people: list[PersonProgressOut] = Field(description="the partner's current people of the role")


class LearningOut(BaseModel):
    partner_id: str
    partner_type: str
    tier: str
    policy_version: str = Field(description="the program version the paths are taken from")
    paths: list[PathOut]


class RemindersIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    as_of: AsOf | None = Field(default=None, description="send as of this moment (default: now)")


class ReminderOut(BaseModel):
    certification_id: str
    days_before: int


class RemindersOut(BaseModel):
    as_of: str
    sent: list[ReminderOut]


class ResourceIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    kind: ResourceKind
    title: Name
    # Parsed as a browser will (host, port): a page listing a malformed address failed (500).
    url: HttpsUrl
    partner_types: list[PartnerType] = Field(
        default_factory=list, max_length=20, description="the types it is meant for (none: all)"
    )
    tiers: list[Code] = Field(
        default_factory=list, max_length=20, description="the tiers it is meant for (none: all)"
    )

    def checked_tiers(self, config: OnboardingConfig) -> list[str]:
        """Its tiers, each one of the program's (422 naming them otherwise)."""
        known = [t.name for t in config.tiers]
        unknown = sorted(set(self.tiers) - set(known))
        if unknown:
            raise Unprocessable(f"unknown tiers {', '.join(unknown)}; tiers are {', '.join(known)}")
        return sorted(set(self.tiers))


class ResourceOut(BaseModel):
    resource_id: str
    kind: str
    title: str
    url: str
    partner_types: list[str]
    tiers: list[str]
    published_at: str
    withdrawn_at: str | None = None
    published_by: ManagersOnly = None


class EngagementIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Engagement


class EngagementOut(BaseModel):
    resource: ResourceOut
    action: str
    recorded: bool = Field(description="false: recorded already (a download today, a sign-up)")


class EnablementOut(BaseModel):
    """Enablement KPIs and the health signal (of a partner, or of the whole programme)."""

    partner_id: str | None = Field(description="null: the whole programme")
    partners: int
    people: int
    training_completion_rate: str | None
    certified_share: str | None
    engaged_share: str | None
    median_days_to_first_certification: str | None
    downloads: int
    sandbox_signups: int
    window_days: int
    score: str = Field(description="enablement health 0-100")
    reasons: list[str]


class WaitingActorOut(BaseModel):
    actor: str = Field(description="mbox:<email>, account:<homePage>|<name>, openid:… or …")
    statements: int
    first_stored_at: str
    last_stored_at: str


class StatementOutcomeOut(BaseModel):
    statement_id: str
    verb: str
    activity: str | None
    occurred_at: str
    outcome: str = Field(description="what it did: certified, renewed, recorded (and why)")
    certification_id: str | None
    voided: bool


class PersonRecordOut(BaseModel):
    """A person with what the learning system said of them and what it did."""

    person: PersonOut
    certifications: list[CertificationOut]
    statements: list[StatementOutcomeOut] = Field(description="the latest 200, newest first")
