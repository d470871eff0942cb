"""Every config key the program reads, read once and validated before any resource is registered.

A bad value stops the program with one `ConfigError` naming the key, the value and what is
allowed. Staying inside the Always Free allowance is not checked here: that is the policy
pack's job, so that a deliberate larger sizing stays possible.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi

NAMESPACE = "ai-swarm"

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Limits of the VM.Standard.A1.Flex shape itself (not of the free allowance).
A1_MAX_OCPUS = 80
A1_MAX_MEMORY_GB_PER_OCPU = 64
A1_MIN_MEMORY_GB_PER_OCPU = 1
A1_MAX_MEMORY_GB = 512
MIN_BOOT_VOLUME_GB = 50  # OCI docs say 47 in one place and 50 in another; 50 is safe everywhere.
MIN_BLOCK_VOLUME_GB = 50
MAX_VOLUME_GB = 32768
SSH_PORT = 22

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


class ConfigError(pulumi.RunError):
    """A config value the program cannot use; the message names the key and what is allowed."""

    def __init__(self, key: str, value: object, allowed: str) -> None:
        shown = "<unset>" if value is None else repr(value)
        super().__init__(f"config {key}: {shown} is not allowed; {allowed}")
        self.key = key


@dataclass(frozen=True)
class HostSize:
    ocpus: int
    memory_gb: int


@dataclass(frozen=True)
class SizingProfile:
    name: str
    host: HostSize
    summary: str


PROFILES: Mapping[str, SizingProfile] = {
    "always-free": SizingProfile(
        name="always-free",
        host=HostSize(ocpus=2, memory_gb=12),
        summary="one A1 host of 2 OCPU / 12 GB: Oracle's Always Free allowance since 2026-06-15",
    ),
    "a1-4x24": SizingProfile(
        name="a1-4x24",
        host=HostSize(ocpus=4, memory_gb=24),
        summary="one A1 host of 4 OCPU / 24 GB: the original sizing, beyond today's free allowance",
    ),
}
DEFAULT_PROFILE = "always-free"


@dataclass(frozen=True)
class StackConfig:
    """The validated configuration of one stack."""

    region: str
    tenancy_id: str
    compartment_id: str
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

    @property
    def admin_ports(self) -> tuple[int, ...]:
        """TCP ports open to `admin_cidrs`, in the security list and in the host firewall."""
        return (SSH_PORT,)


AvailabilityDomainLister = Callable[[str], Sequence[str]]


def load_config(list_availability_domains: AvailabilityDomainLister) -> StackConfig:
    """Read and validate the whole stack configuration.

    `list_availability_domains(compartment)` returns the availability domain names, in order; it
    is passed in so that the index check runs against the real tenancy under the CLI.
    """
    oci_cfg = pulumi.Config("oci")
    cfg = pulumi.Config(NAMESPACE)

    region = _require_text(oci_cfg, "oci:region", "the home region, e.g. eu-frankfurt-1")
    tenancy_id = _require_ocid(oci_cfg, "oci:tenancyOcid", "tenancy")
    compartment_id = _optional_ocid(cfg, "compartmentOcid") or tenancy_id

    profile_name = cfg.get("profile") or DEFAULT_PROFILE
    if profile_name not in PROFILES:
        raise ConfigError(_key("profile"), profile_name, f"one of {', '.join(PROFILES)}")
    profile = PROFILES[profile_name]

    vcn_cidr = _ipv4_network(cfg, "vcnCidr", "10.0.0.0/16")
    subnet_cidr = _ipv4_network(cfg, "subnetCidr", "10.0.1.0/24")
    if not subnet_cidr.subnet_of(vcn_cidr):
        raise ConfigError(
            _key("subnetCidr"), str(subnet_cidr), f"a subnet inside vcnCidr {vcn_cidr}"
        )

    return StackConfig(
        region=region,
        tenancy_id=tenancy_id,
        compartment_id=compartment_id,
        availability_domain=_availability_domain(cfg, list_availability_domains(tenancy_id)),
        profile=profile,
        host_size=_host_size(cfg, profile.host),
        boot_volume_gb=_volume_gb(cfg, "bootVolumeGb", 50, MIN_BOOT_VOLUME_GB),
        data_volume_gb=_volume_gb(cfg, "dataVolumeGb", 150, MIN_BLOCK_VOLUME_GB),
        host_name=_host_name(cfg),
        vcn_cidr=vcn_cidr,
        subnet_cidr=subnet_cidr,
        admin_cidrs=_admin_cidrs(cfg),
        ssh_public_key=_ssh_public_key(cfg),
        ssh_private_key=_require_secret(cfg, "sshPrivateKey"),
    )


def _key(name: str) -> str:
    return f"{NAMESPACE}:{name}"


def _require_text(cfg: pulumi.Config, key: str, allowed: str) -> str:
    value = cfg.get(key.split(":", 1)[1])
    if not value or not value.strip():
        raise ConfigError(key, value, f"required: {allowed}")
    return value.strip()


def _require_ocid(cfg: pulumi.Config, key: str, kind: str) -> str:
    value = _require_text(cfg, key, f"the {kind} OCID (ocid1.{kind}.oc1..…)")
    return _checked_ocid(key, value, kind)


def _optional_ocid(cfg: pulumi.Config, name: str) -> str | None:
    value = cfg.get(name)
    return None if value is None else _checked_ocid(_key(name), value.strip(), "compartment")


def _checked_ocid(key: str, value: str, kind: str) -> str:
    if not value.startswith("ocid1.") or value.count(".") < 4:
        raise ConfigError(key, value, f"an OCID such as ocid1.{kind}.oc1..aaaa…")
    return value


def _require_secret(cfg: pulumi.Config, name: str) -> pulumi.Output[str]:
    secret = cfg.get_secret(name)
    if secret is None:
        raise ConfigError(
            _key(name), None, f"required; set it with `pulumi config set --secret {_key(name)}`"
        )
    return secret


def _whole_number(cfg: pulumi.Config, name: str, default: int, low: int, high: int) -> int:
    raw = cfg.get(name)
    if raw is None:
        return default
    allowed = f"a whole number from {low} to {high}"
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(_key(name), raw, allowed) from None
    if not low <= value <= high:
        raise ConfigError(_key(name), raw, allowed)
    return value


def _host_size(cfg: pulumi.Config, profile_size: HostSize) -> HostSize:
    ocpus = _whole_number(cfg, "ocpus", profile_size.ocpus, 1, A1_MAX_OCPUS)
    low = ocpus * A1_MIN_MEMORY_GB_PER_OCPU
    high = min(ocpus * A1_MAX_MEMORY_GB_PER_OCPU, A1_MAX_MEMORY_GB)
    default_memory = min(max(profile_size.memory_gb, low), high)
    memory_gb = _whole_number(cfg, "memoryGb", default_memory, low, high)
    return HostSize(ocpus=ocpus, memory_gb=memory_gb)


def _volume_gb(cfg: pulumi.Config, name: str, default: int, minimum: int) -> int:
    return _whole_number(cfg, name, default, minimum, MAX_VOLUME_GB)


def _availability_domain(cfg: pulumi.Config, names: Sequence[str]) -> str:
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
    raise ConfigError(_key("availabilityDomain"), raw, allowed)


def _host_name(cfg: pulumi.Config) -> str:
    value = cfg.get("hostName") or "swarm-a1"
    if not _DNS_LABEL.match(value):
        raise ConfigError(
            _key("hostName"), value, "1-15 lowercase letters, digits or '-', starting with a letter"
        )
    return value


def _ipv4_network(cfg: pulumi.Config, name: str, default: str) -> ipaddress.IPv4Network:
    raw = cfg.get(name) or default
    try:
        return ipaddress.IPv4Network(raw.strip())
    except ValueError:
        raise ConfigError(
            _key(name), raw, "an IPv4 network in CIDR form, e.g. 10.0.0.0/16"
        ) from None


def _admin_cidrs(cfg: pulumi.Config) -> tuple[IpNetwork, ...]:
    key = _key("adminCidrs")
    raw = cfg.get("adminCidrs")
    allowed = 'a list of the CIDRs allowed to reach SSH and the UIs, e.g. ["203.0.113.7/32"]'
    entries = _string_list(key, raw, allowed)
    if not entries:
        raise ConfigError(key, raw, f"required: {allowed}")
    networks: list[IpNetwork] = []
    for entry in entries:
        try:
            network = ipaddress.ip_network(entry.strip())
        except ValueError:
            raise ConfigError(key, entry, f"a CIDR with no host bits set; {allowed}") from None
        if network.prefixlen == 0:
            raise ConfigError(key, entry, "a range narrower than the whole internet")
        networks.append(network)
    return tuple(dict.fromkeys(networks))


def _string_list(key: str, raw: str | None, allowed: str) -> list[str]:
    """A list given as a JSON list (`--path` or YAML) or, for convenience, comma-separated text."""
    if raw is None or not raw.strip():
        return []
    if not raw.lstrip().startswith("["):
        return [item for item in raw.split(",") if item.strip()]
    try:
        parsed: Any = json.loads(raw)
    except json.JSONDecodeError:
        raise ConfigError(key, raw, allowed) from None
    if not all(isinstance(item, str) for item in parsed):
        raise ConfigError(key, raw, allowed)
    return list(parsed)


def _ssh_public_key(cfg: pulumi.Config) -> str:
    key = _key("sshPublicKey")
    raw = cfg.get("sshPublicKey")
    allowed = f"an OpenSSH public key line ({', '.join(_SSH_KEY_TYPES[:3])} …)"
    if raw is None:
        raise ConfigError(key, raw, f"required: {allowed}")
    fields = raw.strip().split()
    if len(fields) < 2 or fields[0] not in _SSH_KEY_TYPES:
        raise ConfigError(key, _shorten(raw), allowed)
    if _embedded_key_type(fields[1]) != fields[0]:
        raise ConfigError(key, _shorten(raw), f"{allowed} whose base64 body matches its type")
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


def _shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "…"
