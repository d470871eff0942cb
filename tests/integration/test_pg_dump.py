"""The nightly pg_dump, its restore, its install and its units, run by the real tools.

The program registers one install script (the `<host>-backups-pg-dump` command). It runs here as
registered, with four things retargeted: `/mnt/data`, `/etc/systemd/system` and
`/usr/local/sbin` move under a temporary root, and `docker exec postgres` becomes `env`, so the
container's shell is a local one with the container's variables and libpq pointed at the test
server (Debian's PostgreSQL 15, set up as the image would set it up). `sudo`, `systemctl` and
`mountpoint` are stand-ins that answer as the host would. The dump script it installs then runs
against the server; its dumps are restored with the documented restore (docs/operations.md),
and the rows come back.
"""

from __future__ import annotations

import configparser
import json
import re
import stat
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from components import backups
from components.host import DATA_ROOT
from components.services import postgres as postgres_service
from dryrun.engine import ProgramRun, run_program
from tests.helpers import installed_files
from tests.integration import daemons
from tests.integration.rendered import RenderedContainer
from tests.integration.stand_ins import container_env, run_script, stand_in

COMMAND = "command:remote:Command"
OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
STAMP = re.compile(r"^(?P<db>.+)-(?P<stamp>[0-9]{8}T[0-9]{6}Z)\.dump$")
OLD_STAMPS = [f"2020010{day}T030000Z" for day in range(1, 10)]


@dataclass(frozen=True)
class Host:
    """A temporary stand-in for the host's file system and commands."""

    root: Path
    bin_dir: Path
    systemctl_log: Path

    @property
    def dump_dir(self) -> Path:
        return self.at(backups.DUMP_DIR)

    def at(self, host_path: str) -> Path:
        return self.root / host_path.lstrip("/")

    def retarget(self, text: str) -> str:
        for host_path in (DATA_ROOT, backups.SYSTEMD_DIR, "/usr/local/sbin"):
            text = text.replace(host_path, str(self.at(host_path)))
        return text.replace(backups.IN_POSTGRES, "env")

    def mounted(self, mounted: bool) -> None:
        stand_in(self.bin_dir, "mountpoint", f"exit {0 if mounted else 1}")


@pytest.fixture
def host(tmp_path: Path) -> Host:
    made = Host(tmp_path / "root", tmp_path / "bin", tmp_path / "systemctl.log")
    for directory in (made.root, made.bin_dir):
        directory.mkdir()
    for host_path in (DATA_ROOT, backups.SYSTEMD_DIR, "/usr/local/sbin"):
        made.at(host_path).mkdir(parents=True)
    stand_in(made.bin_dir, "sudo", 'exec "$@"')
    stand_in(made.bin_dir, "systemctl", f'echo "$*" >>{made.systemctl_log}')
    made.mounted(True)
    return made


@pytest.fixture(scope="module")
def container(program_run: ProgramRun) -> RenderedContainer:
    return RenderedContainer.of(program_run, "postgres")


@pytest.fixture(scope="module")
def server(container: RenderedContainer) -> Iterator[daemons.PostgresDaemon]:
    _command, *server_args = container.command
    with daemons.postgres_like_image(container.envs, container.uploads, server_args) as daemon:
        yield daemon


def _install_script(run: ProgramRun) -> str:
    [installer] = [c for c in run.of_type(COMMAND) if c.name == "backups-pg-dump"]
    assert installer.inputs["update"] == installer.inputs["create"]
    return str(installer.inputs["create"])


