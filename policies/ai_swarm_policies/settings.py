"""Config schemas and lookups: every threshold is a pack-config property with one default.

Each policy's schema is defined beside its validator; these build the schema entries and read a
policy's effective value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pulumi_policy import PolicyConfigSchema


def number(default: float, description: str) -> dict[str, Any]:
    return {"type": "number", "minimum": 0, "default": default, "description": description}


def count(default: int, description: str) -> dict[str, Any]:
    return {"type": "integer", "minimum": 0, "default": default, "description": description}


def strings(default: Sequence[str], description: str) -> dict[str, Any]:
    return {
        "type": "array",
        "items": {"type": "string"},
        "default": list(default),
        "description": description,
    }


Settings = Callable[[str], Any]


def settings(config: Mapping[str, Any], schema: PolicyConfigSchema) -> Settings:
    """Look up a policy's config: the configured value, or the schema default (the CLI fills
    these in, but a servicer that was never configured must behave the same)."""

    def setting(key: str) -> Any:
        return config[key] if key in config else default(schema, key)

    return setting


def default(schema: PolicyConfigSchema, key: str) -> Any:
    return schema.properties[key]["default"]
