"""The dry run's budget and the pack's verdict come from one measure, so they agree: on the same
stack, each figure the report shows is exactly where the pack's verdict turns from pass to fail."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from ai_swarm_policies.contract import CONTAINER, MICRO_SHAPE, VOLUME
from dryrun.engine import ProgramRun, Registration
from dryrun.policy import evaluate
from dryrun.report import Budget, BudgetLimits, budget
from dryrun.synthetic import container, instance, resource, volume

# The smallest step past a figure that the pack must notice.
STEP = 0.01


def _hand_built() -> list[Registration]:
    """Two hosts, a volume sized in MBs only (OCI's deprecated sizeInMbs) and an unset boot."""
    return [
        instance("app", 2, 12, boot_gb="60"),
        instance("edge", 1, 6, boot_gb=None),
        volume("data", "40"),
        resource(VOLUME, "legacy", {"sizeInMbs": str(30 * 1024)}, protect=True),
        container("db", "app", "1.25", 4096),
        container("web", "app", "0.5", 3000),
        container("proxy", "edge", "0.75", 1024),
    ]


def _with_micro() -> list[Registration]:
    """The A1 and an E2.1.Micro: a fixed shape (no shapeConfig) with its own memory reserve."""
    return [
        instance("app", 2, 12),
        instance("replica", None, None, shape=MICRO_SHAPE),
        volume("data", "100"),
        container("db", "app", "1.25", 4096),
        container("postgres-replica", "replica", "0.5", 320),
        container("exporter", "replica", "0.1", 64),
    ]


# The reserve each host of these stacks keeps: the Micro's own, the rest the A1's.
RESERVE_SETTING = {"replica": "microReservedMemoryMb"}


@pytest.fixture(params=["program", "hand-built", "with-micro"])
def stack(request: pytest.FixtureRequest) -> list[Registration]:
    if request.param == "program":
        run: ProgramRun = request.getfixturevalue("always_free_run")
        return list(run.registrations)
    return _hand_built() if request.param == "hand-built" else _with_micro()


def _report(stack: Sequence[Registration], config: dict[str, Any] | None = None) -> Budget:
    run = ProgramRun("oracle", False, tuple(stack), {}, ())
    return budget(run, BudgetLimits.from_policy_config(evaluate(stack, config).settings))


def _violated(stack: Sequence[Registration], config: dict[str, Any]) -> set[str]:
    return {d.policy for d in evaluate(stack, config).mandatory_violations}


def test_a_volume_sized_in_mbs_counts_in_the_report() -> None:
    # boots 60 + 50 (unset) GB, volumes 40 GB + 30,720 MB
    assert _report(_hand_built()).block_storage_gb.used == 180


def test_block_storage_used_is_the_packs_threshold(stack: list[Registration]) -> None:
    used = _report(stack).block_storage_gb.used
    assert used > 0
    at = {"block-storage-allowance": {"maxBlockStorageGb": used}}
    below = {"block-storage-allowance": {"maxBlockStorageGb": used - STEP}}
    assert "block-storage-allowance" not in _violated(stack, at)
    assert "block-storage-allowance" in _violated(stack, below)


def test_a1_totals_are_the_packs_thresholds(stack: list[Registration]) -> None:
    shown = _report(stack)
    ocpus, memory_gb = shown.a1_ocpus.used, shown.a1_memory_gb.used
    assert ocpus > 0 and memory_gb > 0

    def a1(max_ocpus: float, max_memory_gb: float) -> dict[str, Any]:
        limits = {"maxA1Ocpus": max_ocpus, "maxA1MemoryGb": max_memory_gb, "maxA1Instances": 9}
        return {"a1-allowance": limits}

    assert "a1-allowance" not in _violated(stack, a1(ocpus, memory_gb))
    assert "a1-allowance" in _violated(stack, a1(ocpus - STEP, memory_gb))
    assert "a1-allowance" in _violated(stack, a1(ocpus, memory_gb - STEP))


def _hosts_over(stack: Sequence[Registration], policy: str, config: dict[str, Any]) -> set[str]:
    """The hosts `policy` finds over budget, by the name its message gives them."""
    found = evaluate(stack, config).of_policy(policy)
    return {
        d.message.split("Host '", 1)[1].split("'", 1)[0] for d in found if "Host '" in d.message
    }


def test_each_hosts_memory_used_is_the_packs_threshold(stack: list[Registration]) -> None:
    for host in _report(stack).hosts:
        assert host.containers, host.host
        # The reserve that leaves exactly the memory the report says the containers use.
        reserve = host.memory_gb * 1024 - host.memory_mb.used
        setting = RESERVE_SETTING.get(host.host, "hostReservedMemoryMb")
        at = {"host-memory-budget": {setting: reserve}}
        over = {"host-memory-budget": {setting: reserve + STEP}}
        assert host.host not in _hosts_over(stack, "host-memory-budget", at)
        assert host.host in _hosts_over(stack, "host-memory-budget", over)


def test_each_hosts_cpu_used_is_the_packs_threshold(stack: list[Registration]) -> None:
    for host in _report(stack).hosts:
        overcommit = host.cpu.used / host.ocpus
        # Division may round below the exact ratio: the verdict turns within a hair of it.
        at = {"host-cpu-budget": {"maxCpuOvercommit": overcommit + 1e-9}}
        under = {"host-cpu-budget": {"maxCpuOvercommit": overcommit - STEP}}
        assert host.host not in _hosts_over(stack, "host-cpu-budget", at)
        assert host.host in _hosts_over(stack, "host-cpu-budget", under)


def test_the_report_places_each_container_on_the_host_the_pack_budgets_it_on() -> None:
    shown = {h.host: {c.container for c in h.containers} for h in _report(_hand_built()).hosts}
    assert shown == {"app": {"db", "web"}, "edge": {"proxy"}}
    # Moving the web container to the small host overflows it, and only it.
    moved = [*_hand_built()[:5], container("web", "edge", "0.5", 5000), _hand_built()[6]]
    found = evaluate(moved).of_policy("host-memory-budget")
    assert [d.urn for d in found] == [moved[1].urn]


def _containers_reordered(stack: Sequence[Registration], order: str) -> list[Registration]:
    """`stack` with its containers in another registration order (largest cpus first, or
    reversed); everything else where it was."""
    containers = [r for r in stack if r.type == CONTAINER]
    if order == "largest first":
        containers.sort(key=lambda r: -float(r.inputs["cpus"]))
    else:
        containers.reverse()
    others = iter(containers)
    return [next(others) if r.type == CONTAINER else r for r in stack]


@pytest.mark.parametrize("order", ["largest first", "reversed"])
def test_a_budget_met_exactly_passes_in_any_registration_order(
    always_free_run: ProgramRun, order: str
) -> None:
    # The default stack's cpus limits (0.9 + 0.6 + 0.45 + ...) sum to exactly the 3 allowed;
    # added up as floats largest first they come to 3.0000000000000004.
    stack = _containers_reordered(always_free_run.registrations, order)
    shown = _report(stack).hosts[0].cpu
    assert (shown.used, shown.allowed, shown.headroom) == (3, 3, 0)
    assert evaluate(stack).mandatory_violations == ()
