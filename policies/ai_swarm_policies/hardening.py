"""container-hardening: no container can take the host, the Docker daemon or more privileges.

Pipelines runs uploaded Python by design, so any container may be hostile. A container fails
when it runs privileged, mounts the Docker socket (control of every container and so of the
host), mounts a host path writable outside the data volume, keeps Docker's default capabilities
(it must drop ALL), adds back one outside `allowedCapabilities`, or can gain privileges through
setuid binaries (no `no-new-privileges`).
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator, Sequence
from typing import Any, Final

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)

from .contract import CONTAINER
from .messages import deciding
from .reading import UndecidableError, plain, plain_items
from .settings import settings, strings

DOCKER_SOCKETS: Final = frozenset({"/var/run/docker.sock", "/run/docker.sock"})
NO_NEW_PRIVILEGES: Final = frozenset({"no-new-privileges", "no-new-privileges:true"})

CONTAINER_HARDENING_SCHEMA: Final = PolicyConfigSchema(
    {
        "allowedCapabilities": strings(
            # What an image entrypoint needs to hand its data directory to the service user
            # and drop to it (chown, walk 0700 directories, setuid/setgid).
            ["CHOWN", "DAC_READ_SEARCH", "SETUID", "SETGID"],
            "Capabilities a container may add back after dropping ALL.",
        ),
        "writableHostPaths": strings(
            ["/mnt/data"],
            "Host directories a container may mount writable (with everything under them).",
        ),
    }
)


def _host_mounts(props: Any) -> Iterator[tuple[str, bool]]:
    """(host path, read-only) of every bind mount and host-path volume."""
    for mount in plain_items(props, "mounts"):
        if plain(mount, "type") == "bind":
            yield _text(plain(mount, "source"), "mounts[].source"), plain(mount, "readOnly") is True
    for volume in plain_items(props, "volumes"):
        host_path = plain(volume, "hostPath")
        if host_path is not None:
            yield _text(host_path, "volumes[].hostPath"), plain(volume, "readOnly") is True


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise UndecidableError(f"`{what}` is {value!r}, not a host path")
    return value


def _inside(path: str, roots: Sequence[str]) -> bool:
    """Whether `path` is one of `roots` or below one, after resolving `..` and `//`."""
    normal = posixpath.normpath(path)
    return any(
        normal == posixpath.normpath(root) or normal.startswith(posixpath.normpath(root) + "/")
        for root in roots
    )


def _mount_problems(props: Any, writable: Sequence[str]) -> list[str]:
    problems = []
    for source, read_only in _host_mounts(props):
        if posixpath.normpath(source) in DOCKER_SOCKETS:
            problems.append(f"mounts the Docker socket {source} (control of the host)")
        elif not read_only and not _inside(source, writable):
            problems.append(
                f"mounts the host's {source} writable, outside {', '.join(writable)} "
                "(writableHostPaths)"
            )
    return problems


def _capability_problems(props: Any, allowed: frozenset[str]) -> list[str]:
    drops = {str(c).upper() for c in plain_items(props, "capabilities", "drops")}
    adds = {str(c).upper().removeprefix("CAP_") for c in plain_items(props, "capabilities", "adds")}
    problems = []
    if "ALL" not in drops:
        problems.append("keeps Docker's default capabilities (NET_RAW among them): drop ALL")
    beyond = sorted(adds - allowed)
    if beyond:
        problems.append(
            f"adds {', '.join(beyond)}, beyond allowedCapabilities ({', '.join(sorted(allowed))})"
        )
    return problems


def _check_container_hardening(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != CONTAINER:
        return
    setting = settings(args.get_config(), CONTAINER_HARDENING_SCHEMA)
    problems = []
    if plain(args.props, "privileged") is True:
        problems.append("runs privileged (every capability and device of the host)")
    problems += _mount_problems(args.props, list(setting("writableHostPaths")))
    problems += _capability_problems(args.props, frozenset(setting("allowedCapabilities")))
    options = {str(o) for o in plain_items(args.props, "securityOpts")}
    if not options & NO_NEW_PRIVILEGES:
        problems.append("can gain privileges through setuid binaries: set no-new-privileges")
    if problems:
        report(
            f"Container '{args.name}': {'; '.join(problems)}. Fix: give the container only what "
            "its entrypoint needs (components/services/privileges.py), or widen "
            "allowedCapabilities / writableHostPaths in the container-hardening pack config.",
            None,
        )


def container_hardening_policy() -> Policy:
    return ResourceValidationPolicy(
        name="container-hardening",
        description=(
            "Containers are unprivileged: no Docker socket, no writable host path outside the "
            "data volume, ALL capabilities dropped but an allow-list, no-new-privileges."
        ),
        validate=deciding(_check_container_hardening),
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=CONTAINER_HARDENING_SCHEMA,
    )
