"""The local demo: shows the running platform. Grows as the service capabilities land."""

from __future__ import annotations

import asyncio
import json
import urllib.request

PORTS = {"onboarding": 8001, "deals": 8002, "attribution": 8003, "incentives": 8004}


def get(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (loopback only)
        result: dict[str, object] = json.loads(response.read())
        return result


async def main() -> None:
    print("Pollinate is running locally:")
    for service, port in PORTS.items():
        ready = get(f"http://127.0.0.1:{port}/health/ready")
        print(f"  {service:12} http://127.0.0.1:{port}  {ready['status']}  {ready['checks']}")


if __name__ == "__main__":
    asyncio.run(main())
