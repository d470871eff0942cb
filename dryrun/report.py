"""What a dry run shows: the resource tree, the budget per host, and the deployment graph.

Everything here is derived from the registrations alone, so it describes exactly what `pulumi
up` would be asked to create. The budget thresholds come from the policy pack's effective
config, so the numbers shown are the ones the pack enforces.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

# The pack's own measure, so that the budget shown is the one the pack judges.
from ai_swarm_policies.measure import Demand, Host, Resource, measure
from components.sizing import SHAPES
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


def measured(registrations: Iterable[Registration]) -> Iterator[Resource]:
    """Registrations as the pack's measure takes them: plain inputs, dependencies as URNs."""
    return (
        Resource(r.type, r.name, r.urn, r.inputs, r.property_dependencies) for r in registrations
    )


def budget(run: ProgramRun, limits: BudgetLimits) -> Budget:
    """The pack's measure of the run under `limits`, laid out per host."""
    figures = measure(measured(run.registrations))
    by_urn = run.by_urn()
    hosts = figures.hosts
    return Budget(
        hosts=tuple(
            _host_budget(host, hosts.placed(name), by_urn, limits)
            # By name: the same order whatever order the instances were registered in.
            for name, host in sorted(hosts.hosts.items())
        ),
        unplaced=tuple(_container_usage(demand, by_urn) for demand in hosts.unplaced),
        a1_ocpus=Usage(figures.instances.a1_ocpus, limits.max_a1_ocpus),
        a1_memory_gb=Usage(figures.instances.a1_memory_gb, limits.max_a1_memory_gb),
        block_storage_gb=Usage(figures.block_storage.gb, limits.max_block_storage_gb),
    )


def _host_budget(
    host: Host,
    demands: Sequence[Demand],
    by_urn: Mapping[str, Registration],
    limits: BudgetLimits,
) -> HostBudget:
    # Largest first: what to shrink when the host is over its budget.
    containers = tuple(
        sorted(
            (_container_usage(demand, by_urn) for demand in demands),
            key=lambda usage: (-usage.memory_mb, -usage.cpus, usage.container),
        )
    )
    host, reserved_mb = _shaped(host, limits)
    return HostBudget(
        host=host.name,
        ocpus=host.ocpus or 0.0,
        memory_gb=host.memory_gb or 0.0,
        containers=containers,
        cpu=Usage(
            math.fsum(c.cpus for c in containers), host.cpus_allowed(limits.max_cpu_overcommit)
        ),
        memory_mb=Usage(
            math.fsum(c.memory_mb for c in containers), host.memory_allowed_mb(reserved_mb)
        ),
        reserved_memory_mb=reserved_mb,
    )


def _shaped(host: Host, limits: BudgetLimits) -> tuple[Host, float]:
    """The host with the size of its shape when the shape is fixed (an instance of a fixed
    shape sets no `shapeConfig` to read it from), and the memory it keeps for the OS: the
    pack's setting on the A1, the sizing module's reserve on any other shape."""
    shape = SHAPES.get(str(host.instance.props.get("shape", "")))
    if shape is None or shape.fixed_size is None:
        return host, limits.host_reserved_memory_mb
    size = shape.fixed_size
    fixed = dataclasses.replace(
        host,
        ocpus=host.ocpus or float(size.ocpus),
        memory_gb=host.memory_gb or float(size.memory_gb),
    )
    return fixed, float(shape.reserved_memory_mb)


def _container_usage(demand: Demand, by_urn: Mapping[str, Registration]) -> ContainerUsage:
    registration = by_urn[demand.container.urn]
    return ContainerUsage(
        service=_service_name(registration, by_urn),
        container=str(registration.inputs.get("name", registration.name)),
        cpus=demand.cpus or 0.0,
        memory_mb=demand.memory_mb or 0.0,
    )


def _service_name(registration: Registration, by_urn: Mapping[str, Registration]) -> str:
    parent = by_urn.get(registration.parent)
    while parent is not None:
        if parent.type.startswith(SERVICE_TYPE_PREFIX):
            return parent.type.removeprefix(SERVICE_TYPE_PREFIX)
        parent = by_urn.get(parent.parent)
    return "-"


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
