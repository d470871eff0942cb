"""Both profiles fit their host: memory limits within host memory minus the OS reserve, CPU
limits within 1.5 x the OCPUs, counted from what the program registers."""

from __future__ import annotations

import pytest

from components.services.base import HOST_LABEL
from components.services.catalog import CONFIGURABLE
from components.sizing import ALLOCATIONS, CPU_OVERCOMMIT, HOST_RESERVED_MEMORY_MB
from dryrun.engine import ProgramRun
from tests.services.readers import CONTAINER, INSTANCE, container, label, run_with


def _registered_totals(run: ProgramRun) -> tuple[float, int]:
    containers = run.of_type(CONTAINER)
    return (
        sum(float(c.inputs["cpus"]) for c in containers),
        sum(int(c.inputs["memory"]) for c in containers),
    )


@pytest.mark.parametrize("run_name", ["free_run", "big_run"])
def test_registered_limits_fit_the_host(request: pytest.FixtureRequest, run_name: str) -> None:
    run: ProgramRun = request.getfixturevalue(run_name)
    shape = run.one(INSTANCE).inputs["shapeConfig"]
    cpus, memory_mb = _registered_totals(run)
    assert memory_mb <= shape["memoryInGbs"] * 1024 - HOST_RESERVED_MEMORY_MB
    assert cpus <= shape["ocpus"] * CPU_OVERCOMMIT + 1e-9


def test_overrides_change_the_main_container_only() -> None:
    run = run_with({"services": '{"redis": {"cpus": "0.3", "memoryMb": 768}}'})
    redis = container(run, "redis").inputs
    assert (redis["cpus"], redis["memory"], redis["memoryReservation"]) == ("0.3", 768, 384)
    sentinel = container(run, "redis-sentinel").inputs
    default = ALLOCATIONS["always-free"]["redis-sentinel"]
    assert (sentinel["cpus"], sentinel["memory"]) == (default.cpus, default.memory_mb)


def test_preview_knows_every_budget_input() -> None:
    """The policy pack must decide the budgets in `pulumi preview`, before anything exists."""
    run = run_with(preview=True)
    containers = run.of_type(CONTAINER)
    assert len(containers) == sum(len(entry.containers) for entry in CONFIGURABLE.values())
    for registration in containers:
        inputs = registration.inputs
        assert isinstance(inputs["cpus"], str)
        assert isinstance(inputs["memory"], float | int)
        assert isinstance(label(registration, HOST_LABEL), str)
        assert all(isinstance(port["ip"], str) for port in inputs.get("ports", []))
