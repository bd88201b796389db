"""Reading a keyset-paged list whole, as a client would: the services' lists that grow with
the history answer a page of `limit` after the item `after` names (README, "Where things go")."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tests.support.tokens import ADMIN


async def every_page(
    client: Any,
    path: str,
    cursor: Callable[[Any], str],
    limit: int = 500,
    headers: Mapping[str, str] = ADMIN,
    **query: Any,
) -> list[list[Any]]:
    """Every page of the list at `path` (`client`: an httpx.AsyncClient; as a manager unless
    `headers` say otherwise): each next page after `cursor` of the page's last item, until one
    comes back empty; a page must not start with an item shown before."""
    pages: list[list[Any]] = []
    after: dict[str, str] = {}
    while True:
        answer = await client.get(path, params={**query, "limit": limit, **after}, headers=headers)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        if not page:
            return pages
        seen = {cursor(item) for shown in pages for item in shown}
        assert cursor(page[0]) not in seen, "the page did not move on"
        pages.append(page)
        after = {"after": cursor(page[-1])}
