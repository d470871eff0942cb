"""`python -m deploy status`: the containers, Vault's seal, the data volume and the backups,
read over SSH (Docker's JSON formats, `findmnt --json`, `stat` as JSON lines) and from OCI."""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from deploy.durations import format_duration
from deploy.ports import Cloud, CloudError, RemoteShell, VolumeBackupFact

DATA_MOUNT: Final = "/mnt/data"
LOGICAL_BACKUP_DIR: Final = "/mnt/data/backups/postgres"
VAULT_CONTAINER: Final = "vault"

# `docker ps -q` can be empty; `xargs -r` then runs nothing and the output is empty.
DOCKER_INSPECT: Final = (
    "docker ps --all --quiet --no-trunc | xargs --no-run-if-empty docker inspect"
)
DOCKER_STATS: Final = "docker stats --no-stream --no-trunc --format '{{json .}}'"
VAULT_SEAL_STATUS: Final = (
    f"docker exec {VAULT_CONTAINER} wget -qO- http://127.0.0.1:8200/v1/sys/seal-status"
)
DATA_DISK: Final = (
    f"findmnt --json --bytes --output TARGET,SOURCE,SIZE,USED,AVAIL --mountpoint {DATA_MOUNT}"
)
LOGICAL_BACKUPS: Final = (
    f"find {LOGICAL_BACKUP_DIR} -maxdepth 1 -type f "
    '-exec stat --format \'{"path": "%n", "bytes": %s, "mtime": %Y}\' {} +'
)

MEMORY_WARN_SHARE: Final = 0.9  # of the container's limit: close to being OOM-killed
DISK_WARN_SHARE: Final = 0.8
DISK_FAIL_SHARE: Final = 0.9
# Logical dumps are taken daily; the volume backup policy runs weekly (REFERENCE.md).
LOGICAL_BACKUP_MAX_AGE: Final = timedelta(hours=48)
VOLUME_BACKUP_MAX_AGE: Final = timedelta(days=8)

_SIZE: Final = re.compile(r"\s*(?P<number>[0-9]+(?:\.[0-9]+)?)\s*(?P<unit>[A-Za-z]*)\s*")
_UNIT_BYTES: Final = {
    "": 1,
    "b": 1,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
}


class Level(enum.IntEnum):
    OK = 0
    WARN = 1
    FAIL = 2


LEVEL_STYLE: Final = {Level.OK: "green", Level.WARN: "yellow", Level.FAIL: "red"}


@dataclass(frozen=True)
class ContainerStatus:
    name: str
    state: str  # Docker's State.Status, or "missing"
    health: str | None  # State.Health.Status; None without a healthcheck
    restarts: int
    memory_used: int | None  # bytes, from docker stats
    memory_limit: int | None  # bytes, HostConfig.Memory; None when unlimited
    cpu_percent: float | None  # docker stats CPUPerc: 100 is one full CPU
    cpu_limit: float | None  # HostConfig.NanoCpus in CPUs; None when unlimited

    @property
    def level(self) -> Level:
        if self.state != "running" or self.health == "unhealthy":
            return Level.FAIL
        if self.health == "starting" or self.restarts > 0 or self.memory_near_limit:
            return Level.WARN
        return Level.OK

    @property
    def memory_near_limit(self) -> bool:
        if self.memory_used is None or not self.memory_limit:
            return False
        return self.memory_used >= MEMORY_WARN_SHARE * self.memory_limit


@dataclass(frozen=True)
class Check:
    subject: str
    level: Level
    summary: str


@dataclass(frozen=True)
class StatusReport:
    containers: tuple[ContainerStatus, ...]
    checks: tuple[Check, ...]

    @property
    def level(self) -> Level:
        levels = [c.level for c in self.containers] + [c.level for c in self.checks]
        return max(levels, default=Level.OK)

    @property
    def exit_code(self) -> int:
        return 1 if self.level is Level.FAIL else 0


class StatusReadError(Exception):
    """A command's output could not be read as the JSON it should be."""


# ---------------------------------------------------------------------------------------------
# Parsing


def parse_size(text: str) -> int:
    """Bytes in a Docker size such as `52.4MiB`, `1.5GiB`, `0B` or `12kB`."""
    match = _SIZE.fullmatch(text)
    unit = match["unit"].lower() if match else None
    if match is None or unit not in _UNIT_BYTES:
        raise StatusReadError(f"not a size: {text!r}")
    return round(float(match["number"]) * _UNIT_BYTES[unit])


