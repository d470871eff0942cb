"""The service keys: `ai-swarm:services`, `ai-swarm:models`, `ai-swarm:modelApiKeys` and
`ai-swarm:exposeUis`, validated against the service catalog and the host's size."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi

from components.config.readers import (
    NOT_SHOWN,
    ConfigError,
    boolean,
    flag,
    key,
    secret_text,
    structured,
    unknown_fields,
)
from components.services.catalog import CATALOG, CONFIGURABLE
from components.sizing import MILLICPUS_PER_CPU, HostSize

MIN_CONTAINER_MEMORY_MB = 32
MIN_CONTAINER_MILLICPUS = 10
# The UIs stay on the host's loopback unless `ai-swarm:exposeUis` is set.
EXPOSE_UIS_DEFAULT = False
_SERVICE_FIELDS = ("image", "cpus", "memoryMb", "enabled")
_MODEL_FIELDS = ("name", "model", "apiKey", "apiBase")
_ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")
# name[:tag] or name@sha256:…, lowercase repository path as Docker requires.
_IMAGE_REFERENCE = re.compile(
    r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+(?=/))?(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(?P<digest>@sha256:[0-9a-f]{64})?$"
)
_MOVING_TAGS = frozenset({"latest", "main", "main-latest", "main-stable", "stable"})
# The major version in a PostgreSQL image tag: a `pg15` word (`0.8.0-pg15`, where the leading
# number is the extension's), else the leading number (`15.14-alpine3.22`, `15`).
_POSTGRES_MAJOR_WORD = re.compile(r"(?:^|[-_.])pg(?P<major>[0-9]+)(?![0-9])")
_POSTGRES_MAJOR_LEAD = re.compile(r"^(?P<major>[0-9]+)")
MODEL_API_KEY_SET_COMMAND = "'ai-swarm:modelApiKeys.OPENAI_API_KEY' sk-…"
# Provider keys reach LiteLLM as environment variables: none may replace one the program sets
# for a service (these prefixes cover LiteLLM's, Redis', the databases' and OpenBao's) or one
# the container's own system reads.
RESERVED_ENV_PREFIXES = ("LITELLM_", "REDIS_", "DATABASE_", "POSTGRES_", "PG", "VAULT_", "BAO_")
SYSTEM_ENV_NAMES = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "SHELL",
        "HOSTNAME",
        "LANG",
        "TZ",
        "PWD",
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
        "PYTHONPATH",
        "PYTHONHOME",
        "PYTHONSTARTUP",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "STORE_MODEL_IN_DB",
        "PORT",
        "HOST",
    }
)


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
class ServiceSettings:
    overrides: tuple[tuple[str, ServiceOverride], ...] = ()
    models: tuple[ModelRoute, ...] = ()
    # Provider API keys by environment variable name; the values are secret Outputs.
    model_api_keys: tuple[tuple[str, pulumi.Output[str]], ...] = ()
    expose_uis: bool = False

    def override(self, service: str) -> ServiceOverride:
        return dict(self.overrides).get(service, ServiceOverride())

    def enabled(self, service: str) -> bool:
        """Enabled through `ai-swarm:services`; a service another setting places never is."""
        return CATALOG[service].configurable and self.override(service).enabled

    @property
    def exposed_ports(self) -> tuple[int, ...]:
        """UI ports opened to `adminCidrs`: none unless `ai-swarm:exposeUis` is true."""
        if not self.expose_uis:
            return ()
        return tuple(
            entry.ui_port
            for entry in CATALOG.values()
            if entry.ui_port is not None and self.enabled(entry.key)
        )


def service_settings(cfg: pulumi.Config, host: HostSize) -> ServiceSettings:
    """Read every service key; `host` bounds the per-service limits."""
    overrides = _service_overrides(cfg, host)
    settings = ServiceSettings(overrides=overrides)
    _check_service_needs({service for service in CONFIGURABLE if settings.enabled(service)})
    api_keys = _model_api_keys(cfg)
    return ServiceSettings(
        overrides=overrides,
        models=_models(cfg, frozenset(name for name, _ in api_keys)),
        model_api_keys=api_keys,
        expose_uis=flag(cfg, "exposeUis", default=EXPOSE_UIS_DEFAULT),
    )


def _service_overrides(
    cfg: pulumi.Config, host: HostSize
) -> tuple[tuple[str, ServiceOverride], ...]:
    allowed = (
        "an object keyed by service ("
        + ", ".join(CONFIGURABLE)
        + ") with any of "
        + ", ".join(_SERVICE_FIELDS)
    )
    given = structured(cfg, "services", dict, allowed)
    overrides: list[tuple[str, ServiceOverride]] = []
    for service, fields in given.items():
        full_key = f"{key('services')}.{service}"
        entry = CATALOG.get(service)
        if entry is not None and entry.placed_by is not None:
            raise ConfigError(
                full_key,
                fields,
                f"nothing: {service} is not set here, it follows {entry.placed_by} (on when "
                f"that is true, with the image of {entry.image_of or service}); remove "
                f"{full_key} and set {entry.placed_by} instead",
            )
        if entry is None:
            raise ConfigError(full_key, fields, f"a service name: one of {', '.join(CONFIGURABLE)}")
        if not isinstance(fields, dict):
            raise ConfigError(
                full_key, fields, f"an object with any of {', '.join(_SERVICE_FIELDS)}"
            )
        unknown_fields(full_key, fields, _SERVICE_FIELDS)
        override = _service_override(full_key, fields, host)
        if service == "postgres" and override.image is not None:
            _check_postgres_major(f"{full_key}.image", override.image)
        overrides.append((service, override))
    return tuple(overrides)


def _service_override(full_key: str, fields: Mapping[str, Any], host: HostSize) -> ServiceOverride:
    image = fields.get("image")
    cpus = fields.get("cpus")
    memory = fields.get("memoryMb")
    return ServiceOverride(
        image=None if image is None else _image_reference(f"{full_key}.image", image),
        millicpus=None if cpus is None else _millicpus(f"{full_key}.cpus", cpus, host.ocpus),
        memory_mb=None if memory is None else _memory_mb(f"{full_key}.memoryMb", memory, host),
        enabled=boolean(f"{full_key}.enabled", fields.get("enabled", True)),
    )


def postgres_major(image: str) -> int | None:
    """The PostgreSQL major version an image's tag names (`15.14-alpine`, `15`, `pg15`), if any."""
    match = _IMAGE_REFERENCE.match(image)
    tag = match["tag"] if match else None
    if not tag:
        return None
    found = _POSTGRES_MAJOR_WORD.search(tag) or _POSTGRES_MAJOR_LEAD.match(tag)
    return int(found["major"]) if found else None


