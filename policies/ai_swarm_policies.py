"""The ai-swarm CrossGuard policies: Oracle's Always Free budget and the security baseline.

`__main__.py` alone builds the `PolicyPack` (it serves gRPC and never returns); the tests and the
offline dry run import this module and drive the same policies through pulumi-policy's analyzer.
The pack judges what the program registers and imports nothing from `components/`, so a sizing
mistake there cannot hide from it.

Preview safety: during `pulumi preview` the outputs of resources not yet created are unknown, and
the analyzer turns a policy that reads one into an advisory "can't run policy during preview".
Every value read here goes through `_plain`, which reads only the property asked for (never a
whole object) and turns an unknown into a violation of the policy that needed it: a mandatory
budget never silently degrades to advice. (One deliberate exception: pinned-images skips a
container whose image is an unknown id, since the RemoteImage it comes from is checked itself.)
"""

from __future__ import annotations

import heapq
import ipaddress
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

PACK_NAME: Final = "ai-swarm"

INSTANCE: Final = "oci:Core/instance:Instance"
VOLUME: Final = "oci:Core/volume:Volume"
VCN: Final = "oci:Core/vcn:Vcn"
SECURITY_LIST: Final = "oci:Core/securityList:SecurityList"
DEFAULT_SECURITY_LIST: Final = "oci:Core/defaultSecurityList:DefaultSecurityList"
NSG_RULE: Final = "oci:Core/networkSecurityGroupSecurityRule:NetworkSecurityGroupSecurityRule"
CONTAINER: Final = "docker:index/container:Container"
REMOTE_IMAGE: Final = "docker:index/remoteImage:RemoteImage"

A1_SHAPE: Final = "VM.Standard.A1.Flex"
MICRO_SHAPE: Final = "VM.Standard.E2.1.Micro"
HOST_LABEL: Final = "ai-swarm.host"
HOST_TAG: Final = "ai-swarm-host"
# OCI's boot volume size when an instance does not set one.
DEFAULT_BOOT_VOLUME_GB: Final = 50.0
# The program writes nested ignore_changes paths in the engine's (camelCase) spelling: the Python
# SDK translates top-level names only, so `source_details.source_id` would ignore nothing.
IMAGE_IGNORE_PATHS: Final = frozenset({"sourceDetails", "sourceDetails.sourceId"})
ARM64_PLATFORMS: Final = frozenset({"linux/arm64", "linux/arm64/v8"})
PROFILE_4X24_CONFIG: Final = "policies/profiles/a1-4x24.json"

# Oracle's Always Free Ampere A1 allowance since 2026-06-15, and the one it replaced.
FREE_A1_OCPUS: Final = 2
FREE_A1_MEMORY_GB: Final = 12
HALVING_NOTE: Final = (
    "Oracle halved the Always Free A1 allowance on 2026-06-15: it is now 1,500 OCPU hours and "
    "9,000 GB hours a month, which is 2 OCPU / 12 GB running all month (before: 3,000 / 18,000 "
    "hours = 4 OCPU / 24 GB). Only a tenancy that still has the old allowance, or pays for the "
    "difference, should accept the a1-4x24 sizing, with "
    f"`--policy-pack-config {PROFILE_4X24_CONFIG}`."
)


# ---------------------------------------------------------------------------------------------
# Config schemas: every threshold is a pack-config property; its default lives here only.


def _number(default: float, description: str) -> dict[str, Any]:
    return {"type": "number", "minimum": 0, "default": default, "description": description}


def _count(default: int, description: str) -> dict[str, Any]:
    return {"type": "integer", "minimum": 0, "default": default, "description": description}


def _strings(default: Sequence[str], description: str) -> dict[str, Any]:
    return {
        "type": "array",
        "items": {"type": "string"},
        "default": list(default),
        "description": description,
    }