def _run(
    argv: list[str], host: Host, env: Mapping[str, str], stdin: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return run_script(argv, host.bin_dir, env, stdin)


def _installed_files(run: ProgramRun) -> dict[str, tuple[str, str]]:
    """The files the install script writes: (mode, text) by host path."""
    script = _install_script(run)
    puts = re.findall(r"^put ([0-7]{4}) (\S+) <<", script, re.MULTILINE)
    modes = {path: mode for mode, path in puts}
    return {path: (modes[path], text) for path, text in installed_files(script).items()}


def _install(run: ProgramRun, host: Host) -> subprocess.CompletedProcess[str]:
    return _run(["bash", "-c", host.retarget(_install_script(run))], host, {})


@pytest.fixture
def installed(program_run: ProgramRun, host: Host) -> Path:
    """The dump script as the install script wrote it under the host's root."""
    done = _install(program_run, host)
    assert done.returncode == 0, done.stderr
    return host.at(backups.DUMP_SCRIPT_PATH)


def _dump(
    installed: Path, host: Host, container: RenderedContainer, server: daemons.PostgresDaemon
) -> subprocess.CompletedProcess[str]:
    return _run([str(installed)], host, container_env(container, server))


def _dumps(host: Host) -> dict[str, list[str]]:
    """Dump files by database, oldest first."""
    found: dict[str, list[str]] = {}
    for path in sorted(host.dump_dir.iterdir()):
        match = STAMP.match(path.name)
        if match:
            found.setdefault(match["db"], []).append(match["stamp"])
    return found


def _superuser(container: RenderedContainer) -> tuple[str, str]:
    return container.envs["POSTGRES_USER"], container.envs["POSTGRES_PASSWORD"]


def _sql(
    server: daemons.PostgresDaemon, login: tuple[str, str], sql: str, database: str = "postgres"
) -> str:
    user, password = login
    done = server.psql(sql, user=user, database=database, password=password)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _consumer(program_run: ProgramRun, name: str) -> tuple[str, str]:
    """The consumer's role and password, from the DATABASE_URL the program hands it."""
    for registration in program_run.of_type("docker:index/container:Container"):
        for line in registration.inputs.get("envs", ()):
            match = re.fullmatch(rf"DATABASE_URL=postgresql://{name}:([^@]+)@.*", line)
            if match:
                return name, match[1]
    raise LookupError(f"no DATABASE_URL for {name}")


# --- the scripts and units ----------------------------------------------------------------------


def test_install_and_dump_scripts_pass_shellcheck(program_run: ProgramRun, tmp_path: Path) -> None:
    install = daemons.shellcheck(_install_script(program_run), "bash", tmp_path / "install")
    assert install.returncode == 0, install.stdout
    assert backups.DUMP_SCRIPT.startswith("#!/bin/sh\n")
    dump = daemons.shellcheck(backups.DUMP_SCRIPT, "sh", tmp_path / "dump")
    assert dump.returncode == 0, dump.stdout


def test_install_writes_each_file_whole_and_enables_the_timer_every_time(
    program_run: ProgramRun, host: Host
) -> None:
    for _ in range(2):  # the command runs again on a new instance or changed text
        done = _install(program_run, host)
        assert done.returncode == 0, done.stderr
        for path, (mode, content) in _installed_files(program_run).items():
            written = host.at(path)
            assert written.read_text() == host.retarget(content), path
            assert oct(stat.S_IMODE(written.stat().st_mode)) == oct(int(mode, 8)), path
        assert sorted(p.name for p in host.at(backups.SYSTEMD_DIR).iterdir()) == [
            "ai-swarm-pg-dump.service",
            "ai-swarm-pg-dump.timer",
        ]
        assert stat.S_IMODE(host.dump_dir.stat().st_mode) == 0o755
    assert host.systemctl_log.read_text().splitlines() == 2 * [
        "daemon-reload",
        "enable --now ai-swarm-pg-dump.timer",
    ]


def test_install_refuses_while_the_volume_is_not_mounted(
    program_run: ProgramRun, host: Host
) -> None:
    host.mounted(False)
    done = _install(program_run, host)
    assert done.returncode != 0
    assert not host.at(backups.DUMP_SCRIPT_PATH).exists()
    assert not host.systemctl_log.exists()


def test_units_pass_systemd_analyze_verify(installed: Path, host: Host, tmp_path: Path) -> None:
    # Docker's own unit, which the dump service orders after, is on the host and not here.
    docker_units = tmp_path / "docker-units"
    docker_units.mkdir()
    (docker_units / "docker.service").write_text(
        "[Unit]\nDescription=stand-in for Docker's unit\n\n[Service]\nExecStart=/bin/true\n"
    )
    units = host.at(backups.SYSTEMD_DIR)
    done = daemons.systemd_verify(
        [units / f"{backups.DUMP_UNIT}.service", units / f"{backups.DUMP_UNIT}.timer"],
        [units, docker_units],
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout + done.stderr == ""  # not even a warning


TIMER = f"{backups.SYSTEMD_DIR}/{backups.DUMP_UNIT}.timer"
POLICY = "oci:Core/volumeBackupPolicy:VolumeBackupPolicy"
WEEKDAYS = ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY")
# A Friday: every schedule below has its next backup in the days after it.
BASE = datetime(2027, 1, 1, 0, 30, tzinfo=UTC)
# Room for the dumps to finish before the backup, and dumps no older than this in it.
DUMP_HEAD_START = (timedelta(minutes=30), timedelta(hours=2))
# ai-swarm:backups settings: the default (Sunday 04:00), and hours either side of the dump's.
BACKUP_SETTINGS = [
    {},
    {"dayOfWeek": "WEDNESDAY", "hourOfDay": 23},
    {"hourOfDay": 2},
    {"period": "ONE_DAY", "hourOfDay": 0},
    {"period": "ONE_MONTH", "dayOfMonth": 1, "hourOfDay": 3},
]


def _timer_section(run: ProgramRun) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(_installed_files(run)[TIMER][1])
    return parser["Timer"]


def _next_backup(schedule: dict[str, Any], after: datetime) -> datetime:
    """When OCI takes the policy's next backup after `after` (its STRUCTURED schedule)."""
    assert schedule["offsetType"] == "STRUCTURED" and schedule["timeZone"] == "UTC"
    # Numbers cross the engine's wire as floats.
    at = after.replace(hour=int(schedule["hourOfDay"]), minute=0, second=0, microsecond=0)
    if schedule["period"] == "ONE_DAY":
        return at if at > after else at + timedelta(days=1)
    if schedule["period"] == "ONE_WEEK":
        ahead = (WEEKDAYS.index(schedule["dayOfWeek"]) - after.weekday()) % 7
        at += timedelta(days=ahead)
        return at if at > after else at + timedelta(weeks=1)
    at = at.replace(day=int(schedule["dayOfMonth"]))
    if at > after:
        return at
    return at.replace(year=at.year + at.month // 12, month=at.month % 12 + 1)


def _next_elapse(on_calendar: str, after: datetime) -> datetime:
    """systemd's next elapse of `on_calendar` after `after`, read in a time zone that is not
    UTC: a timer without its own zone would follow the host's."""
    done = subprocess.run(
        [
            daemons.require_program("systemd-analyze"),
            "calendar",
            "--iterations=1",
            f"--base-time=@{int(after.timestamp())}",
            on_calendar,
        ],
        env={"TZ": "Asia/Kolkata", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=daemons.COMMAND_TIMEOUT_S,
        check=True,
    )
    [utc] = re.findall(r"\(in UTC\): \w+ (\S+ \S+) UTC", done.stdout)
    return datetime.strptime(utc, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)


@pytest.mark.parametrize("settings", BACKUP_SETTINGS, ids=lambda s: json.dumps(s) or "{}")
def test_each_volume_backup_is_taken_just_after_a_dump(settings: dict[str, Any]) -> None:
    """The last dump before the policy's next backup (as systemd computes the timer) starts
    between 30 minutes and 2 hours before it: the backup holds that night's dumps."""
    run = run_program(overrides={"backups": json.dumps(settings)})
    [schedule] = run.one(POLICY).inputs["schedules"]
    backup = _next_backup(schedule, BASE)
    [on_calendar] = _timer_section(run).get("OnCalendar", "").splitlines()
    dump = _next_elapse(on_calendar, backup - timedelta(days=1))
    low, high = DUMP_HEAD_START
    assert low <= backup - dump <= high, (backup, dump)


def test_a_dump_missed_while_the_host_was_down_runs_at_boot(program_run: ProgramRun) -> None:
    """`Persistent=` as systemd reads a boolean: without it a stopped host skips that night's
    dump, and the next volume backup holds day-old dumps. (No systemd manager runs here to
    elapse the timer; the unit as installed is what it would read.)"""
    timer = _timer_section(program_run)
    assert timer.get("Persistent", "").strip().lower() in {"1", "yes", "y", "true", "t", "on"}


# --- dump and restore ---------------------------------------------------------------------------


def test_dump_then_restore_brings_the_rows_back(
    program_run: ProgramRun,
    installed: Path,
    host: Host,
    container: RenderedContainer,
    server: daemons.PostgresDaemon,
) -> None:
    litellm, openwebui = _consumer(program_run, "litellm"), _consumer(program_run, "openwebui")
    _sql(server, litellm, "CREATE TABLE notes (id int PRIMARY KEY, body text)", "litellm")
    seed = "INSERT INTO notes SELECT n, 'note ' || n FROM generate_series(1, 3) n"
    _sql(server, litellm, seed, "litellm")
    superuser = _superuser(container)
    databases = _sql(server, superuser, "SELECT datname FROM pg_database WHERE NOT datistemplate")

    done = _dump(installed, host, container, server)
    assert done.returncode == 0, done.stderr
    dumps = _dumps(host)
    assert sorted(dumps) == sorted(databases.splitlines())  # every database but the templates
    assert all(len(stamps) == 1 for stamps in dumps.values())
    files = list(host.dump_dir.iterdir())
    assert {oct(stat.S_IMODE(f.stat().st_mode)) for f in files} == {"0o600"}
    assert len(files) == len(dumps)  # no partial file left behind
    [litellm_dump] = [f for f in files if f.name.startswith("litellm-")]

    _sql(server, superuser, "DROP DATABASE litellm")
    gone = server.psql("SELECT 1", user="litellm", database="litellm", password=litellm[1])
    assert gone.returncode != 0
    for _ in range(2):  # into a dropped database, then over the existing one
        restored = _run(
            ["sh", "-c", backups.RESTORE_IN_CONTAINER],
            host,
            container_env(container, server),
            stdin=litellm_dump,
        )
        assert restored.returncode == 0, restored.stderr
        rows = _sql(
            server, litellm, "SELECT string_agg(body, ',' ORDER BY id) FROM notes", "litellm"
        )
        assert rows == "note 1,note 2,note 3"
        _sql(server, litellm, "DELETE FROM notes", "litellm")
    # The database's privileges come back with it: the other consumer is still kept out.
    intruder = server.psql("SELECT 1", user="openwebui", database="litellm", password=openwebui[1])
    assert "permission denied" in intruder.stderr


def test_keeps_the_newest_seven_of_each_database(
    installed: Path, host: Host, container: RenderedContainer, server: daemons.PostgresDaemon
) -> None:
    host.dump_dir.mkdir(parents=True, exist_ok=True)
    for old in OLD_STAMPS:
        (host.dump_dir / f"litellm-{old}.dump").write_text("old")
    # Files next to litellm's dumps that are not: other databases' dumps (names sharing its
    # prefix, with and without a separator) and dumps made by hand. Some sort before the
    # stamps, so a loose pattern would prune them first.
    unrelated = [
        "litellm-notes.txt",
        f"litellm2-{OLD_STAMPS[0]}.dump",
        f"litellm_old-{OLD_STAMPS[0]}.dump",
        f"litellm-archive-{OLD_STAMPS[0]}.dump",
        f"litellm-1999-{OLD_STAMPS[0]}.dump",
        "litellm-2019-12-31-before-upgrade.dump",
        "litellm-by-hand.dump",
    ]
    for name in unrelated:
        (host.dump_dir / name).write_text("not a dump of litellm")

    done = _dump(installed, host, container, server)
    assert done.returncode == 0, done.stderr
    kept = _dumps(host)["litellm"]
    assert len(kept) == backups.DUMPS_KEPT == 7
    assert kept[:-1] == OLD_STAMPS[-6:]  # the six newest old ones, then tonight's
    assert kept[-1] > OLD_STAMPS[-1]
    assert all((host.dump_dir / name).exists() for name in unrelated)
    assert _dumps(host)["litellm2"] == [OLD_STAMPS[0]]


def test_a_failed_dump_fails_the_run_and_keeps_the_older_dumps(
    installed: Path, host: Host, container: RenderedContainer, server: daemons.PostgresDaemon
) -> None:
    superuser = _superuser(container)
    _sql(server, superuser, "CREATE DATABASE closed ALLOW_CONNECTIONS false")
    try:
        host.dump_dir.mkdir(parents=True, exist_ok=True)
        (host.dump_dir / f"closed-{OLD_STAMPS[0]}.dump").write_text("yesterday's")
        done = _dump(installed, host, container, server)
        assert done.returncode != 0
        assert "pg_dump of database 'closed' failed" in done.stderr
        dumps = _dumps(host)
        assert dumps["closed"] == [OLD_STAMPS[0]]
        assert {"litellm", "openwebui", "postgres"} <= set(dumps)  # the others still dumped
        assert not [p for p in host.dump_dir.iterdir() if p.name.endswith(".partial")]
    finally:
        _sql(server, superuser, "DROP DATABASE closed")


def test_nothing_is_dumped_while_the_volume_is_not_mounted(
    installed: Path, host: Host, container: RenderedContainer, server: daemons.PostgresDaemon
) -> None:
    host.mounted(False)
    done = _dump(installed, host, container, server)
    assert done.returncode == 1
    assert "not mounted" in done.stderr
    assert not host.dump_dir.exists() or not list(host.dump_dir.iterdir())


# --- the documented commands (docs/operations.md) ---------------------------------------------


def _readme_command(containing: str) -> str:
    spans = re.findall(r"`([^`\n]+)`", OPERATIONS.read_text())
    [found] = [span for span in spans if containing in span and "docker exec" in span]
    return str(found)


def test_readme_roles_command_reruns_the_script_and_the_bare_one_is_refused(
    host: Host, container: RenderedContainer, server: daemons.PostgresDaemon
) -> None:
    roles_file = postgres_service.ROLES_SQL_FILE
    command = _readme_command(roles_file)
    assert command.startswith(backups.IN_POSTGRES + " ")
    local_copy = str(server.files[roles_file])
    env = container_env(container, server)
    rerun = host.retarget(command).replace(roles_file, local_copy)
    done = _run(["sh", "-c", rerun], host, env)
    assert done.returncode == 0, done.stderr
    # Without the password inside the container, `local` (scram) refuses the superuser.
    bare = _run(["psql", "-U", "postgres", "-f", local_copy], host, env)
    assert bare.returncode != 0
    assert "no password supplied" in bare.stderr
