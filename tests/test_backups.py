"""Backups: the data volume's backup policy inside the free allowance, judged by the real policy
pack, and the pg_dump timer's install command; `ai-swarm:backups.*` validated up front."""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format, struct_pb2

from components import backups
from components.config import ConfigError
from dryrun.engine import UNKNOWN, ProgramError, ProgramRun, Registration, run_program
from dryrun.policy import PolicyReport, evaluate

POLICY = "oci:Core/volumeBackupPolicy:VolumeBackupPolicy"
ASSIGNMENT = "oci:Core/volumeBackupPolicyAssignment:VolumeBackupPolicyAssignment"
VOLUME = "oci:Core/volume:Volume"
INSTANCE = "oci:Core/instance:Instance"
COMMAND = "command:remote:Command"
CONTAINER = "docker:index/container:Container"
COMPONENT = "ai-swarm:oci:Backups"
PG_DUMP = "backups-pg-dump"
OPERATIONS = Path(__file__).resolve().parents[1] / "docs" / "operations.md"
DAY, HOUR = 86_400, 3_600
WEEK = 7 * DAY


def _with_backups(fields: dict[str, Any], **overrides: str) -> ProgramRun:
    return run_program(overrides={"backups": json.dumps(fields), **overrides})


def _schedule(run: ProgramRun) -> dict[str, Any]:
    [schedule] = run.one(POLICY).inputs["schedules"]
    assert isinstance(schedule, dict)
    return schedule


def _backup_violations(report: PolicyReport) -> list[str]:
    return [d.message for d in report.of_policy("backup-allowance")]


# --- the default schedule -----------------------------------------------------------------------


def test_default_is_weekly_incrementals_on_sunday_keeping_four(
    always_free_run: ProgramRun,
) -> None:
    assert _schedule(always_free_run) == {
        "backupType": "INCREMENTAL",
        "period": "ONE_WEEK",
        # Four weeks less an hour: the oldest backup expires before the fifth is taken.
        "retentionSeconds": 4 * WEEK - HOUR,
        "offsetType": "STRUCTURED",
        "dayOfWeek": "SUNDAY",
        "hourOfDay": 4,
        "timeZone": "UTC",
    }
    policy = always_free_run.one(POLICY)
    assert policy.inputs["displayName"] == "swarm-a1-data-backups"
    assert policy.inputs["compartmentId"] == always_free_run.one(VOLUME).inputs["compartmentId"]
    assert always_free_run.outputs["volumeBackups"] == (
        "INCREMENTAL every ONE_WEEK (SUNDAY 04:00 UTC), newest 4 kept"
    )


def test_the_policy_is_assigned_to_the_data_volume(always_free_run: ProgramRun) -> None:
    policy, assignment = always_free_run.one(POLICY), always_free_run.one(ASSIGNMENT)
    volume = always_free_run.one(VOLUME)
    # The pack joins the two through these property dependencies.
    assert assignment.property_dependencies["assetId"] == (volume.urn,)
    assert assignment.property_dependencies["policyId"] == (policy.urn,)
    assert assignment.inputs["assetId"] == always_free_run.ids[volume.urn]
    assert assignment.inputs["policyId"] == always_free_run.ids[policy.urn]
    component = always_free_run.one(COMPONENT)
    assert component.name == "backups"
    assert {policy.parent, assignment.parent} == {component.urn}
    assert [r.name for r in always_free_run.of_type(POLICY)] == ["backups-data-policy"]


def test_the_schedule_is_plain_at_preview(preview_run: ProgramRun) -> None:
    schedule = _schedule(preview_run)
    assert UNKNOWN not in schedule.values()
    assert schedule["retentionSeconds"] == 4 * WEEK - HOUR
    # Only the ids are unknown before creation; the pack counts through the dependencies.
    assert preview_run.one(ASSIGNMENT).inputs.get("policyId", UNKNOWN) is UNKNOWN
    report = evaluate(preview_run.registrations, None)
    assert not [d for d in report.diagnostics if "backup" in d.policy]