A1_ALLOWANCE_SCHEMA: Final = PolicyConfigSchema(
    {
        "maxA1Ocpus": _number(FREE_A1_OCPUS, "Total OCPUs over all A1 instances."),
        "maxA1MemoryGb": _number(FREE_A1_MEMORY_GB, "Total memory (GB) over all A1 instances."),
        "maxA1Instances": _count(2, "Number of A1 instances."),
        "maxMicroInstances": _count(2, f"Number of {MICRO_SHAPE} instances."),
        "allowedShapes": _strings([A1_SHAPE, MICRO_SHAPE], "Instance shapes that may be used."),
    }
)
BLOCK_STORAGE_SCHEMA: Final = PolicyConfigSchema(
    {"maxBlockStorageGb": _number(200, "Boot plus block volumes, in GB.")}
)
VCN_SCHEMA: Final = PolicyConfigSchema({"maxVcns": _count(2, "Number of VCNs.")})
HOST_MEMORY_SCHEMA: Final = PolicyConfigSchema(
    {
        "hostReservedMemoryMb": _number(
            1536, "Memory (MB) each host keeps for the OS and Docker, outside container limits."
        )
    }
)
HOST_CPU_SCHEMA: Final = PolicyConfigSchema(
    {
        "maxCpuOvercommit": _number(
            1.5, "Container CPU limits may sum to this many times the host's OCPUs."
        )
    }
)
PUBLIC_INGRESS_SCHEMA: Final = PolicyConfigSchema(
    {
        "publicPorts": {
            "type": "array",
            "items": {"type": "integer", "minimum": 1, "maximum": 65535},
            "default": [],
            "description": "Ports that may be reached from anywhere (0.0.0.0/0, ::/0).",
        }
    }
)
PINNED_IMAGES_SCHEMA: Final = PolicyConfigSchema(
    {
        "movingTags": _strings(
            ["latest", "main", "main-latest", "main-stable", "stable"],
            "Image tags that move to new images over time.",
        )
    }
)


Settings = Callable[[str], Any]


def _settings(config: Mapping[str, Any], schema: PolicyConfigSchema) -> Settings:
    """Look up a policy's config: the configured value, or the schema default (the CLI fills
    these in, but a servicer that was never configured must behave the same)."""

    def setting(key: str) -> Any:
        return config[key] if key in config else schema.properties[key]["default"]

    return setting


# ---------------------------------------------------------------------------------------------
# Reading inputs without ever touching an unknown the policy does not need.


class UndecidableError(Exception):
    """A value a policy needs is unknown until apply, or is not of the expected kind."""


def _plain(props: Any, *path: str) -> Any:
    """The value at `path` (None when absent); UndecidableError when it is unknown."""
    value = props
    try:
        for key in path:
            if not isinstance(value, Mapping):
                return None
            value = value.get(key)
    except UnknownValueError as unknown:
        raise UndecidableError(
            f"`{'.'.join(path)}` is not known until apply ({unknown.message}); "
            "set it as a plain value so the policy can decide during preview"
        ) from unknown
    return value


def _plain_items(props: Any, *path: str) -> list[Any]:
    """The elements of the list at `path` (empty when absent), each element still proxied."""
    value = _plain(props, *path)
    if value is None:
        return []
    try:
        return list(value)
    except UnknownValueError as unknown:
        raise UndecidableError(
            f"an element of `{'.'.join(path)}` is not known until apply ({unknown.message})"
        ) from unknown