def parse_percent(text: str) -> float | None:
    """`12.5%` as 12.5; Docker prints `--` for a container that is not running."""
    stripped = text.strip().rstrip("%")
    try:
        return float(stripped)
    except ValueError:
        return None


def parse_inspect(output: str) -> list[dict[str, Any]]:
    """`docker inspect`'s JSON array (empty output: no containers)."""
    if not output.strip():
        return []
    try:
        parsed = json.loads(output)
    except json.JSONDecodeError as error:
        raise StatusReadError(f"docker inspect did not print JSON: {error}") from None
    if not isinstance(parsed, list):
        raise StatusReadError("docker inspect did not print a JSON array")
    return [item for item in parsed if isinstance(item, dict)]


def parse_stats(output: str) -> dict[str, dict[str, Any]]:
    """`docker stats --format '{{json .}}'`: one JSON object a line, by container name."""
    stats: dict[str, dict[str, Any]] = {}
    for line in output.splitlines():
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as error:
            raise StatusReadError(f"docker stats did not print JSON lines: {error}") from None
        if isinstance(entry, dict) and isinstance(entry.get("Name"), str):
            stats[entry["Name"].lstrip("/")] = entry
    return stats


def container_statuses(
    inspected: Sequence[Mapping[str, Any]],
    stats: Mapping[str, Mapping[str, Any]],
    expected: Sequence[str],
) -> tuple[ContainerStatus, ...]:
    """One row per expected container (in that order, `missing` when absent), then any other
    container on the host."""
    by_name = {str(item.get("Name", "")).lstrip("/"): item for item in inspected}
    names = list(expected) + sorted(name for name in by_name if name not in expected)
    rows: list[ContainerStatus] = []
    for name in names:
        item = by_name.get(name)
        if item is None:
            rows.append(ContainerStatus(name, "missing", None, 0, None, None, None, None))
            continue
        rows.append(_container_status(name, item, stats.get(name, {})))
    return tuple(rows)


def _container_status(
    name: str, item: Mapping[str, Any], stats: Mapping[str, Any]
) -> ContainerStatus:
    state = item.get("State") or {}
    host_config = item.get("HostConfig") or {}
    health = state.get("Health") or {}
    memory_limit = int(host_config.get("Memory") or 0)
    nano_cpus = int(host_config.get("NanoCpus") or 0)
    usage = str(stats.get("MemUsage", ""))
    memory_used = parse_size(usage.split("/", maxsplit=1)[0]) if "/" in usage else None
    return ContainerStatus(
        name=name,
        state=str(state.get("Status", "unknown")),
        health=str(health["Status"]) if health.get("Status") else None,
        restarts=int(item.get("RestartCount") or 0),
        memory_used=memory_used,
        memory_limit=memory_limit or None,
        cpu_percent=parse_percent(str(stats["CPUPerc"])) if "CPUPerc" in stats else None,
        cpu_limit=nano_cpus / 1e9 if nano_cpus else None,
    )


def vault_check(result_code: int, output: str) -> Check:
    """`GET /v1/sys/seal-status` (Vault and OpenBao answer alike): initialised and unsealed."""
    try:
        status = json.loads(output) if result_code == 0 else None
    except json.JSONDecodeError:
        status = None
    if not isinstance(status, dict) or "sealed" not in status:
        return Check("vault", Level.FAIL, "seal status unreadable (is the vault container up?)")
    if not status.get("initialized"):
        return Check("vault", Level.FAIL, "not initialised")
    if status["sealed"]:
        return Check("vault", Level.FAIL, "sealed")
    return Check("vault", Level.OK, "initialised, unsealed")


def disk_check(result_code: int, output: str) -> Check:
    subject = DATA_MOUNT
    if result_code != 0 or not output.strip():
        return Check(subject, Level.FAIL, "not mounted")
    try:
        filesystems = json.loads(output)["filesystems"]
        entry = filesystems[0]
        size, used = int(entry["size"]), int(entry["used"])
    except (json.JSONDecodeError, KeyError, IndexError, TypeError, ValueError):
        return Check(subject, Level.FAIL, "findmnt output unreadable")
    share = used / size if size else 1.0
    level = (
        Level.FAIL
        if share >= DISK_FAIL_SHARE
        else Level.WARN
        if share >= DISK_WARN_SHARE
        else Level.OK
    )
    summary = f"{_gib(used)} of {_gib(size)} used ({share:.0%}), {entry.get('source', '?')}"
    return Check(subject, level, summary)