def test_the_real_pack_passes_the_default(always_free_run: ProgramRun) -> None:
    report = evaluate(always_free_run.registrations, None)
    assert _backup_violations(report) == []
    assert report.settings["backup-allowance"]["maxVolumeBackups"] == 5
    # ...and counts the 4 it keeps: one fewer allowed fails.
    [message] = _backup_violations(
        evaluate(always_free_run.registrations, {"backup-allowance": {"maxVolumeBackups": 3}})
    )
    assert "keep 4 backups" in message


def _retaining(registration: Registration, seconds: int) -> Registration:
    """The policy's registration with its one schedule keeping `seconds` of backups."""
    wire = json_format.MessageToDict(registration.wire_inputs)
    wire["schedules"][0]["retentionSeconds"] = seconds
    changed = struct_pb2.Struct()
    changed.update(wire)
    inputs = {**registration.inputs, "schedules": wire["schedules"]}
    return replace(registration, wire_inputs=changed, inputs=inputs)


def test_a_policy_retaining_six_backups_fails_the_pack(always_free_run: ProgramRun) -> None:
    # The config reader refuses such a schedule (below); the pack refuses it on its own too.
    six_weeks = [
        _retaining(r, 6 * WEEK) if r.type == POLICY else r for r in always_free_run.registrations
    ]
    [message] = _backup_violations(evaluate(six_weeks, None))
    assert "keep 6 backups" in message and "backups-data-policy" in message


@pytest.mark.parametrize("period", ["ONE_DAY", "ONE_WEEK", "ONE_MONTH"])
def test_every_period_keeps_exactly_keep_backups_as_the_pack_counts(period: str) -> None:
    fields: dict[str, Any] = {"keep": 5, "period": period, "hourOfDay": 2}
    if period == "ONE_MONTH":
        fields["dayOfMonth"] = 28
    run = _with_backups(fields)
    schedule = _schedule(run)
    seconds = {"ONE_DAY": DAY, "ONE_WEEK": WEEK, "ONE_MONTH": 28 * DAY}[period]
    assert schedule["retentionSeconds"] == 5 * seconds - HOUR
    assert math.ceil(schedule["retentionSeconds"] / seconds) == 5
    assert _backup_violations(evaluate(run.registrations, None)) == []
    [message] = _backup_violations(
        evaluate(run.registrations, {"backup-allowance": {"maxVolumeBackups": 4}})
    )
    assert "keep 5 backups" in message
    assert ("dayOfWeek" in schedule) is (period == "ONE_WEEK")
    assert schedule.get("dayOfMonth") == (28 if period == "ONE_MONTH" else None)


def test_full_backups_at_another_hour_and_day() -> None:
    run = _with_backups({"type": "FULL", "dayOfWeek": "WEDNESDAY", "hourOfDay": 23, "keep": 2})
    schedule = _schedule(run)
    assert (schedule["backupType"], schedule["dayOfWeek"], schedule["hourOfDay"]) == (
        "FULL",
        "WEDNESDAY",
        23,
    )
    assert schedule["retentionSeconds"] == 2 * WEEK - HOUR


def test_disabled_backups_register_no_policy_and_still_dump() -> None:
    run = _with_backups({"enabled": False})
    assert run.of_type(POLICY) == [] and run.of_type(ASSIGNMENT) == []
    assert run.one(COMMAND, PG_DUMP)
    assert run.outputs["volumeBackups"] == "none: ai-swarm:backups.enabled is false"


# --- the pg_dump timer --------------------------------------------------------------------------


