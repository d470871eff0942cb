"""The policy pack on synthetic stacks of 1,000, 3,000 and 10,000 resources: timed, never judged.

Run: `python -m pytest benchmarks/policy_scale.py` (not in the test suite: the 10,000 case takes
seconds). The time is the pack's whole evaluation as the CLI drives it: one Analyze per
resource and one AnalyzeStack, config included. Each case also prints its time per resource, the
figure that shows whether the pack stays linear as the stack grows.
"""

from __future__ import annotations

import time

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from dryrun.policy import PolicyReport, evaluate
from dryrun.synthetic import synthetic_allowance, synthetic_stack


@pytest.mark.parametrize("size", [1_000, 3_000, 10_000])
def test_pack_on_a_synthetic_stack(
    benchmark: BenchmarkFixture, capsys: pytest.CaptureFixture[str], size: int
) -> None:
    stack = synthetic_stack(size)
    config = synthetic_allowance(size)
    seconds: list[float] = []

    def timed() -> PolicyReport:
        start = time.perf_counter()
        report = evaluate(stack, config)
        seconds.append(time.perf_counter() - start)
        return report

    # One round: the 10,000 case takes seconds, and the number is reported, not judged.
    report = benchmark.pedantic(  # type: ignore[no-untyped-call]  # pytest-benchmark is untyped
        timed, rounds=1, iterations=1
    )
    per_resource_us = seconds[0] / len(stack) * 1e6
    benchmark.extra_info["resources"] = len(stack)
    benchmark.extra_info["microseconds per resource"] = round(per_resource_us, 1)
    with capsys.disabled():
        print(f"\n{len(stack):>6} resources: {per_resource_us:6.1f} µs per resource")
    # Every container joined its own host: at this size a wrong join would overflow a budget.
    assert report.mandatory_violations == ()
