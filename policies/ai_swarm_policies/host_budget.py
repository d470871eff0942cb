"""host-memory-budget and host-cpu-budget: the limits of the containers placed on a host fit it."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyConfigSchema,
    ReportViolation,
    StackValidationArgs,
    StackValidationPolicy,
)

from .analyzed import resources
from .contract import CONTAINER, HOST_LABEL, HOST_TAG, INSTANCE, MICRO_SHAPE
from .measure import Demand, Host, MemoryReserves, Quantity, measure_hosts
from .messages import fmt, largest, report_undecidable
from .settings import Settings, default, number, settings

HOST_MEMORY_SCHEMA: Final = PolicyConfigSchema(
    {
        "hostReservedMemoryMb": number(
            1536,
            "Memory (MB) each host but an E2.1.Micro keeps for the OS and Docker, outside "
            "container limits.",
        ),
        "microReservedMemoryMb": number(
            512,
            f"Memory (MB) a {MICRO_SHAPE} (1 GB in all) keeps for the OS and Docker, outside "
            "container limits.",
        ),
    }
)
HOST_CPU_SCHEMA: Final = PolicyConfigSchema(
    {
        "maxCpuOvercommit": number(
            1.5, "Container CPU limits may sum to this many times the host's OCPUs."
        )
    }
)
# The defaults the program's sizing profiles are held to.
HOST_RESERVED_MEMORY_MB: Final[float] = default(HOST_MEMORY_SCHEMA, "hostReservedMemoryMb")
MICRO_RESERVED_MEMORY_MB: Final[float] = default(HOST_MEMORY_SCHEMA, "microReservedMemoryMb")
MAX_CPU_OVERCOMMIT: Final[float] = default(HOST_CPU_SCHEMA, "maxCpuOvercommit")


@dataclass(frozen=True)
class _HostBudget:
    """One host resource that the limits of the containers placed on the host must fit into."""

    policy: str
    quantity: Quantity
    unit: str
    schema: PolicyConfigSchema
    # The setting that bounds a host, and its value.
    setting: Callable[[Host, Settings], tuple[str, float]]
    # What the host offers under the setting's value, and how that number comes about.
    allowed: Callable[[Host, float], float]
    explained: Callable[[Host, float, str], str]
    fix: str


def _memory_setting(host: Host, setting: Settings) -> tuple[str, float]:
    reserves = MemoryReserves(
        host_mb=float(setting("hostReservedMemoryMb")),
        micro_mb=float(setting("microReservedMemoryMb")),
    )
    return reserves.setting(host), reserves.of(host)


def _cpu_explained(host: Host, overcommit: float, key: str) -> str:
    return f"{fmt(host.ocpus or 0.0)} OCPU x {fmt(overcommit)} ({key})"


MEMORY_BUDGET: Final = _HostBudget(
    policy="host-memory-budget",
    quantity=Quantity.MEMORY,
    unit=" MB",
    schema=HOST_MEMORY_SCHEMA,
    setting=_memory_setting,
    allowed=Host.memory_allowed_mb,
    explained=lambda host, reserved, key: (
        f"{fmt((host.memory_gb or 0.0) * 1024)} MB instance memory - {fmt(reserved)} MB "
        f"reserved for the OS and Docker ({key})"
    ),
    fix=(
        "lower `ai-swarm:services.<name>.memoryMb` of the largest services, raise "
        "`ai-swarm:memoryGb` (A1 hosts, within a1-allowance), or lower hostReservedMemoryMb "
        "/ microReservedMemoryMb in the host-memory-budget pack config"
    ),
)
CPU_BUDGET: Final = _HostBudget(
    policy="host-cpu-budget",
    quantity=Quantity.CPUS,
    unit="",
    schema=HOST_CPU_SCHEMA,
    setting=lambda _, setting: ("maxCpuOvercommit", float(setting("maxCpuOvercommit"))),
    allowed=Host.cpus_allowed,
    explained=_cpu_explained,
    fix=(
        "lower `ai-swarm:services.<name>.cpus` of the largest services, raise `ai-swarm:ocpus` "
        "(within a1-allowance), or raise maxCpuOvercommit in the host-cpu-budget pack config"
    ),
)


def _check_host_budget(
    budget: _HostBudget, args: StackValidationArgs, report: ReportViolation
) -> None:
    setting = settings(args.get_config(), budget.schema)
    usage = measure_hosts(resources(args, INSTANCE, CONTAINER))
    report_undecidable(report, usage.undecidable[budget.quantity])
    for duplicate in usage.duplicates:
        first = usage.hosts[duplicate.name]
        report(
            f"Instances '{first.instance.name}' and '{duplicate.instance.name}' both carry the "
            f"tag {HOST_TAG}={duplicate.name}, so containers cannot be placed on one of them. "
            "Fix: give each host its own name.",
            duplicate.instance.urn,
        )
    for demand in usage.demands:
        amount = demand.of(budget.quantity)
        if demand.host is None or amount is None or demand.host in usage.hosts:
            continue  # container-limits-required reports a missing label or limit
        report(
            f"Container '{demand.container.name}' is labelled {HOST_LABEL}={demand.host}, but no "
            f"instance in the stack has the tag {HOST_TAG}={demand.host}, so its "
            f"{fmt(amount)}{budget.unit} of {budget.quantity.value} cannot be budgeted. Fix: "
            "label it with the name of a host in this stack.",
            demand.container.urn,
        )
    for name, placed in usage.by_host(budget.quantity).items():
        host = usage.hosts[name]
        if placed and host.size(budget.quantity) is not None:
            key, limit = budget.setting(host, setting)
            allowed = budget.allowed(host, limit)
            explained = budget.explained(host, limit, key)
            _report_over_budget(
                budget, host, allowed=allowed, explained=explained, placed=placed, report=report
            )


def _report_over_budget(
    budget: _HostBudget,
    host: Host,
    *,
    allowed: float,
    explained: str,
    placed: Sequence[tuple[Demand, float]],
    report: ReportViolation,
) -> None:
    # fsum: a float sum depends on its order (0.9 + 0.6 + ... can pass 3 by 4e-16), and the
    # verdict must not depend on the order the engine registered the containers in.
    used = math.fsum(amount for _, amount in placed)
    if used <= allowed:
        return
    unit = budget.unit
    containers = [(demand.container.name, amount) for demand, amount in placed]
    report(
        f"Host '{host.name}' (instance '{host.instance.name}'): the {budget.quantity.value} "
        f"limits of its {len(containers)} containers sum to {fmt(used)}{unit}, over the "
        f"{fmt(allowed)}{unit} allowed ({explained}) by {fmt(used - allowed)}{unit}. "
        f"Largest: {largest(containers, unit)}. Fix: {budget.fix}.",
        host.instance.urn,
    )


def host_budget_policies() -> list[Policy]:
    mandatory = EnforcementLevel.MANDATORY
    return [
        StackValidationPolicy(
            name=MEMORY_BUDGET.policy,
            description="Container memory limits plus the OS reserve fit in each host's memory.",
            validate=lambda args, report: _check_host_budget(MEMORY_BUDGET, args, report),
            enforcement_level=mandatory,
            config_schema=HOST_MEMORY_SCHEMA,
        ),
        StackValidationPolicy(
            name=CPU_BUDGET.policy,
            description="Container CPU limits fit in each host's OCPUs times the overcommit.",
            validate=lambda args, report: _check_host_budget(CPU_BUDGET, args, report),
            enforcement_level=mandatory,
            config_schema=HOST_CPU_SCHEMA,
        ),
    ]
