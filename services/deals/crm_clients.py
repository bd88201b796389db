"""Clients of the CRMs' own APIs, to fetch current state (a resync) and, later, to write back.

Salesforce REST (`/services/data/vXX.X/`): an Opportunity by id (sObject GET) and the records
changed since a moment (SOQL through `queryAll`, which includes deleted records, following
`nextRecordsUrl` page by page). A request limit (HTTP 429, or 403 with `REQUEST_LIMIT_EXCEEDED`)
raises RateLimited with how long to wait; anything else unexpected raises CrmUnavailable."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx

from services.deals.adapters.hubspot import (
    COMPANY_PROPERTIES,
    DEAL_PROPERTIES,
    LINE_ITEM_PROPERTIES,
)
from services.deals.adapters.salesforce import RECORD_FIELDS
from services.deals.settings import DealsSettings
from shared.clock import now
from shared.inputs import MalformedJson, parse_json

DEFAULT_RATE_LIMIT_WAIT = 60.0
RATE_LIMIT_WAIT_MAX = 3600.0  # a CRM asking for longer is asked again after an hour
BACKOFF_FIRST, BACKOFF_MAX = timedelta(seconds=5), timedelta(hours=1)
BACKOFF_DOUBLINGS = 10  # 5 s * 2**10 passes the hour
# A request to a CRM's API takes its client's timeout (20 s) at the most; a write-back or a
# resync is at most three of them (a HubSpot deal with its company and line items; ACE's read
# and write). A leased job begins one only while its lease outlasts this.
SLOWEST_CRM_CALLS = timedelta(seconds=3 * 20)


def outlasts_a_call(lease_ends: datetime) -> bool:
    """Whether a lease ending at `lease_ends` outlasts CRM calls begun now, at their slowest."""
    return now() + SLOWEST_CRM_CALLS <= lease_ends


MAX_PAGES = 1000  # a window larger than this many pages (2,000 rows each) is resumed later


class CrmUnavailable(Exception):
    """The CRM could not answer now (down, refused, an unexpected answer): try later."""


class CrmRefused(Exception):
    """The CRM refused the request for good (a 4xx other than a rate limit): retrying the same
    request cannot help; the reason says why."""


class RateLimited(CrmUnavailable):
    def __init__(self, message: str, wait_seconds: float) -> None:
        super().__init__(message)
        self.wait_seconds = wait_seconds


def bearer_client(base_url: str, token: str, timeout: float) -> httpx.AsyncClient:
    """A client of one CRM API authorised by an OAuth access token; it never follows a
    redirect (the token would go with it)."""
    return httpx.AsyncClient(
        base_url=base_url,
        headers={"Authorization": f"Bearer {token}"},
        timeout=timeout,
        follow_redirects=False,
    )


async def send(
    client: httpx.AsyncClient,
    crm: str,
    method: str,
    url: str,
    *,
    params: dict[str, str] | None = None,
    json_body: Any = None,
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """One request to a CRM: not reaching it (down, refused, timed out) is CrmUnavailable,
    naming the CRM; whatever it answers is the caller's to read."""
    try:
        return await client.request(
            method, url, params=params, json=json_body, content=content, headers=headers
        )
    except httpx.HTTPError as error:
        raise CrmUnavailable(f"{crm} unreachable: {type(error).__name__}") from error


def answer_json(answer: httpx.Response) -> Any:
    """The answer's JSON body, None when it has none (or not JSON). Read as a CRM's webhook is
    (`parse_json`): a number with a fraction is an exact Decimal, so an amount a CRM's API
    answers keeps every digit (a binary float turns 82261615611686.07 into ...686.06)."""
    try:
        return parse_json(answer.content)
    except MalformedJson:
        return None


def answer_document(answer: httpx.Response, crm: str, what: str) -> dict[str, Any]:
    """The JSON object a CRM answered for `what`, its numbers exact (`answer_json`); anything
    else is the CRM failing, not a record: CrmUnavailable."""
    document = answer_json(answer)
    if not isinstance(document, dict):
        raise CrmUnavailable(f"{crm} answered {what} with {type(document).__name__}, not an object")
    return document


