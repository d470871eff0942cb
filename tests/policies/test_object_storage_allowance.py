"""object-storage-allowance: each bucket deletes its objects in time, nothing is replicated, and
the days kept times the expected dump size fit the free 20 GB; run by pulumi-policy's analyzer."""

from __future__ import annotations

from typing import Any

import pytest
from pulumi.runtime.proto import analyzer_pb2

from ai_swarm_policies.object_storage import BUCKET, OBJECT_LIFECYCLE_POLICY, REPLICATION_POLICY
from dryrun.engine import ProgramRun, Registration
from dryrun.policy import evaluate
from dryrun.synthetic import resource, urn_of
from tests.policies.policy_requests import UNKNOWN, analyze_stack, analyzer, of_policy

POLICY = "object-storage-allowance"


def _violations(stack: list[Registration], config: dict[str, Any] | None = None) -> list[Any]:
    return of_policy(analyze_stack(analyzer(config), stack), POLICY)


def _bucket(name: str) -> Registration:
    return resource(BUCKET, name, {"name": name, "namespace": "ns", "compartmentId": "c"})


def _rule(days: Any, **changed: Any) -> dict[str, Any]:
    rule = {
        "name": "delete",
        "action": "DELETE",
        "target": "objects",
        "isEnabled": True,
        "timeAmount": str(days),
        "timeUnit": "DAYS",
    }
    return {**rule, **changed}


def _lifecycle(bucket: Registration, *rules: dict[str, Any], joined: bool = True) -> Registration:
    return resource(
        OBJECT_LIFECYCLE_POLICY,
        f"{bucket.name}-lifecycle",
        {"namespace": "ns", "bucket": bucket.inputs["name"], "rules": list(rules)},
        property_dependencies={"bucket": [bucket.urn]} if joined else None,
    )


def test_a_bucket_deleting_after_14_days_passes() -> None:
    dumps = _bucket("dumps")
    assert _violations([dumps, _lifecycle(dumps, _rule(14))]) == []


@pytest.mark.parametrize(
    "rules",
    [
        (),
        (_rule(14, isEnabled=False),),
        (_rule(14, action="ARCHIVE"),),
        (_rule(1, action="ABORT", target="multipart-uploads"),),
        (_rule(14, objectNameFilter={"inclusionPrefixes": ["postgres/"]}),),
    ],
    ids=["no rule", "disabled", "archives only", "aborts uploads only", "some objects only"],
)
def test_a_bucket_without_an_enabled_delete_of_every_object_fails(
    rules: tuple[dict[str, Any], ...],
) -> None:
    dumps = _bucket("dumps")
    stack = [dumps, _lifecycle(dumps, *rules)] if rules else [dumps]
    (found,) = _violations(stack)
    assert found.enforcementLevel == analyzer_pb2.MANDATORY
    assert found.urn == dumps.urn
    assert "Bucket 'dumps' has no enabled lifecycle rule deleting all its objects" in found.message


def test_a_lifecycle_of_another_bucket_does_not_count() -> None:
    dumps, other = _bucket("dumps"), _bucket("other")
    (found,) = _violations([dumps, other, _lifecycle(other, _rule(3))])
    assert found.urn == dumps.urn


def test_the_join_works_by_name_when_there_is_no_dependency() -> None:
    dumps = _bucket("dumps")
    assert _violations([dumps, _lifecycle(dumps, _rule(14), joined=False)]) == []


def test_more_days_than_allowed_fails_and_the_config_raises_the_bound() -> None:
    dumps = _bucket("dumps")
    stack = [dumps, _lifecycle(dumps, _rule(31))]
    messages = [d.message for d in _violations(stack)]
    assert any(
        "keeps objects 31 days, more than the 30 allowed (maxObjectDays)" in m for m in messages
    )
    # 31 days x 1 GB is over 20 GB as well.
    assert any("The buckets keep 31 GB at 1 GB a night" in m for m in messages)
    relaxed = {POLICY: {"maxObjectDays": 31, "expectedDumpGb": 0.5}}
    assert _violations(stack, relaxed) == []


def test_a_year_rule_counts_as_a_year_of_days() -> None:
    dumps = _bucket("dumps")
    stack = [dumps, _lifecycle(dumps, _rule(1, timeUnit="YEARS"))]
    messages = [d.message for d in _violations(stack)]
    assert any("keeps objects 366 days" in m for m in messages)


def test_the_shortest_enabled_rule_decides() -> None:
    dumps = _bucket("dumps")
    stack = [dumps, _lifecycle(dumps, _rule(90), _rule(7, name="soon"))]
    assert _violations(stack) == []


def test_retention_arithmetic_counts_every_bucket() -> None:
    first, second = _bucket("first"), _bucket("second")
    stack = [first, second, _lifecycle(first, _rule(14)), _lifecycle(second, _rule(7))]
    (found,) = _violations(stack)
    assert found.urn == ""
    for part in ("21 GB at 1 GB a night", "'first' 14 days, 'second' 7 days", "20 GB allowed"):
        assert part in found.message
    assert _violations(stack, {POLICY: {"expectedDumpGb": 0.9}}) == []
    assert _violations(stack, {POLICY: {"maxObjectStorageGb": 21}}) == []


def test_a_replication_policy_fails() -> None:
    dumps = _bucket("dumps")
    replica = resource(
        REPLICATION_POLICY,
        "dumps-replica",
        {"bucket": "dumps", "namespace": "ns", "destinationBucketName": "dumps-copy",
         "destinationRegionName": "eu-amsterdam-1", "name": "copy"},
    )  # fmt: skip
    (found,) = _violations([dumps, _lifecycle(dumps, _rule(14)), replica])
    assert found.urn == urn_of(REPLICATION_POLICY, "dumps-replica")
    assert "Replication policy 'dumps-replica'" in found.message


def test_an_unknown_time_amount_is_a_violation_not_a_pass() -> None:
    dumps = _bucket("dumps")
    messages = [d.message for d in _violations([dumps, _lifecycle(dumps, _rule(UNKNOWN))])]
    assert any("is not known until apply" in m for m in messages)


# --- the program as it is ------------------------------------------------------------------------


def test_the_program_passes_and_its_offsite_days_are_what_is_judged(
    always_free_run: ProgramRun, preview_run: ProgramRun
) -> None:
    for run in (always_free_run, preview_run):
        assert evaluate(run.registrations, None).of_policy(POLICY) == ()
    [found] = evaluate(always_free_run.registrations, {POLICY: {"maxObjectDays": 13}}).of_policy(
        POLICY
    )
    assert "Bucket 'offsite-bucket' keeps objects 14 days" in found.message
