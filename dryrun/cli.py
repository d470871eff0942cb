"""`python -m dryrun`: the program and the policy pack, offline, with no account and no CLI.

Exit status: 0 when no mandatory policy is violated, 1 when one is, 2 when the program or its
config (or the policy config) is in error.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import traceback
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pulumi
from rich.console import Console
from rich.table import Table
from rich.tree import Tree

from dryrun.engine import (
    DEFAULT_STACK,
    ProgramError,
    ProgramRun,
    Secret,
    Unknown,
    qualify_key,
    run_program,
)
from dryrun.policy import (
    ENFORCEMENT_LEVELS,
    PolicyConfigError,
    PolicyReport,
    evaluate,
    load_policy_config,
)
from dryrun.report import (
    Budget,
    BudgetLimits,
    DeploymentGraph,
    TreeNode,
    Usage,
    budget,
    deployment_graph,
    resource_tree,
)

EXIT_OK: Final = 0
EXIT_VIOLATION: Final = 1
EXIT_ERROR: Final = 2


@dataclass(frozen=True)
class DryRun:
    run: ProgramRun
    tree: tuple[TreeNode, ...]
    budget: Budget
    policies: PolicyReport
    graph: DeploymentGraph

    @property
    def exit_code(self) -> int:
        return EXIT_VIOLATION if self.policies.mandatory_violations else EXIT_OK

    def as_json(self) -> dict[str, Any]:
        """The `--json` document; its shape is described in docs/testing.md."""
        return {
            "stack": self.run.stack,
            "preview": self.run.preview,
            "outputs": {name: _json_value(value) for name, value in self.run.outputs.items()},
            "resources": [node.as_json() for node in self.tree],
            "budget": self.budget.as_json(),
            "policies": {
                level: [
                    {"policy": d.policy, "message": d.message, "urn": d.urn}
                    for d in self.policies.at_level(level)
                ]
                for level in ENFORCEMENT_LEVELS
            },
            "graph": self.graph.as_json(),
            "exitCode": self.exit_code,
        }


def dry_run(
    stack: str,
    overrides: Mapping[str, str],
    preview: bool,
    policy_config: Mapping[str, Any] | None,
) -> DryRun:
    """Run the program and the pack; raises `ProgramError` or `PolicyConfigError`."""
    run = run_program(stack=stack, overrides=overrides, preview=preview)
    policies = evaluate(run.registrations, policy_config)
    return DryRun(
        run=run,
        tree=resource_tree(run),
        budget=budget(run, BudgetLimits.from_policy_config(policies.settings)),
        policies=policies,
        graph=deployment_graph(run),
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m dryrun",
        description="Run the ai-swarm program under mocks and check it with the policy pack.",
    )
    parser.add_argument(
        "--stack", default=DEFAULT_STACK, help="stack whose Pulumi.<stack>.yaml is read"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        type=_override,
        metavar="KEY=VALUE",
        help="config override; the ai-swarm: namespace is optional (e.g. profile=a1-4x24)",
    )
    parser.add_argument("--preview", action="store_true", help="leave created outputs unknown")
    parser.add_argument(
        "--policy-config", type=Path, help="policy pack config, as for --policy-pack-config"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    return parser.parse_args(argv)


def _override(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return qualify_key(key.strip()), value


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 120)
    try:
        policy_config = load_policy_config(args.policy_config) if args.policy_config else None
        result = dry_run(args.stack, dict(args.overrides), args.preview, policy_config)
    except (PolicyConfigError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except ProgramError as failure:
        # A RunError (a config error among them) is the program's own clean stop: its message
        # says everything, as under the CLI, which prints no traceback for it either.
        if not isinstance(failure.cause, pulumi.RunError):
            traceback.print_exception(failure.cause, file=sys.stderr)
        print(f"error: {failure.cause}", file=sys.stderr)
        return EXIT_ERROR
    if args.json:
        print(json.dumps(result.as_json(), indent=2))
    else:
        print_report(console, result)
    return result.exit_code


def print_report(console: Console, result: DryRun) -> None:
    mode = "preview" if result.run.preview else "up"
    console.rule(f"ai-swarm dry run: stack {result.run.stack} ({mode}, mocked cloud)")
    numbers = itertools.count(1)
    console.print(_tree_view(result.tree, next(numbers)))
    for table in _budget_tables(result.budget, numbers):
        console.print(table)
    _print_policies(console, result.policies, next(numbers))
    _print_graph(console, result.graph, next(numbers))
    verdict = (
        "FAIL: mandatory policy violated" if result.exit_code else "OK: no mandatory violation"
    )
    console.print(f"\n{verdict}", markup=False)


def _tree_view(nodes: Sequence[TreeNode], number: int) -> Tree:
    root = Tree(f"[bold]{number}. Resources[/bold]")

    def add(parent: Tree, node: TreeNode) -> None:
        branch = parent.add(f"{node.name} [dim]{node.type}[/dim]")
        for child in node.children:
            add(branch, child)

    for node in nodes:
        add(root, node)
    return root


def _size(ocpus: float, memory_gb: float) -> str:
    return f"{_n(ocpus)} OCPU, {_n(memory_gb)} GB"


def _budget_tables(result: Budget, numbers: Iterator[int]) -> list[Table]:
    """One numbered table per host, then the free-tier totals of every host together."""
    tables = []
    for host in result.hosts:
        table = Table(
            title=(
                f"{next(numbers)}. Budget of host '{host.host}' "
                f"({_size(host.ocpus, host.memory_gb)})"
            ),
            title_justify="left",
        )
        for column in ("service", "container", "CPUs", "memory MB"):
            table.add_column(
                column, justify="right" if column[0].isupper() or "MB" in column else "left"
            )
        for container in host.containers:
            table.add_row(
                container.service, container.container, _n(container.cpus), _n(container.memory_mb)
            )
        table.add_section()
        table.add_row("total", "", _n(host.cpu.used), _n(host.memory_mb.used))
        table.add_row(
            "allowance",
            f"OCPUs x overcommit; memory - {_n(host.reserved_memory_mb)} MB reserve",
            _n(host.cpu.allowed),
            _n(host.memory_mb.allowed),
        )
        table.add_row("headroom", "", _signed(host.cpu), _signed(host.memory_mb))
        tables.append(table)
    totals = Table(title=f"{next(numbers)}. Free-tier allowance", title_justify="left")
    for column in ("resource", "used", "allowed", "headroom"):
        totals.add_column(column, justify="left" if column == "resource" else "right")
    for label, usage in (
        ("A1 OCPUs", result.a1_ocpus),
        ("A1 memory GB", result.a1_memory_gb),
        ("block storage GB (boot + block)", result.block_storage_gb),
    ):
        totals.add_row(label, _n(usage.used), _n(usage.allowed), _signed(usage))
    tables.append(totals)
    return tables


def _print_policies(console: Console, report: PolicyReport, number: int) -> None:
    console.print(f"\n[bold]{number}. Policies[/bold]")
    if not report.diagnostics:
        console.print("  no policy reported anything")
    for level in ENFORCEMENT_LEVELS:
        found = report.at_level(level)
        if not found:
            continue
        console.print(f"  [bold]{level}[/bold] ({len(found)})")
        for diagnostic in found:
            console.print(f"  - {diagnostic.policy}: {diagnostic.message}", markup=False)


def _print_graph(console: Console, graph: DeploymentGraph, number: int) -> None:
    console.print(f"\n[bold]{number}. Deployment graph[/bold]")
    console.print(f"  resources to create: {graph.resource_count}")
    console.print(f"  longest dependency chain: {len(graph.longest_chain)} resources")
    for registration in graph.longest_chain:
        console.print(f"    -> {registration.name} ({registration.type})", markup=False)


def _n(value: float) -> str:
    return f"{value:g}"


def _signed(usage: Usage) -> str:
    style = "green" if usage.headroom >= 0 else "red"
    return f"[{style}]{usage.headroom:+g}[/{style}]"


def _json_value(value: object) -> object:
    """Unknown outputs (in preview) become null; secrets stay hidden as "[secret]"."""
    if isinstance(value, Unknown):
        return None
    if isinstance(value, Secret):
        return repr(value)
    return value
