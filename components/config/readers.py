"""Typed readers of config values: every one names the key and what is allowed when it refuses.

A bad value stops the program with one `ConfigError`, which the Pulumi SDK prints as a clean
error without a traceback (`pulumi.RunError`).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping, Sequence
from typing import Any

import pulumi

NAMESPACE = "ai-swarm"


class ConfigError(pulumi.RunError):
    """A config value the program cannot use; the message names the key and what is allowed."""

    def __init__(self, key: str, value: object, allowed: str) -> None:
        shown = "<unset>" if value is None else repr(value)
        super().__init__(f"config {key}: {shown} is not allowed; {allowed}")
        self.key = key


def key(name: str) -> str:
    """The full key of a project setting, as `pulumi config set` takes it."""
    return f"{NAMESPACE}:{name}"


def shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def require_text(cfg: pulumi.Config, full_key: str, allowed: str) -> str:
    value = cfg.get(full_key.split(":", 1)[1])
    if not value or not value.strip():
        raise ConfigError(full_key, value, f"required: {allowed}")
    return value.strip()


def checked_ocid(full_key: str, value: str, kind: str) -> str:
    if not value.startswith("ocid1.") or value.count(".") < 4:
        raise ConfigError(full_key, value, f"an OCID such as ocid1.{kind}.oc1..aaaa…")
    return value


def require_secret(cfg: pulumi.Config, name: str) -> pulumi.Output[str]:
    secret = cfg.get_secret(name)
    if secret is None:
        raise ConfigError(
            key(name), None, f"required; set it with `pulumi config set --secret {key(name)}`"
        )
    return secret


def whole_number(cfg: pulumi.Config, name: str, default: int, low: int, high: int) -> int:
    raw = cfg.get(name)
    if raw is None:
        return default
    allowed = f"a whole number from {low} to {high}"
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(key(name), raw, allowed) from None
    if not low <= value <= high:
        raise ConfigError(key(name), raw, allowed)
    return value


def ipv4_network(cfg: pulumi.Config, name: str, default: str) -> ipaddress.IPv4Network:
    raw = cfg.get(name) or default
    try:
        return ipaddress.IPv4Network(raw.strip())
    except ValueError:
        raise ConfigError(
            key(name), raw, "an IPv4 network in CIDR form, e.g. 10.0.0.0/16"
        ) from None


def boolean(full_key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in ("true", "false"):
        raise ConfigError(full_key, value, "true or false")
    return text == "true"


def flag(cfg: pulumi.Config, name: str, default: bool) -> bool:
    raw = cfg.get(name)
    return default if raw is None else boolean(key(name), raw)


def structured(cfg: pulumi.Config, name: str, kind: type, allowed: str) -> Any:
    """A structured value (set with `--path` or as YAML), which reaches the program as JSON."""
    raw = cfg.get(name)
    if raw is None:
        return kind()
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        raise ConfigError(key(name), shorten(raw), allowed) from None
    if not isinstance(value, kind):
        raise ConfigError(key(name), shorten(raw), allowed)
    return value


def string_list(cfg: pulumi.Config, name: str, allowed: str) -> list[str]:
    """A list given as a JSON list (`--path` or YAML) or, for convenience, comma-separated text."""
    raw = cfg.get(name)
    if raw is None or not raw.strip():
        return []
    if not raw.lstrip().startswith("["):
        return [item for item in raw.split(",") if item.strip()]
    parsed = structured(cfg, name, list, allowed)
    if not all(isinstance(item, str) for item in parsed):
        raise ConfigError(key(name), raw, allowed)
    return [str(item) for item in parsed]


def unknown_fields(full_key: str, given: Mapping[str, Any], fields: Sequence[str]) -> None:
    for field_name in given:
        if field_name not in fields:
            raise ConfigError(
                f"{full_key}.{field_name}", given[field_name], f"one of {', '.join(fields)}"
            )
