"""Oracle's Always Free allowance: A1 instances, block storage, VCNs and volume backups."""

from __future__ import annotations

from collections import Counter
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
from .contract import (
    A1_SHAPE,
    BOOT_VOLUME,
    INSTANCE,
    MICRO_SHAPE,
    OCI_CORE_PREFIX,
    UNDERSTOOD_TYPES,
    VCN,
    VOLUME,
    VOLUME_BACKUP_POLICY,
    VOLUME_BACKUP_POLICY_ASSIGNMENT,
)
from .measure import (
    InstanceSizes,
    Resource,
    measure_backups,
    measure_block_storage,
    measure_instances,
)
from .messages import fmt, largest, report_count, report_undecidable
from .reading import UndecidableError, as_number, plain, plain_items, plain_number, plain_text
from .settings import count, default, number, settings, strings

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

# --- a1-allowance ---------------------------------------------------------------------------

A1_ALLOWANCE_SCHEMA: Final = PolicyConfigSchema(
    {
        "maxA1Ocpus": number(FREE_A1_OCPUS, "Total OCPUs over all A1 instances."),
        "maxA1MemoryGb": number(FREE_A1_MEMORY_GB, "Total memory (GB) over all A1 instances."),
        "maxA1Instances": count(2, "Number of A1 instances."),
        "maxMicroInstances": count(2, f"Number of {MICRO_SHAPE} instances."),
        "maxAlwaysFreeInstances": count(
            4, f"Number of {A1_SHAPE} and {MICRO_SHAPE} instances together."
        ),
        "allowedShapes": strings([A1_SHAPE, MICRO_SHAPE], "Instance shapes that may be used."),
    }
)


def _check_a1_allowance(args: StackValidationArgs, report: ReportViolation) -> None:
    setting = settings(args.get_config(), A1_ALLOWANCE_SCHEMA)
    allowed_shapes = set(setting("allowedShapes"))
    sizes = measure_instances(resources(args, INSTANCE))
    report_undecidable(report, sizes.undecidable)
    for sizing in sizes.instances:
        if sizing.shape not in allowed_shapes:
            report(
                f"Instance '{sizing.instance.name}' uses shape '{sizing.shape}', which is not in "
                f"allowedShapes {sorted(allowed_shapes)}. Fix: use {A1_SHAPE} (the host is "
                "sized by `ai-swarm:profile`), or add the shape to allowedShapes in the "
                "a1-allowance pack config if you mean to pay for it.",
                sizing.instance.urn,
            )
        if sizing.shape == A1_SHAPE and (sizing.ocpus is None or sizing.memory_gb is None):
            report(
                f"A1 instance '{sizing.instance.name}' must set both shapeConfig.ocpus and "
                "shapeConfig.memoryInGbs, or its size (and the bill) is OCI's choice. Fix: set "
                "`ai-swarm:ocpus` and `ai-swarm:memoryGb`, or choose `ai-swarm:profile`.",
                sizing.instance.urn,
            )

    _report_a1_totals(sizes, float(setting("maxA1Ocpus")), float(setting("maxA1MemoryGb")), report)
    micro = [s.instance.name for s in sizes.instances if s.shape == MICRO_SHAPE]
    free = [s.instance.name for s in sizes.instances if s.shape in (A1_SHAPE, MICRO_SHAPE)]
    for what, names, key in (
        ("A1 instances", [s.instance.name for s in sizes.a1], "maxA1Instances"),
        (f"{MICRO_SHAPE} instances", micro, "maxMicroInstances"),
        (f"Always Free instances ({A1_SHAPE} and {MICRO_SHAPE})", free, "maxAlwaysFreeInstances"),
    ):
        report_count(
            report, what, names, setting=key, allowed=int(setting(key)), policy="a1-allowance"
        )


def _report_a1_totals(
    measured: InstanceSizes, max_ocpus: float, max_memory_gb: float, report: ReportViolation
) -> None:
    ocpus, memory_gb, a1 = measured.a1_ocpus, measured.a1_memory_gb, measured.a1_sized
    if ocpus <= max_ocpus and memory_gb <= max_memory_gb:
        return
    sizes = ", ".join(
        f"'{s.instance.name}' {fmt(s.ocpus or 0)} OCPU / {fmt(s.memory_gb or 0)} GB" for s in a1[:5]
    )
    if len(a1) > 5:
        sizes += f" and {len(a1) - 5} more"
    message = (
        f"A1 instances use {fmt(ocpus)} OCPU / {fmt(memory_gb)} GB in total ({sizes}), over "
        f"the allowance of {fmt(max_ocpus)} OCPU / {fmt(max_memory_gb)} GB (maxA1Ocpus / "
        "maxA1MemoryGb). Fix: lower `ai-swarm:ocpus` / `ai-swarm:memoryGb`, or set "
        "`ai-swarm:profile` to always-free (2 OCPU / 12 GB); or raise maxA1Ocpus / "
        "maxA1MemoryGb in the a1-allowance pack config if your tenancy's allowance is larger."
    )
    if (max_ocpus, max_memory_gb) == (FREE_A1_OCPUS, FREE_A1_MEMORY_GB):
        message += " " + HALVING_NOTE
    report(message, None)


