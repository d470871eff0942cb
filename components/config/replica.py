"""The replica key, `ai-swarm:replica`: a second host, the free x86 E2.1.Micro, holding a live
logical replica of the A1's databases, and the networks allowed to reach the A1's Postgres.

    pulumi config set --path ai-swarm:replica.enabled true
    pulumi config set --path 'ai-swarm:replica.externalCidrs[0]' 198.51.100.7/32

Off by default. With it on, the free 200 GB of block storage must hold the A1's boot and data
volumes and the Micro's boot volume: `check_free_storage` refuses a stack that would not fit
(a volume cannot shrink; docs/replica.md gives the move to a smaller one).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi

from components.config.host import MIN_BLOCK_VOLUME_GB
from components.config.readers import ConfigError, boolean, key, structured, unknown_fields
from components.sizing import FREE_BLOCK_STORAGE_GB, MICRO_BOOT_VOLUME_GB

_FIELDS = ("enabled", "privateIp", "externalCidrs")
# The Micro's default address in the subnet: the A1 host takes index 10 (HOST_ADDRESS_INDEX).
REPLICA_ADDRESS_INDEX = 11
# OCI reserves the first two addresses of a subnet (network, gateway) and the last one.
_RESERVED_LOW, _RESERVED_HIGH = 2, 1
# The widest external CIDR: 16 addresses, a provider's small static egress pool (Railway gives
# one address) or a home connection. Postgres answers every address admitted with TLS and a
# password prompt; a wider range (an ISP's pool, a cloud region) would let strangers sharing it
# try the peer's password, which no one needs for one subscriber.
MIN_EXTERNAL_PREFIX = 28
DOCS = "docs/replica.md, 'Enabling the replica'"


@dataclass(frozen=True)
class ReplicaSettings:
    """The replica's settings; with `enabled` false nothing is added and nothing is opened."""

    enabled: bool
    # The Micro's fixed private address in the subnet (default: the subnet's address + 11).
    private_ip: ipaddress.IPv4Address
    external_cidrs: tuple[ipaddress.IPv4Network, ...] = ()

    @property
    def peer_networks(self) -> tuple[ipaddress.IPv4Network, ...]:
        """Who may reach the A1's Postgres (tcp 5432): the Micro's /32 and `external_cidrs`,
        or no one when the replica is off."""
        if not self.enabled:
            return ()
        own = ipaddress.IPv4Network(f"{self.private_ip}/32")
        return tuple(dict.fromkeys((own, *self.external_cidrs)))


def replica_settings(
    cfg: pulumi.Config,
    subnet: ipaddress.IPv4Network,
    vcn: ipaddress.IPv4Network,
    a1_address: ipaddress.IPv4Address,
) -> ReplicaSettings:
    """Read `ai-swarm:replica`; `a1_address` is the A1 host's fixed address in `subnet`."""
    allowed = "an object with any of " + ", ".join(_FIELDS)
    given = structured(cfg, "replica", dict, allowed)
    unknown_fields(key("replica"), given, _FIELDS)
    enabled = boolean(_key("enabled"), given.get("enabled", False))
    if not enabled:
        # A setting that does nothing is refused rather than silently dropped: without the
        # replica nothing is opened, not even to externalCidrs.
        for field_name in ("privateIp", "externalCidrs"):
            if field_name in given:
                raise ConfigError(
                    _key(field_name),
                    given[field_name],
                    f"unset while {_key('enabled')} is false (without the replica nothing is "
                    f"added or opened); set {_key('enabled')} true, or remove it",
                )
    return ReplicaSettings(
        enabled=enabled,
        private_ip=_private_ip(given, subnet, a1_address),
        external_cidrs=_external_cidrs(given, vcn),
    )


def check_free_storage(replica: ReplicaSettings, boot_volume_gb: int, data_volume_gb: int) -> None:
    """With the replica, every boot and data volume together must fit the free 200 GB."""
    if not replica.enabled:
        return
    total = boot_volume_gb + data_volume_gb + MICRO_BOOT_VOLUME_GB
    if total <= FREE_BLOCK_STORAGE_GB:
        return
    room = FREE_BLOCK_STORAGE_GB - boot_volume_gb - MICRO_BOOT_VOLUME_GB
    sum_text = (
        f"the free {FREE_BLOCK_STORAGE_GB} GB of block storage must hold the A1's boot volume "
        f"({boot_volume_gb} GB) + its data volume ({data_volume_gb} GB) + the replica's boot "
        f"volume ({MICRO_BOOT_VOLUME_GB} GB) = {total} GB"
    )
    shrink = (
        "An existing volume cannot shrink: a deployed stack moves its data to a new, smaller "
        f"volume first ({DOCS}); or set {_key('enabled')} false"
    )
    if room >= MIN_BLOCK_VOLUME_GB:
        raise ConfigError(
            key("dataVolumeGb"), data_volume_gb, f"at most {room}: {sum_text}. {shrink}"
        )
    # Even the smallest data volume would not fit beside this boot volume.
    boot_room = FREE_BLOCK_STORAGE_GB - MICRO_BOOT_VOLUME_GB - MIN_BLOCK_VOLUME_GB
    raise ConfigError(
        key("bootVolumeGb"),
        boot_volume_gb,
        f"at most {boot_room} (with a data volume of {MIN_BLOCK_VOLUME_GB} GB): {sum_text}. "
        f"{shrink}",
    )


def _key(field_name: str) -> str:
    return f"{key('replica')}.{field_name}"


def _private_ip(
    given: Mapping[str, Any], subnet: ipaddress.IPv4Network, a1_address: ipaddress.IPv4Address
) -> ipaddress.IPv4Address:
    if "privateIp" not in given:
        return subnet.network_address + REPLICA_ADDRESS_INDEX
    value = given["privateIp"]
    usable_low = subnet.network_address + _RESERVED_LOW
    usable_high = subnet.broadcast_address - _RESERVED_HIGH
    allowed = (
        f"an IPv4 address of subnetCidr {subnet} from {usable_low} to {usable_high} (OCI "
        f"reserves the first two and the last), other than the A1 host's {a1_address}"
    )
    try:
        address = ipaddress.IPv4Address(value) if isinstance(value, str) else None
    except ValueError:
        address = None
    if address is None or not usable_low <= address <= usable_high or address == a1_address:
        raise ConfigError(_key("privateIp"), value, allowed)
    return address


def _external_cidrs(
    given: Mapping[str, Any], vcn: ipaddress.IPv4Network
) -> tuple[ipaddress.IPv4Network, ...]:
    value = given.get("externalCidrs", [])
    allowed = (
        f"a list of IPv4 CIDRs outside vcnCidr {vcn}, each /{MIN_EXTERNAL_PREFIX} or narrower "
        'with no host bits set, e.g. ["198.51.100.7/32"]: the off-cloud subscribers\' addresses'
    )
    if not isinstance(value, list):
        raise ConfigError(_key("externalCidrs"), value, allowed)
    networks: list[ipaddress.IPv4Network] = []
    for index, entry in enumerate(value):
        full_key = f"{_key('externalCidrs')}[{index}]"
        try:
            network = ipaddress.IPv4Network(entry.strip()) if isinstance(entry, str) else None
        except ValueError:
            network = None
        if network is None or network.prefixlen < MIN_EXTERNAL_PREFIX or network.overlaps(vcn):
            raise ConfigError(full_key, entry, allowed)
        networks.append(network)
    return tuple(dict.fromkeys(networks))
