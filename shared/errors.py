"""Errors a use case raises for its caller, each with one HTTP meaning (`shared/http.py` maps
them once for every service). Plain Python, so `domain/` may raise them too.

The message is the whole answer a caller gets: precise about what was wrong with *their*
request, never naming another partner's data.
"""

from __future__ import annotations


class RequestError(Exception):
    """Base: the request cannot be carried out as asked. `status` is its HTTP status."""

    status: int = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(RequestError):
    """No such resource, or one the caller may not see: the two answers are the same, so a
    partner cannot probe for another partner's ids."""

    status = 404


class Forbidden(RequestError):
    """The caller is known but its role may not do this (e.g. a partner calling a manager's
    route)."""

    status = 403


class Conflict(RequestError):
    """The resource's current state does not allow the change (e.g. reviewing a decided
    registration, claiming more MDF than is left)."""

    status = 409


class Unprocessable(RequestError):
    """Well-formed, but not meaningful (e.g. a rule the request breaks, a missing field that
    only this caller must give)."""

    status = 422
