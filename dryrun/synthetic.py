"""Hand-built registrations: resources for the policy tests and synthetic stacks of any size.

Each is a `Registration` with its inputs in wire form (camelCase names, the SDK's unknown marker
where `pulumi preview` has no value yet), so it reaches the analyzer, and the dry run's report,
exactly as the program's registrations do. The tests and the benchmarks share these builders.
The host label and tag are spelled out as the docs document them, so a change to the pack's
contract shows up as failing tests rather than passing silently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from google.protobuf import json_format, struct_pb2
from pulumi.runtime import rpc

from ai_swarm_policies.contract import (
    A1_SHAPE,
    CONTAINER,
    INSTANCE,
    REMOTE_IMAGE,
    SECURITY_LIST,
    VOLUME,
    VOLUME_BACKUP_POLICY,
    VOLUME_BACKUP_POLICY_ASSIGNMENT,
)
from dryrun.engine import Registration, plain_value

IMAGE_IGNORED: Final = ("sourceDetails.sourceId",)
PROVIDER_TYPE_PREFIX: Final = "pulumi:providers:"
# What the SDK sends for a RemoteImage's id before the pull (in preview and in these fixtures).
UNKNOWN_ID: Final = rpc.UNKNOWN


def urn_of(type_: str, name: str) -> str:
    return f"urn:pulumi:oracle::ai-swarm::{type_}::{name}"


def resource(
    type_: str,
    name: str,
    inputs: Mapping[str, Any],
    *,
    protect: bool = False,
    ignore_changes: Sequence[str] = (),
    property_dependencies: Mapping[str, Sequence[str]] | None = None,
    provider: str = "",
) -> Registration:
    wire = struct_pb2.Struct()
    wire.update(inputs)
    dependencies = {key: tuple(urns) for key, urns in (property_dependencies or {}).items()}
    return Registration(
        urn=urn_of(type_, name),
        type=type_,
        name=name,
        custom=True,
        parent="",
        provider=provider,
        dependencies=tuple(sorted({urn for urns in dependencies.values() for urn in urns})),
        property_dependencies=dependencies,
        protect=protect,
        retain_on_delete=False,
        delete_before_replace=False,
        ignore_changes=tuple(ignore_changes),
        replace_on_changes=(),
        wire_inputs=wire,
        inputs=plain_value(json_format.MessageToDict(wire)),
    )


def instance(
    name: str,
    ocpus: float | str | None = 2,
    memory_gb: float | str | None = 12,
    *,
    shape: str = A1_SHAPE,
    host: str | None = None,
    boot_gb: str | None = "50",
    ignore_changes: Sequence[str] = IMAGE_IGNORED,
    source_id: str = "ocid1.image.oc1..ubuntu",
    subnet_id: str = "ocid1.subnet.oc1..public",
) -> Registration:
    shape_config = {
        key: value
        for key, value in (("ocpus", ocpus), ("memoryInGbs", memory_gb))
        if value is not None
    }
    source: dict[str, Any] = {"sourceType": "image", "sourceId": source_id}
    if boot_gb is not None:
        source["bootVolumeSizeInGbs"] = boot_gb
    inputs: dict[str, Any] = {
        "shape": shape,
        "sourceDetails": source,
        "createVnicDetails": {"subnetId": subnet_id, "assignPublicIp": "false"},
        "freeformTags": {"ai-swarm-host": host or name},
    }
    if shape_config:
        inputs["shapeConfig"] = shape_config
    return resource(INSTANCE, name, inputs, ignore_changes=ignore_changes)


def docker_provider(name: str, host: str = "ssh://ubuntu@198.51.100.10") -> Registration:
    """A host's own Docker provider, as the program registers one per host."""
    return resource(f"{PROVIDER_TYPE_PREFIX}docker", name, {"host": host})


def provider_reference(provider: Registration) -> str:
    """What a resource names as its provider: `<provider urn>::<provider id>`."""
    return f"{provider.urn}::{provider.name}-id"


