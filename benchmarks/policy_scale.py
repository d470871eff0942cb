"""The policy pack on synthetic stacks of 1,000 and 10,000 resources: timed, never judged.

Run: `python -m pytest benchmarks/policy_scale.py` (not in the test suite: the 10,000 case takes
seconds). The time is the pack's whole evaluation as the CLI drives it: one Analyze per
resource and one AnalyzeStack, config included.
"""

from __future__ import annotations

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from dryrun.policy import evaluate
from tests.policies.policy_requests import synthetic_allowance, synthetic_stack


@pytest.mark.parametrize("size", [1_000, 10_000])
def test_pack_on_a_synthetic_stack(benchmark: BenchmarkFixture, size: int) -> None:
    stack = synthetic_stack(size)
    config = synthetic_allowance(size)
    # One round: the 10,000 case takes seconds, and the number is reported, not judged.
    report = benchmark.pedantic(  # type: ignore[no-untyped-call]  # pytest-benchmark is untyped
        evaluate, args=(stack, config), rounds=1, iterations=1
    )
    benchmark.extra_info["resources"] = len(stack)
    # Every container joined its own host: at this size a wrong join would overflow a budget.
    assert report.mandatory_violations == ()
