"""Calls to the platform's services over their public HTTP APIs, always with the signed-in
person's own token: each service decides what that person may see or do."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable
from typing import Any, TypeVar

import httpx

from services.portal.sessions import Session, SignInRequired
from services.portal.settings import PortalSettings

T = TypeVar("T")


class BackendUnavailable(Exception):
    """A service did not answer, or failed: the page says which (503), never a 500."""

    def __init__(self, service: str, why: str) -> None:
        super().__init__(f"{service} is unavailable: {why}")
        self.service = service


class BackendRefused(Exception):
    """A service refused the call (4xx): its status and `detail` go to the person."""

    def __init__(self, service: str, status: int, detail: str) -> None:
        super().__init__(detail)
        self.service = service
        self.status = status
        self.detail = detail


async def answered(
    call: Awaitable[Any], failed: str, shown: Collection[int] = (409, 422)
) -> tuple[Any, str, int]:
    """A form's call to a service: (its answer, "", 200); or, when the service refuses with a
    status its page shows beside the form (`shown`), (None, "<failed>: <the service's reason>",
    that status). Any other refusal goes on to the error page."""
    try:
        return await call, "", 200
    except BackendRefused as refused:
        if refused.status not in shown:
            raise
        return None, f"{failed}: {refused.detail}", refused.status


async def outcome(
    call: Awaitable[Any], failed: str, done: str, shown: Collection[int] = (409, 422)
) -> tuple[str, int]:
    """What a form's page says after its call: (`done` filled in with the fields of the
    service's answer, 200), or, refused with a status in `shown`, (the refusal, that status)."""
    answer, refusal, status = await answered(call, failed, shown)
    return (done.format_map(answer) if status == 200 else refusal), status


CALLS_AT_ONCE = 8  # one page's calls in flight together when it asks one service many things


async def or_missing(call: Awaitable[T], service: str, missing: dict[str, str]) -> T | None:
    """A part of a page that another service draws: its answer, or None while that service does
    not answer, with why in `missing` (the page shows the rest and says what it cannot show).
    Found in review: one such part down made the whole page a 503 (the partners list without
    attribution's health scores, a partner's page without its balance)."""
    try:
        return await call
    except BackendUnavailable as error:
        missing[service] = str(error)
        return None
    except BackendRefused as refused:
        if refused.status != 429:  # the person's partner over its rate: this part waits too
            raise
        missing[service] = f"{service} asks to wait: {refused.detail}"
        return None


async def each(
    calls: Iterable[Callable[[], Awaitable[T]]], at_once: int = CALLS_AT_ONCE
) -> list[T]:
    """Every call's answer, in order, with at most `at_once` of them in flight: a page that
    asks once per partner must not put hundreds of requests on a service at the same moment."""
    limit = asyncio.Semaphore(at_once)

    async def bounded(call: Callable[[], Awaitable[T]]) -> T:
        async with limit:
            return await call()

    return list(await asyncio.gather(*(bounded(call) for call in calls)))


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, list):  # FastAPI's validation errors: say each field and why
        return "; ".join(
            f"{'.'.join(str(p) for p in item.get('loc', [])[1:])}: {item.get('msg', '')}"
            for item in detail
            if isinstance(item, dict)
        )
    return str(detail) if detail is not None else response.reason_phrase


class Backends:
    """The services as the pages call them (`client`), and their live streams, on connections
    of their own (`streaming`, bounded by `portal_max_streams`) so open streams never hold
    the connections the pages need."""

    def __init__(
        self, settings: PortalSettings, client: httpx.AsyncClient, streaming: httpx.AsyncClient
    ) -> None:
        self._settings = settings
        self._client = client
        self._streaming = streaming

    async def call(
        self, session: Session, service: str, method: str, path: str, **kwargs: Any
    ) -> Any:
        url = self._settings.url_of(service) + path
        headers = {"Authorization": f"Bearer {session.token}"}
        try:
            response = await self._client.request(method, url, headers=headers, **kwargs)
        except httpx.InvalidURL as error:
            # The configured URL: a page address with a control character never gets here
            # (BodyLimit refuses it with 400 before any route, app.py).
            raise BackendUnavailable(service, "InvalidURL") from error
        except httpx.HTTPError as error:
            raise BackendUnavailable(service, type(error).__name__) from error
        if response.status_code == 401:
            raise SignInRequired(_detail(response))
        if response.status_code >= 500:
            raise BackendUnavailable(service, f"answered {response.status_code}")
        if response.status_code >= 400:
            raise BackendRefused(service, response.status_code, _detail(response))
        if response.status_code >= 300:  # no service redirects: a proxy or a wrong URL does
            raise BackendUnavailable(service, f"answered {response.status_code}")
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as error:  # a proxy's HTML page, or a URL that is not the service
            raise BackendUnavailable(service, "answered something other than JSON") from error

    async def get(self, session: Session, service: str, path: str, **params: Any) -> Any:
        query = {k: v for k, v in params.items() if v is not None}
        return await self.call(session, service, "GET", path, params=query)

    async def stream(
        self, session: Session, service: str, path: str, last_event_id: str | None
    ) -> AsyncIterator[bytes]:
        """A service's live stream (SSE), opened before the page answers (so a refusal is the
        page's status) and passed through as it arrives; a reconnecting browser's
        Last-Event-ID goes on to the service, which resumes exactly after it."""
        headers = {"Authorization": f"Bearer {session.token}", "Accept": "text/event-stream"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        url = self._settings.url_of(service) + path
        timeout = httpx.Timeout(self._settings.portal_backend_timeout_seconds, read=None, pool=0)
        request = self._streaming.build_request("GET", url, headers=headers, timeout=timeout)
        try:
            answer = await self._streaming.send(request, stream=True)
        except httpx.PoolTimeout as error:
            most = self._settings.portal_max_streams
            raise BackendUnavailable(
                service, f"this portal instance has its {most} live streams open"
            ) from error
        except httpx.HTTPError as error:
            raise BackendUnavailable(service, type(error).__name__) from error
        if answer.status_code != 200:
            await answer.aread()
            await answer.aclose()
            if answer.status_code == 401:
                raise SignInRequired(_detail(answer))
            if answer.status_code >= 500:
                raise BackendUnavailable(service, f"answered {answer.status_code}")
            raise BackendRefused(service, answer.status_code, _detail(answer))
        return _relay(answer)


async def _relay(answer: httpx.Response) -> AsyncIterator[bytes]:
    try:
        async for chunk in answer.aiter_raw():
            yield chunk
    except httpx.HTTPError:
        return  # the service went away: the browser's EventSource reconnects and resumes
    finally:
        await answer.aclose()