@dataclass
class SalesforceClient:
    instance_url: str
    access_token: str
    api_version: str = "61.0"
    timeout: float = 20.0
    # What a read asks for: no CurrencyIsoCode of an org with multiple currencies off.
    fields: tuple[str, ...] = RECORD_FIELDS

    @classmethod
    def from_settings(cls, settings: DealsSettings) -> SalesforceClient:
        return cls(
            settings.salesforce_instance_url.rstrip("/"),
            settings.salesforce_access_token.get_secret_value(),
            settings.salesforce_api_version,
            fields=settings.salesforce_org.record_fields,
        )

    @property
    def _base(self) -> str:
        return f"/services/data/v{self.api_version}"

    async def opportunity(self, record_id: str) -> dict[str, Any] | None:
        """The Opportunity as it is now (None: it does not exist, or no longer)."""
        path = f"{self._base}/sobjects/Opportunity/{quote(record_id, safe='')}"
        async with self._client() as client:
            answer = await self._get(client, path, {"fields": ",".join(self.fields)})
        if answer.status_code == 404:
            return None
        return answer_document(answer, "Salesforce", path)

    async def changed_since(self, since: datetime) -> AsyncIterator[list[dict[str, Any]]]:
        """Every Opportunity changed at or after `since` (deleted ones too), a page at a time."""
        soql = (
            f"SELECT {', '.join(self.fields)} FROM Opportunity "
            f"WHERE SystemModstamp >= {since.strftime('%Y-%m-%dT%H:%M:%SZ')} "
            "ORDER BY SystemModstamp"
        )
        async for page in self._query(soql):
            yield page

    async def master_of(self, account_id: str) -> str | None:
        """The Account a deleted Account was merged into (its `MasterRecordId`), None when it
        was not merged (deleted, or not known). `queryAll`: the loser is deleted."""
        soql = f"SELECT Id, MasterRecordId FROM Account WHERE Id = '{soql_id(account_id)}'"
        async for page in self._query(soql):
            for record in page:
                master = record.get("MasterRecordId")
                if isinstance(master, str) and master:
                    return soql_id(master)
        return None

    async def account_opportunities(self, account_id: str) -> AsyncIterator[list[dict[str, Any]]]:
        """The Opportunities of an Account as they are now, a page at a time."""
        soql = (
            f"SELECT {', '.join(self.fields)} FROM Opportunity "
            f"WHERE AccountId = '{soql_id(account_id)}' ORDER BY Id"
        )
        async for page in self._query(soql):
            yield page

    async def _query(self, soql: str) -> AsyncIterator[list[dict[str, Any]]]:
        """A SOQL query through `queryAll` (deleted records too), following `nextRecordsUrl`."""
        path: str | None = f"{self._base}/queryAll"
        params: dict[str, str] | None = {"q": soql}
        async with self._client() as client:
            for _ in range(MAX_PAGES):
                if path is None:
                    return
                answer = await self._get(client, path, params)
                page = answer_document(answer, "Salesforce", "a query")
                if not isinstance(page.get("records"), list):
                    raise CrmUnavailable("Salesforce answered a query without records")
                yield [record for record in page["records"] if isinstance(record, dict)]
                following = page.get("nextRecordsUrl")
                done = page.get("done", True)
                path = following if isinstance(following, str) and not done else None
                params = None

    async def update_opportunity(self, record_id: str, fields: dict[str, str]) -> None:
        """PATCH the Opportunity's fields (204 No Content)."""
        path = f"{self._base}/sobjects/Opportunity/{quote(record_id, safe='')}"
        async with self._client() as client:
            answer = await send(client, "Salesforce", "PATCH", path, json_body=fields)
        _check_write(answer, "Salesforce", _error_codes(answer))

    def _client(self) -> httpx.AsyncClient:
        return bearer_client(self.instance_url, self.access_token, self.timeout)

    async def _get(
        self, client: httpx.AsyncClient, path: str, params: dict[str, str] | None
    ) -> httpx.Response:
        answer = await send(client, "Salesforce", "GET", path, params=params)
        if answer.status_code in (200, 404):
            return answer
        codes = _error_codes(answer)
        if answer.status_code == 429 or "REQUEST_LIMIT_EXCEEDED" in codes:
            raise RateLimited(
                f"Salesforce request limit ({answer.status_code} {', '.join(codes)})",
                retry_after(answer),
            )
        if "INVALID_FIELD" in codes and "CurrencyIsoCode" in answer.text:
            raise CrmUnavailable(
                "Salesforce has no CurrencyIsoCode in this org (multiple currencies are off): "
                "set DEALS_SALESFORCE_CURRENCY to the org's currency"
            )
        raise CrmUnavailable(
            f"Salesforce answered {answer.status_code} {', '.join(codes) or ''}".strip()
        )


