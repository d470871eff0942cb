"""The one table of service images and per-profile container allocations.

Pure data, importable without Pulumi: `components.config` validates `ai-swarm:services` against
it, the service components read their defaults from it, and the README's budget tables are
printed from it (`markdown_table`).

Every container has a CPU limit (millicpus, Docker's `cpus` x 1000, so sums stay exact) and a
memory limit in MB; its soft reservation is half the limit. A service's first container is its
main one: `ai-swarm:services.<key>.cpus` / `.memoryMb` override that one; sidecars (the Redis
Sentinel, the Vault Agent) keep their small table values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# Memory each host keeps outside container limits for the OS, Docker and the page cache; the
# policy pack's `hostReservedMemoryMb` default is the same number.
HOST_RESERVED_MEMORY_MB = 1536
# Container CPU limits may add up to this many times the OCPUs (policy `maxCpuOvercommit`).
CPU_OVERCOMMIT = 1.5
MILLICPUS_PER_CPU = 1000


@dataclass(frozen=True)
class Allocation:
    millicpus: int
    memory_mb: int

    @property
    def cpus(self) -> str:
        """Docker's `cpus` string, e.g. "0.25"."""
        return f"{self.millicpus / MILLICPUS_PER_CPU:g}"

    @property
    def reservation_mb(self) -> int:
        return self.memory_mb // 2


@dataclass(frozen=True)
class ServiceEntry:
    key: str  # the name under `ai-swarm:services`
    name: str  # the component type's <Name>: ai-swarm:service:<Name>
    image: str
    containers: tuple[str, ...]  # main container first
    needs: tuple[str, ...] = ()  # services that must be enabled for this one to work
    ui_port: int | None = None  # published on loopback (or to adminCidrs when exposed)


# Version tags, never moving ones. No registry is reachable from the build environment, so
# digests are not recorded here: `docker buildx imagetools inspect <image>` shows them.
SERVICES: Mapping[str, ServiceEntry] = {
    entry.key: entry
    for entry in (
        ServiceEntry("postgres", "Postgres", "postgres:15.14-alpine", ("postgres",)),
        ServiceEntry("redis", "Redis", "redis:7.4.5-alpine", ("redis", "redis-sentinel")),
        ServiceEntry(
            "nodeExporter", "NodeExporter", "prom/node-exporter:v1.9.1", ("node-exporter",)
        ),
        # v1.83.14-stable shipped amd64 binaries under its arm64 manifest: smoke-test new tags.
        ServiceEntry(
            "litellm",
            "LiteLLM",
            "ghcr.io/berriai/litellm:v1.88.0",
            ("litellm",),
            needs=("postgres", "redis"),
            ui_port=4000,
        ),
        ServiceEntry(
            "openWebui",
            "OpenWebUI",
            "ghcr.io/open-webui/open-webui:v0.6.18",
            ("open-webui",),
            needs=("postgres", "redis", "litellm"),
            ui_port=8080,
        ),
        # Pipelines publishes no version tags, only git-<commit> ones.
        ServiceEntry(
            "pipelines", "Pipelines", "ghcr.io/open-webui/pipelines:git-adec657", ("pipelines",)
        ),
        ServiceEntry("vault", "Vault", "hashicorp/vault:1.15.6", ("vault", "vault-agent")),
    )
}


def _table(rows: Mapping[str, tuple[float, int]]) -> Mapping[str, Allocation]:
    return {
        container: Allocation(round(cpus * MILLICPUS_PER_CPU), memory_mb)
        for container, (cpus, memory_mb) in rows.items()
    }


# container: (cpus, memory MB)
ALLOCATIONS: Mapping[str, Mapping[str, Allocation]] = {
    # 2 OCPU / 12 GB: 3.0 CPUs and 10,752 MB to share; 1.5 GB of that is left as headroom.
    "always-free": _table(
        {
            "postgres": (0.4, 1536),
            "redis": (0.2, 512),
            "redis-sentinel": (0.05, 64),
            "node-exporter": (0.1, 64),
            "litellm": (0.6, 2048),
            "open-webui": (0.9, 3072),
            "pipelines": (0.45, 1536),
            "vault": (0.2, 256),
            "vault-agent": (0.1, 128),
        }
    ),
    # 4 OCPU / 24 GB: the original table's upper ends (6.0 CPUs and 23,040 MB to share).
    "a1-4x24": _table(
        {
            "postgres": (1.0, 2048),
            "redis": (0.5, 960),
            "redis-sentinel": (0.1, 64),
            "node-exporter": (0.2, 100),
            "litellm": (1.0, 4096),
            "open-webui": (1.5, 8192),
            "pipelines": (1.0, 4096),
            "vault": (0.3, 320),
            "vault-agent": (0.1, 128),
        }
    ),
}


@dataclass(frozen=True)
class Budget:
    millicpus: int
    memory_mb: int
    max_millicpus: int
    max_memory_mb: int

    @property
    def fits(self) -> bool:
        return self.millicpus <= self.max_millicpus and self.memory_mb <= self.max_memory_mb


def budget(allocations: Sequence[Allocation], ocpus: int, memory_gb: int) -> Budget:
    """What the containers ask for against what a host of this size can give them."""
    return Budget(
        millicpus=sum(a.millicpus for a in allocations),
        memory_mb=sum(a.memory_mb for a in allocations),
        max_millicpus=round(ocpus * CPU_OVERCOMMIT * MILLICPUS_PER_CPU),
        max_memory_mb=memory_gb * 1024 - HOST_RESERVED_MEMORY_MB,
    )


def markdown_table(profile: str, ocpus: int, memory_gb: int) -> str:
    """The README's budget table for one profile (every service enabled, no overrides)."""
    allocations = ALLOCATIONS[profile]
    rows = [
        "| Service | Container | cpus | memory (MB) | reservation (MB) |",
        "|---|---|---:|---:|---:|",
    ]
    for entry in SERVICES.values():
        for container in entry.containers:
            a = allocations[container]
            rows.append(
                f"| {entry.name} | {container} | {a.cpus} | {a.memory_mb} | {a.reservation_mb} |"
            )
    total = budget(list(allocations.values()), ocpus, memory_gb)
    rows.append(
        f"| **Total** | | **{total.millicpus / MILLICPUS_PER_CPU:g}** of "
        f"{total.max_millicpus / MILLICPUS_PER_CPU:g} | **{total.memory_mb}** of "
        f"{total.max_memory_mb} | |"
    )
    return "\n".join(rows)
