"""The replica from the operator's side: `status`'s replication lines, and how the replication
verbs reach the two Postgres servers.

Everything runs in the Postgres containers over SSH (`docker exec <container> sh -c ...`) as the
image's superuser, whose password the shell there reads from the container's own environment:
no database password is ever part of a command line on either host or printed here.

`status` reads each subscription on the replica (`pg_subscription`, `pg_stat_subscription`,
`pg_stat_subscription_stats`) and each logical slot on the primary (`pg_replication_slots`,
`pg_stat_replication`), and joins them by slot name.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from components.backups import AS_SUPERUSER
from components.replication import (
    DATABASES,
    MAX_SLOT_WAL_KEEP_SIZE_MB,
    REPLICA_CONTAINER,
    subscription_name,
)
from components.services.catalog import CATALOG
from deploy.ports import OperatorError, RemoteShell
from deploy.status import (
    LEVEL_STYLE,
    ContainerStatus,
    Level,
    StatusReadError,
    read_containers,
)

PRIMARY_CONTAINER: Final = CATALOG["postgres"].containers[0]

# idle-check's advice when the replica is at risk (docs/replica.md says the same at length).
REPLICA_AT_RISK: Final = (
    "Oracle may stop the replica as idle; its boot volume, which holds the replica's data, is "
    "kept. Start it again (OCI Console, or `oci compute instance action --action START "
    "--instance-id <id>`) and its subscriptions resume from the WAL the primary's slots kept, "
    f"up to {MAX_SLOT_WAL_KEEP_SIZE_MB} MB each (`python -m deploy status` shows each slot's "
    "WAL status). A slot that is `lost` cannot resume: the replica's reconcile (in `up`, and "
    "every 15 minutes) then empties its tables and copies them anew from the primary."
)

# Bytes of WAL the subscriber has not yet confirmed, and the primary's measured replay lag,
# beyond which `status` warns: one WAL segment (16 MiB), and five minutes. A replica that far
# behind is not keeping up (or not connected); the slot's `wal_status` says when the primary
# is about to give up on it.
LAG_WARN_BYTES: Final = 16 * 1024**2
LAG_WARN_SECONDS: Final = 300.0

# wal_status (PostgreSQL 15, pg_replication_slots): `reserved` within max_wal_size;
# `extended` beyond it but kept for the slot (within max_slot_wal_keep_size); `unreserved`
# will be removed at the next checkpoint; `lost` is gone: the subscription cannot resume.
_WAL_STATUS_LEVEL: Final = {
    "reserved": Level.OK,
    "extended": Level.WARN,
    "unreserved": Level.FAIL,
    "lost": Level.FAIL,
}

SUBSCRIPTIONS_SQL: Final = """SELECT coalesce(json_agg(s ORDER BY s.name), '[]') FROM (
  SELECT sub.subname AS name, d.datname AS database, sub.subenabled AS enabled,
         sub.subslotname AS slot, w.pid IS NOT NULL AS running,
         coalesce(st.apply_error_count, 0) AS apply_errors,
         coalesce(st.sync_error_count, 0) AS sync_errors
  FROM pg_subscription sub
  JOIN pg_database d ON d.oid = sub.subdbid
  LEFT JOIN pg_stat_subscription w ON w.subid = sub.oid AND w.relid IS NULL
  LEFT JOIN pg_stat_subscription_stats st ON st.subid = sub.oid
) s"""

SLOTS_SQL: Final = """SELECT coalesce(json_agg(s ORDER BY s.slot), '[]') FROM (
  SELECT r.slot_name AS slot, r.database, r.active, r.wal_status,
         pg_wal_lsn_diff(pg_current_wal_lsn(), r.restart_lsn)::bigint AS retained_bytes,
         pg_wal_lsn_diff(pg_current_wal_lsn(), r.confirmed_flush_lsn)::bigint AS lag_bytes,
         extract(epoch FROM rep.replay_lag)::float8 AS lag_seconds
  FROM pg_replication_slots r
  LEFT JOIN pg_stat_replication rep ON rep.pid = r.active_pid
  WHERE r.slot_type = 'logical'
) s"""


def in_container(container: str, shell: str, *, stdin: bool = False) -> str:
    """The host command that runs `shell` in `container` (`-i` passes standard input)."""
    return f"docker exec{' -i' if stdin else ''} {container} sh -c {shlex.quote(shell)}"


def psql(sql: str | None, database: str | None = None) -> str:
    """The container's psql as the image's superuser on `database` (the image's own database
    when None), stopping at the first error; `sql` as its command, or its standard input when
    None. Unaligned tuples only, so a query's single value is its whole output."""
    dbname = '"$POSTGRES_DB"' if database is None else shlex.quote(database)
    command = (
        f'{AS_SUPERUSER} psql --username="$POSTGRES_USER" --dbname={dbname} --no-psqlrc '
        "--quiet --tuples-only --no-align --set=ON_ERROR_STOP=1"
    )
    return command if sql is None else f"{command} --command={shlex.quote(sql)}"


