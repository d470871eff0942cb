"""Both profiles fit their host: memory limits within host memory minus the OS reserve, CPU
limits within 1.5 x the OCPUs, counted from what the program registers."""

from __future__ import annotations

import pytest

from components.config import PROFILES
from components.services.catalog import (
    ALLOCATIONS,
    CPU_OVERCOMMIT,
    HOST_RESERVED_MEMORY_MB,
    SERVICES,
    Allocation,
    budget,
    markdown_table,
)
from dryrun.engine import ProgramRun
from tests.services.readers import CONTAINER, INSTANCE, container, run_with

# The original sizing's ranges (MB) that the a1-4x24 profile keeps to, per service.
ORIGINAL_RANGES = {
    "Postgres": (1024, 2048),
    "Redis": (512, 1024),
    "LiteLLM": (1024, 4096),
    "OpenWebUI": (2048, 8192),
    "Pipelines": (1024, 4096),
    "NodeExporter": (50, 100),
    "Vault": (200, 500),
}


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


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_profile_table_fits_its_host(profile: str) -> None:
    host = PROFILES[profile].host
    table = ALLOCATIONS[profile]
    assert set(table) == {c for entry in SERVICES.values() for c in entry.containers}
    assert budget(list(table.values()), host.ocpus, host.memory_gb).fits


def test_a1_4x24_keeps_to_the_original_ranges() -> None:
    table = ALLOCATIONS["a1-4x24"]
    for entry in SERVICES.values():
        low, high = ORIGINAL_RANGES[entry.name]
        total = sum(table[c].memory_mb for c in entry.containers)
        assert low <= total <= high, entry.name


def test_budget_sees_an_overrun() -> None:
    host = PROFILES["always-free"].host
    table = dict(ALLOCATIONS["always-free"])
    within = budget(list(table.values()), host.ocpus, host.memory_gb)
    spare_mb = within.max_memory_mb - within.memory_mb
    grown = [*table.values(), Allocation(0, spare_mb + 1)]
    assert not budget(grown, host.ocpus, host.memory_gb).fits


def test_overrides_change_the_main_container_only() -> None:
    run = run_with({"services": '{"redis": {"cpus": "0.3", "memoryMb": 768}}'})
    redis = container(run, "redis").inputs
    assert (redis["cpus"], redis["memory"], redis["memoryReservation"]) == ("0.3", 768, 384)
    sentinel = container(run, "redis-sentinel").inputs
    default = ALLOCATIONS["always-free"]["redis-sentinel"]
    assert (sentinel["cpus"], sentinel["memory"]) == (default.cpus, default.memory_mb)


def test_readme_table_lists_every_container_and_the_totals() -> None:
    table = markdown_table("always-free", 2, 12)
    rows = table.splitlines()
    assert len(rows) == 2 + len(ALLOCATIONS["always-free"]) + 1
    totals = budget(list(ALLOCATIONS["always-free"].values()), 2, 12)
    assert f"**{totals.memory_mb}** of {totals.max_memory_mb}" in rows[-1]


def test_preview_knows_every_budget_input() -> None:
    """The policy pack must decide the budgets in `pulumi preview`, before anything exists."""
    run = run_with(preview=True)
    containers = run.of_type(CONTAINER)
    assert len(containers) == sum(len(entry.containers) for entry in SERVICES.values())
    for registration in containers:
        inputs = registration.inputs
        assert isinstance(inputs["cpus"], str)
        assert isinstance(inputs["memory"], float | int)
        assert all(isinstance(item["value"], str) for item in inputs["labels"])
        assert all(isinstance(port["ip"], str) for port in inputs.get("ports", []))
