"""backup-allowance: the backups the assigned volume backup policies keep fit Always Free's five."""

from __future__ import annotations

from typing import Any

from pulumi.runtime.proto import analyzer_pb2

from dryrun.synthetic import (
    backup_assignment,
    backup_policy,
    backup_schedule,
    instance,
    resource,
    volume,
)
from tests.policies.policy_requests import UNKNOWN, analyze_stack, analyzer, of_policy

WEEK = 7 * 24 * 3600
DAY = 24 * 3600


def _backup_violations(stack: list[Any], config: dict[str, Any] | None = None) -> list[Any]:
    return of_policy(analyze_stack(analyzer(config), stack), "backup-allowance")


def _weekly(name: str, weeks: int) -> Any:
    return backup_policy(name, backup_schedule("ONE_WEEK", weeks * WEEK))


def _assigned(policy: Any, *volumes: Any, policy_id: str = "policy-id") -> list[Any]:
    return [
        backup_assignment(f"{policy.name}-{v.name}", policy, v, policy_id=policy_id)
        for v in volumes
    ]


def test_a_policy_keeping_six_backups_fails_naming_the_policy_the_count_and_the_fix() -> None:
    data = volume("data")
    weekly = _weekly("weekly", 6)
    (found,) = _backup_violations([instance("app"), data, weekly, *_assigned(weekly, data)])
    assert found.enforcementLevel == analyzer_pb2.MANDATORY
    for part in ("'weekly'", "keep 6 backups", "the 5 allowed (maxVolumeBackups)", "by 1"):
        assert part in found.message
    assert "retentionSeconds" in found.message and "backup-allowance pack config" in found.message


def test_a_policy_keeping_five_backups_passes() -> None:
    data = volume("data")
    weekly = _weekly("weekly", 5)
    assert (
        analyze_stack(analyzer(), [instance("app"), data, weekly, *_assigned(weekly, data)]) == []
    )


def test_an_unassigned_policy_counts_nothing() -> None:
    hoarder = backup_policy("hoarder", backup_schedule("ONE_HOUR", 30 * DAY))
    assert _backup_violations([volume("data"), hoarder]) == []


def test_retention_over_period_rounds_up_per_schedule_and_sums() -> None:
    data = volume("data")
    # 2.5 days of daily backups keep 3; 36 days of weekly backups keep 6 (5.14 rounded up).
    mixed = backup_policy(
        "mixed", backup_schedule("ONE_DAY", int(2.5 * DAY)), backup_schedule("ONE_WEEK", 36 * DAY)
    )
    stack = [data, mixed, *_assigned(mixed, data)]
    (found,) = _backup_violations(stack, {"backup-allowance": {"maxVolumeBackups": 8}})
    assert "keep 9 backups" in found.message
    assert _backup_violations(stack, {"backup-allowance": {"maxVolumeBackups": 9}}) == []


def test_a_policy_counts_once_for_each_volume_it_is_assigned_to() -> None:
    data, logs = volume("data"), volume("logs", "50")
    weekly = _weekly("weekly", 3)
    (found,) = _backup_violations([data, logs, weekly, *_assigned(weekly, data, logs)])
    assert "keep 6 backups" in found.message and "'weekly' 3 x 2 volumes" in found.message
    twice = [*_assigned(weekly, data), *_assigned(weekly, data)]
    twice[1] = resource(
        twice[1].type,
        "again",
        twice[1].inputs,
        property_dependencies=twice[1].property_dependencies,
    )
    assert _backup_violations([data, weekly, *twice]) == []


def test_in_preview_the_assignment_finds_its_policy_through_its_dependencies() -> None:
    data = volume("data")
    weekly = _weekly("weekly", 6)
    stack = [data, weekly, *_assigned(weekly, data, policy_id=UNKNOWN)]
    diagnostics = analyze_stack(analyzer(), stack)
    assert [d.policyName for d in diagnostics] == ["backup-allowance"]
    assert "keep 6 backups" in diagnostics[0].message


def test_a_policy_outside_the_stack_cannot_be_counted_and_is_a_violation() -> None:
    data = volume("data")
    gold = resource(
        "oci:Core/volumeBackupPolicyAssignment:VolumeBackupPolicyAssignment",
        "gold",
        {"assetId": "data-id", "policyId": "ocid1.volumebackuppolicy.oc1..gold"},
        property_dependencies={"assetId": [data.urn]},
    )
    (found,) = _backup_violations([data, gold])
    assert found.urn == gold.urn and "`policyId`" in found.message


def test_an_unknown_retention_fails_backup_allowance_only() -> None:
    data = volume("data")
    vague = backup_policy("vague", {"backupType": "FULL", "period": "ONE_WEEK",
                                    "retentionSeconds": UNKNOWN})  # fmt: skip
    diagnostics = analyze_stack(analyzer(), [instance("app"), data, vague, *_assigned(vague, data)])
    assert [d.policyName for d in diagnostics] == ["backup-allowance"]
    assert diagnostics[0].urn == vague.urn
    assert "retentionSeconds" in diagnostics[0].message
    assert "is not known until apply" in diagnostics[0].message


def test_an_unknown_period_name_is_a_violation() -> None:
    data = volume("data")
    fortnightly = backup_policy("fortnightly", backup_schedule("TWO_WEEKS", 4 * WEEK))
    (found,) = _backup_violations([data, fortnightly, *_assigned(fortnightly, data)])
    assert "'TWO_WEEKS'" in found.message and "ONE_WEEK" in found.message
