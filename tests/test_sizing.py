"""The sizing tables: every profile fits its host, and the program's rules are the pack's."""

from __future__ import annotations

from typing import Any

import pytest

from ai_swarm_policies import build_policies
from components.services.catalog import CONFIGURABLE
from components.sizing import (
    ALLOCATIONS,
    CPU_OVERCOMMIT,
    HOST_RESERVED_MEMORY_MB,
    MICRO_RESERVED_MEMORY_MB,
    PROFILES,
    HostSize,
    container_memory_mb,
    container_millicpus,
)
from tests.budget_table import markdown_table, replica_markdown_table

# The original sizing's ranges (MB) that the a1-4x24 profile keeps to, per service.
ORIGINAL_RANGES = {
    "Postgres": (1024, 2048),
    "Redis": (512, 1024),
    "LiteLLM": (1024, 4096),
    "OpenWebUI": (2048, 8192),
    "Pipelines": (1024, 4096),
    "NodeExporter": (50, 100),
    "Vault": (200, 500),
}


def _schema_default(policy_name: str, setting: str) -> Any:
    [policy] = [p for p in build_policies() if p.name == policy_name]
    assert policy.config_schema is not None
    return policy.config_schema.properties[setting]["default"]


def test_reserve_and_overcommit_are_the_packs_defaults() -> None:
    assert _schema_default("host-memory-budget", "hostReservedMemoryMb") == HOST_RESERVED_MEMORY_MB
    assert _schema_default("host-cpu-budget", "maxCpuOvercommit") == CPU_OVERCOMMIT
    assert (
        _schema_default("host-memory-budget", "microReservedMemoryMb") == MICRO_RESERVED_MEMORY_MB
    )


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_profile_table_fits_its_host(profile: str) -> None:
    host = PROFILES[profile].host
    table = ALLOCATIONS[profile]
    assert set(table) == {c for entry in CONFIGURABLE.values() for c in entry.containers}
    assert sum(a.millicpus for a in table.values()) <= container_millicpus(host)
    assert sum(a.memory_mb for a in table.values()) <= container_memory_mb(host)


def test_the_default_profile_is_the_free_allowance() -> None:
    assert PROFILES["always-free"].host == HostSize(ocpus=2, memory_gb=12)
    assert PROFILES["a1-4x24"].host == HostSize(ocpus=4, memory_gb=24)


def test_host_share_keeps_the_reserve_and_the_overcommit() -> None:
    host = HostSize(ocpus=2, memory_gb=12)
    assert container_memory_mb(host) == 12 * 1024 - 1536
    assert container_millicpus(host) == 3000


def test_a1_4x24_keeps_to_the_original_ranges() -> None:
    table = ALLOCATIONS["a1-4x24"]
    for entry in CONFIGURABLE.values():
        low, high = ORIGINAL_RANGES[entry.name]
        total = sum(table[c].memory_mb for c in entry.containers)
        assert low <= total <= high, entry.name


def test_readme_table_lists_every_container_and_the_totals() -> None:
    rows = markdown_table("always-free").splitlines()
    assert len(rows) == 2 + len(ALLOCATIONS["always-free"]) + 1
    assert rows[-1] == "| **Total** | | **3** of 3 | **9216** of 10752 | |"


def test_the_micros_table_fits_its_gigabyte_less_its_reserve() -> None:
    rows = replica_markdown_table().splitlines()
    # Container, cpus, memory, reservation (the service column names the catalog's entry).
    assert [row.split(" | ")[1:] for row in rows[2:-1]] == [
        ["node-exporter", "0.1", "64", "32 |"],
        ["postgres-replica", "0.5", "320", "160 |"],
    ]
    # 1024 MB less the 512 MB kept for Ubuntu and Docker; 1 OCPU x 1.5.
    assert rows[-1] == "| **Total** | | **0.6** of 1.5 | **384** of 512 | |"