def query_json(
    shell: RemoteShell, container: str, sql: str, what: str, database: str | None = None
) -> list[Any]:
    """The JSON array a `json_agg` query prints in `container`; `StatusReadError` naming
    `what` otherwise."""
    done = shell.run(in_container(container, psql(sql, database)))
    if done.exit_code != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise StatusReadError(f"{what}: {lines[-1] if lines else f'exit {done.exit_code}'}")
    try:
        rows = json.loads(done.stdout)
    except json.JSONDecodeError as error:
        raise StatusReadError(f"{what}: psql did not print JSON: {error}") from None
    if not isinstance(rows, list):
        raise StatusReadError(f"{what}: not a JSON array")
    return rows


# ---------------------------------------------------------------------------------------------
# status


@dataclass(frozen=True)
class SubscriptionFact:
    name: str
    database: str
    enabled: bool
    running: bool  # an apply worker exists now
    apply_errors: int
    sync_errors: int
    slot: str | None  # None after `SET (slot_name = NONE)`

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> SubscriptionFact:
        return cls(
            name=str(row["name"]),
            database=str(row["database"]),
            enabled=bool(row["enabled"]),
            running=bool(row["running"]),
            apply_errors=int(row["apply_errors"]),
            sync_errors=int(row["sync_errors"]),
            slot=None if row.get("slot") is None else str(row["slot"]),
        )


@dataclass(frozen=True)
class SlotFact:
    slot: str
    database: str | None
    active: bool
    wal_status: str | None
    retained_bytes: int | None  # None once the slot is lost (no restart_lsn)
    lag_bytes: int | None
    lag_seconds: float | None  # the walsender's replay_lag; None when idle or not connected

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> SlotFact:
        retained, lag, seconds = (
            row.get(key) for key in ("retained_bytes", "lag_bytes", "lag_seconds")
        )
        return cls(
            slot=str(row["slot"]),
            database=None if row.get("database") is None else str(row["database"]),
            active=bool(row["active"]),
            wal_status=None if row.get("wal_status") is None else str(row["wal_status"]),
            retained_bytes=None if retained is None else int(retained),
            lag_bytes=None if lag is None else int(lag),
            lag_seconds=None if seconds is None else float(seconds),
        )


@dataclass(frozen=True)
class ReplicationRow:
    """One subscription with its slot (either may be missing), as `status` shows it."""

    name: str
    database: str
    subscription: SubscriptionFact | None
    slot: SlotFact | None
    level: Level
    problems: tuple[str, ...]


def _bytes(size: int | None) -> str:
    if size is None:
        return "-"
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if abs(size) >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def _judge(
    expected: bool, sub: SubscriptionFact | None, slot: SlotFact | None
) -> tuple[Level, tuple[str, ...]]:
    """The row's level and what is wrong, worst first by the order of the checks."""
    found: list[tuple[Level, str]] = []
    if sub is None and expected:
        found.append((Level.FAIL, "no subscription on the replica"))
    if sub is not None:
        if not sub.enabled:
            found.append((Level.FAIL, "subscription disabled (an apply error disables it)"))
        elif not sub.running:
            found.append((Level.WARN, "no apply worker running"))
        if sub.apply_errors or sub.sync_errors:
            found.append(
                (Level.WARN, f"{sub.apply_errors} apply / {sub.sync_errors} sync error(s)")
            )
    if slot is None:
        if sub is not None or expected:
            found.append((Level.FAIL, "no slot on the primary"))
    else:
        wal_level = _WAL_STATUS_LEVEL.get(slot.wal_status or "", Level.WARN)
        if wal_level is not Level.OK:
            found.append((wal_level, f"slot WAL {slot.wal_status}"))
        if not slot.active and (sub is None or sub.enabled):
            found.append((Level.WARN, "slot not in use (subscriber not connected)"))
        if slot.lag_bytes is not None and slot.lag_bytes > LAG_WARN_BYTES:
            found.append((Level.WARN, f"{_bytes(slot.lag_bytes)} behind"))
        if slot.lag_seconds is not None and slot.lag_seconds > LAG_WARN_SECONDS:
            found.append((Level.WARN, f"replay {slot.lag_seconds:.0f} s behind"))
    level = max((level for level, _ in found), default=Level.OK)
    return level, tuple(text for _, text in found)


