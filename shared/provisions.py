"""What a service's wiring hands to its routes, handlers and jobs: one value per type (its
policy, its program config), looked up by that type so every use site stays typed."""

from __future__ import annotations

from typing import Any, TypeVar

T = TypeVar("T")


class Provisions:
    def __init__(self) -> None:
        self._by_type: dict[type[Any], object] = {}

    def provide(self, value: object, *, as_type: type[Any] | None = None) -> None:
        kind = as_type or type(value)
        if kind in self._by_type:
            raise ValueError(f"{kind.__name__} is already provided")
        self._by_type[kind] = value

    def get(self, kind: type[T]) -> T:
        try:
            value = self._by_type[kind]
        except KeyError:
            raise LookupError(f"the service's wiring provides no {kind.__name__}") from None
        assert isinstance(value, kind)
        return value
