"""Every service keeps the same rooms, and the code stays in the shape the README promises:
no module over 600 lines, no function over 80, no SQL in a route module, no I/O in a domain."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from shared.openapi import service_names
from tests.support.infra import ROOT

SERVICES = service_names()
ROOMS = ("app.py", "api.py", "schemas.py", "handlers.py", "jobs.py", "repository.py", "views.py")
# The portal is a front end: no consumer, no jobs, no database of its own, so it keeps the rooms
# of the HTTP side only; every rule below holds for it as for the platform's services.
FRONT_ENDS = ("portal",)
FRONT_END_ROOMS = ("app.py", "api.py", "schemas.py", "views.py")
EVERY_PACKAGE = sorted(p.parent.name for p in (ROOT / "services").glob("*/app.py"))
CODE = sorted([*ROOT.glob("services/**/*.py"), *ROOT.glob("shared/**/*.py")])
IO_LIBRARIES = (
    "asyncpg",
    "aiokafka",
    "faststream",
    "fastapi",
    "starlette",
    "httpx",
    "uvicorn",
    "shared.db",
    "shared.outbox",
    "shared.relay",
    "shared.consumer",
    "shared.service",
    "shared.http",
)


def relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_every_service_package_is_a_platform_service_or_a_front_end() -> None:
    assert sorted([*SERVICES, *FRONT_ENDS]) == EVERY_PACKAGE


@pytest.mark.parametrize("service", EVERY_PACKAGE)
def test_every_service_has_the_same_rooms(service: str) -> None:
    folder = ROOT / "services" / service
    rooms = FRONT_END_ROOMS if service in FRONT_ENDS else ROOMS
    missing = [room for room in rooms if not (folder / room).is_file()]
    assert missing == []
    assert (folder / "domain" / "__init__.py").is_file()


def test_no_module_is_over_600_lines() -> None:
    long = {relative(p): n for p in CODE if (n := len(p.read_text().splitlines())) > 600}
    assert long == {}


def test_no_function_is_over_80_lines() -> None:
    long = [
        f"{relative(path)}:{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for path in CODE
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > 80
    ]
    assert long == []


@pytest.mark.parametrize("service", EVERY_PACKAGE)
def test_routes_hold_no_sql(service: str) -> None:
    text = (ROOT / "services" / service / "api.py").read_text()
    # An HTTP DELETE route's decorator is not SQL.
    text = re.sub(r"@\w+\.delete\(", "@route(", text)
    assert re.findall(r"\b(SELECT|INSERT|UPDATE|DELETE)\b", text, re.IGNORECASE) == []


def imported_modules(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


@pytest.mark.parametrize("service", EVERY_PACKAGE)
def test_the_domain_does_no_io(service: str) -> None:
    impure = [
        f"{relative(path)} imports {name}"
        for path in (ROOT / "services" / service / "domain").rglob("*.py")
        for name in imported_modules(path)
        if any(name == lib or name.startswith(f"{lib}.") for lib in IO_LIBRARIES)
    ]
    assert impure == []


@pytest.mark.parametrize("service", EVERY_PACKAGE)
def test_a_service_imports_only_shared_and_itself(service: str) -> None:
    others = [
        f"{relative(path)} imports {name}"
        for path in (ROOT / "services" / service).rglob("*.py")
        for name in imported_modules(path)
        if name.startswith("services.") and not name.startswith(f"services.{service}")
    ]
    assert others == []


def test_shared_holds_no_service_code() -> None:
    leaks = [
        f"{relative(path)} imports {name}"
        for path in ROOT.glob("shared/**/*.py")
        for name in imported_modules(path)
        if name.startswith("services")
    ]
    assert leaks == []


def test_a_test_module_imports_no_other_test_module() -> None:
    """What tests share lives in tests/support (its docstring says where): a helper imported from
    another test module moves with that module's changes, and hides what the test needs."""
    borrowed = [
        f"{relative(path)} imports {name}"
        for path in ROOT.glob("tests/**/*.py")
        for name in imported_modules(path)
        if re.match(r"tests\.(unit|integration|e2e)\.test_", name)
    ]
    assert borrowed == []
