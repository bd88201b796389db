"""A new KRaft cluster id, printed: a random UUID in URL-safe base64 without padding, as
`kafka-storage random-uuid` makes it, and like Kafka's own (`Uuid.randomUuid`) never one that
starts with "-": the storage tool would read such an id as an option and refuse to format
(one fresh checkout in 64 failed to start its broker that way).

    python3 deploy/kafka_cluster_id.py

Standard library only: `deploy/local-stack.sh` runs it before the project's venv may exist.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable


def new_cluster_id(random_uuid: Callable[[], uuid.UUID] = uuid.uuid4) -> str:
    while True:
        cluster_id = base64.urlsafe_b64encode(random_uuid().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


if __name__ == "__main__":
    print(new_cluster_id())
