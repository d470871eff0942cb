"""One measure of the Always Free budget, for the policies and the dry run alike.

Pure: resources in, figures out. The policies feed it what the analyzer hands them (inputs behind
unknown-checking proxies), the dry run its registrations' plain inputs; both then judge or show
the same numbers. A value that cannot be read is not guessed: the resource is left out of the
figure that needed it and recorded as `Undecidable` for that figure only, so a policy reports
just the values it needs.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from .contract import (
    A1_SHAPE,
    BOOT_VOLUME,
    CONTAINER,
    INSTANCE,
    MICRO_SHAPE,
    SHAPES,
    VOLUME,
    VOLUME_BACKUP_POLICY,
    VOLUME_BACKUP_POLICY_ASSIGNMENT,
)
from .reading import (
    UndecidableError,
    container_host,
    instance_host,
    plain_items,
    plain_number,
    plain_text,
)

# OCI's boot volume size when an instance does not set one.
DEFAULT_BOOT_VOLUME_GB: Final = 50.0

# How often a backup schedule runs, at its shortest (a 28-day month, a 365-day year), so that
# retention / period, rounded up, is the most backups a schedule can hold at once.
BACKUP_PERIOD_SECONDS: Final[Mapping[str, int]] = {
    "ONE_HOUR": 3_600,
    "ONE_DAY": 86_400,
    "ONE_WEEK": 7 * 86_400,
    "ONE_MONTH": 28 * 86_400,
    "ONE_YEAR": 365 * 86_400,
}


class Resource(NamedTuple):
    """One registered resource: what the analyzer and the dry run can both supply."""

    type: str
    name: str
    urn: str
    props: Mapping[str, Any]
    """Its inputs: plain values, or proxies that raise `UnknownValueError` on an unknown."""
    property_dependencies: Mapping[str, Sequence[str]]
    """Input property -> URNs of the resources its value was computed from."""
    provider: str = ""
    """The URN of its explicit provider (known in preview, unlike the provider's id); empty
    for a default provider."""


@dataclass(frozen=True)
class Undecidable:
    """A value a figure needs that is unknown until apply or not of the expected kind."""

    resource: Resource
    reason: str

    @property
    def message(self) -> str:
        return f"{self.resource.type} '{self.resource.name}': {self.reason}."


_UNREAD: Final = object()


def _read(resource: Resource, read: Callable[[Resource], object], failed: list[Undecidable]) -> Any:
    """`read(resource)`, or `_UNREAD` after recording why it could not be read."""
    try:
        return read(resource)
    except UndecidableError as error:
        failed.append(Undecidable(resource, str(error)))
        return _UNREAD


# --- A1 instances ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizing:
    instance: Resource
    shape: str
    ocpus: float | None
    memory_gb: float | None


@dataclass(frozen=True)
class InstanceSizes:
    """Every instance's shape and size; the A1 totals count those that set both sizes."""

    instances: tuple[Sizing, ...]
    undecidable: tuple[Undecidable, ...]

    @property
    def a1(self) -> tuple[Sizing, ...]:
        return tuple(s for s in self.instances if s.shape == A1_SHAPE)

    @property
    def a1_sized(self) -> tuple[Sizing, ...]:
        return tuple(s for s in self.a1 if s.ocpus is not None and s.memory_gb is not None)

    @property
    def a1_ocpus(self) -> float:
        return math.fsum(s.ocpus or 0.0 for s in self.a1_sized)

    @property
    def a1_memory_gb(self) -> float:
        return math.fsum(s.memory_gb or 0.0 for s in self.a1_sized)


def _sizing(instance: Resource) -> Sizing:
    props = instance.props
    return Sizing(
        instance=instance,
        shape=plain_text(props, "shape") or "",
        ocpus=plain_number(props, "shapeConfig", "ocpus"),
        memory_gb=plain_number(props, "shapeConfig", "memoryInGbs"),
    )


def measure_instances(resources: Iterable[Resource]) -> InstanceSizes:
    failed: list[Undecidable] = []
    sizes = [_read(r, _sizing, failed) for r in resources if r.type == INSTANCE]
    return InstanceSizes(tuple(s for s in sizes if s is not _UNREAD), tuple(failed))


# --- Block storage --------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredVolume:
    resource: Resource
    label: str
    """`boot of 'instance'`, `'volume'` or `launch volume 0 of 'instance'`."""
    size_gb: float


@dataclass(frozen=True)
class BlockStorage:
    volumes: tuple[StoredVolume, ...]
    undecidable: tuple[Undecidable, ...]

    @property
    def gb(self) -> float:
        return sum(v.size_gb for v in self.volumes)


def _boot_volume(instance: Resource) -> StoredVolume:
    size = plain_number(instance.props, "sourceDetails", "bootVolumeSizeInGbs")
    size_gb = DEFAULT_BOOT_VOLUME_GB if size is None else size
    return StoredVolume(instance, f"boot of '{instance.name}'", size_gb)


def _launch_volumes(instance: Resource) -> tuple[StoredVolume, ...]:
    """The block volumes an instance creates at launch (`launchVolumeAttachments`)."""
    volumes = []
    for index, attachment in enumerate(plain_items(instance.props, "launchVolumeAttachments")):
        size = plain_number(attachment, "launchCreateVolumeDetails", "sizeInGbs")
        if size is None:
            continue  # attaches an existing volume, which the stack counts where it is made
        volumes.append(StoredVolume(instance, f"launch volume {index} of '{instance.name}'", size))
    return tuple(volumes)


def _block_volume(volume: Resource) -> StoredVolume:
    size = plain_number(volume.props, "sizeInGbs")
    if size is None and volume.type == VOLUME:
        size_mb = plain_number(volume.props, "sizeInMbs")  # deprecated, still accepted by OCI
        size = None if size_mb is None else size_mb / 1024
    if size is None:
        raise UndecidableError(
            "sets no size (sizeInGbs), so OCI picks one that the allowance cannot be "
            "checked against; set it (`ai-swarm:dataVolumeGb` sizes the data volume)"
        )
    return StoredVolume(volume, f"'{volume.name}'", size)


def measure_block_storage(resources: Iterable[Resource]) -> BlockStorage:
    """Boot volumes first, then block volumes, each in registration order: an instance's own
    boot volume and launch volumes, and every Volume and stand-alone BootVolume."""
    failed: list[Undecidable] = []
    boots: list[Any] = []
    blocks: list[Any] = []
    for resource in resources:
        if resource.type == INSTANCE:
            boots.append(_read(resource, _boot_volume, failed))
            launched = _read(resource, _launch_volumes, failed)
            blocks.extend(() if launched is _UNREAD else launched)
        elif resource.type in (VOLUME, BOOT_VOLUME):
            blocks.append(_read(resource, _block_volume, failed))
    volumes = tuple(v for v in (*boots, *blocks) if v is not _UNREAD)
    return BlockStorage(volumes, tuple(failed))


# --- Hosts: containers joined to instances by host name ------------------------------------


class Quantity(enum.Enum):
    """A host resource that the limits of the containers placed on it must fit into."""

    CPUS = "cpus"
    MEMORY = "memory"


@dataclass(frozen=True)
class Host:
    instance: Resource
    name: str
    """The instance's `ai-swarm-host` tag."""
    shape: str
    ocpus: float | None
    """From shapeConfig, or the shape's own for a fixed shape; 0 when unset; None when it
    cannot be read."""
    memory_gb: float | None

    def memory_allowed_mb(self, reserved_mb: float) -> float:
        """The memory (MB) the host offers to containers when it keeps `reserved_mb`."""
        return (self.memory_gb or 0.0) * 1024 - reserved_mb

    def cpus_allowed(self, overcommit: float) -> float:
        """The CPUs the host offers to containers: its OCPUs times `overcommit`."""
        # On A1 one OCPU is one core and one vCPU, the unit of Docker's `cpus`; the Micro's
        # one OCPU is two vCPUs at a 1/8 baseline (contract.SHAPES), budgeted as one.
        return (self.ocpus or 0.0) * overcommit

    def size(self, quantity: Quantity) -> float | None:
        return self.memory_gb if quantity is Quantity.MEMORY else self.ocpus


class MemoryReserves(NamedTuple):
    """The memory a host keeps for the OS and Docker, outside container limits, by shape: an
    E2.1.Micro has 1 GB in all, so it cannot keep what an A1 host keeps."""

    host_mb: float
    """Every host but a Micro (hostReservedMemoryMb)."""
    micro_mb: float
    """A VM.Standard.E2.1.Micro (microReservedMemoryMb)."""

    def setting(self, host: Host) -> str:
        return "microReservedMemoryMb" if host.shape == MICRO_SHAPE else "hostReservedMemoryMb"

    def of(self, host: Host) -> float:
        return self.micro_mb if host.shape == MICRO_SHAPE else self.host_mb


@dataclass(frozen=True)
class Demand:
    container: Resource
    host: str | None
    """Its `ai-swarm.host` label; None when it has none."""
    cpus: float | None
    """None when unset or unreadable (container-limits-required reports either)."""
    memory_mb: float | None

    def of(self, quantity: Quantity) -> float | None:
        return self.memory_mb if quantity is Quantity.MEMORY else self.cpus


@dataclass(frozen=True)
class HostUsage:
    hosts: Mapping[str, Host]
    """Host name -> the first instance that carries it, in registration order."""
    duplicates: tuple[Host, ...]
    """Later instances whose tag names a host already taken."""
    demands: tuple[Demand, ...]
    """Every container whose host label could be read, in registration order."""
    undecidable: Mapping[Quantity, tuple[Undecidable, ...]]

    def placed(self, host: str) -> tuple[Demand, ...]:
        return tuple(d for d in self.demands if d.host == host)

    @property
    def unplaced(self) -> tuple[Demand, ...]:
        return tuple(d for d in self.demands if d.host not in self.hosts)

    def by_host(self, quantity: Quantity) -> dict[str, list[tuple[Demand, float]]]:
        """Each host's containers that set `quantity`, with their limit: one dict join."""
        placed: dict[str, list[tuple[Demand, float]]] = {name: [] for name in self.hosts}
        for demand in self.demands:
            amount = demand.of(quantity)
            if amount is not None and demand.host in placed:
                placed[demand.host].append((demand, amount))
        return placed


class _HostReader:
    """Reads hosts and demands, filing each unreadable value under the quantities it blocks."""

    def __init__(self) -> None:
        self.undecidable: dict[Quantity, list[Undecidable]] = {q: [] for q in Quantity}

    def read(
        self, resource: Resource, quantities: Iterable[Quantity], read: Callable[[Resource], object]
    ) -> Any:
        failed: list[Undecidable] = []
        value = _read(resource, read, failed)
        for quantity in quantities:
            self.undecidable[quantity].extend(failed)
        return value

    def size(
        self, resource: Resource, quantity: Quantity, fixed: float | None, *path: str
    ) -> float | None:
        """A fixed shape's own size (it takes no shapeConfig), else the one at `path`."""
        if fixed is not None:
            return fixed
        value = self.read(resource, (quantity,), lambda r: plain_number(r.props, *path) or 0.0)
        return None if value is _UNREAD else float(value)

    def limit(self, resource: Resource, quantity: Quantity, key: str) -> float | None:
        value = self.read(resource, (quantity,), lambda r: plain_number(r.props, key))
        return None if value is _UNREAD else value


def measure_hosts(resources: Iterable[Resource]) -> HostUsage:
    """One pass over the stack, then a dict join of containers to hosts: linear in resources."""
    reader = _HostReader()
    hosts: dict[str, Host] = {}
    duplicates: list[Host] = []
    demands: list[Demand] = []
    for resource in resources:
        if resource.type == INSTANCE:
            name = reader.read(resource, Quantity, lambda r: instance_host(r.props))
            if name is _UNREAD or name is None:
                continue
            shape = reader.read(resource, Quantity, lambda r: plain_text(r.props, "shape"))
            if shape is _UNREAD:
                continue
            facts = SHAPES.get(shape or "")
            host = Host(
                instance=resource,
                name=name,
                shape=shape or "",
                ocpus=reader.size(
                    resource,
                    Quantity.CPUS,
                    facts.fixed_ocpus if facts else None,
                    "shapeConfig",
                    "ocpus",
                ),
                memory_gb=reader.size(
                    resource,
                    Quantity.MEMORY,
                    facts.fixed_memory_gb if facts else None,
                    "shapeConfig",
                    "memoryInGbs",
                ),
            )
            if name in hosts:
                duplicates.append(host)
            else:
                hosts[name] = host
        elif resource.type == CONTAINER:
            label = reader.read(resource, Quantity, lambda r: container_host(r.props))
            if label is _UNREAD:
                continue
            demands.append(
                Demand(
                    container=resource,
                    host=label,
                    cpus=reader.limit(resource, Quantity.CPUS, "cpus"),
                    memory_mb=reader.limit(resource, Quantity.MEMORY, "memory"),
                )
            )
    undecidable = {q: tuple(found) for q, found in reader.undecidable.items()}
    return HostUsage(hosts, tuple(duplicates), tuple(demands), undecidable)


# --- Volume backups -------------------------------------------------------------------------


@dataclass(frozen=True)
class BackupPolicy:
    resource: Resource
    retained: int
    """The backups its schedules keep at once, per asset it is assigned to."""


@dataclass(frozen=True)
class BackupAssignment:
    assignment: Resource
    policy: BackupPolicy
    asset: str
    """The URNs the asset id comes from, or the asset's OCID when it is given as text."""


@dataclass(frozen=True)
class Backups:
    assignments: tuple[BackupAssignment, ...]
    """One per distinct (policy, asset), in registration order."""
    undecidable: tuple[Undecidable, ...]

    @property
    def count(self) -> int:
        return sum(a.policy.retained for a in self.assignments)


def _retained(policy: Resource) -> int:
    """Per schedule: retention / period, rounded up; summed over the schedules."""
    total = 0
    for index, schedule in enumerate(plain_items(policy.props, "schedules")):
        where = f"schedules[{index}]"
        period = plain_text(schedule, "period")
        if period is None or period not in BACKUP_PERIOD_SECONDS:
            raise UndecidableError(
                f"`{where}.period` is {period!r}; known: {', '.join(BACKUP_PERIOD_SECONDS)}"
            )
        retention = plain_number(schedule, "retentionSeconds")
        if retention is None:
            raise UndecidableError(f"`{where}.retentionSeconds` is unset")
        total += math.ceil(retention / BACKUP_PERIOD_SECONDS[period])
    return total


def _assigned_policy(assignment: Resource, policies: Mapping[str, Resource]) -> Resource:
    sources = assignment.property_dependencies.get("policyId", ())
    found = [policies[urn] for urn in sources if urn in policies]
    if len(found) != 1:
        raise UndecidableError(
            "its `policyId` does not come from exactly one VolumeBackupPolicy of this stack, so "
            "the backups it keeps cannot be counted; assign a VolumeBackupPolicy the stack "
            "defines (policy_id=policy.id; Oracle's predefined policies keep more backups than "
            "the free ones)"
        )
    return found[0]


def _asset(assignment: Resource) -> str:
    sources = assignment.property_dependencies.get("assetId", ())
    if sources:
        return " ".join(sorted(sources))
    asset = plain_text(assignment.props, "assetId")
    if asset is None:
        raise UndecidableError("sets no assetId, so the volume its backups count for is unknown")
    return asset


def measure_backups(resources: Iterable[Resource]) -> Backups:
    """The backups every assigned policy keeps, once per asset; unassigned policies keep none."""
    policies: dict[str, Resource] = {}
    assignments: list[Resource] = []
    for resource in resources:
        if resource.type == VOLUME_BACKUP_POLICY:
            policies[resource.urn] = resource
        elif resource.type == VOLUME_BACKUP_POLICY_ASSIGNMENT:
            assignments.append(resource)
    failed: list[Undecidable] = []
    retained: dict[str, Any] = {}
    counted: dict[tuple[str, str], BackupAssignment] = {}
    for assignment in assignments:
        policy = _read(assignment, lambda a: _assigned_policy(a, policies), failed)
        asset = _read(assignment, _asset, failed)
        if policy is _UNREAD or asset is _UNREAD:
            continue
        if policy.urn not in retained:
            retained[policy.urn] = _read(policy, _retained, failed)
        if retained[policy.urn] is _UNREAD:
            continue
        counted.setdefault(
            (policy.urn, asset),
            BackupAssignment(assignment, BackupPolicy(policy, retained[policy.urn]), asset),
        )
    return Backups(tuple(counted.values()), tuple(failed))


# --- Everything at once ---------------------------------------------------------------------


@dataclass(frozen=True)
class Measurement:
    instances: InstanceSizes
    block_storage: BlockStorage
    hosts: HostUsage
    backups: Backups


def measure(resources: Iterable[Resource]) -> Measurement:
    stack = tuple(resources)
    return Measurement(
        instances=measure_instances(stack),
        block_storage=measure_block_storage(stack),
        hosts=measure_hosts(stack),
        backups=measure_backups(stack),
    )
