"""The whole program, run under the mocks for both profiles, judged by the policy pack."""

from __future__ import annotations

from google.protobuf import json_format
from pulumi.runtime import rpc

from ai_swarm_policies.contract import CONTAINER, INSTANCE
from dryrun import POLICY_PACK_DIR
from dryrun.engine import ProgramRun, Registration, run_program
from dryrun.policy import PolicyReport, evaluate, load_policy_config

PROFILE_4X24 = POLICY_PACK_DIR / "profiles" / "a1-4x24.json"


def _problems(report: PolicyReport) -> list[str]:
    return [f"{d.policy} ({d.enforcement_level}) {d.urn}: {d.message}" for d in report.diagnostics]


def _has_unknown(registration: Registration) -> bool:
    return rpc.UNKNOWN in json_format.MessageToJson(registration.wire_inputs)


def test_always_free_passes_the_default_pack(always_free_run: ProgramRun) -> None:
    report = evaluate(always_free_run.registrations)
    assert report.mandatory_violations == (), _problems(report)


def test_a1_4x24_is_rejected_by_the_default_pack_only_for_the_allowance(
    a1_4x24_run: ProgramRun,
) -> None:
    report = evaluate(a1_4x24_run.registrations)
    (violation,) = report.mandatory_violations
    assert violation.policy == "a1-allowance"
    assert "4 OCPU / 24 GB" in violation.message and "2026-06-15" in violation.message
    assert "--policy-pack-config policies/profiles/a1-4x24.json" in violation.message


def test_a1_4x24_passes_with_its_profile_config(a1_4x24_run: ProgramRun) -> None:
    report = evaluate(a1_4x24_run.registrations, load_policy_config(PROFILE_4X24))
    assert report.mandatory_violations == (), _problems(report)


def test_preview_decides_every_policy_for_both_profiles(preview_run: ProgramRun) -> None:
    a1_4x24_preview = run_program(stack="oracle", overrides={"profile": "a1-4x24"}, preview=True)
    for run, expected in ((preview_run, []), (a1_4x24_preview, ["a1-allowance"])):
        # The preview must really hide created outputs, or this would prove nothing.
        assert _has_unknown(run.one(INSTANCE))
        report = evaluate(run.registrations)
        assert [d for d in report.diagnostics if d.undecided] == []
        assert [d.policy for d in report.mandatory_violations] == expected, _problems(report)


def test_every_service_container_is_counted_against_the_host(always_free_run: ProgramRun) -> None:
    """The budget policies must see the services: with too little host memory they object."""
    containers = always_free_run.of_type(CONTAINER)
    assert len(containers) >= 7, "the seven services run one container each at least"
    starved = run_program(stack="oracle", overrides={"memoryGb": "2"})
    report = evaluate(starved.registrations)
    host = starved.one(INSTANCE)
    assert [(d.policy, d.urn) for d in report.mandatory_violations] == [
        ("host-memory-budget", host.urn)
    ], _problems(report)