# --- block-storage-allowance ----------------------------------------------------------------

BLOCK_STORAGE_SCHEMA: Final = PolicyConfigSchema(
    {
        "maxBlockStorageGb": number(200, "Boot plus block volumes, in GB."),
        "maxVpusPerGb": number(
            10,
            "Volume performance units per GB a boot or block volume may have, autotuned or not "
            "(10 is Balanced, the performance Always Free volumes come with).",
        ),
    }
)

# Where each kind of volume names its replicas (copies in another availability domain or
# region, stored and billed beside the volume).
_REPLICAS: Final = {VOLUME: "blockVolumeReplicas", BOOT_VOLUME: "bootVolumeReplicas"}


def _check_block_storage(args: StackValidationArgs, report: ReportViolation) -> None:
    setting = settings(args.get_config(), BLOCK_STORAGE_SCHEMA)
    allowed = float(setting("maxBlockStorageGb"))
    max_vpus = float(setting("maxVpusPerGb"))
    for resource in resources(args, INSTANCE, VOLUME, BOOT_VOLUME):
        _report_volume_extras(resource, max_vpus, report)
    storage = measure_block_storage(resources(args, INSTANCE, VOLUME, BOOT_VOLUME))
    report_undecidable(report, storage.undecidable)
    used = storage.gb
    if used <= allowed:
        return
    volumes = [(v.label, v.size_gb) for v in storage.volumes]
    report(
        f"Boot and block volumes total {fmt(used)} GB ({largest(volumes, ' GB')}), over the "
        f"allowance of {fmt(allowed)} GB (maxBlockStorageGb) by {fmt(used - allowed)} GB. "
        "Fix: lower `ai-swarm:dataVolumeGb` or `ai-swarm:bootVolumeGb` (boot volumes take 50 GB "
        "at least), or raise maxBlockStorageGb in the block-storage-allowance pack config.",
        None,
    )


def _report_volume_extras(resource: Resource, max_vpus: float, report: ReportViolation) -> None:
    """What a volume costs beyond its size: performance above `max_vpus`, and replicas."""
    try:
        problems = _volume_extras(resource, max_vpus)
    except UndecidableError as error:
        problems = [str(error)]
    if problems:
        report(
            f"{resource.type} '{resource.name}': {'; '.join(problems)}. Fix: keep volumes at "
            f"{fmt(max_vpus)} VPUs/GB or less without replicas (both are billed beyond the "
            "Always Free storage), or raise maxVpusPerGb in the block-storage-allowance pack "
            "config if your tenancy pays for the performance.",
            resource.urn,
        )


def _volume_extras(resource: Resource, max_vpus: float) -> list[str]:
    props = resource.props
    vpus: list[tuple[str, float | None]] = []
    if resource.type == INSTANCE:
        vpus.append(
            (
                "sourceDetails.bootVolumeVpusPerGb",
                plain_number(props, "sourceDetails", "bootVolumeVpusPerGb"),
            )
        )
        for index, attachment in enumerate(plain_items(props, "launchVolumeAttachments")):
            vpus.append(
                (
                    f"launchVolumeAttachments[{index}].launchCreateVolumeDetails.vpusPerGb",
                    plain_number(attachment, "launchCreateVolumeDetails", "vpusPerGb"),
                )
            )
        return [
            _too_fast(where, value, max_vpus) for where, value in vpus if _over(value, max_vpus)
        ]
    vpus.append(("vpusPerGb", plain_number(props, "vpusPerGb")))
    for index, policy in enumerate(plain_items(props, "autotunePolicies")):
        if plain(policy, "autotuneType") == "PERFORMANCE_BASED":
            where = f"autotunePolicies[{index}].maxVpusPerGb"
            vpus.append((where, as_number(plain(policy, "maxVpusPerGb"), where)))
    problems = [
        _too_fast(where, value, max_vpus) for where, value in vpus if _over(value, max_vpus)
    ]
    replicas = _REPLICAS[resource.type]
    count = len(plain_items(props, replicas))
    if count:
        problems.append(f"keeps {count} replica{'s' if count != 1 else ''} ({replicas})")
    return problems


def _over(value: float | None, limit: float) -> bool:
    return value is not None and value > limit


def _too_fast(where: str, value: float | None, limit: float) -> str:
    return f"{where} is {fmt(value or 0)}, above the {fmt(limit)} allowed (maxVpusPerGb)"


# --- vcn-allowance --------------------------------------------------------------------------

VCN_SCHEMA: Final = PolicyConfigSchema({"maxVcns": count(2, "Number of VCNs.")})


