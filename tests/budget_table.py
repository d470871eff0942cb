"""The README's budget tables, made from the catalog and the sizing tables (used by tests)."""

from __future__ import annotations

from collections.abc import Mapping

from components.services.catalog import CATALOG
from components.sizing import (
    A1_FLEX,
    ALLOCATIONS,
    E2_1_MICRO,
    MICRO_ALLOCATIONS,
    MICRO_SIZE,
    MILLICPUS_PER_CPU,
    PROFILES,
    Allocation,
    HostSize,
    Shape,
    container_memory_mb,
    container_millicpus,
)


def markdown_table(profile: str) -> str:
    """The budget table of one profile's A1 host (every service enabled, no overrides)."""
    return _table(ALLOCATIONS[profile], PROFILES[profile].host, A1_FLEX)


def replica_markdown_table() -> str:
    """The budget table of the replica's E2.1.Micro, the same whatever the profile."""
    return _table(MICRO_ALLOCATIONS, MICRO_SIZE, E2_1_MICRO)


def _service_name(container: str) -> str:
    names = [entry.name for entry in CATALOG.values() if container in entry.containers]
    return names[0] if names else container


def _table(allocations: Mapping[str, Allocation], host: HostSize, shape: Shape) -> str:
    rows = [
        "| Service | Container | cpus | memory (MB) | reservation (MB) |",
        "|---|---|---:|---:|---:|",
    ]
    # In the catalog's order, then any container of this host the catalog does not list.
    ordered = [c for entry in CATALOG.values() for c in entry.containers if c in allocations]
    ordered += [c for c in allocations if c not in ordered]
    for container in ordered:
        a = allocations[container]
        rows.append(
            f"| {_service_name(container)} | {container} | {a.cpus} | {a.memory_mb} | "
            f"{a.reservation_mb} |"
        )
    millicpus = sum(a.millicpus for a in allocations.values())
    memory_mb = sum(a.memory_mb for a in allocations.values())
    rows.append(
        f"| **Total** | | **{millicpus / MILLICPUS_PER_CPU:g}** of "
        f"{container_millicpus(host) / MILLICPUS_PER_CPU:g} | **{memory_mb}** of "
        f"{container_memory_mb(host, shape)} | |"
    )
    return "\n".join(rows)