def _check_postgres_major(full_key: str, image: str) -> None:
    """The data directory on the volume belongs to the catalog's major version, which a server of
    another major cannot open: no override may change it on the way past an `up`."""
    data_major = postgres_major(CATALOG["postgres"].image)
    if postgres_major(image) != data_major:
        raise ConfigError(
            full_key,
            image,
            f"an image of PostgreSQL {data_major}, whose tag starts with {data_major} (e.g. "
            f"{CATALOG['postgres'].image}): the data on the volume is PostgreSQL {data_major} "
            "and a new major cannot read it. To upgrade, dump every database "
            "(`sudo systemctl start ai-swarm-pg-dump.service` on the host), then follow "
            '"PostgreSQL\'s major version" in docs/operations.md (a fresh data '
            "directory, the new pin in components/services/catalog.py, pg_restore of the dumps)",
        )


def _image_reference(full_key: str, value: Any) -> str:
    allowed = "an image reference pinned to a version tag or digest, e.g. redis:7.4.5-alpine"
    match = _IMAGE_REFERENCE.match(value) if isinstance(value, str) else None
    if match is None or not (match["tag"] or match["digest"]):
        raise ConfigError(full_key, value, allowed)
    if match["tag"] in _MOVING_TAGS and not match["digest"]:
        raise ConfigError(
            full_key, value, f"{allowed} (not a moving tag: {', '.join(sorted(_MOVING_TAGS))})"
        )
    return str(value)


def _millicpus(full_key: str, value: Any, ocpus: int) -> int:
    allowed = (
        f"a number of CPUs from {MIN_CONTAINER_MILLICPUS / MILLICPUS_PER_CPU:g} to {ocpus} "
        "(the host's OCPUs)"
    )
    try:
        millicpus = round(float(str(value)) * MILLICPUS_PER_CPU)
    except (ValueError, OverflowError):  # not a number, NaN, or infinite
        raise ConfigError(full_key, value, allowed) from None
    if (
        isinstance(value, bool)
        or not MIN_CONTAINER_MILLICPUS <= millicpus <= ocpus * MILLICPUS_PER_CPU
    ):
        raise ConfigError(full_key, value, allowed)
    return millicpus


