"""Every config key the program reads, read once and validated before any resource is registered.

A bad value stops the program with one `ConfigError` naming the key, the value and what is
allowed. Staying inside the Always Free allowance is not checked here: that is the policy
pack's job, so that a deliberate larger sizing stays possible.

`readers` holds the typed readers, `host` the host and network keys, `services` the service
keys; `load_config` puts them together.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pulumi

from components.config import host as host_keys
from components.config.backups import BackupSchedule, OffsiteSettings, backup_schedule
from components.config.host import MIN_BLOCK_VOLUME_GB, MIN_BOOT_VOLUME_GB, IpNetwork
from components.config.readers import NAMESPACE, ConfigError, ipv4_network, key
from components.config.replica import ReplicaSettings, check_free_storage, replica_settings
from components.config.services import (
    ModelRoute,
    ServiceOverride,
    ServiceSettings,
    service_settings,
)
from components.services.catalog import CATALOG
from components.sizing import (
    A1_FLEX,
    ALLOCATIONS,
    E2_1_MICRO,
    MICRO_ALLOCATIONS,
    MICRO_BOOT_VOLUME_GB,
    MICRO_SIZE,
    UBUNTU_2404,
    HostSize,
    HostSpec,
    SizingProfile,
)

__all__ = [
    "BackupSchedule",
    "ConfigError",
    "ModelRoute",
    "OffsiteSettings",
    "ReplicaSettings",
    "ServiceOverride",
    "ServiceSettings",
    "StackConfig",
    "load_config",
]

SSH_PORT = 22
# The host takes this address of its subnet; OCI reserves the first two and the last one.
HOST_ADDRESS_INDEX = 10
# The A1 host's component name: fixed, since `hostName` is a display setting. Stacks made when
# the component was named after `hostName` keep their resources through an alias to that name.
A1_HOST_KEY = "host"
# The replica's host: its component name and the prefix of its Docker resources' names.
REPLICA_HOST_KEY = "replica"
REPLICA_RESOURCE_PREFIX = "replica-"
# Catalog keys of the services the replica's host runs: the replica itself (placed by
# `ai-swarm:replica.enabled`, never by `ai-swarm:services`), and the others each when enabled.
REPLICA_SERVICES: tuple[str, ...] = ("postgresReplica", "nodeExporter")


@dataclass(frozen=True)
class StackConfig:
    """The validated configuration of one stack."""

    compartment_id: str
    # IAM (the off-site backups' dynamic group and policy) lives in the tenancy itself.
    tenancy_id: str
    region: str
    availability_domain: str
    profile: SizingProfile
    host_size: HostSize
    boot_volume_gb: int
    data_volume_gb: int
    host_name: str
    vcn_cidr: ipaddress.IPv4Network
    subnet_cidr: ipaddress.IPv4Network
    admin_cidrs: tuple[IpNetwork, ...]
    ssh_public_key: str
    ssh_private_key: pulumi.Output[str]
    ssh_identity_file: str | None
    service_settings: ServiceSettings
    backups: BackupSchedule
    replica: ReplicaSettings

    @property
    def host_private_ip(self) -> ipaddress.IPv4Address:
        """The host's fixed private address: known at preview, so exposed UIs can bind to it."""
        return self.subnet_cidr.network_address + HOST_ADDRESS_INDEX

    @property
    def admin_ports(self) -> tuple[int, ...]:
        """TCP ports open to `admin_cidrs`, in the security list and in the host firewall."""
        return (SSH_PORT, *self.service_settings.exposed_ports)

    @property
    def hosts(self) -> tuple[HostSpec, ...]:
        """The stack's hosts, the first one holding the data: the A1 host with every enabled
        service, then, with the replica on, the Micro with the replica's services."""
        settings = self.service_settings
        a1 = HostSpec(
            key=A1_HOST_KEY,
            name=self.host_name,
            shape=A1_FLEX,
            size=self.host_size,
            image=UBUNTU_2404,
            boot_volume_gb=self.boot_volume_gb,
            data_volume_gb=self.data_volume_gb,
            private_ip=self.host_private_ip,
            services=tuple(key for key in CATALOG if settings.enabled(key)),
            allocations=ALLOCATIONS[self.profile.name],
            # The A1 runs the UIs and publishes Postgres to the replica's peers.
            admin_ports=self.admin_ports,
            postgres_peers=self.replica.peer_networks,
            former_key=self.host_name,
        )
        if not self.replica.enabled:
            return (a1,)
        micro = HostSpec(
            key=REPLICA_HOST_KEY,
            name=f"{self.host_name}-replica",
            shape=E2_1_MICRO,
            size=MICRO_SIZE,
            image=UBUNTU_2404,
            boot_volume_gb=MICRO_BOOT_VOLUME_GB,
            data_volume_gb=None,
            private_ip=self.replica.private_ip,
            # The replica follows this host, not `ai-swarm:services`; the others, their settings.
            services=tuple(
                key
                for key in REPLICA_SERVICES
                if not CATALOG[key].configurable or settings.enabled(key)
            ),
            allocations=MICRO_ALLOCATIONS,
            admin_ports=(SSH_PORT,),
            resource_prefix=REPLICA_RESOURCE_PREFIX,
        )
        return (a1, micro)


