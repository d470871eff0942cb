"""The host and network keys: identity, sizing, volumes, addresses, admin access, SSH."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Sequence

import pulumi

from components.config.readers import (
    ConfigError,
    checked_ocid,
    key,
    require_text,
    shorten,
    string_list,
    whole_number,
)
from components.sizing import (
    A1_MAX_MEMORY_GB,
    A1_MAX_MEMORY_GB_PER_OCPU,
    A1_MAX_OCPUS,
    A1_MIN_MEMORY_GB_PER_OCPU,
    DEFAULT_PROFILE,
    PROFILES,
    HostSize,
    SizingProfile,
)

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MIN_BOOT_VOLUME_GB = 50  # OCI docs say 47 in one place and 50 in another; 50 is safe everywhere.
MIN_BLOCK_VOLUME_GB = 50
MAX_VOLUME_GB = 32768
MAX_SUBNET_PREFIX = 28

_SSH_KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)
_DNS_LABEL = re.compile(r"^[a-z][a-z0-9-]{0,14}$")


def tenancy_ocid(oci_cfg: pulumi.Config) -> str:
    value = require_text(oci_cfg, "oci:tenancyOcid", "the tenancy OCID (ocid1.tenancy.oc1..…)")
    return checked_ocid("oci:tenancyOcid", value, "tenancy")


def require_region(oci_cfg: pulumi.Config) -> None:
    """The OCI provider reads `oci:region` itself; checked here so that a missing region is a
    clear error before anything is registered."""
    require_text(oci_cfg, "oci:region", "the home region, e.g. eu-frankfurt-1")


def compartment_ocid(cfg: pulumi.Config, tenancy: str) -> str:
    value = cfg.get("compartmentOcid")
    if value is None:
        return tenancy
    return checked_ocid(key("compartmentOcid"), value.strip(), "compartment")


def profile(cfg: pulumi.Config) -> SizingProfile:
    name = cfg.get("profile") or DEFAULT_PROFILE
    if name not in PROFILES:
        raise ConfigError(key("profile"), name, f"one of {', '.join(PROFILES)}")
    return PROFILES[name]


def host_size(cfg: pulumi.Config, profile_size: HostSize) -> HostSize:
    ocpus = whole_number(cfg, "ocpus", profile_size.ocpus, 1, A1_MAX_OCPUS)
    low = ocpus * A1_MIN_MEMORY_GB_PER_OCPU
    high = min(ocpus * A1_MAX_MEMORY_GB_PER_OCPU, A1_MAX_MEMORY_GB)
    default_memory = min(max(profile_size.memory_gb, low), high)
    memory_gb = whole_number(cfg, "memoryGb", default_memory, low, high)
    return HostSize(ocpus=ocpus, memory_gb=memory_gb)


def volume_gb(cfg: pulumi.Config, name: str, default: int, minimum: int) -> int:
    return whole_number(cfg, name, default, minimum, MAX_VOLUME_GB)


def availability_domain(cfg: pulumi.Config, names: Sequence[str]) -> str:
    raw = (cfg.get("availabilityDomain") or "1").strip()
    allowed = (
        f"a 1-based index from 1 to {len(names)} or one of {', '.join(names)}"
        if names
        else "an availability domain of the tenancy, but the tenancy lists none"
    )
    if raw.isdigit():
        index = int(raw)
        if 1 <= index <= len(names):
            return names[index - 1]
    elif raw in names:
        return raw
    raise ConfigError(key("availabilityDomain"), raw, allowed)


def host_name(cfg: pulumi.Config) -> str:
    value = cfg.get("hostName") or "swarm-a1"
    if not _DNS_LABEL.match(value):
        raise ConfigError(
            key("hostName"), value, "1-15 lowercase letters, digits or '-', starting with a letter"
        )
    return value


def subnet_cidr(subnet: ipaddress.IPv4Network, vcn: ipaddress.IPv4Network) -> ipaddress.IPv4Network:
    if subnet.prefixlen > MAX_SUBNET_PREFIX:
        raise ConfigError(
            key("subnetCidr"), str(subnet), f"a network of /{MAX_SUBNET_PREFIX} or larger"
        )
    if not subnet.subnet_of(vcn):
        raise ConfigError(key("subnetCidr"), str(subnet), f"a subnet inside vcnCidr {vcn}")
    return subnet


def admin_cidrs(cfg: pulumi.Config) -> tuple[IpNetwork, ...]:
    full_key = key("adminCidrs")
    raw = cfg.get("adminCidrs")
    allowed = 'a list of the CIDRs allowed to reach SSH and the UIs, e.g. ["203.0.113.7/32"]'
    entries = string_list(cfg, "adminCidrs", allowed)
    if not entries:
        raise ConfigError(full_key, raw, f"required: {allowed}")
    networks: list[IpNetwork] = []
    for entry in entries:
        try:
            network = ipaddress.ip_network(entry.strip())
        except ValueError:
            raise ConfigError(full_key, entry, f"a CIDR with no host bits set; {allowed}") from None
        if network.prefixlen == 0:
            raise ConfigError(full_key, entry, "a range narrower than the whole internet")
        networks.append(network)
    return tuple(dict.fromkeys(networks))


def ssh_public_key(cfg: pulumi.Config) -> str:
    full_key = key("sshPublicKey")
    raw = cfg.get("sshPublicKey")
    allowed = f"an OpenSSH public key line ({', '.join(_SSH_KEY_TYPES[:3])} …)"
    if raw is None:
        raise ConfigError(full_key, raw, f"required: {allowed}")
    fields = raw.strip().split()
    if len(fields) < 2 or fields[0] not in _SSH_KEY_TYPES:
        raise ConfigError(full_key, shorten(raw), allowed)
    if _embedded_key_type(fields[1]) != fields[0]:
        raise ConfigError(full_key, shorten(raw), f"{allowed} whose base64 body matches its type")
    return " ".join(fields)


def _embedded_key_type(body: str) -> str | None:
    """The key type recorded inside an OpenSSH public key blob, or None if it is not one."""
    try:
        blob = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(blob) < 4:
        return None
    length = int.from_bytes(blob[:4], "big")
    return (
        blob[4 : 4 + length].decode("ascii", errors="replace") if len(blob) >= 4 + length else None
    )


def ssh_identity_file(cfg: pulumi.Config) -> str | None:
    raw = cfg.get("sshIdentityFile")
    if raw is None:
        return None
    if not raw.strip() or any(ch.isspace() for ch in raw.strip()):
        raise ConfigError(
            key("sshIdentityFile"), raw, "a path without spaces to the private key file for ssh -i"
        )
    return raw.strip()
