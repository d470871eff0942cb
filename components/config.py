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
from dataclasses import dataclass, field
from typing import Any

import pulumi

from components.services.catalog import SERVICES as SERVICE_CATALOG

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
# The host takes this address of its subnet; OCI reserves the first two and the last one.
HOST_ADDRESS_INDEX = 10
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
    # A lambda: ServicesConfig is defined further down, with the rest of the services keys.
    services: ServicesConfig = field(default_factory=lambda: ServicesConfig())  # noqa: PLW0108

    @property
    def host_private_ip(self) -> ipaddress.IPv4Address:
        """The host's fixed private address: known at preview, so exposed UIs can bind to it."""
        return self.subnet_cidr.network_address + HOST_ADDRESS_INDEX

    @property
    def admin_ports(self) -> tuple[int, ...]:
        """TCP ports open to `admin_cidrs`, in the security list and in the host firewall."""
        return (SSH_PORT, *self.services.exposed_ports)


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
    if subnet_cidr.prefixlen > MAX_SUBNET_PREFIX:
        raise ConfigError(
            _key("subnetCidr"), str(subnet_cidr), f"a network of /{MAX_SUBNET_PREFIX} or larger"
        )
    if not subnet_cidr.subnet_of(vcn_cidr):
        raise ConfigError(
            _key("subnetCidr"), str(subnet_cidr), f"a subnet inside vcnCidr {vcn_cidr}"
        )

    host_size = _host_size(cfg, profile.host)
    return StackConfig(
        region=region,
        tenancy_id=tenancy_id,
        compartment_id=compartment_id,
        availability_domain=_availability_domain(cfg, list_availability_domains(tenancy_id)),
        profile=profile,
        host_size=host_size,
        boot_volume_gb=_volume_gb(cfg, "bootVolumeGb", 50, MIN_BOOT_VOLUME_GB),
        data_volume_gb=_volume_gb(cfg, "dataVolumeGb", 150, MIN_BLOCK_VOLUME_GB),
        host_name=_host_name(cfg),
        vcn_cidr=vcn_cidr,
        subnet_cidr=subnet_cidr,
        admin_cidrs=_admin_cidrs(cfg),
        ssh_public_key=_ssh_public_key(cfg),
        ssh_private_key=_require_secret(cfg, "sshPrivateKey"),
        services=load_services_config(cfg, host_size),
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
    entries = _string_list(cfg, "adminCidrs", allowed)
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


def _string_list(cfg: pulumi.Config, name: str, allowed: str) -> list[str]:
    """A list given as a JSON list (`--path` or YAML) or, for convenience, comma-separated text."""
    raw = cfg.get(name)
    if raw is None or not raw.strip():
        return []
    if not raw.lstrip().startswith("["):
        return [item for item in raw.split(",") if item.strip()]
    parsed = _structured(cfg, name, list, allowed)
    if not all(isinstance(item, str) for item in parsed):
        raise ConfigError(_key(name), raw, allowed)
    return [str(item) for item in parsed]


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


# ---------------------------------------------------------------------------------------------
# Services (issue 3): `ai-swarm:services`, `ai-swarm:models`, `ai-swarm:modelApiKeys`,
# `ai-swarm:exposeUis` and `ai-swarm:sshIdentityFile`.

MIN_CONTAINER_MEMORY_MB = 32
MIN_CONTAINER_MILLICPUS = 10
_SERVICE_FIELDS = ("image", "cpus", "memoryMb", "enabled")
_MODEL_FIELDS = ("name", "model", "apiKey", "apiBase")
_ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")
# name[:tag] or name@sha256:…, lowercase repository path as Docker requires.
_IMAGE_REFERENCE = re.compile(
    r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+(?=/))?(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(?P<digest>@sha256:[0-9a-f]{64})?$"
)
_MOVING_TAGS = frozenset({"latest", "main", "main-latest", "main-stable", "stable"})


@dataclass(frozen=True)
class ServiceOverride:
    """What `ai-swarm:services.<key>` changes; None keeps the catalog's value for the profile."""

    image: str | None = None
    millicpus: int | None = None
    memory_mb: int | None = None
    enabled: bool = True


@dataclass(frozen=True)
class ModelRoute:
    """One LiteLLM `model_list` entry: the name clients ask for and the provider model behind it."""

    name: str
    model: str
    api_key_env: str | None = None  # an entry of ai-swarm:modelApiKeys
    api_base: str | None = None


@dataclass(frozen=True)
class ServicesConfig:
    overrides: tuple[tuple[str, ServiceOverride], ...] = ()
    models: tuple[ModelRoute, ...] = ()
    # Provider API keys by environment variable name; the values are secret Outputs.
    model_api_keys: tuple[tuple[str, pulumi.Output[str]], ...] = ()
    expose_uis: bool = False
    ssh_identity_file: str | None = None

    def override(self, key: str) -> ServiceOverride:
        return dict(self.overrides).get(key, ServiceOverride())

    def enabled(self, key: str) -> bool:
        return self.override(key).enabled

    @property
    def exposed_ports(self) -> tuple[int, ...]:
        """UI ports opened to `adminCidrs`: none unless `ai-swarm:exposeUis` is true."""
        if not self.expose_uis:
            return ()
        return tuple(
            entry.ui_port
            for entry in SERVICE_CATALOG.values()
            if entry.ui_port is not None and self.enabled(entry.key)
        )


def load_services_config(cfg: pulumi.Config, host: HostSize) -> ServicesConfig:
    """Read every services key; `host` bounds the per-service limits."""
    overrides = _service_overrides(cfg, host)
    enabled = {
        key for key in SERVICE_CATALOG if dict(overrides).get(key, ServiceOverride()).enabled
    }
    _check_service_needs(enabled)
    api_keys = _model_api_keys(cfg)
    return ServicesConfig(
        overrides=overrides,
        models=_models(cfg, frozenset(name for name, _ in api_keys)),
        model_api_keys=api_keys,
        expose_uis=_flag(cfg, "exposeUis", default=False),
        ssh_identity_file=_ssh_identity_file(cfg),
    )


def _structured(cfg: pulumi.Config, name: str, kind: type, allowed: str) -> Any:
    """A structured value (set with `--path` or as YAML), which reaches the program as JSON."""
    raw = cfg.get(name)
    if raw is None:
        return kind()
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        raise ConfigError(_key(name), _shorten(raw), allowed) from None
    if not isinstance(value, kind):
        raise ConfigError(_key(name), _shorten(raw), allowed)
    return value


def _unknown_fields(key: str, given: Mapping[str, Any], fields: Sequence[str]) -> None:
    for field_name in given:
        if field_name not in fields:
            raise ConfigError(
                f"{key}.{field_name}", given[field_name], f"one of {', '.join(fields)}"
            )


def _service_overrides(
    cfg: pulumi.Config, host: HostSize
) -> tuple[tuple[str, ServiceOverride], ...]:
    allowed = (
        "an object keyed by service ("
        + ", ".join(SERVICE_CATALOG)
        + ") with any of "
        + ", ".join(_SERVICE_FIELDS)
    )
    given = _structured(cfg, "services", dict, allowed)
    overrides: list[tuple[str, ServiceOverride]] = []
    for service, fields in given.items():
        key = f"{_key('services')}.{service}"
        if service not in SERVICE_CATALOG:
            raise ConfigError(key, fields, f"a service name: one of {', '.join(SERVICE_CATALOG)}")
        if not isinstance(fields, dict):
            raise ConfigError(key, fields, f"an object with any of {', '.join(_SERVICE_FIELDS)}")
        _unknown_fields(key, fields, _SERVICE_FIELDS)
        overrides.append((service, _service_override(key, fields, host)))
    return tuple(overrides)


def _service_override(key: str, fields: Mapping[str, Any], host: HostSize) -> ServiceOverride:
    image = fields.get("image")
    cpus = fields.get("cpus")
    memory = fields.get("memoryMb")
    return ServiceOverride(
        image=None if image is None else _image_reference(f"{key}.image", image),
        millicpus=None if cpus is None else _millicpus(f"{key}.cpus", cpus, host.ocpus),
        memory_mb=None if memory is None else _memory_mb(f"{key}.memoryMb", memory, host),
        enabled=_boolean(f"{key}.enabled", fields.get("enabled", True)),
    )


def _image_reference(key: str, value: Any) -> str:
    allowed = "an image reference pinned to a version tag or digest, e.g. redis:7.4.5-alpine"
    match = _IMAGE_REFERENCE.match(value) if isinstance(value, str) else None
    if match is None or not (match["tag"] or match["digest"]):
        raise ConfigError(key, value, allowed)
    if match["tag"] in _MOVING_TAGS and not match["digest"]:
        raise ConfigError(
            key, value, f"{allowed} (not a moving tag: {', '.join(sorted(_MOVING_TAGS))})"
        )
    return str(value)


def _millicpus(key: str, value: Any, ocpus: int) -> int:
    allowed = (
        f"a number of CPUs from {MIN_CONTAINER_MILLICPUS / 1000:g} to {ocpus} (the host's OCPUs)"
    )
    try:
        millicpus = round(float(str(value)) * 1000)
    except (ValueError, OverflowError):  # not a number, NaN, or infinite
        raise ConfigError(key, value, allowed) from None
    if isinstance(value, bool) or not MIN_CONTAINER_MILLICPUS <= millicpus <= ocpus * 1000:
        raise ConfigError(key, value, allowed)
    return millicpus


def _memory_mb(key: str, value: Any, host: HostSize) -> int:
    high = host.memory_gb * 1024
    allowed = f"a whole number of MB from {MIN_CONTAINER_MEMORY_MB} to {high} (the host's memory)"
    text = str(value).strip()
    if isinstance(value, bool) or not re.fullmatch(r"[0-9]+", text):
        raise ConfigError(key, value, allowed)
    if not MIN_CONTAINER_MEMORY_MB <= int(text) <= high:
        raise ConfigError(key, value, allowed)
    return int(text)


def _boolean(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in ("true", "false"):
        raise ConfigError(key, value, "true or false")
    return text == "true"


def _flag(cfg: pulumi.Config, name: str, default: bool) -> bool:
    raw = cfg.get(name)
    return default if raw is None else _boolean(_key(name), raw)


def _check_service_needs(enabled: set[str]) -> None:
    for key in sorted(enabled):
        for needed in SERVICE_CATALOG[key].needs:
            if needed not in enabled:
                raise ConfigError(
                    f"{_key('services')}.{needed}.enabled",
                    False,
                    f"true while {key} is enabled ({key} needs {needed}); or disable {key} as well",
                )


def _model_api_keys(cfg: pulumi.Config) -> tuple[tuple[str, pulumi.Output[str]], ...]:
    allowed = (
        "a secret object of environment variable names to API keys, set with `pulumi config set "
        '--secret --path "ai-swarm:modelApiKeys.OPENAI_API_KEY" sk-…`'
    )
    # Read as plain text to validate the names; every value leaves here wrapped as a secret.
    given = _structured(cfg, "modelApiKeys", dict, allowed)
    keys: list[tuple[str, pulumi.Output[str]]] = []
    for env_name, value in given.items():
        key = f"{_key('modelApiKeys')}.{env_name}"
        if not _ENV_NAME.match(env_name):
            raise ConfigError(
                key, "<secret>", "an upper-case environment variable name, e.g. OPENAI_API_KEY"
            )
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(key, "<secret>", "a non-empty API key string")
        keys.append((env_name, pulumi.Output.secret(value.strip())))
    return tuple(keys)


def _models(cfg: pulumi.Config, api_key_names: frozenset[str]) -> tuple[ModelRoute, ...]:
    allowed = (
        'a list of {"name": "gpt-4o-mini", "model": "openai/gpt-4o-mini", '
        '"apiKey": "OPENAI_API_KEY", "apiBase": "https://…"} (apiKey and apiBase optional)'
    )
    routes: list[ModelRoute] = []
    for index, entry in enumerate(_structured(cfg, "models", list, allowed)):
        key = f"{_key('models')}[{index}]"
        if not isinstance(entry, dict):
            raise ConfigError(key, entry, allowed)
        _unknown_fields(key, entry, _MODEL_FIELDS)
        routes.append(_model_route(key, entry, api_key_names))
    names = [route.name for route in routes]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ConfigError(_key("models"), duplicates, "each model name once")
    return tuple(routes)


def _model_route(key: str, entry: Mapping[str, Any], api_key_names: frozenset[str]) -> ModelRoute:
    for required in ("name", "model"):
        value = entry.get(required)
        if not isinstance(value, str) or not value.strip() or value != value.strip():
            raise ConfigError(
                f"{key}.{required}", value, "a non-empty name without spaces around it"
            )
    api_key = entry.get("apiKey")
    if api_key is not None and api_key not in api_key_names:
        names = ", ".join(sorted(api_key_names)) or "none set"
        raise ConfigError(f"{key}.apiKey", api_key, f"a name in ai-swarm:modelApiKeys ({names})")
    api_base = entry.get("apiBase")
    if api_base is not None and (
        not isinstance(api_base, str) or not api_base.startswith(("https://", "http://"))
    ):
        raise ConfigError(f"{key}.apiBase", api_base, "an http(s):// URL")
    return ModelRoute(
        name=entry["name"], model=entry["model"], api_key_env=api_key, api_base=api_base
    )


def _ssh_identity_file(cfg: pulumi.Config) -> str | None:
    raw = cfg.get("sshIdentityFile")
    if raw is None:
        return None
    if not raw.strip() or any(ch.isspace() for ch in raw.strip()):
        raise ConfigError(
            _key("sshIdentityFile"), raw, "a path without spaces to the private key file for ssh -i"
        )
    return raw.strip()
