"""Classifying what a failed `pulumi up` printed."""

from __future__ import annotations

import pytest

from deploy.failures import FailureKind, classify
from tests.deploy.fakes import fixture_text


@pytest.mark.parametrize(
    ("fixture", "kind"),
    [
        ("capacity", FailureKind.CAPACITY),
        ("capacity_legacy", FailureKind.CAPACITY),
        ("throttled", FailureKind.THROTTLED),
        ("limit", FailureKind.LIMIT),
        ("not_authenticated", FailureKind.AUTHORISATION),
        ("not_authorized", FailureKind.AUTHORISATION),
        ("policy", FailureKind.POLICY),
        ("protected", FailureKind.OTHER),
        ("other", FailureKind.OTHER),
    ],
)
def test_recorded_failures(fixture: str, kind: FailureKind) -> None:
    assert classify(fixture_text(f"up/{fixture}.txt")).kind is kind


def test_only_capacity_and_throttling_retry() -> None:
    assert {kind for kind in FailureKind if kind.retries} == {
        FailureKind.CAPACITY,
        FailureKind.THROTTLED,
    }


def test_the_detail_is_the_deciding_line() -> None:
    failure = classify(fixture_text("up/capacity.txt"))
    assert failure.detail == "* 500-InternalError, Out of host capacity."


def test_a_stop_reason_wins_over_capacity_in_the_same_output() -> None:
    both = fixture_text("up/capacity.txt") + fixture_text("up/limit.txt")
    assert classify(both).kind is FailureKind.LIMIT


def test_capacity_wins_over_throttling() -> None:
    both = fixture_text("up/throttled.txt") + fixture_text("up/capacity.txt")
    assert classify(both).kind is FailureKind.CAPACITY


def test_an_advisory_policy_alone_does_not_stop() -> None:
    advisory_only = fixture_text("up/policy.txt").replace("[mandatory]", "[advisory]")
    assert classify(advisory_only).kind is FailureKind.OTHER
    assert classify(advisory_only + fixture_text("up/capacity.txt")).kind is (FailureKind.CAPACITY)


def test_a_generic_internal_error_is_not_capacity() -> None:
    text = "error: 1 error occurred:\n\t* 500-InternalError, Internal Server Error\n"
    assert classify(text).kind is FailureKind.OTHER


def test_other_failures_show_the_resources_own_error() -> None:
    assert classify(fixture_text("up/other.txt")).detail == (
        'error: Process exited with status 1: running "cloud-init status --wait":'
    )


def test_other_failures_skip_the_error_wrapper_lines() -> None:
    text = fixture_text("up/capacity.txt").replace(
        "* 500-InternalError, Out of host capacity.", "* 409-Conflict, Subnet is being updated."
    )
    failure = classify(text)
    assert failure.kind is FailureKind.OTHER
    assert failure.detail == "* 409-Conflict, Subnet is being updated."
