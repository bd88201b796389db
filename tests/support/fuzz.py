"""Requests generated from a service's committed OpenAPI document (docs/openapi/<service>.json):
for each operation, hypothesis strategies for its path and query parameters and its JSON body,
mostly shaped by the schema (so the routes' code is reached) and often hostile (a wrong JSON
type, NUL, a lone surrogate, a control character, a huge or non-finite number, a year-1 date
with an offset, an oversized string, a deep structure)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st

from tests.support.infra import ROOT

DOCUMENTS = ROOT / "docs" / "openapi"
Schema = dict[str, Any]


@dataclass(frozen=True)
class Operation:
    service: str
    method: str
    path: str
    spec: Schema
    components: Schema

    @property
    def documented(self) -> set[int]:
        return {int(code) for code in self.spec["responses"] if code.isdigit()}

    @property
    def secured(self) -> bool:
        return bool(self.spec.get("security"))

    def __str__(self) -> str:
        return f"{self.service} {self.method.upper()} {self.path}"


def operations(service: str) -> list[Operation]:
    document = json.loads((DOCUMENTS / f"{service}.json").read_text())
    components = document.get("components", {}).get("schemas", {})
    return [
        Operation(service, method, path, spec, components)
        for path, methods in document["paths"].items()
        for method, spec in methods.items()
    ]


# ---- values

_OFFSETS = st.sampled_from([UTC, timezone(timedelta(hours=5)), timezone(timedelta(hours=-11))])
_HOSTILE_TEXT = st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "a\x00b",
        "\ud800",
        "x\udfffy",
        "\x1b[31m",
        "\u0085",
        "\t\n",
        "...",
        "\u200b",
        "\u0410\u0441me",
        "x" * 5000,
        "0001-01-01T00:00:00+05:00",
        "9999-12-31T23:59:59-05:00",
        "1e400",
        "NaN",
        "-1",
        "99999999999999999999.999",
    ]
)
_HOSTILE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([1e308, -0.0, 0.5, float("inf"), float("nan")]),
    _HOSTILE_TEXT,
    st.just([]),
    st.just({}),
    st.just([[[[["deep"]]]]]),
    st.just({"a": {"b": {"c": None}}}),
)


def _text(schema: Schema) -> st.SearchStrategy[str]:
    pattern = schema.get("pattern")
    if pattern:
        return st.from_regex(pattern, fullmatch=True)
    fmt = schema.get("format")
    if fmt == "date-time":
        moments = st.datetimes(min_value=datetime(1, 1, 2), timezones=_OFFSETS)  # noqa: DTZ001
        return moments.map(datetime.isoformat)
    if fmt == "date":
        return st.dates(min_value=date(1, 1, 1)).map(date.isoformat)
    return st.text(
        min_size=schema.get("minLength", 0), max_size=min(schema.get("maxLength", 40), 40)
    )


def values(schema: Schema, components: Schema, depth: int = 0) -> st.SearchStrategy[Any]:
    """A value for `schema`: shaped by it four times in five, hostile otherwise."""
    return st.one_of(_shaped(schema, components, depth), _HOSTILE) if depth < 4 else _HOSTILE


def _shaped(schema: Schema, components: Schema, depth: int) -> st.SearchStrategy[Any]:
    if "$ref" in schema:
        return _shaped(components[schema["$ref"].rsplit("/", 1)[1]], components, depth)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return st.one_of([_shaped(option, components, depth) for option in schema[key]])
    if "allOf" in schema:
        return _shaped(schema["allOf"][0], components, depth)
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "const" in schema:
        return st.just(schema["const"])
    kind = schema.get("type")
    if kind == "string":
        return _text(schema)
    if kind == "integer":
        return st.integers(min_value=-(2**40), max_value=2**40)
    if kind == "number":
        return st.one_of(st.integers(-(10**20), 10**20), st.floats(allow_nan=False))
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        item = values(schema.get("items", {}), components, depth + 1)
        return st.lists(item, max_size=min(schema.get("maxItems", 3), 3))
    if kind == "object" or "properties" in schema:
        return _objects(schema, components, depth)
    return _HOSTILE


def _objects(schema: Schema, components: Schema, depth: int) -> st.SearchStrategy[Any]:
    properties = schema.get("properties", {})
    required = [name for name in schema.get("required", []) if name in properties]
    optional = [name for name in properties if name not in required]
    fields = {name: values(properties[name], components, depth + 1) for name in properties}

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        chosen = [name for name in required if draw(st.integers(0, 9)) > 0]
        chosen += draw(st.lists(st.sampled_from(optional), unique=True)) if optional else []
        body = {name: draw(fields[name]) for name in chosen}
        if draw(st.integers(0, 9)) == 0:
            body[draw(st.text(max_size=8))] = draw(_HOSTILE)
        return body

    return build()


# ---- CRM deliveries: the upstream samples, one leaf (or branch) replaced

CRM_SAMPLES = {
    "/crm/salesforce": "salesforce_opportunity_cdc.json",
    "/crm/hubspot": "hubspot_deal_webhook.json",
    "/crm/aws-ace": "aws_ace_opportunity.json",
    "/crm/microsoft": "microsoft_referral.json",
}


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON document (the root included)."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


def _replace(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    copy = dict(document) if isinstance(document, dict) else list(document)
    copy[head] = _replace(document[head], rest, value)
    return copy


def crm_deliveries(route: str) -> st.SearchStrategy[Any]:
    sample = json.loads((ROOT / "tests" / "fixtures" / "samples" / CRM_SAMPLES[route]).read_text())
    places = _paths(sample)

    @st.composite
    def build(draw: st.DrawFn) -> Any:
        document = sample
        for _ in range(draw(st.integers(1, 3))):
            place = draw(st.sampled_from(places))
            try:
                document = _replace(document, place, draw(_HOSTILE))
            except (KeyError, IndexError, TypeError):  # an earlier change removed the place
                continue
        return document

    return build()


# ---- requests


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    headers: dict[str, Any]
    content: bytes | None


def _encode(body: Any) -> bytes:
    """JSON as a careless client writes it: lone surrogates escaped, NaN and Infinity bare."""
    return json.dumps(body, allow_nan=True).encode()


# A path parameter is one path segment: the server decodes %2F and the client resolves "." and
# "..", so either would make the request one for another path (answered by routing: 404, 405,
# or 307 to drop a trailing slash).
_PARAM_TEXT = st.text(
    alphabet=st.characters(exclude_categories=("Cs",), exclude_characters="/"),
    min_size=1,
    max_size=30,
).filter(lambda text: text not in (".", "..")) | st.sampled_from(
    ["p-fuzz", "%00", "..x", "x" * 300]
)


def requests(
    op: Operation,
    base: str,
    tokens: list[dict[str, Any]],
    sign: Callable[[str, bytes], dict[str, str]] | None = None,
) -> st.SearchStrategy[Request]:
    """Requests for one operation against `base`, with one of `tokens` (or none) when the
    route is secured; a CRM delivery mostly signed by `sign` (as its source signs), so its
    adapter is reached, sometimes not."""

    @st.composite
    def build(draw: st.DrawFn) -> Request:
        path = op.path
        query: list[str] = []
        for parameter in op.spec.get("parameters", []):
            schema = parameter.get("schema", {})
            if parameter["in"] == "path":
                value = draw(_PARAM_TEXT)
                # Dots encoded too: a client would resolve "." and ".." segments to another path.
                encoded = quote(value, safe="").replace(".", "%2E")
                path = path.replace("{" + parameter["name"] + "}", encoded)
            elif parameter["in"] == "query" and draw(st.booleans()):
                value = draw(st.one_of(_shaped(schema, op.components, 3), _PARAM_TEXT))
                text = json.dumps(value) if not isinstance(value, str) else value
                query.append(f"{parameter['name']}={quote(text, safe='')}")
        headers: dict[str, Any] = {}
        if op.secured:
            headers.update(draw(st.sampled_from(tokens)))
        content = None
        body = op.spec.get("requestBody")
        if op.path in CRM_SAMPLES:
            content = _encode(draw(crm_deliveries(op.path)))
            headers["content-type"] = "application/json"
            if sign is not None and draw(st.integers(0, 9)) > 0:
                headers.update(sign(op.path, content))
        elif body is not None:
            schema = body["content"]["application/json"]["schema"]
            content = _encode(draw(values(schema, op.components)))
            headers["content-type"] = "application/json"
        url = base + path + ("?" + "&".join(query) if query else "")
        return Request(op.method.upper(), url, headers, content)

    return build()


def unsafe_for_shared_state(op: Operation) -> bool:
    """Admin runs that act on every record at a moment of the caller's choosing (expiry,
    requalification, the programme year, health scoring, enablement announcements), and a
    survey (sent to every active partner): fuzzed without the admin token, so other tests'
    data is not moved."""
    if op.method == "POST" and op.path == "/surveys":
        return True
    return bool(
        re.search(
            r"/(expiry|requalification|certification-reminders|programme-year|health"
            r"|enablement-signals)/run$",
            op.path,
        )
    )
