"""The pack stays linear in the number of resources: the property reads its policies make grow
exactly with the stack, and an evaluation leaves nothing for the cycle collector it pauses.
(Timings on 1,000 to 10,000 resources: benchmarks/policy_scale.py.)"""

from __future__ import annotations

import gc
from typing import Any

import pytest
from pulumi_policy import proxy

from dryrun.policy import cycle_collector_paused, evaluate
from dryrun.synthetic import container, instance, synthetic_allowance, synthetic_stack, volume
from tests.policies.policy_requests import UNKNOWN


def _reads(size: int, monkeypatch: pytest.MonkeyPatch) -> int:
    """How many property reads the policies make on a synthetic stack of `size` resources:
    every read of an input goes through the analyzer's proxies."""
    count = 0

    def counting(proxy_type: Any) -> Any:
        original = proxy_type.__getitem__

        def getitem(self: Any, key: Any) -> Any:
            nonlocal count
            count += 1
            return original(self, key)

        return getitem

    with monkeypatch.context() as patch:
        for proxy_type in (proxy._DictProxy, proxy._ListProxy):
            patch.setattr(proxy_type, "__getitem__", counting(proxy_type))
        report = evaluate(synthetic_stack(size), synthetic_allowance(size))
    assert report.mandatory_violations == ()
    return count


def test_policies_read_each_resource_a_fixed_number_of_times(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    small, large = _reads(100, monkeypatch), _reads(1_000, monkeypatch)
    assert small > 0
    assert large == 10 * small


def test_an_evaluation_makes_no_reference_cycles() -> None:
    """`evaluate` runs the pack with the cycle collector paused: that loses no memory only while
    reference counting frees everything the evaluation discards, undecidable values included."""
    stack = [
        *synthetic_stack(100),
        instance("unsized", ocpus=UNKNOWN),
        container("vague", "host-0", cpus=UNKNOWN, memory=UNKNOWN, image=UNKNOWN),
        volume("sizeless", None),
    ]
    gc.collect()
    with cycle_collector_paused():
        report = evaluate(stack, synthetic_allowance(100))
        unreachable = gc.collect()
    assert report.mandatory_violations != ()  # the undecidable values were reported
    assert unreachable == 0


def test_an_evaluation_leaves_the_collector_as_it_found_it() -> None:
    assert gc.isenabled()
    evaluate(synthetic_stack(10))
    assert gc.isenabled()
    gc.disable()
    try:
        evaluate(synthetic_stack(10))
        assert not gc.isenabled()
    finally:
        gc.enable()