def _as_number(value: Any, what: str) -> float | None:
    """Numbers arrive as numbers or, for OCI sizes and Docker cpus, as numeric strings."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError) as error:
        raise UndecidableError(f"`{what}` is {value!r}, not a number") from error


def _plain_number(props: Any, *path: str) -> float | None:
    return _as_number(_plain(props, *path), ".".join(path))


def _container_label(props: Any, label: str) -> str | None:
    for item in _plain_items(props, "labels"):
        if _plain(item, "label") == label:
            value = _plain(item, "value")
            return str(value) if value else None
    return None


def _instance_host(props: Any) -> str | None:
    value = _plain(props, "freeformTags", HOST_TAG)
    return str(value) if value else None


# ---------------------------------------------------------------------------------------------
# Formatting: every message names the resource, the numbers and the fix.


def _fmt(value: float) -> str:
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def _largest(items: Sequence[tuple[str, float]], unit: str, limit: int = 5) -> str:
    top = heapq.nlargest(limit, items, key=lambda item: item[1])
    listed = ", ".join(f"{name} {_fmt(value)}{unit}" for name, value in top)
    more = len(items) - len(top)
    return f"{listed} and {more} more" if more > 0 else listed


T = TypeVar("T")


def _each(
    args: StackValidationArgs,
    report: ReportViolation,
    resource_type: str,
    read: Callable[[PolicyResource], T],
) -> Iterator[tuple[PolicyResource, T]]:
    """`read` every resource of `resource_type`; one that cannot be decided is a violation."""
    for resource in args.resources:
        if resource.resource_type != resource_type:
            continue
        try:
            value = read(resource)
        except UndecidableError as error:
            report(f"{resource_type} '{resource.name}': {error}.", resource.urn)
            continue
        yield resource, value


def _deciding(
    check: Callable[[ResourceValidationArgs, ReportViolation], None],
) -> Callable[[ResourceValidationArgs, ReportViolation], None]:
    """A resource validation for which an undecidable value is a violation, not a crash."""

    def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
        try:
            check(args, report)
        except UndecidableError as error:
            report(f"{args.resource_type} '{args.name}': {error}.", None)

    return validate


# ---------------------------------------------------------------------------------------------
# a1-allowance


@dataclass(frozen=True)
class _Sizing:
    shape: str
    ocpus: float | None
    memory_gb: float | None


def _sizing(resource: PolicyResource) -> _Sizing:
    props = resource.props
    return _Sizing(
        shape=str(_plain(props, "shape") or ""),
        ocpus=_plain_number(props, "shapeConfig", "ocpus"),
        memory_gb=_plain_number(props, "shapeConfig", "memoryInGbs"),
    )


def _check_a1_allowance(args: StackValidationArgs, report: ReportViolation) -> None:
    setting = _settings(args.get_config(), A1_ALLOWANCE_SCHEMA)
    allowed_shapes = set(setting("allowedShapes"))
    a1: list[tuple[str, float, float]] = []
    a1_names: list[str] = []
    micro_names: list[str] = []
    for instance, sizing in _each(args, report, INSTANCE, _sizing):
        if sizing.shape not in allowed_shapes:
            report(
                f"Instance '{instance.name}' uses shape '{sizing.shape}', which is not in "
                f"allowedShapes {sorted(allowed_shapes)}. Fix: use {A1_SHAPE} (the host is "
                "sized by `ai-swarm:profile`), or add the shape to allowedShapes in the "
                "a1-allowance pack config if you mean to pay for it.",
                instance.urn,
            )
        if sizing.shape == MICRO_SHAPE:
            micro_names.append(instance.name)
        if sizing.shape != A1_SHAPE:
            continue
        a1_names.append(instance.name)
        if sizing.ocpus is None or sizing.memory_gb is None:
            report(
                f"A1 instance '{instance.name}' must set both shapeConfig.ocpus and "
                "shapeConfig.memoryInGbs, or its size (and the bill) is OCI's choice. Fix: set "
                "`ai-swarm:ocpus` and `ai-swarm:memoryGb`, or choose `ai-swarm:profile`.",
                instance.urn,
            )
            continue
        a1.append((instance.name, sizing.ocpus, sizing.memory_gb))

    _report_a1_totals(a1, float(setting("maxA1Ocpus")), float(setting("maxA1MemoryGb")), report)
    for what, names, key in (
        ("A1 instances", a1_names, "maxA1Instances"),
        (f"{MICRO_SHAPE} instances", micro_names, "maxMicroInstances"),
    ):
        _report_count(
            report, what, names, setting=key, allowed=int(setting(key)), policy="a1-allowance"
        )


def _report_a1_totals(
    a1: Sequence[tuple[str, float, float]],
    max_ocpus: float,
    max_memory_gb: float,
    report: ReportViolation,
) -> None:
    ocpus = sum(item[1] for item in a1)
    memory_gb = sum(item[2] for item in a1)
    if ocpus <= max_ocpus and memory_gb <= max_memory_gb:
        return
    sizes = ", ".join(f"'{name}' {_fmt(o)} OCPU / {_fmt(m)} GB" for name, o, m in a1[:5])
    if len(a1) > 5:
        sizes += f" and {len(a1) - 5} more"
    message = (
        f"A1 instances use {_fmt(ocpus)} OCPU / {_fmt(memory_gb)} GB in total ({sizes}), over "
        f"the allowance of {_fmt(max_ocpus)} OCPU / {_fmt(max_memory_gb)} GB (maxA1Ocpus / "
        "maxA1MemoryGb). Fix: lower `ai-swarm:ocpus` / `ai-swarm:memoryGb`, or set "
        "`ai-swarm:profile` to always-free (2 OCPU / 12 GB); or raise maxA1Ocpus / "
        "maxA1MemoryGb in the a1-allowance pack config if your tenancy's allowance is larger."
    )
    if (max_ocpus, max_memory_gb) == (FREE_A1_OCPUS, FREE_A1_MEMORY_GB):
        message += " " + HALVING_NOTE
    report(message, None)


def _report_count(
    report: ReportViolation,
    what: str,
    names: Sequence[str],
    *,
    setting: str,
    allowed: int,
    policy: str,
) -> None:
    if len(names) <= allowed:
        return
    listed = ", ".join(f"'{name}'" for name in names[:10])
    report(
        f"The stack has {len(names)} {what} ({listed}{' …' if len(names) > 10 else ''}), "
        f"more than the {allowed} allowed ({setting}). Fix: remove {len(names) - allowed} of "
        f"them, or raise {setting} in the {policy} pack config.",
        None,
    )


# ---------------------------------------------------------------------------------------------
# block-storage-allowance and vcn-allowance


def _boot_volume_gb(resource: PolicyResource) -> float:
    size = _plain_number(resource.props, "sourceDetails", "bootVolumeSizeInGbs")
    return DEFAULT_BOOT_VOLUME_GB if size is None else size


def _block_volume_gb(props: Any) -> float:
    size = _plain_number(props, "sizeInGbs")
    if size is not None:
        return size
    size_mb = _plain_number(props, "sizeInMbs")  # deprecated, still accepted by OCI
    if size_mb is not None:
        return size_mb / 1024
    raise UndecidableError(
        "sets no size (sizeInGbs), so OCI picks one that the allowance cannot be checked "
        "against; set it (`ai-swarm:dataVolumeGb` sizes the data volume)"
    )


def _check_block_storage(args: StackValidationArgs, report: ReportViolation) -> None:
    allowed = float(_settings(args.get_config(), BLOCK_STORAGE_SCHEMA)("maxBlockStorageGb"))
    volumes = [
        (f"boot of '{r.name}'", size) for r, size in _each(args, report, INSTANCE, _boot_volume_gb)
    ]
    volumes += [
        (f"'{r.name}'", size)
        for r, size in _each(args, report, VOLUME, lambda volume: _block_volume_gb(volume.props))
    ]
    used = sum(size for _, size in volumes)
    if used <= allowed:
        return
    report(
        f"Boot and block volumes total {_fmt(used)} GB ({_largest(volumes, ' GB')}), over the "
        f"allowance of {_fmt(allowed)} GB (maxBlockStorageGb) by {_fmt(used - allowed)} GB. "
        "Fix: lower `ai-swarm:dataVolumeGb` or `ai-swarm:bootVolumeGb` (boot volumes take 50 GB "
        "at least), or raise maxBlockStorageGb in the block-storage-allowance pack config.",
        None,
    )


def _check_vcns(args: StackValidationArgs, report: ReportViolation) -> None:
    names = [r.name for r in args.resources if r.resource_type == VCN]
    allowed = int(_settings(args.get_config(), VCN_SCHEMA)("maxVcns"))
    _report_count(report, "VCNs", names, setting="maxVcns", allowed=allowed, policy="vcn-allowance")


# ---------------------------------------------------------------------------------------------
# host-memory-budget and host-cpu-budget: containers joined to instances by host name.


@dataclass(frozen=True)
class _HostBudget:
    """One host resource that the limits of the containers placed on the host must fit into."""

    policy: str
    what: str
    unit: str
    # The container's limit, None when it sets none (container-limits-required reports that).
    demand: Callable[[Any], float | None]
    # What the host offers to containers under `config`, and how that number came about.
    allowance: Callable[[Any, Mapping[str, Any]], tuple[float, str]]
    fix: str


def _memory_allowance(instance: Any, config: Mapping[str, Any]) -> tuple[float, str]:
    memory_mb = (_plain_number(instance, "shapeConfig", "memoryInGbs") or 0.0) * 1024
    reserved = float(_settings(config, HOST_MEMORY_SCHEMA)("hostReservedMemoryMb"))
    return memory_mb - reserved, (
        f"{_fmt(memory_mb)} MB instance memory - {_fmt(reserved)} MB reserved for the OS and "
        "Docker (hostReservedMemoryMb)"
    )


def _cpu_allowance(instance: Any, config: Mapping[str, Any]) -> tuple[float, str]:
    ocpus = _plain_number(instance, "shapeConfig", "ocpus") or 0.0
    overcommit = float(_settings(config, HOST_CPU_SCHEMA)("maxCpuOvercommit"))
    # On A1 one OCPU is one core and one vCPU, the unit of Docker's `cpus`.
    return ocpus * overcommit, f"{_fmt(ocpus)} OCPU x {_fmt(overcommit)} (maxCpuOvercommit)"


MEMORY_BUDGET: Final = _HostBudget(
    policy="host-memory-budget",
    what="memory",
    unit=" MB",
    demand=lambda container: _plain_number(container, "memory"),
    allowance=_memory_allowance,
    fix=(
        "lower `ai-swarm:services.<name>.memoryMb` of the largest services, raise "
        "`ai-swarm:memoryGb` (within a1-allowance), or lower hostReservedMemoryMb in the "
        "host-memory-budget pack config"
    ),
)
CPU_BUDGET: Final = _HostBudget(
    policy="host-cpu-budget",
    what="cpus",
    unit="",
    demand=lambda container: _plain_number(container, "cpus"),
    allowance=_cpu_allowance,
    fix=(
        "lower `ai-swarm:services.<name>.cpus` of the largest services, raise `ai-swarm:ocpus` "
        "(within a1-allowance), or raise maxCpuOvercommit in the host-cpu-budget pack config"
    ),
)


@dataclass(frozen=True)
class _Host:
    urn: str
    name: str
    allowed: float
    explained: str


def _check_host_budget(
    budget: _HostBudget, args: StackValidationArgs, report: ReportViolation
) -> None:
    """One pass over the stack, then a dict join of containers to hosts: linear in resources."""
    config = args.get_config()

    def read_host(instance: PolicyResource) -> tuple[str | None, float, str]:
        host = _instance_host(instance.props)
        if host is None:
            return None, 0.0, ""
        return (host, *budget.allowance(instance.props, config))

    def read_container(container: PolicyResource) -> tuple[str | None, float | None]:
        return _container_label(container.props, HOST_LABEL), budget.demand(container.props)

    hosts: dict[str, _Host] = {}
    for instance, (host, allowed, explained) in _each(args, report, INSTANCE, read_host):
        if host is None:
            continue
        if host in hosts:
            report(
                f"Instances '{hosts[host].name}' and '{instance.name}' both carry the tag "
                f"{HOST_TAG}={host}, so containers cannot be placed on one of them. Fix: give "
                "each host its own name.",
                instance.urn,
            )
            continue
        hosts[host] = _Host(instance.urn, instance.name, allowed, explained)

    placed: defaultdict[str, list[tuple[str, float]]] = defaultdict(list)
    for container, (host, demand) in _each(args, report, CONTAINER, read_container):
        if host is None or demand is None:
            continue  # container-limits-required reports a missing label or limit
        if host not in hosts:
            report(
                f"Container '{container.name}' is labelled {HOST_LABEL}={host}, but no instance "
                f"in the stack has the tag {HOST_TAG}={host}, so its {_fmt(demand)}{budget.unit} "
                f"of {budget.what} cannot be budgeted. Fix: label it with the name of a host in "
                "this stack.",
                container.urn,
            )
            continue
        placed[host].append((container.name, demand))

    for host, containers in placed.items():
        _report_over_budget(budget, hosts[host], host, containers, report)


def _report_over_budget(
    budget: _HostBudget,
    host: _Host,
    host_name: str,
    containers: Sequence[tuple[str, float]],
    report: ReportViolation,
) -> None:
    used = sum(demand for _, demand in containers)
    if used <= host.allowed:
        return
    unit = budget.unit
    report(
        f"Host '{host_name}' (instance '{host.name}'): the {budget.what} limits of its "
        f"{len(containers)} containers sum to {_fmt(used)}{unit}, over the "
        f"{_fmt(host.allowed)}{unit} allowed ({host.explained}) by "
        f"{_fmt(used - host.allowed)}{unit}. Largest: {_largest(containers, unit)}. "
        f"Fix: {budget.fix}.",
        host.urn,
    )


# ---------------------------------------------------------------------------------------------
# Resource policies


def _check_container_limits(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != CONTAINER:
        return
    cpus = _plain_number(args.props, "cpus")
    memory = _plain_number(args.props, "memory")
    host = _container_label(args.props, HOST_LABEL)
    problems = []
    if cpus is None or cpus <= 0:
        problems.append(f"cpus is {_fmt(cpus) if cpus is not None else 'unset'} (must be > 0)")
    if memory is None or memory <= 0:
        problems.append(
            f"memory is {_fmt(memory) + ' MB' if memory is not None else 'unset'} (must be > 0)"
        )
    if host is None:
        problems.append(f"the label {HOST_LABEL} is missing (must name the host's {HOST_TAG} tag)")
    if problems:
        report(
            f"Container '{args.name}': {'; '.join(problems)}. Without them the host budgets "
            "cannot count it. Fix: give the service a limit with "
            "`ai-swarm:services.<name>.cpus` / `ai-swarm:services.<name>.memoryMb` and place "
            f"it on a host with the {HOST_LABEL} label.",
            None,
        )


def _check_arm64(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type not in (REMOTE_IMAGE, CONTAINER):
        return
    platform = _plain(args.props, "platform")
    if args.resource_type == CONTAINER and not platform:
        return  # a container runs its image's platform: the RemoteImage is checked
    if platform in ARM64_PLATFORMS:
        return
    kind = "Image" if args.resource_type == REMOTE_IMAGE else "Container"
    report(
        f"{kind} '{args.name}' uses platform {platform or 'unset (the daemon decides)'}; "
        "allowed: linux/arm64 (Ampere A1 hosts are arm64). Fix: set platform='linux/arm64', and "
        "if `ai-swarm:services.<name>.image` names an image without an arm64 build, pick one "
        "that has it.",
        None,
    )


def _is_everywhere(source: Any) -> bool:
    try:
        return ipaddress.ip_network(str(source), strict=False).prefixlen == 0
    except ValueError:
        return False  # a service label such as "all-fra-services-in-oracle-services-network"


_PROTOCOL_OPTIONS: Final = {"6": ("TCP", "tcpOptions"), "17": ("UDP", "udpOptions")}
_ALL_PORTS: Final = (1, 65535)


def _rule_ports(rule: Any, range_path: Sequence[str]) -> tuple[str, tuple[int, int] | None]:
    """What a rule admits: a protocol name and its destination ports (None: not a port range).

    OCI reads a TCP/UDP rule without options as all ports, and one bound as a single port.
    """
    protocol = str(_plain(rule, "protocol"))
    if protocol not in _PROTOCOL_OPTIONS:
        return ("all protocols" if protocol == "all" else f"protocol {protocol}"), None
    name, options = _PROTOCOL_OPTIONS[protocol]
    low = _plain_number(rule, options, *range_path, "min")
    high = _plain_number(rule, options, *range_path, "max")
    if low is None and high is None:
        return name, _ALL_PORTS
    first = low if low is not None else high
    last = high if high is not None else low
    return name, (int(first or 0), int(last or 0))


def _ports_allowed(ports: tuple[int, int] | None, public: frozenset[int]) -> bool:
    if ports is None:
        return False
    low, high = ports
    # The length test first: a wide range can never be covered, so it is never walked.
    return high - low < len(public) and all(port in public for port in range(low, high + 1))


def _describe_ports(protocol: str, ports: tuple[int, int] | None) -> str:
    if ports is None:
        return protocol
    low, high = ports
    return f"{protocol} port {low}" if low == high else f"{protocol} ports {low}-{high}"


def _public_ports(args: ResourceValidationArgs) -> frozenset[int]:
    configured = _settings(args.get_config(), PUBLIC_INGRESS_SCHEMA)("publicPorts")
    return frozenset(int(port) for port in configured)


def _public_ingress_fix(public: frozenset[int], remedy: str) -> str:
    allowed = ", ".join(str(port) for port in sorted(public)) or "none"
    return (
        f"(ports allowed from anywhere: {allowed}; publicPorts). Fix: {remedy}, or add the port "
        "to publicPorts in the no-public-ingress pack config."
    )


def _check_public_ingress(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type == CONTAINER:
        _check_container_ports(args, report)
        return
    if args.resource_type in (SECURITY_LIST, DEFAULT_SECURITY_LIST):
        rules = list(enumerate(_plain_items(args.props, "ingressSecurityRules")))
        range_path: tuple[str, ...] = ()
    elif args.resource_type == NSG_RULE and _plain(args.props, "direction") == "INGRESS":
        rules, range_path = [(0, args.props)], ("destinationPortRange",)
    else:
        return
    public = _public_ports(args)
    kind = args.resource_type.rsplit(":", 1)[-1]
    for index, rule in rules:
        source = _plain(rule, "source")
        if _plain(rule, "sourceType") not in (None, "CIDR_BLOCK") or not _is_everywhere(source):
            continue
        protocol, ports = _rule_ports(rule, range_path)
        if _ports_allowed(ports, public):
            continue
        where = "the rule" if args.resource_type == NSG_RULE else f"ingress rule {index}"
        report(
            f"{kind} '{args.name}': {where} admits {_describe_ports(protocol, ports)} from "
            f"{source} "
            + _public_ingress_fix(public, "admit only the sources in `ai-swarm:adminCidrs`"),
            None,
        )


def _check_container_ports(args: ResourceValidationArgs, report: ReportViolation) -> None:
    public = _public_ports(args)
    for port in _plain_items(args.props, "ports"):
        ip = _plain(port, "ip")
        if ip not in (None, "", "0.0.0.0", "::"):
            continue
        external = _plain_number(port, "external")
        if external is not None and int(external) in public:
            continue
        internal = _plain_number(port, "internal")
        published = f"host port {int(external)}" if external is not None else "a random host port"
        report(
            f"Container '{args.name}' publishes port {_fmt(internal or 0)} as {published} on "
            f"every interface (ip {ip or 'unset'}) "
            + _public_ingress_fix(public, 'bind it to ip="127.0.0.1" and reach it by SSH tunnel'),
            None,
        )


def _check_protected_data(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type == VOLUME and not args.opts.protect:
        report(
            f"Volume '{args.name}' is not protected, so a destroy or a replacement deletes the "
            "services' data. Fix: register it with "
            "protect=True (and retain_on_delete=True).",
            None,
        )
    elif args.resource_type == INSTANCE and _plain(args.props, "shape") == A1_SHAPE:
        ignored = sorted(args.opts.ignore_changes)
        if IMAGE_IGNORE_PATHS.isdisjoint(ignored):
            report(
                f"A1 instance '{args.name}' does not ignore changes to its image (ignore_changes "
                f"{ignored}): a newer image from get_images would re-image its boot disk on the "
                'next up. Fix: ignore_changes=["sourceDetails.sourceId"] (camelCase: the SDK '
                "does not translate nested paths).",
                None,
            )


def _image_reference_problem(reference: str, moving_tags: frozenset[str]) -> str | None:
    if "@" in reference:
        return None  # pinned by digest
    last = reference.rsplit("/", 1)[-1]
    if ":" not in last:
        return "has no tag, so Docker pulls the moving :latest"
    tag = last.rsplit(":", 1)[1]
    return f"uses the moving tag '{tag}'" if tag in moving_tags else None


def _check_pinned_images(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type == REMOTE_IMAGE:
        reference = _plain(args.props, "name")
    elif args.resource_type == CONTAINER:
        try:
            reference = _plain(args.props, "image")
        except UndecidableError:
            return  # an image id from a RemoteImage, whose name is checked on its own
    else:
        return
    if not reference or str(reference).startswith("sha256:"):
        return
    moving = frozenset(_settings(args.get_config(), PINNED_IMAGES_SCHEMA)("movingTags"))
    problem = _image_reference_problem(str(reference), moving)
    if problem:
        report(
            f"Image '{reference}' of '{args.name}' {problem}: the next pull may bring another "
            "version. Fix: pin a version tag (or a digest) in the image table or with "
            "`ai-swarm:services.<name>.image`.",
            None,
        )


# ---------------------------------------------------------------------------------------------
# The pack


def build_policies() -> list[Policy]:
    """Every policy of the pack, with its default enforcement level and config schema."""
    mandatory = EnforcementLevel.MANDATORY
    return [
        StackValidationPolicy(
            name="a1-allowance",
            description="Ampere A1 instances stay within Oracle's Always Free allowance.",
            validate=_check_a1_allowance,
            enforcement_level=mandatory,
            config_schema=A1_ALLOWANCE_SCHEMA,
        ),
        StackValidationPolicy(
            name="block-storage-allowance",
            description="Boot and block volumes stay within the Always Free 200 GB.",
            validate=_check_block_storage,
            enforcement_level=mandatory,
            config_schema=BLOCK_STORAGE_SCHEMA,
        ),
        StackValidationPolicy(
            name="vcn-allowance",
            description="The stack stays within the Always Free number of VCNs.",
            validate=_check_vcns,
            enforcement_level=mandatory,
            config_schema=VCN_SCHEMA,
        ),
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
        ResourceValidationPolicy(
            name="container-limits-required",
            description="Every container sets cpus, memory and its host label.",
            validate=_deciding(_check_container_limits),
            enforcement_level=mandatory,
        ),
        ResourceValidationPolicy(
            name="arm64-images",
            description="Images and containers use linux/arm64, the A1 hosts' platform.",
            validate=_deciding(_check_arm64),
            enforcement_level=mandatory,
        ),
        ResourceValidationPolicy(
            name="no-public-ingress",
            description="Nothing is reachable from 0.0.0.0/0 or ::/0 except publicPorts.",
            validate=_deciding(_check_public_ingress),
            enforcement_level=mandatory,
            config_schema=PUBLIC_INGRESS_SCHEMA,
        ),
        ResourceValidationPolicy(
            name="protected-data",
            description="Data volumes are protected and A1 instances are never re-imaged.",
            validate=_deciding(_check_protected_data),
            enforcement_level=mandatory,
        ),
        ResourceValidationPolicy(
            name="pinned-images",
            description="Images are pinned to a version tag or a digest.",
            validate=_deciding(_check_pinned_images),
            enforcement_level=EnforcementLevel.ADVISORY,
            config_schema=PINNED_IMAGES_SCHEMA,
        ),
    ]