def _check_vcns(args: StackValidationArgs, report: ReportViolation) -> None:
    names = [r.name for r in args.resources if r.resource_type == VCN]
    allowed = int(settings(args.get_config(), VCN_SCHEMA)("maxVcns"))
    report_count(report, "VCNs", names, setting="maxVcns", allowed=allowed, policy="vcn-allowance")


# --- backup-allowance -----------------------------------------------------------------------

BACKUP_SCHEMA: Final = PolicyConfigSchema(
    {
        "maxVolumeBackups": count(
            5, "Volume backups (boot and block) kept at once by the assigned backup policies."
        )
    }
)


# Always Free includes five volume backups, boot and block volumes together.
MAX_VOLUME_BACKUPS: Final[int] = default(BACKUP_SCHEMA, "maxVolumeBackups")


def _check_backups(args: StackValidationArgs, report: ReportViolation) -> None:
    allowed = int(settings(args.get_config(), BACKUP_SCHEMA)("maxVolumeBackups"))
    backups = measure_backups(
        resources(args, VOLUME_BACKUP_POLICY, VOLUME_BACKUP_POLICY_ASSIGNMENT)
    )
    report_undecidable(report, backups.undecidable)
    for resource in resources(args, VOLUME, BOOT_VOLUME, VOLUME_BACKUP_POLICY):
        _report_backup_elsewhere(resource, report)
    if backups.count <= allowed:
        return
    # Each policy's backups per volume, and the number of volumes it is assigned to.
    volumes = Counter(assigned.policy.resource.urn for assigned in backups.assignments)
    policies = {assigned.policy.resource.urn: assigned.policy for assigned in backups.assignments}
    listed = ", ".join(
        f"'{policies[urn].resource.name}' {policies[urn].retained} x {count} "
        f"volume{'s' if count != 1 else ''}"
        for urn, count in volumes.items()
    )
    report(
        f"The assigned volume backup policies keep {backups.count} backups at once ({listed}), "
        f"more than the {allowed} allowed (maxVolumeBackups) by {backups.count - allowed}. "
        "Fix: shorten retentionSeconds or lengthen the period of their schedules (each keeps "
        "retention / period backups, rounded up, per volume it is assigned to), assign them to "
        "fewer volumes, or raise maxVolumeBackups in the backup-allowance pack config if your "
        "tenancy pays for more backups.",
        None,
    )


def _report_backup_elsewhere(resource: Resource, report: ReportViolation) -> None:
    """Backups the assignments do not show: a volume's own `backupPolicyId` (how Oracle's
    bronze, silver and gold policies are usually attached) and a policy's cross-region copy."""
    try:
        if resource.type == VOLUME_BACKUP_POLICY:
            region = plain_text(resource.props, "destinationRegion")
            problem = (
                None
                if region is None
                else f"copies every backup to region {region} (destinationRegion), backups the "
                "allowance does not cover"
            )
        else:
            policy = plain_text(resource.props, "backupPolicyId")
            problem = (
                None
                if policy is None
                else f"takes backups by its backupPolicyId {policy}, which no assignment shows, "
                "so they cannot be counted (Oracle's bronze, silver and gold policies keep more "
                "than the free five)"
            )
    except UndecidableError as error:
        problem = str(error)
    if problem:
        report(
            f"{resource.type} '{resource.name}' {problem}. Fix: back volumes up only through a "
            "VolumeBackupPolicyAssignment of a VolumeBackupPolicy the stack defines, with no "
            "destinationRegion.",
            resource.urn,
        )


# --- always-free-resource-types -------------------------------------------------------------


def _check_resource_types(args: StackValidationArgs, report: ReportViolation) -> None:
    """A stack policy: it reads each resource's type only, never its inputs."""
    for resource in args.resources:
        kind = resource.resource_type
        if kind.startswith(OCI_CORE_PREFIX) and kind not in UNDERSTOOD_TYPES:
            report(
                f"{kind} '{resource.name}' is a resource type the allowance policies cannot "
                "measure, so what it costs (instances, storage, backups, replicas) is "
                "unchecked. Fix: build the stack from the oci:Core types the pack measures "
                "(policies/ai_swarm_policies/contract.py, UNDERSTOOD_TYPES), or teach the pack "
                "to measure this one.",
                resource.urn,
            )


def allowance_policies() -> list[Policy]:
    mandatory = EnforcementLevel.MANDATORY
    return [
        StackValidationPolicy(
            name="a1-allowance",
            description=(
                "Ampere A1 and E2.1.Micro instances stay within Oracle's Always Free allowance."
            ),
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
            name="backup-allowance",
            description="Assigned volume backup policies keep no more than the free backups.",
            validate=_check_backups,
            enforcement_level=mandatory,
            config_schema=BACKUP_SCHEMA,
        ),
        StackValidationPolicy(
            name="always-free-resource-types",
            description="Every oci:Core resource is of a type the allowance policies measure.",
            validate=_check_resource_types,
            enforcement_level=mandatory,
        ),
    ]
