"""The README's budget tables, made from the catalog and the sizing tables (used by tests)."""

from __future__ import annotations

from components.services.catalog import CONFIGURABLE
from components.sizing import (
    ALLOCATIONS,
    MILLICPUS_PER_CPU,
    PROFILES,
    container_memory_mb,
    container_millicpus,
)


def markdown_table(profile: str) -> str:
    """The budget table of one profile (every service enabled, no overrides)."""
    allocations = ALLOCATIONS[profile]
    host = PROFILES[profile].host
    rows = [
        "| Service | Container | cpus | memory (MB) | reservation (MB) |",
        "|---|---|---:|---:|---:|",
    ]
    for entry in CONFIGURABLE.values():
        for container in entry.containers:
            a = allocations[container]
            rows.append(
                f"| {entry.name} | {container} | {a.cpus} | {a.memory_mb} | {a.reservation_mb} |"
            )
    millicpus = sum(a.millicpus for a in allocations.values())
    memory_mb = sum(a.memory_mb for a in allocations.values())
    rows.append(
        f"| **Total** | | **{millicpus / MILLICPUS_PER_CPU:g}** of "
        f"{container_millicpus(host) / MILLICPUS_PER_CPU:g} | **{memory_mb}** of "
        f"{container_memory_mb(host)} | |"
    )
    return "\n".join(rows)