def replication_rows(
    subscriptions: Sequence[SubscriptionFact], slots: Sequence[SlotFact]
) -> tuple[ReplicationRow, ...]:
    """One row per database of the stack (its subscription and slot, expected to exist), then
    every other subscription on the replica and every other logical slot on the primary (an
    off-cloud peer's, say: it keeps WAL as well)."""
    subs = {sub.name: sub for sub in subscriptions}
    by_slot = {slot.slot: slot for slot in slots}
    rows: list[ReplicationRow] = []
    used_slots: set[str] = set()
    ours = {subscription_name(database): database for database in DATABASES}
    named = [(name, database, True) for name, database in ours.items()]
    named += [(s.name, s.database, False) for s in subscriptions if s.name not in ours]
    for name, database, expected in named:
        sub = subs.get(name)
        slot_name = sub.slot if sub is not None and sub.slot is not None else name
        slot = by_slot.get(slot_name)
        used_slots.add(slot_name)
        level, problems = _judge(expected, sub, slot)
        rows.append(ReplicationRow(name, database, sub, slot, level, problems))
    for slot in slots:
        if slot.slot in used_slots:
            continue
        level, problems = _judge(False, None, slot)
        rows.append(ReplicationRow(slot.slot, slot.database or "?", None, slot, level, problems))
    return tuple(rows)


@dataclass(frozen=True)
class ReplicationReport:
    rows: tuple[ReplicationRow, ...]
    unreadable: tuple[str, ...] = ()  # a side that could not be read, and why

    @property
    def level(self) -> Level:
        worst = max((row.level for row in self.rows), default=Level.OK)
        return Level.FAIL if self.unreadable else worst


def collect_replication(primary: RemoteShell, replica: RemoteShell) -> ReplicationReport:
    """Subscriptions on the replica and slots on the primary; a side that cannot be read is a
    failure of its own and leaves its columns empty."""
    unreadable: list[str] = []
    subscriptions: list[SubscriptionFact] = []
    slots: list[SlotFact] = []
    try:
        rows = query_json(replica, REPLICA_CONTAINER, SUBSCRIPTIONS_SQL, "replica subscriptions")
        subscriptions = [SubscriptionFact.of(row) for row in rows]
    except StatusReadError as error:
        unreadable.append(str(error))
    try:
        rows = query_json(primary, PRIMARY_CONTAINER, SLOTS_SQL, "primary slots")
        slots = [SlotFact.of(row) for row in rows]
    except StatusReadError as error:
        unreadable.append(str(error))
    if unreadable:
        return ReplicationReport(rows=(), unreadable=tuple(unreadable))
    return ReplicationReport(rows=replication_rows(subscriptions, slots))


def _state_cell(sub: SubscriptionFact | None) -> str:
    if sub is None:
        return "-"
    if not sub.enabled:
        return "disabled"
    return "enabled" if sub.running else "enabled, no worker"


def _lag_cell(slot: SlotFact | None) -> str:
    if slot is None or slot.lag_bytes is None:
        return "-"
    seconds = "" if slot.lag_seconds is None else f", {slot.lag_seconds:.1f} s"
    return f"{_bytes(slot.lag_bytes)}{seconds}"


def render_replication(report: ReplicationReport, console: Console) -> None:
    table = Table(title="replication (replica subscriptions, primary slots)", title_justify="left")
    for column in (
        "subscription",
        "database",
        "state",
        "errors",
        "lag",
        "slot WAL",
        "retained",
        "",
        "detail",
    ):
        table.add_column(column)
    for row in report.rows:
        style = LEVEL_STYLE[row.level]
        sub, slot = row.subscription, row.slot
        errors = "-" if sub is None else f"{sub.apply_errors} apply, {sub.sync_errors} sync"
        table.add_row(
            escape(row.name),
            escape(row.database),
            _state_cell(sub),
            errors,
            _lag_cell(slot),
            escape(slot.wal_status or "-") if slot else "-",
            _bytes(slot.retained_bytes) if slot else "-",
            f"[{style}]{row.level.name.lower()}[/]",
            escape("; ".join(row.problems)),
        )
    console.print(table)
    for reason in report.unreadable:
        console.print(f"[red]replication unreadable[/]: {escape(reason)}")


@dataclass(frozen=True)
class ReplicaStatus:
    """`status`'s part for the replica host: its containers and the replication."""

    containers: tuple[ContainerStatus, ...]
    replication: ReplicationReport

    @property
    def level(self) -> Level:
        levels = [c.level for c in self.containers] + [self.replication.level]
        return max(levels, default=Level.OK)


def replica_output(outputs: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The stack's `replica` output (None: the stack has no replica)."""
    value = outputs.get("replica")
    if value is None:
        return None
    if not isinstance(value, Mapping) or not all(
        isinstance(value.get(key), str) and value.get(key) for key in ("instanceId", "publicIp")
    ):
        raise OperatorError(
            "the stack's output 'replica' has no instanceId and publicIp: run `python -m "
            "deploy up` after updating"
        )
    return value


def collect_replica_status(
    primary: RemoteShell, replica: RemoteShell, expected_containers: Sequence[str]
) -> ReplicaStatus:
    """The replica host's containers and the replication; a replica that cannot be reached
    is a failure of the replication, not an error of the whole command."""
    try:
        containers = read_containers(replica, expected_containers)
    except StatusReadError as error:
        unreachable = ReplicationReport(rows=(), unreadable=(f"replica host: {error}",))
        return ReplicaStatus(containers=(), replication=unreachable)
    return ReplicaStatus(containers, collect_replication(primary, replica))
