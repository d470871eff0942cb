"""`status` against recorded `docker inspect` / `docker stats` JSON and the host's other reads."""

from __future__ import annotations

import copy
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from rich.console import Console

from deploy.cli import render_status
from deploy.ports import CloudError, ShellResult, VolumeBackupFact
from deploy.status import (
    DATA_DISK,
    DOCKER_INSPECT,
    DOCKER_STATS,
    LOGICAL_BACKUPS,
    VAULT_SEAL_STATUS,
    Level,
    StatusReadError,
    collect_status,
    container_statuses,
    disk_check,
    logical_backup_check,
    parse_inspect,
    parse_size,
    parse_stats,
    vault_check,
    volume_backup_check,
)
from tests.deploy.fakes import FakeCloud, FakeShell, fixture_text

NOW = datetime(2026, 11, 29, 13, 0, tzinfo=UTC)
EXPECTED = (
    "postgres",
    "redis",
    "redis-sentinel",
    "node-exporter",
    "litellm",
    "open-webui",
    "pipelines",
    "vault",
    "vault-agent",
)
VOLUME_ID = "ocid1.volume.oc1.eu-frankfurt-1.abthelvolume"
RECENT_BACKUP = VolumeBackupFact("weekly", NOW - timedelta(days=3), "AVAILABLE", "INCREMENTAL")


def inspect_records() -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = json.loads(fixture_text("host/docker_inspect.json"))
    return records


def ok(stdout: str) -> ShellResult:
    return ShellResult(0, stdout, "")


def healthy_answers(inspect: str | None = None) -> dict[str, ShellResult]:
    return {
        DOCKER_INSPECT: ok(
            inspect if inspect is not None else fixture_text("host/docker_inspect.json")
        ),
        DOCKER_STATS: ok(fixture_text("host/docker_stats.jsonl")),
        VAULT_SEAL_STATUS: ok(fixture_text("host/seal_status.json")),
        DATA_DISK: ok(fixture_text("host/findmnt.json")),
        LOGICAL_BACKUPS: ok(fixture_text("host/postgres_dumps.jsonl")),
    }


def collect(answers: dict[str, ShellResult], cloud: FakeCloud | None = None) -> Any:
    return collect_status(
        FakeShell(answers),
        EXPECTED,
        now=NOW,
        cloud=cloud or FakeCloud(backups=[RECENT_BACKUP]),
        data_volume_id=VOLUME_ID,
    )


# ---------------------------------------------------------------------------------------------
# Parsing the recorded JSON


def test_the_recorded_host_is_healthy() -> None:
    report = collect(healthy_answers())
    assert [row.name for row in report.containers] == list(EXPECTED)
    assert all(row.level is Level.OK for row in report.containers)
    assert [check.level for check in report.checks] == [Level.OK] * 4
    assert report.exit_code == 0


def test_container_fields_come_from_inspect_and_stats() -> None:
    rows = container_statuses(
        parse_inspect(fixture_text("host/docker_inspect.json")),
        parse_stats(fixture_text("host/docker_stats.jsonl")),
        EXPECTED,
    )
    postgres = rows[0]
    assert postgres.state == "running"
    assert postgres.health == "healthy"
    assert postgres.restarts == 0
    assert postgres.memory_limit == 1536 * 1024**2  # HostConfig.Memory
    assert postgres.memory_used == round(81.7 * 1024**2)  # MemUsage "81.7MiB / 1.5GiB"
    assert postgres.cpu_percent == pytest.approx(0.52)
    assert postgres.cpu_limit == pytest.approx(0.4)  # NanoCpus 400000000
    agent = rows[-1]
    assert agent.name == "vault-agent"
    assert agent.health is None  # no healthcheck in the record


@pytest.mark.parametrize(
    ("text", "size"),
    [("0B", 0), ("81.7MiB", round(81.7 * 1024**2)), ("1.5GiB", round(1.5 * 1024**3)),
     ("12kB", 12000), ("3.2MB", 3_200_000), ("512 KiB", 512 * 1024)],
)  # fmt: skip
def test_docker_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_an_unknown_size_unit_is_an_error() -> None:
    with pytest.raises(StatusReadError):
        parse_size("12 parsecs")