def logical_backup_check(result_code: int, output: str, now: datetime) -> Check:
    subject = "postgres dumps"
    newest: tuple[float, str] | None = None
    for line in output.splitlines():
        try:
            entry = json.loads(line)
            stamp, path = float(entry["mtime"]), str(entry["path"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            continue
        if newest is None or stamp > newest[0]:
            newest = (stamp, path)
    if newest is None:
        where = LOGICAL_BACKUP_DIR if result_code == 0 else f"{LOGICAL_BACKUP_DIR} (absent)"
        return Check(subject, Level.WARN, f"none in {where}")
    created = datetime.fromtimestamp(newest[0], tz=now.tzinfo)
    return _age_check(subject, created, now, LOGICAL_BACKUP_MAX_AGE, newest[1].rsplit("/", 1)[-1])


def volume_backup_check(
    cloud: Cloud | None, volume_id: str | None, now: datetime, unavailable: str | None = None
) -> Check:
    subject = "volume backups"
    if volume_id is None:
        return Check(subject, Level.FAIL, unavailable or "no data volume id")
    if cloud is None:
        return Check(subject, Level.WARN, f"unreadable: {unavailable or 'no OCI access'}")
    try:
        backups: Sequence[VolumeBackupFact] = cloud.volume_backups(volume_id)
    except CloudError as error:
        return Check(subject, Level.WARN, f"unreadable: {error}")
    available = [b for b in backups if b.lifecycle_state == "AVAILABLE"]
    if not available:
        return Check(subject, Level.WARN, "none")
    newest = max(available, key=lambda backup: backup.created)
    label = f"{newest.display_name} ({newest.kind.lower()}, {len(available)} kept)"
    return _age_check(subject, newest.created, now, VOLUME_BACKUP_MAX_AGE, label)


def _age_check(
    subject: str, created: datetime, now: datetime, max_age: timedelta, label: str
) -> Check:
    age = now - created
    level = Level.FAIL if age > max_age else Level.OK
    return Check(subject, level, f"newest {format_duration(age.total_seconds())} old: {label}")


def _gib(size: int) -> str:
    return f"{size / 1024**3:.1f} GiB"


# ---------------------------------------------------------------------------------------------
# Collecting


def collect_status(
    shell: RemoteShell,
    expected_containers: Sequence[str],
    *,
    now: datetime,
    cloud: Cloud | None,
    data_volume_id: str | None,
    cloud_unavailable: str | None = None,
) -> StatusReport:
    """Everything `status` shows; raises `StatusReadError` when Docker cannot be read at all."""
    containers = read_containers(shell, expected_containers)
    disk = shell.run(DATA_DISK)
    dumps = shell.run(LOGICAL_BACKUPS)
    checks = (
        _vault(shell, expected_containers),
        disk_check(disk.exit_code, disk.stdout),
        logical_backup_check(dumps.exit_code, dumps.stdout, now),
        volume_backup_check(cloud, data_volume_id, now, cloud_unavailable),
    )
    return StatusReport(containers=containers, checks=checks)


def read_containers(
    shell: RemoteShell, expected_containers: Sequence[str]
) -> tuple[ContainerStatus, ...]:
    """The host's containers (`container_statuses`); `StatusReadError` when Docker cannot be
    read at all."""
    inspected = shell.run(DOCKER_INSPECT)
    if inspected.exit_code != 0:
        raise StatusReadError(
            f"docker inspect failed ({inspected.exit_code}): {_last_line(inspected.stderr)}"
        )
    stats = shell.run(DOCKER_STATS)
    return container_statuses(
        parse_inspect(inspected.stdout),
        parse_stats(stats.stdout) if stats.exit_code == 0 else {},
        expected_containers,
    )


def _vault(shell: RemoteShell, expected_containers: Sequence[str]) -> Check:
    if VAULT_CONTAINER not in expected_containers:
        return Check("vault", Level.OK, "not deployed (disabled in ai-swarm:services)")
    result = shell.run(VAULT_SEAL_STATUS)
    return vault_check(result.exit_code, result.stdout)


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"
