"""The command line the database benchmarks share: each adds its own options to `arguments`,
then `run_and_write` runs it against the local stack (POLLINATE_* / KAFKA_* / PG_* from the
environment) and writes its report as JSON where --out says."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from tests.support.infra import Infra


def arguments(benchmark: str, doc: str | None, sizes: str = "") -> argparse.ArgumentParser:
    """A parser described by the module's first docstring line, with --out defaulting to
    .work/bench/<benchmark>.json and, for a benchmark run at several sizes, --sizes (a comma
    separated list, `sizes` by default)."""
    parser = argparse.ArgumentParser(description=(doc or benchmark).splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(f".work/bench/{benchmark}.json"))
    if sizes:
        parser.add_argument("--sizes", type=size_list, default=sizes)
    return parser


def size_list(text: str) -> list[int]:
    """--sizes "1000,100000" as [1000, 100000] (argparse applies it to the default too)."""
    return [int(size) for size in text.split(",")]


def run_and_write(out: Path, benchmark: Callable[[Infra], Awaitable[dict[str, Any]]]) -> None:
    result = asyncio.run(benchmark(Infra.from_env(os.environ)))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