def test_inspect_that_is_not_json_is_an_error() -> None:
    with pytest.raises(StatusReadError, match="docker inspect"):
        parse_inspect("CONTAINER ID   IMAGE   COMMAND")


# ---------------------------------------------------------------------------------------------
# Container verdicts


def with_change(name: str, change: dict[str, Any]) -> str:
    records = inspect_records()
    for record in records:
        if record["Name"] == f"/{name}":
            for path, value in change.items():
                target = record
                *parents, leaf = path.split(".")
                for part in parents:
                    target = target[part]
                target[leaf] = value
    return json.dumps(records)


@pytest.mark.parametrize(
    ("name", "change", "level"),
    [
        ("litellm", {"State.Health.Status": "unhealthy"}, Level.FAIL),
        ("open-webui", {"State.Status": "exited", "State.Running": False}, Level.FAIL),
        ("redis", {"State.Status": "restarting"}, Level.FAIL),
        ("pipelines", {"State.Health.Status": "starting"}, Level.WARN),
        ("postgres", {"RestartCount": 3}, Level.WARN),
    ],
)
def test_container_problems(name: str, change: dict[str, Any], level: Level) -> None:
    report = collect(healthy_answers(with_change(name, change)))
    row = next(row for row in report.containers if row.name == name)
    assert row.level is level
    assert report.exit_code == (1 if level is Level.FAIL else 0)


def test_a_missing_container_is_unhealthy() -> None:
    records = [r for r in inspect_records() if r["Name"] != "/redis-sentinel"]
    report = collect(healthy_answers(json.dumps(records)))
    row = next(row for row in report.containers if row.name == "redis-sentinel")
    assert row.state == "missing"
    assert report.exit_code == 1


def test_memory_near_the_limit_warns() -> None:
    stats = fixture_text("host/docker_stats.jsonl").replace(
        '"MemUsage":"48.6MiB / 256MiB"', '"MemUsage":"240MiB / 256MiB"'
    )
    answers = healthy_answers()
    answers[DOCKER_STATS] = ok(stats)
    vault = next(row for row in collect(answers).containers if row.name == "vault")
    assert vault.memory_near_limit
    assert vault.level is Level.WARN


def test_a_container_not_in_the_stack_is_listed_after_the_expected_ones() -> None:
    records = inspect_records()
    stray = copy.deepcopy(records[0])
    stray["Name"] = "/adminer"
    report = collect(healthy_answers(json.dumps([*records, stray])))
    assert report.containers[-1].name == "adminer"


def test_docker_unreachable_is_an_error() -> None:
    answers = healthy_answers()
    answers[DOCKER_INSPECT] = ShellResult(
        1, "", "permission denied while trying to connect to the Docker daemon socket\n"
    )
    with pytest.raises(StatusReadError, match="permission denied"):
        collect(answers)


# ---------------------------------------------------------------------------------------------
# Vault, disk, backups


@pytest.mark.parametrize(
    ("code", "body", "level", "summary"),
    [
        (0, '{"initialized": true, "sealed": false}', Level.OK, "initialised, unsealed"),
        (0, '{"initialized": true, "sealed": true}', Level.FAIL, "sealed"),
        (0, '{"initialized": false, "sealed": true}', Level.FAIL, "not initialised"),
        (1, "", Level.FAIL, "seal status unreadable (is the vault container up?)"),
    ],
)
def test_vault_seal(code: int, body: str, level: Level, summary: str) -> None:
    check = vault_check(code, body)
    assert (check.level, check.summary) == (level, summary)


def test_vault_is_not_asked_when_the_stack_has_none() -> None:
    shell = FakeShell(healthy_answers())
    report = collect_status(
        shell,
        [n for n in EXPECTED if not n.startswith("vault")],
        now=NOW,
        cloud=FakeCloud(backups=[RECENT_BACKUP]),
        data_volume_id=VOLUME_ID,
    )
    assert VAULT_SEAL_STATUS not in shell.commands
    assert report.checks[0].summary.startswith("not deployed")