def _memory_mb(full_key: str, value: Any, host: HostSize) -> int:
    high = host.memory_gb * 1024
    allowed = f"a whole number of MB from {MIN_CONTAINER_MEMORY_MB} to {high} (the host's memory)"
    text = str(value).strip()
    if isinstance(value, bool) or not re.fullmatch(r"[0-9]+", text):
        raise ConfigError(full_key, value, allowed)
    if not MIN_CONTAINER_MEMORY_MB <= int(text) <= high:
        raise ConfigError(full_key, value, allowed)
    return int(text)


def _check_service_needs(enabled: set[str]) -> None:
    for service in sorted(enabled):
        for needed in CATALOG[service].needs:
            if needed not in enabled:
                raise ConfigError(
                    f"{key('services')}.{needed}.enabled",
                    False,
                    f"true while {service} is enabled ({service} needs {needed}); or disable "
                    f"{service} as well",
                )


def _model_api_keys(cfg: pulumi.Config) -> tuple[tuple[str, pulumi.Output[str]], ...]:
    allowed = (
        "a secret object of environment variable names to API keys, set with `pulumi config set "
        f"--secret --path {MODEL_API_KEY_SET_COMMAND}`"
    )
    raw = secret_text(
        cfg, "modelApiKeys", f"pulumi config set --secret --path {MODEL_API_KEY_SET_COMMAND}"
    )
    # Read as plain text to validate the names; every value leaves here wrapped as a secret.
    given = structured(cfg, "modelApiKeys", dict, allowed, raw=raw) if raw is not None else {}
    keys: list[tuple[str, pulumi.Output[str]]] = []
    for env_name, value in given.items():
        full_key = f"{key('modelApiKeys')}.{env_name}"
        if not _ENV_NAME.match(env_name):
            raise ConfigError(
                full_key, NOT_SHOWN, "an upper-case environment variable name, e.g. OPENAI_API_KEY"
            )
        if is_reserved_env_name(env_name):
            raise ConfigError(
                full_key,
                NOT_SHOWN,
                "a provider key name of your own, e.g. OPENAI_API_KEY: not a name the program sets "
                f"(prefixes {', '.join(RESERVED_ENV_PREFIXES)}) nor a system variable "
                f"({', '.join(sorted(SYSTEM_ENV_NAMES))})",
            )
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(full_key, NOT_SHOWN, "a non-empty API key string")
        keys.append((env_name, pulumi.Output.secret(value.strip())))
    return tuple(keys)


def is_reserved_env_name(name: str) -> bool:
    """Whether a provider key under this name would overwrite a variable the program or the
    container's system relies on."""
    return name in SYSTEM_ENV_NAMES or name.startswith(RESERVED_ENV_PREFIXES)


def _models(cfg: pulumi.Config, api_key_names: frozenset[str]) -> tuple[ModelRoute, ...]:
    allowed = (
        'a list of {"name": "gpt-4o-mini", "model": "openai/gpt-4o-mini", '
        '"apiKey": "OPENAI_API_KEY", "apiBase": "https://…"} (apiKey and apiBase optional)'
    )
    routes: list[ModelRoute] = []
    for index, entry in enumerate(structured(cfg, "models", list, allowed)):
        full_key = f"{key('models')}[{index}]"
        if not isinstance(entry, dict):
            raise ConfigError(full_key, entry, allowed)
        unknown_fields(full_key, entry, _MODEL_FIELDS)
        routes.append(_model_route(full_key, entry, api_key_names))
    names = [route.name for route in routes]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ConfigError(key("models"), duplicates, "each model name once")
    return tuple(routes)


def _model_route(
    full_key: str, entry: Mapping[str, Any], api_key_names: frozenset[str]
) -> ModelRoute:
    for required in ("name", "model"):
        value = entry.get(required)
        if not isinstance(value, str) or not value.strip() or value != value.strip():
            raise ConfigError(
                f"{full_key}.{required}", value, "a non-empty name without spaces around it"
            )
    api_key = entry.get("apiKey")
    if api_key is not None and (not isinstance(api_key, str) or api_key not in api_key_names):
        names = ", ".join(sorted(api_key_names)) or "none set"
        raise ConfigError(
            f"{full_key}.apiKey", api_key, f"a name in ai-swarm:modelApiKeys ({names})"
        )
    api_base = entry.get("apiBase")
    if api_base is not None and (
        not isinstance(api_base, str) or not api_base.startswith(("https://", "http://"))
    ):
        raise ConfigError(f"{full_key}.apiBase", api_base, "an http(s):// URL")
    return ModelRoute(
        name=entry["name"], model=entry["model"], api_key_env=api_key, api_base=api_base
    )
