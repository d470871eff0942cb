"""Backups of the host's state: OCI volume backups of the data volume on a schedule inside the
free allowance, and a nightly logical `pg_dump` of every PostgreSQL database onto that volume.

The volume backups are crash-consistent copies of the whole volume, taken by OCI. The dumps are
the unit of restore for a single database (and the way across a PostgreSQL major version): a
systemd timer on the host runs `ai-swarm-pg-dump` every night an hour before the volume backups'
hour (03:00 UTC with the default 04:00), which dumps every database but the templates, in custom
format, into `/mnt/data/backups/postgres` and keeps the newest seven of each. Every volume backup
is taken an hour after a dump, so each one holds fresh dumps too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_command as command
import pulumi_oci as oci

from components.config import BackupSchedule
from components.host import DATA_ROOT, HOST_TAG
from components.host_config import HostFile, install_files_script
from components.services.catalog import CATALOG

DUMP_DIR = f"{DATA_ROOT}/backups/postgres"
DUMPS_KEPT = 7
DUMP_UNIT = "ai-swarm-pg-dump"
DUMP_SCRIPT_PATH = f"/usr/local/sbin/{DUMP_UNIT}"
SYSTEMD_DIR = "/etc/systemd/system"
# The dump runs this long before the volume backup's hour: time for the dumps to finish first.
DUMP_LEAD_HOURS = 1
# How the host runs a command inside the Postgres container (its main and only container).
IN_POSTGRES = f"docker exec {CATALOG['postgres'].containers[0]}"
# The image's `local` connections use scram-sha-256 too, so a client inside the container needs
# the superuser's password: read from the container's own environment by the shell there, so it
# is never part of a command line on the host.
AS_SUPERUSER = 'PGPASSWORD="$POSTGRES_PASSWORD"'

_LIST_DATABASES = (
    f'{AS_SUPERUSER} psql --username="$POSTGRES_USER" --dbname="$POSTGRES_DB" --no-psqlrc '
    '--tuples-only --no-align --command="SELECT datname FROM pg_database '
    'WHERE NOT datistemplate ORDER BY datname"'
)
_DUMP_ONE = f'{AS_SUPERUSER} pg_dump --username="$POSTGRES_USER" --format=custom --dbname="$1"'
# Restores one dump read from standard input: the database is dropped if it exists and made
# again from the dump, with its owner and privileges. It connects to template1 so that the
# database it replaces may be any one, `postgres` included.
RESTORE_IN_CONTAINER = (
    f'{AS_SUPERUSER} pg_restore --username="$POSTGRES_USER" --dbname=template1 '
    "--clean --if-exists --create --exit-on-error"
)


def in_postgres(shell: str, stdin: bool = False) -> str:
    """The host command that runs `shell` inside the Postgres container (`-i` passes stdin)."""
    if "'" in shell:
        raise ValueError("the container's shell command travels in single quotes")
    docker_exec = IN_POSTGRES.replace("docker exec", "docker exec -i") if stdin else IN_POSTGRES
    return f"{docker_exec} sh -c '{shell}'"


_STAMP = "[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]T[0-9][0-9][0-9][0-9][0-9][0-9]Z"

DUMP_SCRIPT = f"""#!/bin/sh
# {DUMP_UNIT}: a pg_dump (custom format) of every PostgreSQL database but the templates into
# {DUMP_DIR}, the newest {DUMPS_KEPT} of each database kept; files are 0600.
# Installed by Pulumi (ai-swarm); run nightly by {DUMP_UNIT}.timer.
set -eu
umask 077
dest={DUMP_DIR}
keep={DUMPS_KEPT}
mountpoint -q {DATA_ROOT} || {{ echo "{DATA_ROOT} is not mounted: nothing dumped" >&2; exit 1; }}
mkdir -p "$dest"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
partial=""
trap 'if [ -n "$partial" ]; then rm -f -- "$partial"; fi' EXIT

# Oldest first (the stamps sort by time): remove all but the newest $keep dumps of database $1.
prune() {{
  set -- "$dest/$1"-{_STAMP}.dump
  [ -e "$1" ] || return 0
  while [ "$#" -gt "$keep" ]; do
    rm -f -- "$1"
    shift
  done
}}

databases=$({in_postgres(_LIST_DATABASES)} </dev/null)
failed=0
while IFS= read -r db; do
  [ -n "$db" ] || continue
  case $db in
    *[!A-Za-z0-9_.-]* | .* | -*)
      echo "database '$db': its name cannot name a dump file; not dumped" >&2
      failed=1
      continue
      ;;
  esac
  partial="$dest/.$db-$stamp.dump.partial"
  if {in_postgres(_DUMP_ONE)} sh "$db" </dev/null >"$partial"; then
    sync -- "$partial"
    mv -f -- "$partial" "$dest/$db-$stamp.dump"
    partial=""
    prune "$db"
  else
    echo "pg_dump of database '$db' failed; its older dumps are kept" >&2
    rm -f -- "$partial"
    partial=""
    failed=1
  fi
done <<EOF
$databases
EOF
exit "$failed"
"""

DUMP_SERVICE = f"""[Unit]
Description=ai-swarm: pg_dump of every PostgreSQL database into {DUMP_DIR}
Requires=docker.service
After=docker.service
RequiresMountsFor={DATA_ROOT}

