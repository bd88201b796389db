"""Clients of the partner programmes' APIs, pulled on a schedule with checkpoints.

AWS Partner Central Selling API (AWS JSON 1.0 protocol: `POST /` with `X-Amz-Target:
AWSPartnerCentralSelling.<Operation>`, requests signed with Signature Version 4):
`ListOpportunities` sorted by `LastModifiedDate` ascending from the watermark
(`AfterLastModifiedDate`: on or after it), paged by `NextToken`, then `GetOpportunity` for
each summary (the listing carries no customer or spend).

Microsoft Partner Center referrals (`GET .../engagements/referrals`, OData: `$filter` on
`updatedDateTime`, `$orderby`, `$top`), paged by `@odata.nextLink` or, where the answer gives a
`continuationToken`, by sending it back in `MS-ContinuationToken`; one referral a webhook event
names by `GET .../engagements/referrals/<id>`."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from services.deals.adapters.partner_programs import fetch_refused
from services.deals.crm_clients import (
    CrmRefused,
    CrmUnavailable,
    RateLimited,
    answer_json,
    retry_after,
    send,
)
from services.deals.settings import DealsSettings

ACE_SERVICE = "partnercentral-selling"
ACE_TARGET = "AWSPartnerCentralSelling"
ACE_PAGE_SIZE = 100
MICROSOFT_PAGE_SIZE = 100
# AWS's throttling answers (HTTP 400 or 429 with one of these `__type`s).
THROTTLED = {"ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded"}


@dataclass(frozen=True)
class Page:
    """One page of a listing: the records as the source answered them, and how to go on."""

    records: list[Any]
    continuation: str | None


def sigv4_headers(
    *,
    url: str,
    body: bytes,
    headers: dict[str, str],
    region: str,
    service: str,
    key_id: str,
    secret: str,
    session_token: str = "",
    at: datetime,
) -> dict[str, str]:
    """`headers` plus AWS Signature Version 4 (`X-Amz-Date`, `Authorization`, and the session
    token when there is one) for a POST of `body` to `url`."""
    parts = urlsplit(url)
    stamp, day = at.strftime("%Y%m%dT%H%M%SZ"), at.strftime("%Y%m%d")
    signed = {k.lower(): v.strip() for k, v in headers.items()}
    signed.update({"host": parts.netloc, "x-amz-date": stamp})
    if session_token:
        signed["x-amz-security-token"] = session_token
    names = ";".join(sorted(signed))
    canonical = "\n".join(
        [
            "POST",
            parts.path or "/",
            parts.query,
            "".join(f"{name}:{signed[name]}\n" for name in sorted(signed)),
            names,
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = ("AWS4" + secret).encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    out = {**headers, "X-Amz-Date": stamp}
    if session_token:
        out["X-Amz-Security-Token"] = session_token
    out["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={key_id}/{scope}, SignedHeaders={names}, "
        f"Signature={signature}"
    )
    return out


@dataclass
class AceClient:
    endpoint: str
    region: str
    catalog: str
    key_id: str
    secret: str
    session_token: str = ""
    timeout: float = 20.0

    @classmethod
    def from_settings(cls, settings: DealsSettings) -> AceClient:
        return cls(
            settings.ace_endpoint.rstrip("/"),
            settings.ace_region,
            settings.ace_catalog,
            settings.ace_access_key_id,
            settings.ace_secret_access_key.get_secret_value(),
            settings.ace_session_token.get_secret_value(),
        )

    async def page(self, since: datetime | None, continuation: str | None) -> Page:
        """One page of opportunities modified on or after `since`, oldest first, each as
        `GetOpportunity` answers it."""
        request: dict[str, Any] = {
            "Catalog": self.catalog,
            "MaxResults": ACE_PAGE_SIZE,
            "Sort": {"SortBy": "LastModifiedDate", "SortOrder": "ASCENDING"},
        }
        if since is not None:
            stamp = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            request["LastModifiedDate"] = {"AfterLastModifiedDate": stamp}
        if continuation:
            request["NextToken"] = continuation
        async with httpx.AsyncClient(timeout=self.timeout, follow_redirects=False) as client:
            listing = await self._call(client, "ListOpportunities", request)
            summaries = listing.get("OpportunitySummaries")
            if not isinstance(summaries, list):
                raise CrmUnavailable("ListOpportunities answered without OpportunitySummaries")
            opportunities = [
                await self._listed(client, summary)
                for summary in summaries
                if isinstance(summary, dict)
            ]
        following = listing.get("NextToken")
        return Page(opportunities, following if isinstance(following, str) else None)

    async def _listed(self, client: httpx.AsyncClient, summary: dict[str, Any]) -> dict[str, Any]:
        """A listed opportunity as `GetOpportunity` answers it; one it will not answer for (gone
        since the listing, an identifier it refuses) stands in the page as refused, so the
        page and the listing go on past it (it stopped every run at that page for good)."""
        request = {"Catalog": self.catalog, "Identifier": summary.get("Id")}
        try:
            found: dict[str, Any] = await self._call(
                client, "GetOpportunity", request, final=ACE_NOT_FOUND
            )
        except CrmRefused as error:
            return fetch_refused(summary.get("Id"), str(error))
        return found

    async def opportunity(self, identifier: str) -> dict[str, Any]:
        """The opportunity as `GetOpportunity` answers it now. One AWS does not have, or an
        identifier it refuses, is CrmRefused (asking again cannot help); throttling and
        anything else are CrmUnavailable (RateLimited), to ask again later."""
        request = {"Catalog": self.catalog, "Identifier": identifier}
        async with httpx.AsyncClient(timeout=self.timeout, follow_redirects=False) as client:
            return await self._call(client, "GetOpportunity", request, final=ACE_NOT_FOUND)

    async def update_opportunity(self, identifier: str, fields: dict[str, str]) -> None:
        """Set `fields` (dotted paths) on the opportunity. `UpdateOpportunity` takes the whole
        opportunity (an omitted field is set to null) with the `LastModifiedDate` it was read
        at, so it is read first (`GetOpportunity`) and sent back whole with the fields
        changed; a change in between is AWS's `ConflictException`, retried (read again)."""
        async with httpx.AsyncClient(timeout=self.timeout, follow_redirects=False) as client:
            request = {"Catalog": self.catalog, "Identifier": identifier}
            current = await self._call(client, "GetOpportunity", request, write=True)
            update = {k: current[k] for k in ACE_UPDATABLE if k in current}
            for path, value in fields.items():
                *parents, leaf = path.split(".")
                target = update
                for parent in parents:
                    target = target.setdefault(parent, {})
                target[leaf] = value
            update.update(
                Catalog=current.get("Catalog", self.catalog),
                Identifier=identifier,
                LastModifiedDate=current.get("LastModifiedDate"),
            )
            await self._call(client, "UpdateOpportunity", update, write=True)

    async def _call(
        self,
        client: httpx.AsyncClient,
        operation: str,
        request: dict[str, Any],
        *,
        write: bool = False,
        final: frozenset[str] = frozenset(),
    ) -> dict[str, Any]:
        """One operation's answer. Refused for good (CrmRefused): a write's 4xx but a conflict,
        or an error of a kind in `final`; anything else unexpected is CrmUnavailable."""
        body = json.dumps(request).encode()
        headers = sigv4_headers(
            url=self.endpoint + "/",
            body=body,
            headers={
                "Content-Type": "application/x-amz-json-1.0",
                "X-Amz-Target": f"{ACE_TARGET}.{operation}",
            },
            region=self.region,
            service=ACE_SERVICE,
            key_id=self.key_id,
            secret=self.secret,
            session_token=self.session_token,
            at=datetime.now(UTC),
        )
        answer = await send(
            client,
            "AWS Partner Central",
            "POST",
            self.endpoint + "/",
            content=body,
            headers=headers,
        )
        payload = answer_json(answer)
        if answer.status_code == 200 and isinstance(payload, dict):
            return payload
        kind = str(payload.get("__type", "") if isinstance(payload, dict) else "").split("#")[-1]
        if answer.status_code == 429 or kind in THROTTLED:
            raise RateLimited(
                f"AWS Partner Central {operation}: {kind or 429}", retry_after(answer)
            )
        said = f"AWS Partner Central {operation} answered {answer.status_code} {kind}".strip()
        if (write and answer.status_code < 500 and kind not in ACE_RETRYABLE) or kind in final:
            message = payload.get("Message", payload.get("message")) if payload else None
            raise CrmRefused(f"{said}: {str(message)[:200]}" if message else said)
        raise CrmUnavailable(said)


