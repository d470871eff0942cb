"""The names the program registers and the pack judges: both sides must spell them alike.

The pack reads resources by these type tokens, places containers on hosts by the label and the
tag below, and knows the shapes by these names; the program and the tests register and look up
resources by the same constants, so a renamed token cannot leave the pack looking at nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

# Type tokens of the resources the program registers (the provider SDKs' spelling).
INSTANCE: Final = "oci:Core/instance:Instance"
VOLUME: Final = "oci:Core/volume:Volume"
BOOT_VOLUME: Final = "oci:Core/bootVolume:BootVolume"
VOLUME_ATTACHMENT: Final = "oci:Core/volumeAttachment:VolumeAttachment"
VOLUME_BACKUP_POLICY: Final = "oci:Core/volumeBackupPolicy:VolumeBackupPolicy"
VOLUME_BACKUP_POLICY_ASSIGNMENT: Final = (
    "oci:Core/volumeBackupPolicyAssignment:VolumeBackupPolicyAssignment"
)
PUBLIC_IP: Final = "oci:Core/publicIp:PublicIp"
VCN: Final = "oci:Core/vcn:Vcn"
INTERNET_GATEWAY: Final = "oci:Core/internetGateway:InternetGateway"
ROUTE_TABLE: Final = "oci:Core/routeTable:RouteTable"
SUBNET: Final = "oci:Core/subnet:Subnet"
SECURITY_LIST: Final = "oci:Core/securityList:SecurityList"
DEFAULT_SECURITY_LIST: Final = "oci:Core/defaultSecurityList:DefaultSecurityList"
NSG: Final = "oci:Core/networkSecurityGroup:NetworkSecurityGroup"
NSG_RULE: Final = "oci:Core/networkSecurityGroupSecurityRule:NetworkSecurityGroupSecurityRule"
CONTAINER: Final = "docker:index/container:Container"
REMOTE_IMAGE: Final = "docker:index/remoteImage:RemoteImage"
DOCKER_NETWORK: Final = "docker:index/network:Network"
DOCKER_VOLUME: Final = "docker:index/volume:Volume"
REMOTE_COMMAND: Final = "command:remote:Command"
RANDOM_PASSWORD: Final = "random:index/randomPassword:RandomPassword"

# The provider packages whose every resource type the pack must understand: the allowance
# policies measure `oci:Core`, container-hardening judges `docker`. A type of theirs outside
# `UNDERSTOOD_TYPES` (an InstancePool, a BootVolumeBackup, a Swarm Service, a Plugin...) can
# spend the allowance or reach the host in ways no policy reads, so it is a violation.
OCI_CORE_PREFIX: Final = "oci:Core/"
DOCKER_PREFIX: Final = "docker:"
UNDERSTOOD_TYPES: Final = frozenset(
    {
        # measured by the allowance policies (sizes, performance, replicas, backups)
        INSTANCE,
        VOLUME,
        BOOT_VOLUME,
        VOLUME_BACKUP_POLICY,
        VOLUME_BACKUP_POLICY_ASSIGNMENT,
        VCN,
        # free of charge and read by no-public-ingress where they admit traffic
        VOLUME_ATTACHMENT,
        PUBLIC_IP,
        INTERNET_GATEWAY,
        ROUTE_TABLE,
        SUBNET,
        SECURITY_LIST,
        DEFAULT_SECURITY_LIST,
        NSG,
        NSG_RULE,
        # judged by container-hardening and the image policies
        CONTAINER,
        REMOTE_IMAGE,
        DOCKER_NETWORK,
        DOCKER_VOLUME,
    }
)

# Instance shapes the Always Free allowance covers.
A1_SHAPE: Final = "VM.Standard.A1.Flex"
MICRO_SHAPE: Final = "VM.Standard.E2.1.Micro"

# A container names its host with this label; the host's instance carries the name in this
# freeform tag.
HOST_LABEL: Final = "ai-swarm.host"
HOST_TAG: Final = "ai-swarm-host"

# The program writes nested ignore_changes paths in the engine's (camelCase) spelling: the Python
# SDK translates top-level names only, so `source_details.source_id` would ignore nothing.
IMAGE_IGNORE_PATHS: Final = frozenset({"sourceDetails", "sourceDetails.sourceId"})
ARM64_PLATFORMS: Final = frozenset({"linux/arm64", "linux/arm64/v8"})
AMD64_PLATFORMS: Final = frozenset({"linux/amd64"})


@dataclass(frozen=True)
class ShapeFacts:
    """What the pack knows of a shape: the Docker platform its images must be built for and,
    for a fixed shape (one that takes no `shapeConfig`), its size."""

    platform: str
    """The platform the program sets, and the one messages name."""
    platforms: frozenset[str]
    """Every spelling of that platform that is accepted."""
    fixed_ocpus: float | None = None
    fixed_memory_gb: float | None = None


SHAPES: Final = {
    # Ampere A1: sized by the program's shapeConfig; one OCPU is one core and one vCPU.
    A1_SHAPE: ShapeFacts("linux/arm64", ARM64_PLATFORMS),
    # AMD E2.1.Micro (x86_64): a fixed shape of 1 OCPU and 1 GB. Its guaranteed baseline is
    # 1/8 of that OCPU ("1/8th of an OCPU with the ability to use additional CPU resources",
    # Oracle's Always Free Resources page) and the guest sees two vCPUs (one core, two
    # threads); the hypervisor enforces the baseline, so container limits are budgeted against
    # the shape's one OCPU, as the program's sizing module sizes them.
    MICRO_SHAPE: ShapeFacts("linux/amd64", AMD64_PLATFORMS, fixed_ocpus=1, fixed_memory_gb=1),
}

# The image repository (its last path component) that runs PostgreSQL.
POSTGRES_REPOSITORY: Final = "postgres"
