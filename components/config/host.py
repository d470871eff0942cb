"""The host and network keys: identity, sizing, volumes, addresses, admin access, SSH."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

import pulumi
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

from components.config.readers import (
    NOT_SHOWN,
    ConfigError,
    checked_ocid,
    key,
    require_text,
    secret_lines,
    shorten,
    string_list,
    text,
    whole_number,
)
from components.services.catalog import NETWORK_SUBNET
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
# OCI's VCN sizes, and the smallest subnet that leaves room for the host's fixed address.
MIN_VCN_PREFIX, MAX_VCN_PREFIX = 16, 30
MAX_SUBNET_PREFIX = 28
# The widest admin CIDRs: anything wider is the internet in a few pieces.
MIN_ADMIN_PREFIX = {4: 8, 6: 32}
# Defaults of the keys left unset (components/config/definitions.py documents them).
DEFAULT_AVAILABILITY_DOMAIN = "1"
DEFAULT_HOST_NAME = "swarm-a1"
DEFAULT_VCN_CIDR, DEFAULT_SUBNET_CIDR = "10.0.0.0/16", "10.0.1.0/24"
DEFAULT_BOOT_VOLUME_GB, DEFAULT_DATA_VOLUME_GB = 50, 150

# Key types pulumi-command's SSH client can use without extra hardware (no `sk-` keys).
_SSH_KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
)
_SSH_PRIVATE_KEY_TYPES = (ed25519.Ed25519PrivateKey, rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)
_DNS_LABEL = re.compile(r"^[a-z][a-z0-9-]{0,14}$")
_REGION = re.compile(r"^[a-z]+(?:-[a-z]+)+-[0-9]+$")  # eu-frankfurt-1, us-gov-ashburn-1
PRIVATE_KEY_SET_COMMAND = (
    'pulumi config set --secret ai-swarm:sshPrivateKey -- "$(cat ~/.ssh/ai-swarm)"'
)


def tenancy_ocid(oci_cfg: pulumi.Config) -> str:
    value = require_text(oci_cfg, "oci:tenancyOcid", "the tenancy OCID (ocid1.tenancy.oc1..…)")
    return checked_ocid("oci:tenancyOcid", value, "tenancy")


def require_region(oci_cfg: pulumi.Config) -> str:
    """The OCI provider reads `oci:region` itself; checked here so that a missing or misspelt
    region is a clear error before anything is registered."""
    allowed = "the home region's identifier, e.g. eu-frankfurt-1"
    region = require_text(oci_cfg, "oci:region", allowed)
    if not _REGION.match(region):
        raise ConfigError("oci:region", region, allowed)
    return region


def compartment_ocid(cfg: pulumi.Config, tenancy: str) -> str:
    value = text(cfg, "compartmentOcid")
    if value is None:
        return tenancy
    return checked_ocid(key("compartmentOcid"), value, "compartment")


def profile(cfg: pulumi.Config) -> SizingProfile:
    name = text(cfg, "profile") or DEFAULT_PROFILE
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
    raw = text(cfg, "availabilityDomain") or DEFAULT_AVAILABILITY_DOMAIN
    allowed = (
        f"a 1-based index from 1 to {len(names)} or one of {', '.join(names)}"
        if names
        else "an availability domain of the tenancy, but the tenancy lists none"
    )
    if raw.isascii() and raw.isdigit():
        index = int(raw)
        if 1 <= index <= len(names):
            return names[index - 1]
    elif raw in names:
        return raw
    raise ConfigError(key("availabilityDomain"), raw, allowed)


def host_name(cfg: pulumi.Config) -> str:
    value = text(cfg, "hostName") or DEFAULT_HOST_NAME
    if not _DNS_LABEL.match(value):
        raise ConfigError(
            key("hostName"), value, "1-15 lowercase letters, digits or '-', starting with a letter"
        )
    return value


def vcn_cidr(vcn: ipaddress.IPv4Network) -> ipaddress.IPv4Network:
    if not MIN_VCN_PREFIX <= vcn.prefixlen <= MAX_VCN_PREFIX:
        raise ConfigError(
            key("vcnCidr"), str(vcn), f"a network from /{MIN_VCN_PREFIX} to /{MAX_VCN_PREFIX}"
        )
    if vcn.overlaps(NETWORK_SUBNET):
        raise ConfigError(
            key("vcnCidr"),
            str(vcn),
            f"a network apart from {NETWORK_SUBNET}, the services' Docker network on the host "
            "(an overlap would cut the host off from part of its own VCN)",
        )
    return vcn


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
    raw = text(cfg, "adminCidrs")
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
        widest = MIN_ADMIN_PREFIX[network.version]
        if network.prefixlen < widest:
            raise ConfigError(
                full_key, entry, f"an IPv{network.version} range of /{widest} or narrower"
            )
        if network.version == 6:
            raise ConfigError(
                full_key,
                entry,
                "an IPv4 CIDR: the VCN has no IPv6 addresses, so an IPv6 entry would admit nobody",
            )
        networks.append(network)
    return tuple(dict.fromkeys(networks))


def ssh_public_key(cfg: pulumi.Config) -> str:
    full_key = key("sshPublicKey")
    raw = text(cfg, "sshPublicKey")
    allowed = f"an OpenSSH public key line ({', '.join(_SSH_KEY_TYPES[:3])} …)"
    if raw is None:
        raise ConfigError(full_key, raw, f"required: {allowed}")
    fields = raw.strip().split()
    if len(fields) < 2 or fields[0] not in _SSH_KEY_TYPES:
        raise ConfigError(full_key, shorten(raw), allowed)
    try:
        parsed = serialization.load_ssh_public_key(" ".join(fields[:2]).encode())
    except (ValueError, UnicodeError):
        raise ConfigError(
            full_key, shorten(raw), f"{allowed} whose base64 body is a whole key of its type"
        ) from None
    return _openssh_line(parsed) + "".join(f" {word}" for word in fields[2:])


def ssh_private_key(cfg: pulumi.Config, public_key: str) -> pulumi.Output[str]:
    """The private half of `public_key`, checked to be one (parsed, no passphrase, matching)."""
    full_key = key("sshPrivateKey")
    private_text = secret_lines(cfg, "sshPrivateKey", PRIVATE_KEY_SET_COMMAND)
    if private_text is None:
        raise ConfigError(full_key, None, f"required; set it with `{PRIVATE_KEY_SET_COMMAND}`")
    private = _private_key(private_text)
    if not isinstance(private, _SSH_PRIVATE_KEY_TYPES):
        raise ConfigError(
            full_key,
            NOT_SHOWN,
            "an OpenSSH private key without a passphrase (the whole file, e.g. ~/.ssh/ai-swarm; "
            f"ed25519, rsa or ecdsa): `{PRIVATE_KEY_SET_COMMAND}`",
        )
    if _openssh_line(private.public_key()) != " ".join(public_key.split()[:2]):
        raise ConfigError(
            full_key, NOT_SHOWN, "the private half of ai-swarm:sshPublicKey, but they do not match"
        )
    return pulumi.Output.secret(private_text)


def _private_key(pem: str) -> PrivateKeyTypes | None:
    """The key in OpenSSH's own format or in PEM (both of which ssh-keygen writes), or None
    when it is neither, is cut short, or needs a passphrase."""
    data = pem.strip().encode()
    for load in (serialization.load_ssh_private_key, serialization.load_pem_private_key):
        try:
            return load(data, None)
        except (ValueError, TypeError, UnicodeError):
            continue
    return None


def _openssh_line(public: PublicKeyTypes) -> str:
    """`<type> <base64>` of a parsed public key, as OpenSSH writes it."""
    return public.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()


def ssh_identity_file(cfg: pulumi.Config) -> str | None:
    raw = text(cfg, "sshIdentityFile")
    if raw is None:
        return None
    if not raw or any(ch.isspace() for ch in raw):
        raise ConfigError(
            key("sshIdentityFile"), raw, "a path without spaces to the private key file for ssh -i"
        )
    return raw
