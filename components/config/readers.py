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


class _NotShown:
    """Stands for the value of a key that holds a secret: an error message never prints it."""

    def __repr__(self) -> str:
        return "<secret, not shown>"


NOT_SHOWN = _NotShown()


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


def secret_text(cfg: pulumi.Config, name: str, how_to_set: str) -> str | None:
    """The plain value of a key that must hold a secret, for validation only (None when unset).

    A value set without `--secret` sits in plain text in Pulumi.<stack>.yaml: it is refused, and
    the message gives the command (`how_to_set`) that stores it encrypted.
    """
    value = cfg.get(name)
    if value is not None and not pulumi.runtime.is_config_secret(key(name)):
        raise ConfigError(
            key(name),
            NOT_SHOWN,
            f"a secret: set it again with `{how_to_set}`, so that it is "
            "stored encrypted (and remove the plain value from your stack file)",
        )
    return value


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


def structured(
    cfg: pulumi.Config, name: str, kind: type, allowed: str, raw: str | None = None
) -> Any:
    """A structured value (set with `--path` or as YAML), which reaches the program as JSON.

    `raw`, when given, is the already-read value of a key that holds secrets: it is parsed the
    same way, but a message about it never shows it.
    """
    secret = raw is not None
    text = raw if secret else cfg.get(name)
    if text is None:
        return kind()
    shown = NOT_SHOWN if secret else shorten(text)
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise ConfigError(key(name), shown, allowed) from None
    if not isinstance(value, kind):
        raise ConfigError(key(name), shown, allowed)
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
