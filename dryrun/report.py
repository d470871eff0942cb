"""What a dry run shows: the resource tree, the budget per host, and the deployment graph.

Everything here is derived from the registrations alone, so it describes exactly what `pulumi
up` would be asked to create. The budget thresholds come from the policy pack's effective
config, so the numbers shown are the ones the pack enforces.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

# The pack's own names, so that the budget shown is read the way the pack reads it.
from ai_swarm_policies import (
    A1_SHAPE,
    CONTAINER,
    DEFAULT_BOOT_VOLUME_GB,
    HOST_LABEL,
    HOST_TAG,
    INSTANCE,
    VOLUME,
)
from dryrun.engine import ProgramRun, Registration

SERVICE_TYPE_PREFIX: Final = "ai-swarm:service:"


@dataclass(frozen=True)
class BudgetLimits:
    """The thresholds the policy pack applies (its effective config, defaults included)."""

    max_a1_ocpus: float
    max_a1_memory_gb: float
    max_block_storage_gb: float
    host_reserved_memory_mb: float
    max_cpu_overcommit: float

    @classmethod
    def from_policy_config(cls, config: Mapping[str, Mapping[str, Any]]) -> BudgetLimits:
        return cls(
            max_a1_ocpus=float(config["a1-allowance"]["maxA1Ocpus"]),
            max_a1_memory_gb=float(config["a1-allowance"]["maxA1MemoryGb"]),
            max_block_storage_gb=float(config["block-storage-allowance"]["maxBlockStorageGb"]),
            host_reserved_memory_mb=float(config["host-memory-budget"]["hostReservedMemoryMb"]),
            max_cpu_overcommit=float(config["host-cpu-budget"]["maxCpuOvercommit"]),
        )


@dataclass(frozen=True)
class TreeNode:
    type: str
    name: str
    children: tuple[TreeNode, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "name": self.name,
            "children": [child.as_json() for child in self.children],
        }


@dataclass(frozen=True)
class ContainerUsage:
    service: str
    container: str
    cpus: float
    memory_mb: float


@dataclass(frozen=True)
class Usage:
    used: float
    allowed: float

    @property
    def headroom(self) -> float:
        return self.allowed - self.used

    def as_json(self) -> dict[str, float]:
        return {"used": self.used, "allowed": self.allowed, "headroom": self.headroom}


@dataclass(frozen=True)
class HostBudget:
    host: str
    ocpus: float
    memory_gb: float
    containers: tuple[ContainerUsage, ...]
    cpu: Usage
    memory_mb: Usage
    reserved_memory_mb: float

    def as_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "ocpus": self.ocpus,
            "memoryGb": self.memory_gb,
            "reservedMemoryMb": self.reserved_memory_mb,
            "containers": [
                {
                    "service": c.service,
                    "container": c.container,
                    "cpus": c.cpus,
                    "memoryMb": c.memory_mb,
                }
                for c in self.containers
            ],
            "cpu": self.cpu.as_json(),
            "memoryMb": self.memory_mb.as_json(),
        }


@dataclass(frozen=True)
class Budget:
    hosts: tuple[HostBudget, ...]
    unplaced: tuple[ContainerUsage, ...]
    a1_ocpus: Usage
    a1_memory_gb: Usage
    block_storage_gb: Usage

    def as_json(self) -> dict[str, Any]:
        return {
            "hosts": [host.as_json() for host in self.hosts],
            "unplacedContainers": [c.container for c in self.unplaced],
            "a1Ocpus": self.a1_ocpus.as_json(),
            "a1MemoryGb": self.a1_memory_gb.as_json(),
            "blockStorageGb": self.block_storage_gb.as_json(),
        }


@dataclass(frozen=True)
class DeploymentGraph:
    resource_count: int
    longest_chain: tuple[Registration, ...] = field(default=())

    def as_json(self) -> dict[str, Any]:
        return {
            "resources": self.resource_count,
            "longestChain": {
                "length": len(self.longest_chain),
                "members": [{"type": r.type, "name": r.name} for r in self.longest_chain],
            },
        }


def resource_tree(run: ProgramRun) -> tuple[TreeNode, ...]:
    """The registrations nested by parent; roots are the children of the stack."""
    children: dict[str, list[Registration]] = {}
    known = {r.urn for r in run.registrations}
    for registration in run.registrations:
        parent = registration.parent if registration.parent in known else ""
        children.setdefault(parent, []).append(registration)

    def build(registration: Registration) -> TreeNode:
        return TreeNode(
            registration.type,
            registration.name,
            tuple(build(child) for child in children.get(registration.urn, [])),
        )

    return tuple(build(root) for root in children.get("", []))


def budget(run: ProgramRun, limits: BudgetLimits) -> Budget:
    by_urn = run.by_urn()
    usages: dict[str, list[ContainerUsage]] = {}
    for container in run.of_type(CONTAINER):
        host = _host_label(container.inputs)
        usages.setdefault(host or "", []).append(_container_usage(container, by_urn))
    instances = run.of_type(INSTANCE)
    hosts = tuple(
        _host_budget(instance, usages.get(_host_tag(instance.inputs), []), limits)
        for instance in instances
    )
    placed = {_host_tag(instance.inputs) for instance in instances}
    a1 = [i.inputs.get("shapeConfig", {}) for i in instances if i.inputs.get("shape") == A1_SHAPE]
    return Budget(
        hosts=hosts,
        unplaced=tuple(u for host, group in usages.items() if host not in placed for u in group),
        a1_ocpus=Usage(sum(float(s.get("ocpus", 0)) for s in a1), limits.max_a1_ocpus),
        a1_memory_gb=Usage(
            sum(float(s.get("memoryInGbs", 0)) for s in a1), limits.max_a1_memory_gb
        ),
        block_storage_gb=Usage(_block_storage_gb(run), limits.max_block_storage_gb),
    )


def _host_budget(
    instance: Registration, containers: Sequence[ContainerUsage], limits: BudgetLimits
) -> HostBudget:
    shape = instance.inputs.get("shapeConfig", {})
    ocpus = float(shape.get("ocpus", 0))
    memory_gb = float(shape.get("memoryInGbs", 0))
    return HostBudget(
        host=_host_tag(instance.inputs),
        ocpus=ocpus,
        memory_gb=memory_gb,
        containers=tuple(containers),
        cpu=Usage(sum(c.cpus for c in containers), ocpus * limits.max_cpu_overcommit),
        memory_mb=Usage(
            sum(c.memory_mb for c in containers),
            memory_gb * 1024 - limits.host_reserved_memory_mb,
        ),
        reserved_memory_mb=limits.host_reserved_memory_mb,
    )


def _container_usage(container: Registration, by_urn: Mapping[str, Registration]) -> ContainerUsage:
    return ContainerUsage(
        service=_service_name(container, by_urn),
        container=str(container.inputs.get("name", container.name)),
        cpus=float(container.inputs.get("cpus", 0)),
        memory_mb=float(container.inputs.get("memory", 0)),
    )


def _service_name(registration: Registration, by_urn: Mapping[str, Registration]) -> str:
    parent = by_urn.get(registration.parent)
    while parent is not None:
        if parent.type.startswith(SERVICE_TYPE_PREFIX):
            return parent.type.removeprefix(SERVICE_TYPE_PREFIX)
        parent = by_urn.get(parent.parent)
    return "-"


def _host_label(inputs: Mapping[str, Any]) -> str | None:
    for label in inputs.get("labels", []):
        if label.get("label") == HOST_LABEL:
            return str(label.get("value"))
    return None


def _host_tag(inputs: Mapping[str, Any]) -> str:
    return str(inputs.get("freeformTags", {}).get(HOST_TAG, ""))


def _block_storage_gb(run: ProgramRun) -> float:
    boot = sum(
        float(i.inputs.get("sourceDetails", {}).get("bootVolumeSizeInGbs", DEFAULT_BOOT_VOLUME_GB))
        for i in run.of_type(INSTANCE)
    )
    return boot + sum(float(v.inputs.get("sizeInGbs", 0)) for v in run.of_type(VOLUME))


def deployment_graph(run: ProgramRun) -> DeploymentGraph:
    """Count what `pulumi up` creates and find its longest chain of resources waiting on each other.

    A resource waits for its dependencies and its provider; components only group, so the
    chain runs through custom resources. That chain bounds how long `pulumi up` takes.
    """
    custom = {r.urn: r for r in run.registrations if r.custom}
    longest: dict[str, tuple[Registration, ...]] = {}
    for registration in run.registrations:  # registration order is a topological order
        if registration.urn not in custom:
            continue
        before = [longest[u] for u in waits_on(registration) if u in longest]
        longest[registration.urn] = (*max(before, key=len, default=()), registration)
    chain = max(longest.values(), key=len, default=())
    return DeploymentGraph(resource_count=len(custom), longest_chain=chain)


def waits_on(registration: Registration) -> set[str]:
    """URNs of what must exist before `registration` is created: dependencies and provider."""
    provider_urn = registration.provider.rsplit("::", 1)[0] if registration.provider else ""
    property_deps = {u for urns in registration.property_dependencies.values() for u in urns}
    return {*registration.dependencies, *property_deps, provider_urn} - {""}
