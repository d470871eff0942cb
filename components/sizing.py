"""What the hosts are, how big, and how their CPU and memory are shared among the containers.

Pure data, importable without Pulumi. The hosts' specs (`HostSpec`: shape and its Docker
platform, size, image, volumes, the services placed there; `components/config` builds them),
the sizing profiles (`ai-swarm:profile`), the limits of the A1.Flex shape, each container's
CPU and memory limit per profile, and the two rules the limits are held to: memory kept for the
OS and Docker, and how far CPU limits may overcommit.
The policy pack enforces the same two rules with the same numbers as its config defaults
(`hostReservedMemoryMb`, `maxCpuOvercommit`); a test keeps the two equal.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

# Memory an A1 host keeps outside container limits for the OS, Docker and the page cache.
HOST_RESERVED_MEMORY_MB = 1536
# The same on an E2.1.Micro (1 GB): Ubuntu 24.04 with cloud-init and snapd, about 250-300 MB
# (an estimate, not measured here), dockerd + containerd, 100-150 MB (REFERENCE: estimated),
# and a little page cache; the swap file (components/cloud_init.py) absorbs peaks.
MICRO_RESERVED_MEMORY_MB = 512
# Container CPU limits may add up to this many times the OCPUs.
CPU_OVERCOMMIT = 1.5
MILLICPUS_PER_CPU = 1000

A1_SHAPE = "VM.Standard.A1.Flex"
# Limits of the VM.Standard.A1.Flex shape itself (not of the free allowance).
A1_MAX_OCPUS = 80
A1_MIN_MEMORY_GB_PER_OCPU = 1
A1_MAX_MEMORY_GB_PER_OCPU = 64
A1_MAX_MEMORY_GB = 512


@dataclass(frozen=True)
class HostSize:
    ocpus: int
    memory_gb: int


@dataclass(frozen=True)
class Shape:
    """An OCI instance shape, and the Docker platform of the images its containers run.

    A flexible shape is sized at launch (`shape_config`); a fixed one has `fixed_size` and
    takes no `shape_config`. `reserved_memory_mb` is kept outside container limits."""

    name: str
    platform: str
    fixed_size: HostSize | None = None
    reserved_memory_mb: int = HOST_RESERVED_MEMORY_MB
    # A swap file of this size, made at first boot (None: no swap file).
    swap_mb: int | None = None


A1_FLEX = Shape(A1_SHAPE, platform="linux/arm64")
E2_MICRO_SHAPE = "VM.Standard.E2.1.Micro"
# x86_64 (AMD), 1 OCPU at a 1/8 baseline, 1 GB: a fixed shape; two are Always Free.
MICRO_SIZE = HostSize(ocpus=1, memory_gb=1)
E2_1_MICRO = Shape(
    E2_MICRO_SHAPE,
    platform="linux/amd64",
    fixed_size=MICRO_SIZE,
    reserved_memory_mb=MICRO_RESERVED_MEMORY_MB,
    # As much as its memory (Ubuntu's SwapFaq for 1 GB without hibernation): a peak such as a
    # table's initial copy pages out instead of waking the OOM killer.
    swap_mb=1024,
)
# Every shape the stack launches, by OCI name.
SHAPES: Mapping[str, Shape] = {shape.name: shape for shape in (A1_FLEX, E2_1_MICRO)}
# Always Free block storage: every boot and block volume of the tenancy together.
FREE_BLOCK_STORAGE_GB = 200
# The Micro's boot volume, which holds its data too (it has no block volume).
MICRO_BOOT_VOLUME_GB = 50


@dataclass(frozen=True)
class OsImage:
    """The operating system a host boots: its newest image that OCI lists for the host's shape
    (`get_images` filtered by shape), and so of the shape's architecture."""

    operating_system: str
    version: str


UBUNTU_2404 = OsImage("Canonical Ubuntu", "24.04")


