"""The rules of engagement the service runs under: the deployed policy (DEALS_POLICY_FILE, or
the defaults) and the versioned policy documents in the database (proposed once, never edited,
activated at a time). Every decision is made under the version in force when it is made."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from services.deals.domain.bounds import proposal_problem
from services.deals.domain.rules import InvalidPolicy, RulesOfEngagement, rules_from_mapping
from shared.db import Connection, advisory_key
from shared.errors import Conflict, NotFound, Unprocessable

log = logging.getLogger(__name__)
_ADAPTER = TypeAdapter(RulesOfEngagement)
DEPLOY = "system:deploy"


def load_policy(path: str) -> RulesOfEngagement:
    """The policy in the JSON file at `path`, or the defaults when no file is named. An
    unreadable or invalid file stops the service with the exact reason."""
    if not path:
        return RulesOfEngagement()
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise InvalidPolicy(f"cannot read DEALS_POLICY_FILE {path}: {error}") from error
    if not isinstance(data, dict):
        raise InvalidPolicy(f"DEALS_POLICY_FILE {path} must hold a JSON object")
    problem = proposal_problem(data)  # a deployed file is a new version too (found by review)
    if problem is not None:
        raise InvalidPolicy(f"invalid rules of engagement in DEALS_POLICY_FILE {path}: {problem}")
    return rules_from_mapping(data)


def document_of(policy: RulesOfEngagement) -> dict[str, Any]:
    """The policy as its JSON document (every setting, so a version reads whole)."""
    document: dict[str, Any] = _ADAPTER.dump_python(policy, mode="json")
    for name in ("statuses_allowed_to_register", "business_weekdays", "holidays"):
        document[name] = sorted(document[name])
    return document


def parsed(document: dict[str, Any]) -> RulesOfEngagement:
    """A proposed document as a policy; 422 with the exact reason when it cannot be one."""
    problem = proposal_problem(document)
    if problem is not None:
        raise Unprocessable(f"invalid rules of engagement: {problem}")
    try:
        return rules_from_mapping(document)
    except InvalidPolicy as error:
        raise Unprocessable(str(error)) from error


def differences(old: RulesOfEngagement, new: RulesOfEngagement) -> dict[str, Any]:
    """The settings a new version changes: name -> [old, new] (JSON values)."""
    before, after = document_of(old), document_of(new)
    return {k: [before[k], after[k]] for k in after if k != "version" and before[k] != after[k]}


_IN_FORCE_SQL = """
SELECT a.version, a.active_from, a.activated_by, v.document FROM policy_activations a
JOIN policy_versions v USING (version)
WHERE a.active_from <= $1 ORDER BY a.active_from DESC, a.seq DESC LIMIT 1
"""


@dataclass
class PolicyStore:
    """The versions in the database, and the deployed policy, which is proposed and activated
    at the first use when it never was (a version's document is never edited: a deployed file
    naming a stored version with another document is refused and logged)."""

    deployed: RulesOfEngagement
    _cache: dict[str, RulesOfEngagement] = field(default_factory=dict)
    _seeded: bool = False

    async def seed(self, conn: Connection) -> None:
        """Store and activate the deployed policy when it never was. Remembered only when done in
        a transaction of its own (the service seeds at start, so): inside a caller's transaction
        what it wrote is undone if the caller rolls back, so the next use checks again."""
        if self._seeded:
            return
        own_transaction = not conn.is_in_transaction()
        async with conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock($1)", advisory_key("deals", "policy-versions")
            )
            stored = await conn.fetchval(
                "SELECT document FROM policy_versions WHERE version = $1", self.deployed.version
            )
            if stored is None:
                await self._insert(conn, self.deployed, DEPLOY, "deployed")
            elif rules_from_mapping(json.loads(stored)) != self.deployed:
                log.error(
                    "deployed policy %s differs from the stored version of that name: not"
                    " activated (a version is never edited; name the new one)",
                    self.deployed.version,
                )
                self._seeded = True
                return
            ever = await conn.fetchval(
                "SELECT count(*) FROM policy_activations WHERE version = $1",
                self.deployed.version,
            )
            if not ever:
                await conn.execute(
                    """INSERT INTO policy_activations (version, active_from, activated_by)
                       VALUES ($1, clock_timestamp(), $2)""",
                    self.deployed.version,
                    DEPLOY,
                )
        self._seeded = own_transaction

    @staticmethod
    async def _insert(conn: Connection, policy: RulesOfEngagement, by: str, note: str) -> None:
        await conn.execute(
            """INSERT INTO policy_versions (version, document, note, proposed_by)
               VALUES ($1, $2::jsonb, $3, $4)""",
            policy.version,
            json.dumps(document_of(policy)),
            note,
            by,
        )

    def _policy(self, version: str, document: str) -> RulesOfEngagement:
        policy = self._cache.get(version)
        if policy is None:  # versions never change: parsed once per process
            policy = self._cache[version] = rules_from_mapping(json.loads(document))
        return policy

    async def in_force(self, conn: Connection, at: datetime) -> RulesOfEngagement:
        """The version in force at `at` (the deployed policy when none was ever activated)."""
        await self.seed(conn)
        row = await conn.fetchrow(_IN_FORCE_SQL, at)
        if row is None:
            return self.deployed
        return self._policy(row["version"], row["document"])

    async def in_force_row(self, conn: Connection, at: datetime) -> Any:
        await self.seed(conn)
        return await conn.fetchrow(_IN_FORCE_SQL, at)

    async def propose(
        self, conn: Connection, document: dict[str, Any], by: str, note: str
    ) -> dict[str, Any]:
        """Store a new version (409 when its name exists: versions are never edited); returns
        the stored version with its whole document."""
        policy = parsed(document)
        await self.seed(conn)
        await conn.execute(
            "SELECT pg_advisory_xact_lock($1)", advisory_key("deals", "policy-versions")
        )
        exists = await conn.fetchval(
            "SELECT 1 FROM policy_versions WHERE version = $1", policy.version
        )
        if exists:
            raise Conflict(
                f"policy version {policy.version} exists; a version is never edited: name a new one"
            )
        await self._insert(conn, policy, by, note)
        row = await conn.fetchrow(
            "SELECT * FROM policy_versions WHERE version = $1", policy.version
        )
        return {**dict(row or {}), "document": document_of(policy)}

    async def activate(self, conn: Connection, version: str, at: datetime, by: str) -> None:
        """Put a stored version in force from `at` (now or later)."""
        await self.seed(conn)
        if not await conn.fetchval("SELECT 1 FROM policy_versions WHERE version = $1", version):
            raise NotFound(f"policy version {version} not found")
        await conn.execute(
            "INSERT INTO policy_activations (version, active_from, activated_by) VALUES ($1, $2, $3)",
            version,
            at,
            by,
        )

    async def history(self, conn: Connection) -> tuple[list[Any], list[Any]]:
        """Every version (oldest first) and every activation (in the order they were made)."""
        await self.seed(conn)
        versions = await conn.fetch("SELECT * FROM policy_versions ORDER BY proposed_at, version")
        activations = await conn.fetch("SELECT * FROM policy_activations ORDER BY seq")
        return list(versions), list(activations)