def test_pg_dump_is_installed_after_postgres_and_again_on_a_new_instance(
    always_free_run: ProgramRun,
) -> None:
    installer = always_free_run.one(COMMAND, PG_DUMP)
    assert installer.inputs["create"] == installer.inputs["update"]
    assert "enable --now ai-swarm-pg-dump.timer" in installer.inputs["create"]
    instance = always_free_run.one(INSTANCE)
    postgres = [r for r in always_free_run.of_type(CONTAINER) if r.inputs["name"] == "postgres"]
    assert postgres[0].urn in installer.dependencies
    triggers = installer.inputs["triggers"]
    assert triggers[0] == always_free_run.ids[instance.urn]
    assert re.fullmatch(r"[0-9a-f]{64}", triggers[1])
    assert installer.parent == always_free_run.one(COMPONENT).urn
    assert installer.inputs["connection"]["host"] == "192.0.2.10"
    assert "connection" in installer.secret_paths  # it holds the SSH private key
    assert always_free_run.outputs["pgDumps"] == "/mnt/data/backups/postgres"


def test_a_new_instance_or_new_text_reinstalls() -> None:
    base = run_program().one(COMMAND, PG_DUMP).inputs["triggers"]
    # Another instance has another OCID (the mocked cloud's follows the instance's inputs).
    other = run_program(overrides={"availabilityDomain": "2"}).one(COMMAND, PG_DUMP)
    other = other.inputs["triggers"]
    assert other[0] != base[0] and other[1] == base[1]
    # Another backup hour moves the dump timer: new text, so the install runs again.
    moved = run_program(overrides={"backups": json.dumps({"hourOfDay": 10})}).one(COMMAND, PG_DUMP)
    assert moved.inputs["triggers"][0] == base[0] and moved.inputs["triggers"][1] != base[1]
    assert "OnCalendar=*-*-* 09:00:00 UTC" in moved.inputs["create"]


def test_the_install_carries_no_secret(always_free_run: ProgramRun) -> None:
    installer = always_free_run.one(COMMAND, PG_DUMP)
    for generated in always_free_run.generated:
        assert generated not in installer.inputs["create"]
    assert 'PGPASSWORD="$POSTGRES_PASSWORD"' in installer.inputs["create"]


def test_without_postgres_nothing_is_dumped() -> None:
    disabled = {name: {"enabled": False} for name in ("postgres", "litellm", "openWebui")}
    run = run_program(overrides={"services": json.dumps(disabled)})
    assert [c.name for c in run.of_type(COMMAND) if c.name == PG_DUMP] == []
    assert run.outputs["pgDumps"] is None
    assert run.one(POLICY)  # the volume is still backed up


def test_the_docs_give_the_restore_the_tests_run() -> None:
    text = OPERATIONS.read_text()
    assert backups.in_postgres(backups.RESTORE_IN_CONTAINER, stdin=True) in text
    assert backups.restore_command(f"{backups.DUMP_DIR}/litellm-<stamp>.dump") in text


# --- ai-swarm:backups ---------------------------------------------------------------------------

# Made by `age-keygen` (age 1.1.1): public halves, each good.
GOOD_AGE_KEYS = (
    "age1h9gf7fgyx0ep3jtcd49uey8rcthseemmuw692ugmphaap5xqpfrqwuwhus",
    "age1aawtyajjvrdpwjyl6ry0l09f030vmqgm7hxkj0ymta3r02rscd6sza2e4w",
)
AGE_KEY = "an age X25519 public key: age1 and 58 Bech32 characters"
# Each is refused by `age -r` too (tests/integration/test_offsite.py runs them through it).
BAD_AGE_KEYS = (
    GOOD_AGE_KEYS[0][:-1] + "q",  # one character off: the checksum fails
    GOOD_AGE_KEYS[0].upper(),  # Bech32 is one case; age writes lowercase
    GOOD_AGE_KEYS[0][:-7] + GOOD_AGE_KEYS[0][-6:],  # a character left out
    "age1",
    "AGE-SECRET-KEY-1QYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQS7D8W4M",  # a secret
    f"ssh-ed25519 {'A' * 68}",
    "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",  # valid Bech32 (BIP 173), another HRP
    "",
    42,
)

