"""Reading resource inputs without ever touching a value the caller does not need.

Inputs arrive either as plain values (the dry run's registrations) or through pulumi-policy's
unknown-checking proxies, which raise `UnknownValueError` when a value is not known until apply.
Every read here asks for one property (never a whole object) and turns an unknown, or a value of
the wrong kind, into `UndecidableError`, which the policy that needed the value reports as its
own violation: a mandatory policy never silently degrades to the analyzer's preview advisory.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy.proxy import UnknownValueError

from .contract import CONTAINER, HOST_LABEL, HOST_TAG, REMOTE_IMAGE


class UndecidableError(Exception):
    """A value a policy needs is unknown until apply, or is not of the expected kind."""


def _dotted(path: tuple[str, ...]) -> str:
    return ".".join(path)


def plain(props: Any, *path: str) -> Any:
    """The value at `path` (None when absent); UndecidableError when it is unknown."""
    value = props
    try:
        for depth, key in enumerate(path):
            if value is None:
                return None
            if not isinstance(value, Mapping):
                raise UndecidableError(
                    f"`{_dotted(path[:depth])}` is {value!r}, not an object with `{key}`"
                )
            value = value.get(key)
    except UnknownValueError as unknown:
        raise UndecidableError(
            f"`{_dotted(path)}` is not known until apply ({unknown.message}); "
            "set it as a plain value so the policy can decide during preview"
        ) from unknown
    return value


def plain_items(props: Any, *path: str) -> list[Any]:
    """The elements of the list at `path` (empty when absent), each element still proxied."""
    value = plain(props, *path)
    if value is None:
        return []
    if isinstance(value, str | bytes | Mapping):
        raise UndecidableError(f"`{_dotted(path)}` is {value!r}, not a list")
    try:
        return list(value)
    except UnknownValueError as unknown:
        raise UndecidableError(
            f"an element of `{_dotted(path)}` is not known until apply ({unknown.message})"
        ) from unknown
    except TypeError as error:
        raise UndecidableError(f"`{_dotted(path)}` is {value!r}, not a list") from error


def as_number(value: Any, what: str) -> float | None:
    """Numbers arrive as numbers or, for OCI sizes and Docker cpus, as numeric strings."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError) as error:
        raise UndecidableError(f"`{what}` is {value!r}, not a number") from error


def plain_number(props: Any, *path: str) -> float | None:
    return as_number(plain(props, *path), _dotted(path))


def plain_text(props: Any, *path: str) -> str | None:
    """The text at `path`; None when absent or empty."""
    value = plain(props, *path)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise UndecidableError(f"`{_dotted(path)}` is {value!r}, not text")
    return value


def container_label(props: Any, label: str) -> str | None:
    for item in plain_items(props, "labels"):
        if plain(item, "label") == label:
            return plain_text(item, "value")
    return None


def container_host(props: Any) -> str | None:
    """The host a container is placed on: its `ai-swarm.host` label."""
    return container_label(props, HOST_LABEL)


def instance_host(props: Any) -> str | None:
    """The host name an instance offers to containers: its `ai-swarm-host` freeform tag."""
    return plain_text(props, "freeformTags", HOST_TAG)


def pulled_image(resource_type: str, props: Any) -> str | None:
    """The image reference a `RemoteImage` pulls or a container names, as written. None for
    any other type, for none given, and for an image id (`sha256:…`): content-addressed
    already, or (unknown until the pull) a RemoteImage's, whose name is judged on its own."""
    if resource_type == REMOTE_IMAGE:
        reference = plain(props, "name")
    elif resource_type == CONTAINER:
        try:
            reference = plain(props, "image")
        except UndecidableError:
            return None
    else:
        return None
    if not reference or str(reference).startswith("sha256:"):
        return None
    return str(reference)
