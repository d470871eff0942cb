"""The pack stays linear in the number of resources: the property reads its policies make grow
exactly with the stack. (Timings on 1,000 and 10,000 resources: benchmarks/policy_scale.py.)"""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from dryrun.policy import evaluate
from tests.policies.policy_requests import synthetic_allowance, synthetic_stack


def _reads(size: int, monkeypatch: pytest.MonkeyPatch) -> int:
    # Imported by name: `dryrun.policy` puts the pack's directory on the path, as the CLI does.
    policies = importlib.import_module("ai_swarm_policies")
    original = policies._plain
    count = 0

    def counting(props: Any, *path: str) -> Any:
        nonlocal count
        count += 1
        return original(props, *path)

    with monkeypatch.context() as patch:
        patch.setattr(policies, "_plain", counting)
        report = evaluate(synthetic_stack(size), synthetic_allowance(size))
    assert report.mandatory_violations == ()
    return count


def test_policies_read_each_resource_a_fixed_number_of_times(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    small, large = _reads(100, monkeypatch), _reads(1_000, monkeypatch)
    assert small > 0
    assert large == 10 * small