def container(
    name: str,
    host: str | None = "app",
    cpus: str | None = "0.5",
    memory: int | str | None = 512,
    *,
    provider: Registration | None = None,
    remote: Registration | None = None,
    **extra: Any,
) -> Registration:
    """A container; `remote` makes its image the id of that RemoteImage, as the program does."""
    # Hardened as the program's containers are, unless `extra` says otherwise.
    inputs: dict[str, Any] = {
        "name": name,
        "image": f"sha256:{name}",
        "capabilities": {"drops": ["ALL"]},
        "securityOpts": ["no-new-privileges:true"],
        **extra,
    }
    if cpus is not None:
        inputs["cpus"] = cpus
    if memory is not None:
        inputs["memory"] = memory
    if host is not None:
        inputs["labels"] = [
            {"label": "ai-swarm.service", "value": name},
            {"label": "ai-swarm.host", "value": host},
        ]
    if remote is not None:
        inputs["image"] = UNKNOWN_ID
    return resource(
        CONTAINER,
        name,
        inputs,
        property_dependencies={"image": [remote.urn]} if remote is not None else None,
        provider=provider_reference(provider) if provider is not None else "",
    )


def volume(name: str, size_gb: str | None = "150", *, protect: bool = True) -> Registration:
    inputs = {"sizeInGbs": size_gb} if size_gb is not None else {}
    return resource(VOLUME, name, inputs, protect=protect)


def security_list(name: str, *rules: Mapping[str, Any]) -> Registration:
    return resource(SECURITY_LIST, name, {"ingressSecurityRules": list(rules)})


def tcp_rule(source: str, low: int, high: int | None = None) -> dict[str, Any]:
    return {"protocol": "6", "source": source, "tcpOptions": {"min": low, "max": high or low}}


def remote_image(
    name: str,
    image: str,
    platform: str | None = "linux/arm64",
    *,
    provider: Registration | None = None,
) -> Registration:
    inputs = {"name": image, **({"platform": platform} if platform else {})}
    reference = provider_reference(provider) if provider is not None else ""
    return resource(REMOTE_IMAGE, name, inputs, provider=reference)


def backup_schedule(period: str, retention_seconds: int) -> dict[str, Any]:
    return {
        "backupType": "INCREMENTAL",
        "period": period,
        "retentionSeconds": retention_seconds,
        "hourOfDay": 3,
        "timeZone": "UTC",
    }


def backup_policy(name: str, *schedules: Mapping[str, Any]) -> Registration:
    inputs = {"compartmentId": "ocid1.compartment.oc1..swarm", "schedules": list(schedules)}
    return resource(VOLUME_BACKUP_POLICY, name, inputs)


def backup_assignment(
    name: str, policy: Registration, asset: Registration, *, policy_id: str
) -> Registration:
    """An assignment as the program makes it: ids that are outputs of the policy and volume,
    `policy_id` being what the SDK sends for the policy's id (the unknown marker in preview)."""
    return resource(
        VOLUME_BACKUP_POLICY_ASSIGNMENT,
        name,
        {"assetId": f"{asset.name}-id", "policyId": policy_id},
        property_dependencies={"assetId": [asset.urn], "policyId": [policy.urn]},
    )


def synthetic_stack(size: int) -> list[Registration]:
    """`size` resources in groups of ten: an A1 host, its volume, security list, image and six
    containers that fit the host. Each group would be a compliant stack on its own."""
    stack: list[Registration] = []
    for group in range(size // 10):
        host = f"host-{group}"
        stack += [
            instance(host, 2, 12),
            volume(f"{host}-data", "100"),
            security_list(f"{host}-ingress", tcp_rule("198.51.100.7/32", 22)),
            remote_image(f"{host}-image", "redis:7.2.4-alpine"),
        ]
        stack += [container(f"{host}-svc-{n}", host, "0.5", 1536) for n in range(6)]
    return stack


def synthetic_allowance(size: int) -> dict[str, Any]:
    """Pack config under which `synthetic_stack(size)` is within every allowance."""
    hosts = size // 10
    return {
        "a1-allowance": {
            "maxA1Ocpus": 2 * hosts,
            "maxA1MemoryGb": 12 * hosts,
            "maxA1Instances": hosts,
            "maxAlwaysFreeInstances": hosts,
        },
        "block-storage-allowance": {"maxBlockStorageGb": 150 * hosts},
    }
