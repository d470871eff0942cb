"""The dry run's views of a program run: tree, budget and deployment graph."""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from ai_swarm_policies.contract import CONTAINER, VCN
from dryrun import POLICY_PACK_DIR
from dryrun.engine import ProgramRun, run_program
from dryrun.policy import evaluate, load_policy_config
from dryrun.report import (
    BudgetLimits,
    TreeNode,
    budget,
    deployment_graph,
    resource_tree,
    waits_on,
)
from dryrun.synthetic import container, instance


@pytest.fixture(scope="module")
def limits(always_free_run: ProgramRun) -> BudgetLimits:
    return BudgetLimits.from_policy_config(evaluate(always_free_run.registrations).settings)


def _count(nodes: tuple[TreeNode, ...]) -> int:
    return sum(1 + _count(node.children) for node in nodes)


def test_tree_holds_every_registration_once(always_free_run: ProgramRun) -> None:
    tree = resource_tree(always_free_run)
    assert _count(tree) == len(always_free_run.registrations)
    roots = {node.type for node in tree}
    assert {"ai-swarm:oci:Network", "ai-swarm:oci:ArmHost", "ai-swarm:service:Postgres"} <= roots


def test_limits_are_the_packs_defaults(limits: BudgetLimits) -> None:
    assert limits == BudgetLimits(
        max_a1_ocpus=2,
        max_a1_memory_gb=12,
        max_block_storage_gb=200,
        host_reserved_memory_mb=1536,
        max_cpu_overcommit=1.5,
        micro_reserved_memory_mb=512,
    )


def test_budget_sums_every_container_of_the_host(
    always_free_run: ProgramRun, limits: BudgetLimits
) -> None:
    result = budget(always_free_run, limits)
    [host] = result.hosts
    containers = always_free_run.of_type(CONTAINER)
    assert len(host.containers) == len(containers)
    assert host.memory_mb.used == sum(c.inputs["memory"] for c in containers)
    assert host.cpu.used == pytest.approx(sum(float(c.inputs["cpus"]) for c in containers))
    assert host.memory_mb.allowed == 12 * 1024 - 1536
    assert host.cpu.allowed == 3
    assert {u.service for u in host.containers} == {
        "Postgres", "Redis", "NodeExporter", "LiteLLM", "OpenWebUI", "Pipelines", "Vault",
    }  # fmt: skip
    assert result.unplaced == ()
    assert (result.a1_ocpus.used, result.a1_memory_gb.used) == (2, 12)
    assert result.block_storage_gb.used == 50 + 150


def test_a_container_labelled_for_no_host_is_unplaced(
    always_free_run: ProgramRun, limits: BudgetLimits
) -> None:
    registrations = list(always_free_run.registrations)
    index = next(i for i, r in enumerate(registrations) if r.type == CONTAINER)
    stray = registrations[index]
    labels = [{"label": "ai-swarm.host", "value": "elsewhere"}]
    registrations[index] = dataclasses.replace(stray, inputs={**stray.inputs, "labels": labels})
    result = budget(
        dataclasses.replace(always_free_run, registrations=tuple(registrations)), limits
    )
    assert [u.container for u in result.unplaced] == [stray.inputs["name"]]
    assert len(result.hosts[0].containers) == len(always_free_run.of_type(CONTAINER)) - 1


def test_longest_chain_is_a_chain_of_real_waits(always_free_run: ProgramRun) -> None:
    graph = deployment_graph(always_free_run)
    assert graph.resource_count == sum(1 for r in always_free_run.registrations if r.custom)
    chain = graph.longest_chain
    assert len(chain) >= 8  # network, instance, IP, readiness, provider, image, containers
    for earlier, later in itertools.pairwise(chain):
        assert earlier.urn in waits_on(later)
    assert chain[0].type == VCN
    # Open WebUI's container waits for none of LiteLLM's steps: the chain ends beside it.
    assert all(r.inputs.get("name") != "open-webui" for r in chain)


def test_limits_follow_the_policy_config(a1_4x24_run: ProgramRun) -> None:
    profile = load_policy_config(POLICY_PACK_DIR / "profiles" / "a1-4x24.json")
    settings = evaluate(a1_4x24_run.registrations, profile).settings
    limits = BudgetLimits.from_policy_config(settings)
    assert (limits.max_a1_ocpus, limits.max_a1_memory_gb) == (4, 24)
    assert budget(a1_4x24_run, limits).a1_ocpus.headroom == 0


def test_the_micros_budget_is_its_1_gb_less_its_own_reserve(limits: BudgetLimits) -> None:
    micro = instance("replica", None, None, shape="VM.Standard.E2.1.Micro")
    run = ProgramRun(
        stack="oracle",
        preview=False,
        registrations=(
            instance("app"),
            container("postgres", "app", "0.4", 1536),
            micro,
            container("postgres-replica", "replica", "0.5", 320),
        ),
        outputs={},
        invokes=(),
    )
    by_host = {host.host: host for host in budget(run, limits).hosts}
    assert (by_host["replica"].memory_mb.allowed, by_host["replica"].cpu.allowed) == (512, 1.5)
    assert by_host["replica"].reserved_memory_mb == 512
    assert (by_host["app"].memory_mb.allowed, by_host["app"].reserved_memory_mb) == (10752, 1536)


def test_each_host_has_its_own_budget_the_micro_its_fixed_size_and_reserve(
    limits: BudgetLimits,
) -> None:
    run = run_program(overrides={"replica": '{"enabled": true}', "dataVolumeGb": "100"})
    a1, micro = budget(run, limits).hosts
    assert (a1.host, micro.host) == ("host", "replica")
    # The A1 keeps the pack's reserve; the Micro (1 OCPU, 1 GB, no shape_config to read them
    # from) keeps 512 MB of its 1024.
    assert a1.memory_mb.allowed == 12 * 1024 - 1536
    assert (micro.ocpus, micro.memory_gb, micro.reserved_memory_mb) == (1, 1, 512)
    assert micro.memory_mb.allowed == 1024 - 512
    assert micro.cpu.allowed == 1.5
    assert sorted((c.container, c.memory_mb) for c in micro.containers) == [
        ("node-exporter", 64),
        ("postgres-replica", 320),
    ]
    # Every container is on one host or the other, and counted once.
    placed = sum(len(h.containers) for h in (a1, micro))
    assert placed == len(run.of_type(CONTAINER))
    assert budget(run, limits).unplaced == ()