[Service]
Type=oneshot
ExecStart={DUMP_SCRIPT_PATH}
Nice=10
IOSchedulingClass=idle
"""


def dump_timer(schedule: BackupSchedule) -> str:
    """The nightly timer: DUMP_LEAD_HOURS before the volume backup's hour, every day (so also
    on the backup's day, whatever its period), in UTC as the backup policy is. `Persistent`
    runs a dump the host missed while it was down as soon as it is up again."""
    hour = (schedule.hour_of_day - DUMP_LEAD_HOURS) % 24
    return f"""[Unit]
Description=ai-swarm: nightly pg_dump of every PostgreSQL database

[Timer]
OnCalendar=*-*-* {hour:02d}:00:00 UTC
Persistent=true

[Install]
WantedBy=timers.target
"""


def dump_files(schedule: BackupSchedule) -> tuple[HostFile, ...]:
    return (
        HostFile(DUMP_SCRIPT_PATH, DUMP_SCRIPT, "0755"),
        HostFile(f"{SYSTEMD_DIR}/{DUMP_UNIT}.service", DUMP_SERVICE),
        HostFile(f"{SYSTEMD_DIR}/{DUMP_UNIT}.timer", dump_timer(schedule)),
    )


def restore_command(dump_path: str) -> str:
    """Restore one dump file (root's, 0600) into the database it was taken from."""
    return f"sudo cat -- {dump_path} | {in_postgres(RESTORE_IN_CONTAINER, stdin=True)}"


def render_install_script(files: Sequence[HostFile]) -> str:
    """Write `files` (each replaced whole, by rename), then enable and start the timer; nothing
    at all while the data volume is not mounted.

    Idempotent: a second run writes the same bytes and leaves the timer enabled.
    """
    return install_files_script(
        files,
        before=[
            f"mountpoint -q {DATA_ROOT} || {{ echo '{DATA_ROOT} is not mounted' >&2; exit 1; }}",
            # Listable by `ubuntu` (`python -m deploy status` reads the dumps' ages); the dumps
            # themselves are root's and 0600.
            f"sudo install -d -m 0755 {DATA_ROOT}/backups {DUMP_DIR}",
        ],
        then=["sudo systemctl daemon-reload", f"sudo systemctl enable --now {DUMP_UNIT}.timer"],
    )


@dataclass(frozen=True)
class BackupsArgs:
    compartment_id: str
    host_name: str  # for display names
    host_key: str  # the host's `ai-swarm-host` tag
    data_volume_id: pulumi.Input[str]
    schedule: BackupSchedule
    instance_id: pulumi.Input[str]
    connection: command.remote.ConnectionArgs
    # The Postgres container the dumps come from; None when Postgres is disabled (nothing to dump).
    postgres: pulumi.Resource | None


class Backups(pulumi.ComponentResource):
    """The data volume's backup policy and its assignment, and the nightly `pg_dump` timer."""

    def __init__(
        self, name: str, args: BackupsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("ai-swarm:oci:Backups", name, None, opts)
        policy_id: pulumi.Output[str] | None = None
        if args.schedule.enabled:
            policy = self._volume_backups(name, args)
            policy_id = policy.id
        installed = (
            None if args.postgres is None else self._pg_dump_timer(name, args, args.postgres)
        )
        self.register_outputs(
            {
                "volumeBackupPolicyId": policy_id,
                "pgDumpTimer": None if installed is None else f"{DUMP_UNIT}.timer",
            }
        )

    def _volume_backups(self, name: str, args: BackupsArgs) -> oci.core.VolumeBackupPolicy:
        schedule = args.schedule
        policy = oci.core.VolumeBackupPolicy(
            f"{name}-data-policy",
            compartment_id=args.compartment_id,
            display_name=f"{args.host_name}-data-backups",
            schedules=[
                oci.core.VolumeBackupPolicyScheduleArgs(
                    backup_type=schedule.backup_type,
                    period=schedule.period,
                    retention_seconds=schedule.retention_seconds,
                    # Without STRUCTURED, OCI reads offsetSeconds and ignores the day and hour
                    # (pulumi-oci 5.5.0, VolumeBackupPolicyScheduleArgs.offset_type).
                    offset_type="STRUCTURED",
                    day_of_week=schedule.day_of_week,
                    day_of_month=schedule.day_of_month,
                    hour_of_day=schedule.hour_of_day,
                    time_zone="UTC",
                )
            ],
            freeform_tags={HOST_TAG: args.host_key},
            opts=pulumi.ResourceOptions(parent=self),
        )
        oci.core.VolumeBackupPolicyAssignment(
            f"{name}-data-assignment",
            asset_id=args.data_volume_id,
            policy_id=policy.id,
            opts=pulumi.ResourceOptions(parent=self),
        )
        return policy

    def _pg_dump_timer(
        self, name: str, args: BackupsArgs, postgres: pulumi.Resource
    ) -> command.remote.Command:
        """Install the dump script and its units on the host, again on a new instance or when
        their text changes. `update` is the install itself: without one, pulumi-command
        replaces the resource on a change (pulumi-command 1.2.1, remote.Command `triggers`)."""
        install = render_install_script(dump_files(args.schedule))
        digest = hashlib.sha256(install.encode()).hexdigest()
        return command.remote.Command(
            f"{name}-pg-dump",
            connection=args.connection,
            create=install,
            update=install,
            triggers=[args.instance_id, digest],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[postgres]),
        )