# What `UpdateOpportunity` takes back of what `GetOpportunity` answers (its request syntax).
ACE_UPDATABLE = (
    "Customer",
    "LifeCycle",
    "Marketing",
    "NationalSecurity",
    "OpportunityType",
    "PartnerOpportunityIdentifier",
    "PrimaryNeedsFromAws",
    "Project",
    "SoftwareRevenue",
)
# A write AWS answers with these may pass (another writer in between, AWS itself failing).
ACE_RETRYABLE = {"ConflictException", "InternalServerException", "ServiceUnavailableException"}
# A read AWS answers with these will not pass: no such opportunity (in this catalog).
ACE_NOT_FOUND = frozenset({"ResourceNotFoundException", "ValidationException"})


@dataclass
class MicrosoftReferralsClient:
    url: str
    access_token: str
    timeout: float = 20.0

    @classmethod
    def from_settings(cls, settings: DealsSettings) -> MicrosoftReferralsClient:
        return cls(
            settings.microsoft_referrals_url,
            settings.microsoft_access_token.get_secret_value(),
        )

    async def page(self, since: datetime | None, continuation: str | None) -> Page:
        """One page of referrals updated on or after `since`, oldest first. A continuation is
        either the next link or a continuation token (`token:` + the token)."""
        headers = {"Authorization": f"Bearer {self.access_token}", "Accept": "application/json"}
        url: str = self.url
        params: dict[str, str] | None = self._query(since)
        if continuation and continuation.startswith("token:"):
            headers["MS-ContinuationToken"] = continuation.removeprefix("token:")
        elif continuation:
            # The next link carries the query; the token goes only where it was configured to.
            if _origin(continuation) != _origin(self.url):
                raise CrmUnavailable("Partner Center's next link leaves its origin")
            url, params = continuation, None
        async with httpx.AsyncClient(timeout=self.timeout, follow_redirects=False) as client:
            answer = await send(
                client, "Partner Center", "GET", url, params=params, headers=headers
            )
        if answer.status_code == 429:
            raise RateLimited("Partner Center: 429", retry_after(answer))
        payload = answer_json(answer)
        if answer.status_code != 200 or not isinstance(payload, dict):
            raise CrmUnavailable(f"Partner Center referrals answered {answer.status_code}")
        records = payload.get("value", payload.get("items"))
        if not isinstance(records, list):
            raise CrmUnavailable("Partner Center referrals answered without a value list")
        link, token = payload.get("@odata.nextLink"), payload.get("continuationToken")
        if isinstance(link, str) and link:
            return Page(records, link)
        if isinstance(token, str) and token and records:
            return Page(records, f"token:{token}")
        return Page(records, None)

    async def referral(self, referral_id: str) -> dict[str, Any]:
        """The referral as `GET .../referrals/<id>` answers it now. One Partner Center does not
        have (404, 410) is CrmRefused (asking again cannot help); throttling (429) is
        RateLimited; anything else (an outage, a token to renew) is CrmUnavailable, to ask
        again later."""
        url = f"{self.url.rstrip('/')}/{quote(referral_id, safe='')}"
        headers = {"Authorization": f"Bearer {self.access_token}", "Accept": "application/json"}
        async with httpx.AsyncClient(timeout=self.timeout, follow_redirects=False) as client:
            answer = await send(client, "Partner Center", "GET", url, headers=headers)
        payload = answer_json(answer)
        if answer.status_code == 200 and isinstance(payload, dict):
            return payload
        said = _said(answer, payload)
        if answer.status_code == 429:
            raise RateLimited(said, retry_after(answer))
        if answer.status_code in (404, 410):
            raise CrmRefused(said)
        raise CrmUnavailable(said)

    async def update_referral(self, referral_id: str, fields: dict[str, str]) -> None:
        """`PATCH .../referrals/<id>` with a JSON Patch document replacing `fields` (the API
        takes only `replace` and `add` operations)."""
        url = f"{self.url.rstrip('/')}/{quote(referral_id, safe='')}"
        operations = [{"op": "replace", "path": path, "value": v} for path, v in fields.items()]
        headers = {
            "Authorization": f"Bearer {self.access_token}",
            "Content-Type": "application/json",
            "Prefer": "return=representation",
        }
        async with httpx.AsyncClient(timeout=self.timeout, follow_redirects=False) as client:
            answer = await send(
                client, "Partner Center", "PATCH", url, json_body=operations, headers=headers
            )
        if answer.is_success:
            return
        said = _said(answer, answer_json(answer))
        if answer.status_code == 429:
            raise RateLimited(said, retry_after(answer))
        if answer.status_code >= 500 or answer.status_code in (401, 408, 412):
            # 401: a token to renew; 412: the referral changed in between (If-Match).
            raise CrmUnavailable(said)
        raise CrmRefused(said)

    def _query(self, since: datetime | None) -> dict[str, str]:
        query = {"$orderby": "updatedDateTime asc", "$top": str(MICROSOFT_PAGE_SIZE)}
        if since is not None:
            query["$filter"] = (
                f"updatedDateTime ge {since.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%S.%fZ')}"
            )
        return query


def _said(answer: httpx.Response, payload: Any) -> str:
    """What Partner Center answered: the status, and its error code when the body has one."""
    said = f"Partner Center answered {answer.status_code}"
    error = payload.get("error") if isinstance(payload, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return f"{said} {str(code)[:64]}" if code else said


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()
