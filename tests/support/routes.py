"""The routes the app really serves, read from the Litestar app (not a hand-written list).

Tests that must cover every route (strict JSON bodies, the OpenAPI inventory, object-level
authorization) generate their cases from here, so a new route is covered the day it is added.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import msgspec.inspect as mi
from litestar import Litestar
from litestar.handlers import HTTPRouteHandler
from litestar.routes import HTTPRoute

from gateway.app import PARTNER_TAG


class Caller(StrEnum):
    OPERATOR = "operator"
    SHOPPER = "shopper"
    PARTNER = "partner"
    PUBLIC = "public"


@dataclass(frozen=True)
class Served:
    method: str
    path: str  # Litestar's template: /v1/holds/{hold_id:str}/capture
    path_format: str  # OpenAPI's: /v1/holds/{hold_id}/capture
    parameters: dict[str, type]
    handler: HTTPRouteHandler

    @property
    def caller(self) -> Caller:
        if PARTNER_TAG in self.handler.resolve_tags():
            return Caller.PARTNER
        if self.path.startswith("/v1/operator/"):
            return Caller.OPERATOR
        if self.path == "/v1/me" or self.path.startswith("/v1/me/"):
            return Caller.SHOPPER
        return Caller.PUBLIC

    @property
    def body_type(self) -> Any:
        """The JSON body's contract, or None when the route takes none."""
        data = self.handler.parsed_fn_signature.parameters.get("data")
        return None if data is None else data.annotation

    @property
    def documented(self) -> bool:
        return bool(self.handler.resolve_include_in_schema())

    def url(self, **values: str) -> str:
        """The path with each parameter replaced (by `values`, else by a plain placeholder)."""
        filled = self.path_format
        for name, kind in self.parameters.items():
            filled = filled.replace("{" + name + "}", values.get(name, "1" if kind is int else "x"))
        return filled


def served(app: Litestar) -> Iterator[Served]:
    """Every (method, path) the app answers, OPTIONS and HEAD left out."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        parameters = {name: p.type for name, p in route.path_parameters.items()}
        for handler in route.route_handlers:
            for method in sorted(handler.http_methods - {"OPTIONS", "HEAD"}):
                yield Served(method, route.path, route.path_format, parameters, handler)


# -- the fields of a body contract, for tests that put a bad value into each ---------------


@dataclass(frozen=True)
class FieldPath:
    """Where a value sits in a body: keys and list positions from the root."""

    steps: tuple[str | int, ...]
    kind: type  # str or int

    def body(self, value: Any) -> Any:
        """The smallest body holding `value` at this place (other fields left out)."""
        built: Any = value
        for step in reversed(self.steps):
            built = [built] if isinstance(step, int) else {step: built}
        return built

    def location(self) -> str:
        """As msgspec names it: `lines[0].sku`."""
        text = ""
        for step in self.steps:
            text += f"[{step}]" if isinstance(step, int) else (f".{step}" if text else step)
        return text


def field_paths(annotation: Any) -> list[FieldPath]:
    """Every str and int field of a contract, through nested Structs, lists and unions."""
    found: list[FieldPath] = []
    _walk(mi.type_info(annotation), (), found, set())
    return found


def _walk(
    info: mi.Type, steps: tuple[str | int, ...], found: list[FieldPath], seen: set[Any]
) -> None:
    if isinstance(info, mi.StructType):
        if info.cls in seen:
            return
        for field in info.fields:
            _walk(field.type, (*steps, field.encode_name), found, seen | {info.cls})
    elif isinstance(info, mi.ListType | mi.SetType | mi.FrozenSetType | mi.VarTupleType):
        _walk(info.item_type, (*steps, 0), found, seen)
    elif isinstance(info, mi.UnionType):
        for member in info.types:
            _walk(member, steps, found, seen)
    elif isinstance(info, mi.StrType):
        found.append(FieldPath(steps, str))
    elif isinstance(info, mi.IntType):
        found.append(FieldPath(steps, int))