AvailabilityDomainLister = Callable[[str], Sequence[str]]


def load_config(list_availability_domains: AvailabilityDomainLister) -> StackConfig:
    """Read and validate the whole stack configuration.

    `list_availability_domains(tenancy)` returns the availability domain names, in order; it
    is passed in so that the index check runs against the real tenancy under the CLI.
    """
    oci_cfg = pulumi.Config("oci")
    cfg = pulumi.Config(NAMESPACE)

    region = host_keys.require_region(oci_cfg)
    tenancy_id = host_keys.tenancy_ocid(oci_cfg)
    compartment_id = host_keys.compartment_ocid(cfg, tenancy_id)
    profile = host_keys.profile(cfg)
    vcn_cidr = host_keys.vcn_cidr(ipv4_network(cfg, "vcnCidr", host_keys.DEFAULT_VCN_CIDR))
    subnet = ipv4_network(cfg, "subnetCidr", host_keys.DEFAULT_SUBNET_CIDR)
    subnet_cidr = host_keys.subnet_cidr(subnet, vcn_cidr)
    host_size = host_keys.host_size(cfg, profile.host)
    ssh_public_key = host_keys.ssh_public_key(cfg)
    boot_volume_gb = host_keys.volume_gb(
        cfg, "bootVolumeGb", host_keys.DEFAULT_BOOT_VOLUME_GB, MIN_BOOT_VOLUME_GB
    )
    data_volume_gb = host_keys.volume_gb(
        cfg, "dataVolumeGb", host_keys.DEFAULT_DATA_VOLUME_GB, MIN_BLOCK_VOLUME_GB
    )
    replica = replica_settings(
        cfg, subnet_cidr, vcn_cidr, subnet_cidr.network_address + HOST_ADDRESS_INDEX
    )
    check_free_storage(replica, boot_volume_gb, data_volume_gb)
    services = service_settings(cfg, host_size)
    if replica.enabled and not services.enabled("postgres"):
        raise ConfigError(
            f"{key('replica')}.enabled",
            True,
            f"false while {key('services')}.postgres.enabled is false: the replica copies "
            "Postgres' databases",
        )
    return StackConfig(
        compartment_id=compartment_id,
        tenancy_id=tenancy_id,
        region=region,
        availability_domain=host_keys.availability_domain(
            cfg, list_availability_domains(tenancy_id)
        ),
        profile=profile,
        host_size=host_size,
        boot_volume_gb=boot_volume_gb,
        data_volume_gb=data_volume_gb,
        host_name=host_keys.host_name(cfg),
        vcn_cidr=vcn_cidr,
        subnet_cidr=subnet_cidr,
        admin_cidrs=host_keys.admin_cidrs(cfg),
        ssh_public_key=ssh_public_key,
        ssh_private_key=host_keys.ssh_private_key(cfg, ssh_public_key),
        ssh_identity_file=host_keys.ssh_identity_file(cfg),
        service_settings=services,
        backups=backup_schedule(cfg),
        replica=replica,
    )
