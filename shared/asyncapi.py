"""The AsyncAPI 3.0 document of every topic and event, generated from the code, and the
compatibility check between two versions of it.

    python -m shared.asyncapi            # (re)write docs/asyncapi.json
    python -m shared.asyncapi --check    # exit 1 if the committed document drifted from the code

Sources of truth: the topic registry (`shared/topics.py`: owner, producers, consumers, key,
event types) and the payload models registered with `@event_type` (`shared/events/`). The unit
tests fail when the committed document differs from the generated one, and when a change is not
backward compatible with the document's previous committed version (`breaking_changes`).
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
from pathlib import Path
from typing import Any

from pydantic.json_schema import models_json_schema

import shared.events
from shared.events.envelope import CLOUDEVENTS_CONTENT_TYPE, registered_event_types
from shared.topics import ALL_TOPICS, Topic

DOCUMENT = Path(__file__).resolve().parent.parent / "docs" / "asyncapi.json"
REF = "#/components/schemas/{model}"


def load_all_contracts() -> None:
    """Import every module of shared.events so every payload model is registered."""
    for module in pkgutil.iter_modules(shared.events.__path__):
        importlib.import_module(f"shared.events.{module.name}")


def _channel_id(topic: Topic) -> str:
    return topic.name.replace(".", "-")


ENVELOPE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "CloudEvents 1.0, structured JSON mode, plus the W3C traceparent extension.",
    "required": ["specversion", "id", "source", "type", "subject", "time", "data"],
    "properties": {
        "specversion": {"const": "1.0"},
        "id": {"type": "string", "format": "uuid"},
        "source": {"type": "string", "examples": ["pollinate/deals"]},
        "type": {"type": "string", "description": "the versioned event type"},
        "subject": {"type": "string", "description": "aggregate id, also the Kafka key"},
        "time": {"type": "string", "format": "date-time"},
        "datacontenttype": {"const": "application/json"},
        "traceparent": {"type": "string", "description": "W3C trace context"},
        "data": {"description": "the payload, see the message"},
    },
}

DEAD_LETTER_HEADERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        name: {"type": "string", "description": description}
        for name, description in {
            "dlq.reason": "why the event could not be processed",
            "dlq.origin.topic": "where it was consumed from",
            "dlq.origin.partition": "its partition there",
            "dlq.origin.offset": "its offset there",
            "dlq.consumer": "the consumer group that gave up",
            "dlq.failed_at": "when (ISO 8601)",
        }.items()
    },
}


def _contract_models() -> dict[str, type[Any]]:
    """The platform's event models by type name, each carried by exactly the topics that name
    it (tests and benchmarks register their own event types: those are left out)."""
    load_all_contracts()
    models = {
        name: model
        for name, model in registered_event_types().items()
        if model.__module__.startswith("shared.events.")
    }
    carried = {name for topic in ALL_TOPICS for name in topic.events}
    unknown = sorted(carried - set(models))
    if unknown:
        raise ValueError(f"topics name unregistered event types: {', '.join(unknown)}")
    homeless = sorted(set(models) - carried)
    if homeless:
        raise ValueError(f"event types on no topic (add them to shared/topics.py): {homeless}")
    return {name: models[name] for name in sorted(carried)}


def _messages(models: dict[str, type[Any]]) -> dict[str, Any]:
    messages: dict[str, Any] = {}
    for name, model in models.items():
        messages[name] = {
            "name": name,
            "title": model.__name__,
            "summary": (model.__doc__ or "").strip().split("\n")[0] or name,
            "contentType": CLOUDEVENTS_CONTENT_TYPE,
            "payload": {
                "allOf": [
                    {"$ref": REF.format(model="CloudEventsEnvelope")},
                    {
                        "type": "object",
                        "properties": {
                            "type": {"const": name},
                            "data": {"$ref": REF.format(model=model.__name__)},
                        },
                    },
                ]
            },
        }
    messages["dead-letter"] = {
        "name": "dead-letter",
        "title": "DeadLetter",
        "summary": "The original record's value, key and headers, plus the dlq.* headers.",
        "headers": DEAD_LETTER_HEADERS,
        "payload": {"description": "the original bytes, unchanged"},
    }
    return messages


def _channels_and_operations() -> tuple[dict[str, Any], dict[str, Any]]:
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for topic in ALL_TOPICS:
        channel = _channel_id(topic)
        dead_letters = ["dead-letter"] if topic.name.endswith(".dlq.v1") else []
        carried_here = list(topic.events) or dead_letters
        channels[channel] = {
            "address": topic.name,
            "description": topic.description,
            "messages": {m: {"$ref": f"#/components/messages/{m}"} for m in carried_here},
            "bindings": {"kafka": {"topic": topic.name, "partitions": topic.partitions}},
            "x-owner": topic.owner,
            "x-key": topic.key,
        }
        reference = {"$ref": f"#/channels/{channel}"}
        for action, parties in (
            ("send", topic.producing_services),
            ("receive", topic.consumers),
        ):
            for party in parties:
                slug = party.split(" ")[0].replace("(", "")
                operations[f"{slug}-{action}-{channel}"] = {
                    "action": action,
                    "channel": reference,
                    "summary": f"{party} {'publishes to' if action == 'send' else 'consumes'} "
                    f"{topic.name}",
                    "messages": [
                        {"$ref": f"#/channels/{channel}/messages/{m}"} for m in carried_here
                    ],
                }
    return channels, operations


def build_document() -> dict[str, Any]:
    models = _contract_models()
    _, top = models_json_schema(
        [(model, "validation") for model in models.values()], ref_template=REF
    )
    schemas: dict[str, Any] = {"CloudEventsEnvelope": ENVELOPE_SCHEMA, **top.get("$defs", {})}
    channels, operations = _channels_and_operations()
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Pollinate events",
            "version": "1.0.0",
            "description": "Every topic and event of the Pollinate platform (generated by "
            "`python -m shared.asyncapi`; do not edit by hand).",
        },
        "defaultContentType": CLOUDEVENTS_CONTENT_TYPE,
        "servers": {
            "local": {"host": "127.0.0.1:9092", "protocol": "kafka", "description": "local"}
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": _messages(models), "schemas": schemas},
    }


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


# ---- compatibility -------------------------------------------------------------------------


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    seen = 0
    while "$ref" in schema and seen < 20:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = document["components"]["schemas"].get(name, {})
        seen += 1
    return schema


def _kinds(document: dict[str, Any], schema: dict[str, Any]) -> set[str]:
    """The JSON types a schema admits (anyOf flattened, refs named; a ref to an enum is its
    values' type, so a free string that becomes an enum of strings keeps its kind: what
    producers may send narrows, which breaks no consumer)."""
    if "$ref" in schema:
        target = _resolve(document, schema)
        if "enum" in target and "type" in target:
            return {str(target["type"])}
        return {"ref:" + schema["$ref"].rsplit("/", 1)[-1]}
    if "anyOf" in schema:
        return set().union(*(_kinds(document, s) for s in schema["anyOf"]))
    if "type" in schema:
        return {str(schema["type"])}
    if "const" in schema:
        return {f"const:{schema['const']}"}
    return {"any"}


_CONSTRAINTS = (
    "pattern",
    "format",
    "const",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
)


def _compare(
    old_doc: dict[str, Any],
    new_doc: dict[str, Any],
    old: dict[str, Any],
    new: dict[str, Any],
    where: str,
    problems: list[str],
    depth: int = 0,
) -> None:
    if depth > 12:
        return
    old_r, new_r = _resolve(old_doc, old), _resolve(new_doc, new)
    old_kinds, new_kinds = _kinds(old_doc, old), _kinds(new_doc, new)
    # Widening to nullable breaks too: a consumer of the current version refuses the null.
    if old_kinds != new_kinds:
        problems.append(f"{where}: type changed from {sorted(old_kinds)} to {sorted(new_kinds)}")
        return
    old_enum, new_enum = set(old_r.get("enum", [])), set(new_r.get("enum", []))
    if old_enum - new_enum:
        problems.append(f"{where}: enum value(s) removed {sorted(old_enum - new_enum)}")
    if old_enum and new_enum - old_enum:
        problems.append(
            f"{where}: enum value(s) added {sorted(new_enum - old_enum)} "
            "(consumers of the current version would reject them)"
        )
    # A bound moved either way breaks one side: narrower, a producer of the current version
    # sends what the new consumer refuses; wider, the other way round.
    for constraint in _CONSTRAINTS:
        if old_r.get(constraint) != new_r.get(constraint):
            problems.append(
                f"{where}: {constraint} changed from {old_r.get(constraint)!r} "
                f"to {new_r.get(constraint)!r}"
            )
    old_props, new_props = old_r.get("properties", {}), new_r.get("properties", {})
    for name, schema in old_props.items():
        if name not in new_props:
            problems.append(f"{where}.{name}: field removed")
            continue
        _compare(old_doc, new_doc, schema, new_props[name], f"{where}.{name}", problems, depth + 1)
    newly_required = set(new_r.get("required", [])) - set(old_r.get("required", []))
    for name in sorted(newly_required):
        problems.append(f"{where}.{name}: field became required")
    if "items" in old_r and "items" in new_r:
        _compare(
            old_doc, new_doc, old_r["items"], new_r["items"], f"{where}[]", problems, depth + 1
        )
    new_branches = {s["$ref"]: s for s in new.get("anyOf", []) if "$ref" in s}
    for schema in old.get("anyOf", []):
        if "$ref" in schema and schema["$ref"] in new_branches:
            _compare(
                old_doc, new_doc, schema, new_branches[schema["$ref"]], where, problems, depth + 1
            )


def breaking_changes(old_doc: dict[str, Any], new_doc: dict[str, Any]) -> list[str]:
    """What in `new_doc` would break producers or consumers written against `old_doc`.

    Allowed: new event types, new topics, new optional fields. Breaking: removing or renaming
    an event type, topic or field, a field becoming required, a type change (widening to
    nullable too: consumers of the current version refuse the null), a pattern, format or
    bound change (either way), enum values added or removed. A breaking change needs a
    new versioned event type (`...v2`) published alongside the old one.
    """
    problems: list[str] = []
    old_channels = {c["address"]: c for c in old_doc.get("channels", {}).values()}
    new_channels = {c["address"]: c for c in new_doc.get("channels", {}).values()}
    for address, channel in old_channels.items():
        if address not in new_channels:
            problems.append(f"topic {address}: removed")
            continue
        missing = set(channel["messages"]) - set(new_channels[address]["messages"])
        for message in sorted(missing):
            problems.append(f"topic {address}: no longer carries {message}")
    old_messages = old_doc["components"]["messages"]
    new_messages = new_doc["components"]["messages"]
    for name, message in old_messages.items():
        if name not in new_messages:
            problems.append(f"event {name}: removed")
            continue
        old_data = message["payload"].get("allOf", [{}, {}])[-1].get("properties", {}).get("data")
        new_data = (
            new_messages[name]["payload"]
            .get("allOf", [{}, {}])[-1]
            .get("properties", {})
            .get("data")
        )
        if old_data and new_data:
            _compare(old_doc, new_doc, old_data, new_data, name, problems)
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description="Generate or check docs/asyncapi.json.")
    parser.add_argument("--check", action="store_true", help="fail if the document drifted")
    args = parser.parse_args()
    text = render(build_document())
    if args.check:
        if not DOCUMENT.exists() or DOCUMENT.read_text() != text:
            print(f"{DOCUMENT} is out of date: run `python -m shared.asyncapi`", file=sys.stderr)
            sys.exit(1)
        print(f"{DOCUMENT} matches the code")
        return
    if DOCUMENT.exists():
        problems = breaking_changes(json.loads(DOCUMENT.read_text()), json.loads(text))
        for problem in problems:
            print(f"breaking: {problem}", file=sys.stderr)
    DOCUMENT.parent.mkdir(parents=True, exist_ok=True)
    DOCUMENT.write_text(text)
    print(f"wrote {DOCUMENT}")


if __name__ == "__main__":
    main()
