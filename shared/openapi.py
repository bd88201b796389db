"""The OpenAPI document of each service's HTTP API, built from its routers alone (no Kafka, no
Postgres) and committed as `docs/openapi/<service>.json`; the tests fail when one drifts.

`python -m shared.openapi` writes them all; `--check` only compares.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any

from shared.service import ServiceDefinition, create_app
from shared.settings import ServiceSettings

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = ROOT / "docs" / "openapi"
SERVICES = ROOT / "services"


def service_names() -> list[str]:
    """Every service package that declares a platform definition in its `app.py` (the portal,
    a front end with no API of its own, has an `app.py` but no `ServiceDefinition`)."""
    return sorted(
        p.parent.name for p in SERVICES.glob("*/app.py") if "ServiceDefinition(" in p.read_text()
    )


def definition_of(service: str) -> ServiceDefinition:
    definition = importlib.import_module(f"services.{service}.app").definition
    assert isinstance(definition, ServiceDefinition)
    return definition


def build_document(service: str) -> dict[str, Any]:
    app = create_app(definition_of(service), ServiceSettings(service_name=service), start=False)
    return app.openapi()


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def document_path(service: str) -> Path:
    return DOCUMENTS / f"{service}.json"


def main() -> None:
    parser = argparse.ArgumentParser(description="Generate or check docs/openapi/*.json.")
    parser.add_argument("--check", action="store_true", help="fail if a document drifted")
    args = parser.parse_args()
    stale = []
    for service in service_names():
        text = render(build_document(service))
        path = document_path(service)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path}")
    if stale:
        for path in stale:
            print(f"{path} is out of date: run `python -m shared.openapi`", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
