"""Typed readers of config values: every one names the key and what is allowed when it refuses.

A bad value stops the program with one `ConfigError`, which the Pulumi SDK prints as a clean
error without a traceback (`pulumi.RunError`).
"""

from __future__ import annotations

import ipaddress
import json
import unicodedata
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


# Unicode's control characters (C0 with tab and the line breaks, DEL, C1 with NEL) and its line
# and paragraph separators: each can end a line of an env or YAML file the value is written to,
# or steer the terminal that shows it.
_CONTROL_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})
LINE_BREAKS = frozenset("\n\r")
CONTROL_CHARACTERS_ALLOWED = (
    "text without control characters (no line break, tab, NUL or escape): the value is written "
    "into a file or an environment on the host, where one would start a line of its own"
)


def refuse_control_characters(
    full_key: str, value: str, secret: bool, allow: frozenset[str] = frozenset()
) -> None:
    """The one check every config value that reaches a file or an environment goes through.

    `allow` names the control characters a value may hold all the same (the line breaks of a
    private key file). A secret value is never shown.
    """
    if any(ch not in allow and unicodedata.category(ch) in _CONTROL_CATEGORIES for ch in value):
        raise ConfigError(
            full_key, NOT_SHOWN if secret else shorten(value), CONTROL_CHARACTERS_ALLOWED
        )


def text(cfg: pulumi.Config, name: str) -> str | None:
    """A plain value, without the whitespace around it (which `pulumi config set` from a file
    or a pipe keeps), checked to hold no control character; None when unset."""
    raw = cfg.get(name)
    if raw is None:
        return None
    value = raw.strip()
    full_key = cfg.full_key(name)
    refuse_control_characters(full_key, value, pulumi.runtime.is_config_secret(full_key))
    return value


def _refuse_control_characters_within(full_key: str, value: Any, secret: bool) -> None:
    """The check on every string of a structured value, and on every field name, each named by
    its path (`ai-swarm:models[0].apiBase`)."""
    if isinstance(value, str):
        refuse_control_characters(full_key, value, secret)
    elif isinstance(value, dict):
        for field_name, item in value.items():
            refuse_control_characters(full_key, field_name, secret)
            _refuse_control_characters_within(f"{full_key}.{field_name}", item, secret)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _refuse_control_characters_within(f"{full_key}[{index}]", item, secret)


def shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def require_text(cfg: pulumi.Config, full_key: str, allowed: str) -> str:
    value = text(cfg, full_key.split(":", 1)[1])
    if not value:
        raise ConfigError(full_key, value, f"required: {allowed}")
    return value


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


def secret_lines(cfg: pulumi.Config, name: str, how_to_set: str) -> str | None:
    """`secret_text` of a value that is a whole file, such as a private key: line breaks are
    its own, any other control character is refused."""
    value = secret_text(cfg, name, how_to_set)
    if value is not None:
        refuse_control_characters(key(name), value, secret=True, allow=LINE_BREAKS)
    return value


def whole_number(cfg: pulumi.Config, name: str, default: int, low: int, high: int) -> int:
    raw = text(cfg, name)
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
    raw = text(cfg, name) or default
    try:
        return ipaddress.IPv4Network(raw)
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
    raw = text(cfg, name)
    return default if raw is None else boolean(key(name), raw)


def structured(
    cfg: pulumi.Config, name: str, kind: type, allowed: str, raw: str | None = None
) -> Any:
    """A structured value (set with `--path` or as YAML), which reaches the program as JSON.

    `raw`, when given, is the already-read value of a key that holds secrets: it is parsed the
    same way, but a message about it never shows it. No string in it, and no field name, may
    hold a control character (JSON spells them as escapes, so the check is on the parsed value).
    """
    secret = raw is not None
    document = raw if secret else cfg.get(name)
    if document is None:
        return kind()
    shown = NOT_SHOWN if secret else shorten(document)
    try:
        value = json.loads(document)
    except json.JSONDecodeError:
        raise ConfigError(key(name), shown, allowed) from None
    if not isinstance(value, kind):
        raise ConfigError(key(name), shown, allowed)
    _refuse_control_characters_within(key(name), value, secret)
    return value


def string_list(cfg: pulumi.Config, name: str, allowed: str) -> list[str]:
    """A list given as a JSON list (`--path` or YAML) or, for convenience, comma-separated text."""
    raw = text(cfg, name)
    if not raw:
        return []
    if not raw.startswith("["):
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
