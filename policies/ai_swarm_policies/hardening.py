"""container-hardening: no container can take the host, the Docker daemon or more privileges.

Pipelines runs uploaded Python by design, so any container may be hostile. A container fails
when it runs privileged; shares a host namespace (network, PID, IPC, user, cgroup) unless
`hostAccess` grants it by name; reaches a host device; turns off seccomp, AppArmor, SELinux
labels or the masked /proc paths, or sets a security option the pack cannot judge; mounts the
Docker socket or a directory holding it (a socket connects through a read-only mount too);
mounts a host path writable outside the data volume; keeps Docker's default capabilities (it
must drop ALL) or adds one outside `allowedCapabilities`; adds one of
`rootRefusedCapabilities` while its process runs as root; or can gain privileges through setuid
binaries (no `no-new-privileges`). Docker volumes and networks are held to the same bar (a
`local` volume can bind any host path or device), and every other `docker:` type, which the
pack cannot judge, is a violation.

Paths are compared after normalising them as the kernel resolves them (`//`, `.`, `..`, and the
`/var/run` -> `/run` link of the host's Ubuntu).
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)

from .contract import CONTAINER, DOCKER_NETWORK, DOCKER_PREFIX, DOCKER_VOLUME, UNDERSTOOD_TYPES
from .messages import deciding
from .reading import UndecidableError, plain, plain_items, plain_text
from .settings import Settings, settings, strings

# The sockets that control every container, and so the host.
DAEMON_SOCKETS: Final[Mapping[str, str]] = {
    "/run/docker.sock": "the Docker socket",
    "/run/containerd/containerd.sock": "containerd's socket",
}

# A host namespace a container may share: the name `hostAccess` uses -> the input that shares it.
NAMESPACES: Final[Mapping[str, str]] = {
    "network": "networkMode",
    "pid": "pidMode",
    "ipc": "ipcMode",
    "userns": "usernsMode",
    "cgroupns": "cgroupnsMode",
}
# The access `hostAccess` names for a read-only mount of a directory that holds a daemon socket.
SOCKET_DIRECTORY: Final = "socket-directory"

# What a root process does with each capability `rootRefusedCapabilities` names by default.
ROOT_ESCAPES: Final[Mapping[str, str]] = {
    "DAC_READ_SEARCH": "opens any host file by handle (open_by_handle_at, which Docker's "
    "default seccomp profile allows with this capability)",
    "DAC_OVERRIDE": "reads and writes every file whatever its owner",
    "SYS_ADMIN": "mounts filesystems and more, close to privileged",
    "SYS_PTRACE": "traces and injects code into other processes",
    "SYS_MODULE": "loads kernel modules",
}
ROOT_USERS: Final = frozenset({"", "root", "0"})

# Security options known to turn a protection off.
UNCONFINED: Final[Mapping[tuple[str, str], str]] = {
    ("seccomp", "unconfined"): "turns seccomp off",
    ("apparmor", "unconfined"): "turns AppArmor off",
    ("label", "disable"): "turns SELinux labels off",
    ("systempaths", "unconfined"): "unmasks /proc and /sys paths",
}

CONTAINER_HARDENING_SCHEMA: Final = PolicyConfigSchema(
    {
        "allowedCapabilities": strings(
            # None: every container of the stack runs as its service's own user from the start
            # (components/services/privileges.py), so no entrypoint chowns or switches user.
            [],
            "Capabilities a container may add back after dropping ALL.",
        ),
        "rootRefusedCapabilities": strings(
            list(ROOT_ESCAPES),
            "Capabilities refused to a container whose process runs as root (`user` unset, "
            "root, 0 or 0:<gid>), even when allowedCapabilities has them.",
        ),
        "entrypointDropsRoot": strings(
            # None of the stack's containers starts as root.
            [],
            "Containers (by Docker name) whose image entrypoint starts as root and drops to a "
            "service user before the service runs, so their capabilities serve the entrypoint "
            "only and rootRefusedCapabilities does not apply.",
        ),
        "writableHostPaths": strings(
            ["/mnt/data"],
            "Host directories a container may mount writable (with everything under them).",
        ),
        "hostAccess": {
            "type": "object",
            "additionalProperties": {
                "type": "array",
                "items": {"enum": [*NAMESPACES, SOCKET_DIRECTORY]},
            },
            # node-exporter reads the host's metrics: its network and processes, and `/`
            # read-only (its image runs as nobody, which the Docker socket does not admit).
            "default": {"node-exporter": ["network", "pid", SOCKET_DIRECTORY]},
            "description": (
                "Per container (by Docker name), the host namespaces it may share (network, pid, "
                "ipc, userns, cgroupns) and whether it may mount a directory holding the Docker "
                f"socket read-only ({SOCKET_DIRECTORY})."
            ),
        },
    }
)


def host_path(path: str) -> str:
    """`path` as the host resolves it: `//`, `.` and `..` collapsed, `/var/run` read as `/run`."""
    normal = "/" + posixpath.normpath("/" + path).lstrip("/")
    if normal == "/var/run" or normal.startswith("/var/run/"):
        normal = normal.removeprefix("/var")
    return normal


def _socket_within(path: str) -> str | None:
    """The daemon socket that `path` (normalised) is or holds, if any."""
    for socket in DAEMON_SOCKETS:
        if path in (socket, "/") or socket.startswith(path + "/"):
            return socket
    return None


def _inside(path: str, roots: Sequence[str]) -> bool:
    """Whether `path` (normalised) is one of `roots` or below one."""
    return any(path == host_path(root) or path.startswith(host_path(root) + "/") for root in roots)


def _host_path_problem(
    source: str, read_only: bool, writable: Sequence[str], access: frozenset[str]
) -> str | None:
    path = host_path(source)
    socket = _socket_within(path)
    if socket is not None and path == socket:
        return f"mounts {DAEMON_SOCKETS[socket]} {source} (control of the host)"
    if socket is not None and not (read_only and SOCKET_DIRECTORY in access):
        return (
            f"mounts the host's {source}, which holds {DAEMON_SOCKETS[socket]} {socket} (a socket "
            f"connects through a read-only mount too; hostAccess {SOCKET_DIRECTORY})"
        )
    if not read_only and not _inside(path, writable):
        return (
            f"mounts the host's {source} writable, outside {', '.join(writable)} "
            "(writableHostPaths)"
        )
    return None


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise UndecidableError(f"`{what}` is {value!r}, not a host path")
    return value


def _option(props: Any, *path: str) -> str | None:
    value = plain(props, *path)
    return None if value is None or value == "" else str(value)


def _volume_driver_problems(
    where: str, driver: str | None, options: Any, writable: Sequence[str]
) -> list[str]:
    """A volume through Docker's `local` driver stays on Docker's disk or in memory; its `o`,
    `type` and `device` options can instead bind any host path or mount any device."""
    if driver not in (None, "local"):
        return [f"{where} uses the volume driver {driver}, a plugin the pack cannot judge"]
    kind = _option(options, "type")
    device = _option(options, "device")
    mount_options = set((_option(options, "o") or "").split(","))
    if mount_options & {"bind", "rbind"}:
        problem = _host_path_problem(
            _text(device, f"{where} device"), "ro" in mount_options, writable, frozenset()
        )
        return [f"{where} {problem}"] if problem else []
    if kind != "tmpfs" and (kind, device) != (None, None):  # a filesystem or device mount
        return [
            f"{where} mounts {device or 'a device'} (type {kind or 'unset'}) through the local "
            "driver, which the pack cannot judge: use a data directory under writableHostPaths"
        ]
    return []


def _host_mounts(props: Any) -> Iterator[tuple[str, bool]]:
    """(host path, read-only) of every bind mount and host-path volume."""
    for mount in plain_items(props, "mounts"):
        if plain(mount, "type") == "bind":
            yield _text(plain(mount, "source"), "mounts[].source"), plain(mount, "readOnly") is True
    for volume in plain_items(props, "volumes"):
        path = plain(volume, "hostPath")
        if path is not None:
            yield _text(path, "volumes[].hostPath"), plain(volume, "readOnly") is True


def _mount_problems(props: Any, writable: Sequence[str], access: frozenset[str]) -> list[str]:
    problems = []
    for source, read_only in _host_mounts(props):
        problem = _host_path_problem(source, read_only, writable, access)
        if problem:
            problems.append(problem)
    for index, mount in enumerate(plain_items(props, "mounts")):
        kind = plain(mount, "type")
        if kind == "volume":
            driver = _option(mount, "volumeOptions", "driverName")
            options = plain(mount, "volumeOptions", "driverOptions")
            problems += _volume_driver_problems(f"mounts[{index}]", driver, options, writable)
        elif kind not in ("bind", "tmpfs"):
            problems.append(f"mounts[{index}] has type {kind!r}, which the pack cannot judge")
    return problems


def _namespace_problems(props: Any, access: frozenset[str]) -> list[str]:
    problems = []
    for namespace, key in NAMESPACES.items():
        mode = _option(props, key) or ""
        shared = mode == "host" or mode.startswith("container:")
        if shared and namespace not in access:
            owner = "the host's" if mode == "host" else f"container {mode[10:]}'s"
            problems.append(f"shares {owner} {namespace} namespace ({key} {mode}; hostAccess)")
    return problems


def _device_problems(props: Any) -> list[str]:
    devices = [str(plain(device, "hostPath")) for device in plain_items(props, "devices")]
    rules = [str(rule) for rule in plain_items(props, "deviceCgroupRules")]
    drivers = [str(plain(request, "driver")) for request in plain_items(props, "deviceRequests")]
    problems = []
    if devices:
        problems.append(f"reaches the host devices {', '.join(devices)}")
    if rules:
        problems.append(f"may use host devices by cgroup rule ({', '.join(rules)})")
    if drivers or plain(props, "gpus"):
        problems.append("requests host devices through a device driver (deviceRequests, gpus)")
    return problems


def _security_option_problems(props: Any) -> list[str]:
    """Every option must be one the pack knows; without no-new-privileges setuid binaries can
    raise privileges."""
    no_new_privileges = False
    problems = []
    for option in (str(o) for o in plain_items(props, "securityOpts")):
        separator = min((i for i in (option.find("="), option.find(":")) if i >= 0), default=-1)
        key, value = (
            (option, "") if separator < 0 else (option[:separator], option[separator + 1 :])
        )
        if key == "no-new-privileges":
            no_new_privileges = value in ("", "true")
        elif (key, value) in UNCONFINED:
            problems.append(f"{UNCONFINED[key, value]} ({option})")
        else:
            shown = option if len(option) <= 60 else option[:57] + "..."
            problems.append(f"sets the security option {shown}, which the pack cannot judge")
    if not no_new_privileges:
        problems.append("can gain privileges through setuid binaries: set no-new-privileges")
    return problems


def _runs_as_root(props: Any) -> tuple[bool, str]:
    user = plain_text(props, "user") or ""
    return user.split(":", 1)[0] in ROOT_USERS, user or "unset (the image's user)"


def _capability_problems(props: Any, setting: Settings, name: str | None) -> list[str]:
    drops = {str(c).upper() for c in plain_items(props, "capabilities", "drops")}
    adds = {str(c).upper().removeprefix("CAP_") for c in plain_items(props, "capabilities", "adds")}
    allowed = frozenset(setting("allowedCapabilities"))
    problems = []
    if "ALL" not in drops:
        problems.append("keeps Docker's default capabilities (NET_RAW among them): drop ALL")
    beyond = sorted(adds - allowed)
    if beyond:
        problems.append(
            f"adds {', '.join(beyond)}, beyond allowedCapabilities ({', '.join(sorted(allowed))})"
        )
    refused = frozenset(setting("rootRefusedCapabilities"))
    dangerous = sorted(refused if "ALL" in adds else adds & refused)
    root, user = _runs_as_root(props)
    if dangerous and root and name not in setting("entrypointDropsRoot"):
        escapes = "; ".join(f"{c} {ROOT_ESCAPES.get(c, 'escapes as root')}" for c in dangerous)
        problems.append(
            f"runs as root (user {user}) with {', '.join(dangerous)} (rootRefusedCapabilities): "
            f"{escapes}"
        )
    return problems


def _container_problems(args: ResourceValidationArgs, setting: Settings) -> list[str]:
    props = args.props
    name = plain_text(props, "name")
    granted = setting("hostAccess").get(name, []) if name else []
    access = frozenset(str(a) for a in granted)
    writable = list(setting("writableHostPaths"))
    problems = []
    if plain(props, "privileged") is True:
        problems.append("runs privileged (every capability and device of the host)")
    problems += _namespace_problems(props, access)
    problems += _device_problems(props)
    problems += _mount_problems(props, writable, access)
    problems += _capability_problems(props, setting, name)
    problems += _security_option_problems(props)
    return problems


def _check_container_hardening(args: ResourceValidationArgs, report: ReportViolation) -> None:
    kind = args.resource_type
    if not kind.startswith(DOCKER_PREFIX):
        return
    if kind not in UNDERSTOOD_TYPES:
        report(
            f"{kind} '{args.name}' is a Docker resource type container-hardening cannot judge, "
            "so what it runs or mounts on the host is unchecked. Fix: run services as "
            "docker.Container (policies/ai_swarm_policies/contract.py, UNDERSTOOD_TYPES), or "
            "teach the pack to judge this type.",
            None,
        )
        return
    setting = settings(args.get_config(), CONTAINER_HARDENING_SCHEMA)
    if kind == CONTAINER:
        what, problems = "Container", _container_problems(args, setting)
    elif kind == DOCKER_VOLUME:
        what = "Volume"
        problems = _volume_driver_problems(
            "it",
            _option(args.props, "driver"),
            plain(args.props, "driverOpts"),
            list(setting("writableHostPaths")),
        )
    elif kind == DOCKER_NETWORK:
        what, driver = "Network", _option(args.props, "driver")
        problems = [] if driver in (None, "bridge") else [f"uses the {driver} driver, not bridge"]
    else:
        return
    if problems:
        report(
            f"{what} '{args.name}': {'; '.join(problems)}. Fix: give the container only what "
            "its entrypoint needs (components/services/privileges.py; a process that needs a "
            "refused capability as root runs as its own user instead, reading files that user "
            "owns), or widen allowedCapabilities / writableHostPaths / hostAccess in the "
            "container-hardening pack config.",
            None,
        )


def container_hardening_policy() -> Policy:
    return ResourceValidationPolicy(
        name="container-hardening",
        description=(
            "Containers are unprivileged: no host namespace, device or Docker socket, no "
            "writable host path outside the data volume, seccomp and AppArmor on, ALL "
            "capabilities dropped but an allow-list (none that escapes as root), "
            "no-new-privileges; no Docker type the pack cannot judge."
        ),
        validate=deciding(_check_container_hardening),
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=CONTAINER_HARDENING_SCHEMA,
    )