@dataclass
class HubSpotClient:
    """HubSpot's CRM API (`PATCH /crm/v3/objects/deals/<id>` with `{"properties": ...}`), with
    a private app's access token per portal (each token belongs to one account)."""

    api_url: str
    tokens: dict[str, str]
    timeout: float = 20.0

    @classmethod
    def from_settings(cls, settings: DealsSettings) -> HubSpotClient:
        return cls(settings.hubspot_api_url.rstrip("/"), settings.hubspot_tokens)

    async def deal(self, portal: str, deal_id: str) -> tuple[Any, Any, list[Any]] | None:
        """The deal with its first associated company and its line items, as the CRM API
        returns them (None: the deal does not exist, or no longer)."""
        async with self._client(portal) as client:
            answer = await self._read(
                client,
                f"/crm/v3/objects/deals/{quote(deal_id, safe='')}",
                {"properties": ",".join(DEAL_PROPERTIES), "associations": "companies,line_items"},
            )
            if answer is None:
                return None
            associations = answer.get("associations") or {}
            company_ids = _associated(associations, "companies")
            company = None
            if company_ids:
                company = await self._read(
                    client,
                    f"/crm/v3/objects/companies/{quote(company_ids[0], safe='')}",
                    {"properties": ",".join(COMPANY_PROPERTIES)},
                )
            items: list[Any] = []
            # The v3 API names this association "line items" (with a space).
            item_ids = _associated(associations, "line items") or _associated(
                associations, "line_items"
            )
            if item_ids:
                batch = await self._send(
                    client,
                    "POST",
                    "/crm/v3/objects/line_items/batch/read",
                    {
                        "properties": list(LINE_ITEM_PROPERTIES),
                        "inputs": [{"id": item} for item in item_ids[:100]],
                    },
                )
                items = [r for r in batch.get("results", []) if isinstance(r, dict)]
        return answer, company, items

    async def changed_since(
        self, portal: str, since: datetime
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """The portal's deals modified at or after `since`, oldest first, a page at a time,
        through the CRM search API (`hs_lastmodifieddate` GTE, paged by `after`; HubSpot
        answers at most 10,000 results to one search)."""
        body: dict[str, Any] = {
            "filterGroups": [
                {
                    "filters": [
                        {
                            "propertyName": "hs_lastmodifieddate",
                            "operator": "GTE",
                            "value": str(int(since.timestamp() * 1000)),
                        }
                    ]
                }
            ],
            "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
            "properties": list(DEAL_PROPERTIES),
            "limit": 100,
        }
        async with self._client(portal) as client:
            for _ in range(MAX_PAGES):
                page = await self._send(client, "POST", "/crm/v3/objects/deals/search", body)
                results = page.get("results")
                yield (
                    [r for r in results if isinstance(r, dict)] if isinstance(results, list) else []
                )
                following = (page.get("paging") or {}).get("next") or {}
                after = following.get("after") if isinstance(following, dict) else None
                if not after:
                    return
                body = {**body, "after": str(after)}

    def _client(self, portal: str) -> httpx.AsyncClient:
        token = self.tokens.get(portal)
        if token is None:
            raise CrmRefused(f"no HubSpot access token for portal {portal[:32]!r}")
        return bearer_client(self.api_url, token, self.timeout)

    async def _read(
        self, client: httpx.AsyncClient, path: str, params: dict[str, str]
    ) -> dict[str, Any] | None:
        answer = await send(client, "HubSpot", "GET", path, params=params)
        if answer.status_code == 404:
            return None
        return _hubspot_answer(answer)

    async def _send(
        self, client: httpx.AsyncClient, method: str, path: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        return _hubspot_answer(await send(client, "HubSpot", method, path, json_body=body))

    async def update_deal(self, portal: str, deal_id: str, properties: dict[str, str]) -> None:
        path = f"/crm/v3/objects/deals/{quote(deal_id, safe='')}"
        async with self._client(portal) as client:
            answer = await send(
                client, "HubSpot", "PATCH", path, json_body={"properties": properties}
            )
        _check_write(answer, "HubSpot", _hubspot_category(answer_json(answer)))


def _associated(associations: Any, kind: str) -> list[str]:
    """The ids of a deal's associated objects of one kind (`companies`, `line items`)."""
    found = associations.get(kind) if isinstance(associations, dict) else None
    results = found.get("results") if isinstance(found, dict) else None
    if not isinstance(results, list):
        return []
    return [str(r["id"]) for r in results if isinstance(r, dict) and r.get("id") is not None]


def _hubspot_answer(answer: httpx.Response) -> dict[str, Any]:
    body = answer_json(answer)
    _check_write(answer, "HubSpot", _hubspot_category(body))
    if not isinstance(body, dict):
        raise CrmUnavailable(f"HubSpot answered {answer.status_code} without a JSON object")
    return body


def _hubspot_category(body: Any) -> list[str]:
    """HubSpot's error category (`RATE_LIMITS`, `VALIDATION_ERROR`...), as a list of codes."""
    category = str(body.get("category", ""))[:64] if isinstance(body, dict) else ""
    return [category] if category else []


def _check_write(answer: httpx.Response, crm: str, codes: list[str]) -> None:
    """A write's answer: done (2xx), wait (429, a request limit, 5xx), or refused for good."""
    if answer.is_success:
        return
    said = f"{crm} answered {answer.status_code} {', '.join(codes)}".strip()
    if answer.status_code == 429 or "REQUEST_LIMIT_EXCEEDED" in codes:
        raise RateLimited(said, retry_after(answer))
    if answer.status_code >= 500 or answer.status_code in (401, 408):
        # 401: an expired token is renewed by operators; the write waits, it is not dropped.
        raise CrmUnavailable(said)
    raise CrmRefused(said)


def _error_codes(answer: httpx.Response) -> list[str]:
    """Salesforce's REST errors: a JSON list of {message, errorCode}."""
    errors = answer_json(answer)
    if not isinstance(errors, list):
        return []
    return [str(e.get("errorCode"))[:64] for e in errors if isinstance(e, dict)][:5]


_SALESFORCE_ID = re.compile(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?")


def soql_id(value: str) -> str:
    """A Salesforce record id (15 or 18 letters and digits) as a SOQL literal may hold it:
    anything else never reaches a query."""
    if not _SALESFORCE_ID.fullmatch(value):
        raise CrmRefused(f"{value[:32]!r} is not a Salesforce record id")
    return value


def retry_after(answer: httpx.Response) -> float:
    """The seconds a CRM's Retry-After asks for, at most RATE_LIMIT_WAIT_MAX (ASCII digits
    only: '²' passed `isdigit` and failed `float`, and 300000000000 s had no date after now,
    each failing every run while the CRM answered so; found in review)."""
    value = answer.headers.get("retry-after", "").strip()
    if value.isascii() and value.isdigit():
        return min(float(value[:8]), RATE_LIMIT_WAIT_MAX)
    return DEFAULT_RATE_LIMIT_WAIT


def backoff(attempts: int) -> timedelta:
    """How long a request waits after its `attempts`-th failure in a row: 5 s doubling to an
    hour. The doubling stops at the cap: 5 s times 2**44 has no timedelta, and a request
    failing for a day and a half made every run of its job fail (found in review)."""
    doublings = min(max(attempts - 1, 0), BACKOFF_DOUBLINGS)
    wait: timedelta = BACKOFF_FIRST * (1 << doublings)
    return min(wait, BACKOFF_MAX)
