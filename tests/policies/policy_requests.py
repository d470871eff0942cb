"""Hand-built resources for the policy tests, and the analyzer calls the Pulumi engine makes.

Resources are `Registration`s with their inputs in wire form (camelCase names, `UNKNOWN` where
`pulumi preview` has no value yet), so they reach the analyzer exactly as the program's do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from google.protobuf import json_format, struct_pb2
from pulumi.runtime import rpc

from ai_swarm_policies import A1_SHAPE, CONTAINER, INSTANCE, REMOTE_IMAGE, SECURITY_LIST, VOLUME
from dryrun.engine import Registration, plain_value
from dryrun.policy import (
    Analyzer,
    PolicyConfigDocument,
    analyze_request,
    analyze_stack_request,
    configure,
    new_analyzer,
)

UNKNOWN: Final[str] = rpc.UNKNOWN
"""What the SDK sends for an input that is not known until apply."""

IMAGE_IGNORED: Final = ("sourceDetails.sourceId",)

Diagnostics = list[Any]  # analyzer_pb2.AnalyzeDiagnostic, as the servicer returns them


def resource(
    type_: str,
    name: str,
    inputs: Mapping[str, Any],
    *,
    protect: bool = False,
    ignore_changes: Sequence[str] = (),
) -> Registration:
    wire = struct_pb2.Struct()
    wire.update(inputs)
    return Registration(
        urn=f"urn:pulumi:oracle::ai-swarm::{type_}::{name}",
        type=type_,
        name=name,
        custom=True,
        parent="",
        provider="",
        dependencies=(),
        property_dependencies={},
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


def container(
    name: str,
    host: str | None = "app",
    cpus: str | None = "0.5",
    memory: int | str | None = 512,
    **extra: Any,
) -> Registration:
    inputs: dict[str, Any] = {"name": name, "image": f"sha256:{name}", **extra}
    if cpus is not None:
        inputs["cpus"] = cpus
    if memory is not None:
        inputs["memory"] = memory
    if host is not None:
        inputs["labels"] = [
            {"label": "ai-swarm.service", "value": name},
            {"label": "ai-swarm.host", "value": host},
        ]
    return resource(CONTAINER, name, inputs)


def volume(name: str, size_gb: str | None = "150", *, protect: bool = True) -> Registration:
    inputs = {"sizeInGbs": size_gb} if size_gb is not None else {}
    return resource(VOLUME, name, inputs, protect=protect)


def security_list(name: str, *rules: Mapping[str, Any]) -> Registration:
    return resource(SECURITY_LIST, name, {"ingressSecurityRules": list(rules)})


def tcp_rule(source: str, low: int, high: int | None = None) -> dict[str, Any]:
    return {"protocol": "6", "source": source, "tcpOptions": {"min": low, "max": high or low}}


def remote_image(name: str, image: str, platform: str | None = "linux/arm64") -> Registration:
    inputs = {"name": image, **({"platform": platform} if platform else {})}
    return resource(REMOTE_IMAGE, name, inputs)


def analyzer(config: PolicyConfigDocument | None = None) -> Analyzer:
    """The pack's analyzer, configured as the CLI configures it for `config`."""
    configured = new_analyzer()
    configure(configured, config)
    return configured


def analyze(target: Analyzer, registration: Registration) -> Diagnostics:
    response = target.Analyze(analyze_request(registration, {}), None)
    return list(response.diagnostics)


def analyze_stack(target: Analyzer, registrations: Sequence[Registration]) -> Diagnostics:
    by_urn = {r.urn: r for r in registrations}
    response = target.AnalyzeStack(analyze_stack_request(registrations, by_urn), None)
    return list(response.diagnostics)


def of_policy(diagnostics: Diagnostics, policy: str) -> Diagnostics:
    return [d for d in diagnostics if d.policyName == policy]


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
        },
        "block-storage-allowance": {"maxBlockStorageGb": 150 * hosts},
    }