def findmnt(used: int, size: int = 100 * 1024**3) -> str:
    entry = {"target": "/mnt/data", "source": "/dev/sdb", "size": size, "used": used}
    return json.dumps({"filesystems": [entry]})


@pytest.mark.parametrize(
    ("used_gib", "level"), [(79, Level.OK), (80, Level.WARN), (89, Level.WARN), (90, Level.FAIL)]
)
def test_data_volume_use(used_gib: int, level: Level) -> None:
    assert disk_check(0, findmnt(used_gib * 1024**3)).level is level


def test_the_recorded_data_volume_use() -> None:
    check = disk_check(0, fixture_text("host/findmnt.json"))
    assert check.summary == "20.0 GiB of 147.4 GiB used (14%), /dev/sdb"


def test_an_unmounted_data_volume_fails() -> None:
    check = disk_check(1, "")
    assert (check.level, check.summary) == (Level.FAIL, "not mounted")


def test_the_newest_dump_is_reported_by_age() -> None:
    check = logical_backup_check(0, fixture_text("host/postgres_dumps.jsonl"), NOW)
    # Newest is 2026-11-29 03:00 UTC, ten hours before NOW.
    assert check.level is Level.OK
    assert check.summary == "newest 10h00m old: ai-swarm-20261129T0300Z.dump"


def test_a_stale_dump_fails() -> None:
    later = NOW + timedelta(days=2)
    assert logical_backup_check(0, fixture_text("host/postgres_dumps.jsonl"), later).level is (
        Level.FAIL
    )


def test_no_dump_directory_warns() -> None:
    check = logical_backup_check(1, "", NOW)
    assert check.level is Level.WARN
    assert "(absent)" in check.summary


def test_volume_backups_take_the_newest_available_one() -> None:
    backups = [
        VolumeBackupFact("creating", NOW - timedelta(hours=1), "CREATING", "INCREMENTAL"),
        VolumeBackupFact("older", NOW - timedelta(days=6), "AVAILABLE", "FULL"),
        RECENT_BACKUP,
    ]
    check = volume_backup_check(FakeCloud(backups=backups), VOLUME_ID, NOW)
    assert check.level is Level.OK
    assert check.summary == "newest 72h00m old: weekly (incremental, 2 kept)"


def test_an_old_volume_backup_fails() -> None:
    backups = [VolumeBackupFact("old", NOW - timedelta(days=9), "AVAILABLE", "FULL")]
    assert volume_backup_check(FakeCloud(backups=backups), VOLUME_ID, NOW).level is Level.FAIL


def test_volume_backups_unreadable_warns_without_failing() -> None:
    cloud = FakeCloud(error=CloudError("ListVolumeBackups: 404 NotAuthorizedOrNotFound: no"))
    check = volume_backup_check(cloud, VOLUME_ID, NOW)
    assert check.level is Level.WARN
    assert "NotAuthorizedOrNotFound" in check.summary


def test_a_missing_volume_output_fails_with_the_reason() -> None:
    check = volume_backup_check(None, None, NOW, "the stack has no output 'dataVolumeId'")
    assert (check.level, check.summary) == (Level.FAIL, "the stack has no output 'dataVolumeId'")


# ---------------------------------------------------------------------------------------------
# Rendering


def test_the_tables_show_state_memory_and_cpu() -> None:
    out = io.StringIO()
    report = collect(healthy_answers(with_change("litellm", {"State.Health.Status": "unhealthy"})))
    render_status(report, Console(file=out, width=200, color_system=None), "oracle (192.0.2.10)")
    text = out.getvalue()
    assert "82 MiB / 1536 MiB (5%)" in text  # postgres
    assert "0.5% of 0.4 CPU" in text
    assert "unhealthy" in text.splitlines()[-1]
