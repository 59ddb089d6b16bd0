"""A flat view of the app's routes (FastAPI ≥0.16x keeps included routers nested)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RouteInfo:
    path: str
    methods: frozenset[str]
    in_schema: bool


def iter_routes(app: Any) -> Iterator[RouteInfo]:
    for route in app.routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if contexts is not None:
            for ctx in contexts():
                original = ctx.original_route
                yield RouteInfo(ctx.path or getattr(original, "path", ""),
                                frozenset(getattr(original, "methods", None) or ()),
                                bool(getattr(original, "include_in_schema", False)))
        else:
            yield RouteInfo(getattr(route, "path", ""), frozenset(getattr(route, "methods", None) or ()),
                            bool(getattr(route, "include_in_schema", False)))
