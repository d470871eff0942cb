"""object-storage-allowance: the stack's buckets stay inside the free 20 GB of Object Storage.

The pack cannot see object sizes, so it checks what the configuration guarantees: every bucket
has an enabled lifecycle rule deleting all its objects within `maxObjectDays`, nothing is
replicated (a replica is a second copy counted against the allowance, in a region Always Free
may not cover), and the days each bucket keeps, times the expected size of a night's dumps, stay
within `maxObjectStorageGb`.
"""

from __future__ import annotations

from collections.abc import Iterable
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
from .measure import Resource
from .messages import fmt
from .reading import UndecidableError, as_number, plain, plain_items, plain_text
from .settings import count, number, settings

BUCKET: Final = "oci:ObjectStorage/bucket:Bucket"
OBJECT_LIFECYCLE_POLICY: Final = "oci:ObjectStorage/objectLifecyclePolicy:ObjectLifecyclePolicy"
REPLICATION_POLICY: Final = "oci:ObjectStorage/replicationPolicy:ReplicationPolicy"

# Lifecycle time units in days (OCI: a year is 365.2425 days, rounded up to midnight UTC).
_DAYS_PER_UNIT: Final = {"DAYS": 1.0, "YEARS": 366.0}

SCHEMA: Final = PolicyConfigSchema(
    {
        "maxObjectStorageGb": number(
            20, "Object Storage (all tiers) the stack's buckets may fill, in GB."
        ),
        "expectedDumpGb": number(
            1, "Expected size of one night's uploads to a bucket (all databases' dumps), in GB."
        ),
        "maxObjectDays": count(
            30, "Days within which every bucket's lifecycle must delete every object."
        ),
    }
)


@dataclass(frozen=True)
class _Kept:
    bucket: Resource
    days: float | None  # None: no enabled rule deletes every object


def _bucket_of(policy: Resource, buckets: dict[str, Resource]) -> Resource | None:
    """The bucket a lifecycle policy belongs to: by dependency (its name may be unknown in
    preview), else by the name it gives."""
    for urn in policy.property_dependencies.get("bucket", ()):
        if urn in buckets:
            return buckets[urn]
    name = plain_text(policy.props, "bucket")
    by_name = [b for b in buckets.values() if plain_text(b.props, "name") == name]
    return by_name[0] if by_name else None


def _deleting_days(policy: Resource) -> float | None:
    """The fewest days after which an enabled rule of `policy` deletes every object."""
    found: list[float] = []
    for rule in plain_items(policy.props, "rules"):
        target = plain_text(rule, "target") or "objects"
        if plain(rule, "action") != "DELETE" or target != "objects":
            continue
        if plain(rule, "isEnabled") is not True or plain(rule, "objectNameFilter"):
            continue  # disabled, or some objects only
        amount = as_number(plain(rule, "timeAmount"), "rules[].timeAmount")
        unit = _DAYS_PER_UNIT.get(str(plain(rule, "timeUnit")))
        if amount is not None and unit is not None:
            found.append(amount * unit)
    return min(found) if found else None


def _kept(args: StackValidationArgs) -> tuple[list[_Kept], list[tuple[Resource, str]]]:
    buckets = {b.urn: b for b in resources(args, BUCKET)}
    days: dict[str, float] = {}
    undecidable: list[tuple[Resource, str]] = []
    for policy in resources(args, OBJECT_LIFECYCLE_POLICY):
        try:
            bucket = _bucket_of(policy, buckets)
            deleting = _deleting_days(policy)
        except UndecidableError as error:
            undecidable.append((policy, str(error)))
            continue
        if bucket is not None and deleting is not None:
            days[bucket.urn] = min(deleting, days.get(bucket.urn, deleting))
    return [_Kept(b, days.get(urn)) for urn, b in buckets.items()], undecidable


def _check(args: StackValidationArgs, report: ReportViolation) -> None:
    setting = settings(args.get_config(), SCHEMA)
    max_days = float(setting("maxObjectDays"))
    nightly_gb, allowed_gb = float(setting("expectedDumpGb")), float(setting("maxObjectStorageGb"))
    kept, undecidable = _kept(args)
    for resource, reason in undecidable:
        report(f"{resource.type} '{resource.name}': {reason}.", resource.urn)
    for bucket in kept:
        if bucket.days is None:
            report(
                f"Bucket '{bucket.bucket.name}' has no enabled lifecycle rule deleting all its "
                "objects, so it grows without end. Fix: give it an ObjectLifecyclePolicy with an "
                "enabled DELETE rule on target objects and no name filter (the program does, "
                "after `ai-swarm:backups.offsiteDays`).",
                bucket.bucket.urn,
            )
        elif bucket.days > max_days:
            report(
                f"Bucket '{bucket.bucket.name}' keeps objects {fmt(bucket.days)} days, more than "
                f"the {fmt(max_days)} allowed (maxObjectDays). Fix: lower "
                "`ai-swarm:backups.offsiteDays`, or raise maxObjectDays in the "
                "object-storage-allowance pack config.",
                bucket.bucket.urn,
            )
    _report_replication(resources(args, REPLICATION_POLICY), report)
    _report_retention(kept, nightly_gb, allowed_gb, report)


def _report_replication(found: Iterable[Resource], report: ReportViolation) -> None:
    for replication in found:
        report(
            f"Replication policy '{replication.name}' copies a bucket's objects to another "
            "bucket: a second copy counted against the free Object Storage, in a region Always "
            "Free may not cover. Fix: remove it; the host's dumps are the copy.",
            replication.urn,
        )


def _report_retention(
    kept: list[_Kept], nightly_gb: float, allowed_gb: float, report: ReportViolation
) -> None:
    days = [(k.bucket.name, k.days) for k in kept if k.days is not None]
    needed = sum(d for _name, d in days) * nightly_gb
    if needed <= allowed_gb:
        return
    listed = ", ".join(f"'{name}' {fmt(d)} days" for name, d in days)
    report(
        f"The buckets keep {fmt(needed)} GB at {fmt(nightly_gb)} GB a night ({listed}), over "
        f"the {fmt(allowed_gb)} GB allowed (maxObjectStorageGb). Fix: lower "
        "`ai-swarm:backups.offsiteDays`, or set expectedDumpGb in the object-storage-allowance "
        "pack config to the size your dumps really have.",
        None,
    )


def object_storage_policies() -> list[Policy]:
    return [
        StackValidationPolicy(
            name="object-storage-allowance",
            description="Buckets delete their objects in time and fit the free 20 GB.",
            validate=_check,
            enforcement_level=EnforcementLevel.MANDATORY,
            config_schema=SCHEMA,
        )
    ]