@dataclass(frozen=True)
class HostSpec:
    """One host of the stack: what the host component makes and where services are placed."""

    # The host component's fixed name, its resources' prefix and its `ai-swarm-host` tag.
    key: str
    name: str  # display name and hostname label: a setting, updated in place
    shape: Shape
    size: HostSize
    image: OsImage
    boot_volume_gb: int
    # None: no block volume; the host's data lives on its boot volume.
    data_volume_gb: int | None
    private_ip: ipaddress.IPv4Address
    # Catalog keys of the services placed on this host, every one enabled.
    services: tuple[str, ...]
    # Each container's default limits on this host, by container name.
    allocations: Mapping[str, Allocation]
    # TCP ports the host admits from the admins (SSH first), in its firewall.
    admin_ports: tuple[int, ...]
    # Who may reach the Postgres this host publishes: the replica's peers, or none.
    postgres_peers: tuple[ipaddress.IPv4Network, ...] = ()
    # Prepended to the names of the host's Docker provider, network and services: empty for the
    # first host, whose resources keep the names of a stack with one host.
    resource_prefix: str = ""
    # The component's name in stacks made when it was named after `hostName` (aliased).
    former_key: str | None = None

    @property
    def platform(self) -> str:
        return self.shape.platform

    @property
    def container_memory_mb(self) -> int:
        """Memory this host's containers' limits may add up to."""
        return container_memory_mb(self.size, self.shape)

    @property
    def container_millicpus(self) -> int:
        """Millicpus this host's containers' limits may add up to."""
        return container_millicpus(self.size)


@dataclass(frozen=True)
class SizingProfile:
    name: str
    host: HostSize


@dataclass(frozen=True)
class Allocation:
    """One container's limits: CPU in millicpus (Docker's `cpus` x 1000, so sums stay exact)
    and memory in MB; its soft reservation is half the limit."""

    millicpus: int
    memory_mb: int

    @property
    def cpus(self) -> str:
        """Docker's `cpus` string, e.g. "0.25"."""
        return f"{self.millicpus / MILLICPUS_PER_CPU:g}"

    @property
    def reservation_mb(self) -> int:
        return self.memory_mb // 2


PROFILES: Mapping[str, SizingProfile] = {
    # Oracle's Always Free A1 allowance since 2026-06-15.
    "always-free": SizingProfile("always-free", HostSize(ocpus=2, memory_gb=12)),
    # The original sizing, beyond today's free allowance.
    "a1-4x24": SizingProfile("a1-4x24", HostSize(ocpus=4, memory_gb=24)),
}
DEFAULT_PROFILE = "always-free"


def _table(rows: Mapping[str, tuple[float, int]]) -> Mapping[str, Allocation]:
    return {
        container: Allocation(round(cpus * MILLICPUS_PER_CPU), memory_mb)
        for container, (cpus, memory_mb) in rows.items()
    }


# Per profile, container: (cpus, memory MB). A service's first container is its main one:
# `ai-swarm:services.<key>.cpus` / `.memoryMb` override that one; sidecars (the Redis
# Sentinel, the Vault Agent) keep their small table values.
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


# The Micro's containers, whatever the profile (which sizes the A1 host). Measured (REFERENCE):
# a PG 15 subscriber with shared_buffers=64MB and max_connections=20, 83 MB PSS after 50k rows;
# node-exporter 17 MB. The limits leave room for sorts, autovacuum and a resync's copy.
MICRO_ALLOCATIONS: Mapping[str, Allocation] = _table(
    {
        "postgres-replica": (0.5, 320),
        "node-exporter": (0.1, 64),
    }
)


def container_memory_mb(host: HostSize, shape: Shape = A1_FLEX) -> int:
    """Memory the containers' limits may add up to on a host of this size and shape."""
    return host.memory_gb * 1024 - shape.reserved_memory_mb


def container_millicpus(host: HostSize) -> int:
    """Millicpus the containers' limits may add up to on a host of this size."""
    return round(host.ocpus * CPU_OVERCOMMIT * MILLICPUS_PER_CPU)