# (the value of ai-swarm:backups, the key named in the error, a fragment of what is allowed)
BAD = [
    ({"keep": 6}, "ai-swarm:backups.keep", "from 1 to 5: the number of backups kept"),
    ({"keep": 0}, "ai-swarm:backups.keep", "Always Free includes 5 volume backups in total"),
    ({"keep": "many"}, "ai-swarm:backups.keep", "the boot volume keeps 0"),
    ({"keep": True}, "ai-swarm:backups.keep", "a whole number from 1 to 5"),
    ({"keep": 2.5}, "ai-swarm:backups.keep", "a whole number from 1 to 5"),
    ({"period": "ONE_HOUR"}, "ai-swarm:backups.period", "one of ONE_DAY, ONE_WEEK, ONE_MONTH"),
    ({"type": "DIFFERENTIAL"}, "ai-swarm:backups.type", "one of INCREMENTAL, FULL"),
    ({"dayOfWeek": "sunday"}, "ai-swarm:backups.dayOfWeek", "one of MONDAY, TUESDAY"),
    (
        {"period": "ONE_DAY", "dayOfWeek": "MONDAY"},
        "ai-swarm:backups.dayOfWeek",
        "unset: it applies to period ONE_WEEK, not ONE_DAY",
    ),
    (
        {"dayOfMonth": 3},
        "ai-swarm:backups.dayOfMonth",
        "unset: it applies to period ONE_MONTH, not ONE_WEEK",
    ),
    (
        {"period": "ONE_MONTH", "dayOfMonth": 31},
        "ai-swarm:backups.dayOfMonth",
        "from 1 to 28: a day every month has",
    ),
    ({"hourOfDay": 24}, "ai-swarm:backups.hourOfDay", "from 0 to 23: an hour of the day (UTC)"),
    ({"hourOfDay": -1}, "ai-swarm:backups.hourOfDay", "from 0 to 23"),
    ({"enabled": "maybe"}, "ai-swarm:backups.enabled", "true or false"),
    ({"retention": 3}, "ai-swarm:backups.retention", "one of enabled, keep, period"),
    ({"offsite": "maybe"}, "ai-swarm:backups.offsite", "true or false"),
    ({"offsiteDays": 0}, "ai-swarm:backups.offsiteDays", "from 1 to 365: the days each off-site"),
    ({"offsiteDays": 366}, "ai-swarm:backups.offsiteDays", "would not fit the free 20 GB"),
    ({"offsiteDays": 2.5}, "ai-swarm:backups.offsiteDays", "a whole number from 1 to 365"),
    ({"offsiteDays": True}, "ai-swarm:backups.offsiteDays", "a whole number from 1 to 365"),
    *[({"ageRecipient": bad}, "ai-swarm:backups.ageRecipient", AGE_KEY) for bad in BAD_AGE_KEYS],
]


@pytest.mark.parametrize(("fields", "key", "allowed"), BAD, ids=[str(case[0]) for case in BAD])
def test_bad_backup_setting_is_rejected_before_any_resource(
    fields: dict[str, Any], key: str, allowed: str
) -> None:
    with pytest.raises(ProgramError) as failure:
        _with_backups(fields)
    error = failure.value.cause
    assert isinstance(error, ConfigError)
    assert error.key == key
    assert str(error).startswith(f"config {key}: ")
    assert allowed in str(error)
    assert failure.value.registrations == ()


@pytest.mark.parametrize("raw", ["[]", "{not json", '"weekly"'])
def test_backups_must_be_an_object(raw: str) -> None:
    with pytest.raises(ProgramError) as failure:
        run_program(overrides={"backups": raw})
    assert isinstance(failure.value.cause, ConfigError)
    assert failure.value.cause.key == "ai-swarm:backups"
    assert "an object with any of enabled, keep, period, type" in str(failure.value.cause)


@pytest.mark.parametrize("recipient", GOOD_AGE_KEYS)
def test_an_age_public_key_and_offsite_days_are_accepted(recipient: str) -> None:
    run = _with_backups({"ageRecipient": f" {recipient} ", "offsiteDays": "30"})
    assert run.registrations  # no refusal
