"""`python -m deploy up | status | idle-check | images | restore-dump | seed-primary |
peer-subscription`: argument parsing, wiring and the tables.

Exit status: `up` 0 deployed, 1 stopped, 2 deadline passed; `status` 0 healthy (warnings
included), 1 anything unhealthy on either host or in the replication; `idle-check` 0 every
instance not at risk, 1 any instance at risk or cannot tell; `images` 0 every image passed, 1
one failed; `restore-dump` 0 listed or restored, 1 not; `seed-primary` 0 seeded and
resubscribed, 1 refused, declined or failed; `peer-subscription` 0 printed, 1 no peer
configured. Any command exits 1 when it cannot start (no Pulumi CLI, a missing stack output,
unusable credentials); argparse's usage errors exit 2.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from components.config import A1_HOST_KEY, REPLICA_HOST_KEY
from deploy.adapters import SshShell, SystemClock, identity_file, open_stack
from deploy.durations import format_duration, parse_duration
from deploy.idle import IDLE_BELOW_PERCENT, WINDOW, IdleReport, Verdict, idle_report
from deploy.images import ImagesReport, run_images_check
from deploy.oci_cloud import connect
from deploy.offsite import add_restore_parser, connect_store, run_restore, with_offsite
from deploy.peer import add_peer_parser, run_peer
from deploy.ports import Cloud, CloudError, OperatorError
from deploy.recovery import add_seed_parser, run_seed
from deploy.registry import DxfRegistry, Registry
from deploy.replica import (
    REPLICA_AT_RISK,
    ReplicaStatus,
    collect_replica_status,
    render_replication,
    replica_output,
)
from deploy.retry import (
    AVAILABILITY_DOMAIN_KEY,
    CapacityRetry,
    RetrySettings,
    plan_domains,
)
from deploy.status import (
    LEVEL_STYLE,
    ContainerStatus,
    Level,
    StatusReadError,
    StatusReport,
    collect_status,
)

DEFAULT_STACK: Final = "oracle"
EXIT_CANNOT_START: Final = 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m deploy",
        description="Operate the ai-swarm stack: deploy through A1 capacity shortages, check "
        "its health, Oracle's idle rule and its images, restore an off-site dump, seed a new "
        "primary from the replica, and subscribe an off-cloud peer.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = commands.add_parser(
        "up",
        help="pulumi up with the policy pack, retrying 'Out of host capacity'",
        description="Run `pulumi up --policy-pack policies`; on 'Out of host capacity' try the "
        "region's other availability domains, then wait (exponential back-off, full jitter) "
        "and try again until it succeeds or the deadline passes. Once the stack has its data "
        "volume, only the volume's domain is tried. Every attempt previews first and stops on "
        "a plan that replaces or deletes the instance, the data volume or its attachment. "
        "Exit 0 deployed, 1 stopped, 2 deadline.",
    )
    _stack_option(up)
    up.set_defaults(command_parser=up)
    up.add_argument(
        "--domains",
        type=_positive_int,
        metavar="N",
        help="the region's number of availability domains (skips asking OCI)",
    )
    up.add_argument(
        "--deadline",
        type=parse_duration,
        default="24h",
        metavar="DURATION",
        help="stop trying after this long (default 24h; 90s, 15m, 24h, 0s)",
    )
    up.add_argument(
        "--min-delay",
        type=parse_duration,
        default="60s",
        metavar="DURATION",
        help="shortest wait between rounds (default 60s)",
    )
    up.add_argument(
        "--max-delay",
        type=parse_duration,
        default="15m",
        metavar="DURATION",
        help="longest wait between rounds (default 15m)",
    )
    up.add_argument(
        "--allow-replace",
        action="store_true",
        help="go ahead when the preview replaces or deletes the instance, the data volume or "
        "its attachment (a new SSH key or `--replace` on purpose)",
    )
    up.add_argument(
        "--skip-image-check",
        action="store_true",
        help="deploy without first checking the images (python -m deploy images)",
    )

    status = commands.add_parser(
        "status",
        help="containers, Vault, /mnt/data, backups and the replication",
        description="Over SSH with the stack's key: each container's state, health, restarts, "
        "memory against its limit and CPU; Vault's seal; /mnt/data use; the newest backups. "
        "With a replica: its containers, each subscription (enabled, apply and sync errors, "
        "lag) and each slot on the primary (WAL status, WAL retained). Exit 1 when anything "
        "is unhealthy.",
    )
    _stack_option(status)

    idle = commands.add_parser(
        "idle-check",
        help="would Oracle reclaim an instance as idle?",
        description="For each instance of the stack (the A1 and, when enabled, the replica): "
        "read the last 7 days from OCI Monitoring and apply Oracle's Always Free idle rule "
        "(CPU p95, network and, on A1, memory all under 20%%). Exit 0 when no instance is at "
        "risk, 1 when one is at risk or cannot be told.",
    )
    _stack_option(idle)
    _images_parser(commands)
    add_restore_parser(commands, _stack_option)
    add_seed_parser(commands, _stack_option)
    add_peer_parser(commands, _stack_option)
    return parser


def _stack_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stack", default=DEFAULT_STACK, help="stack name (default oracle)")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}: a whole number from 1")
    return value


def main(argv: Sequence[str] | None = None, console: Console | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "up" and args.min_delay > args.max_delay:
        args.command_parser.error(
            f"argument --min-delay: {format_duration(args.min_delay)} is longer than "
            f"--max-delay {format_duration(args.max_delay)}"
        )
    out = console or Console(highlight=False)
    runners: dict[str, Callable[[argparse.Namespace, Console], int]] = {
        "up": run_up,
        "status": lambda a, c: run_status(a.stack, c),
        "idle-check": lambda a, c: run_idle_check(a.stack, c),
        "images": run_images,
        "restore-dump": run_restore,
        "seed-primary": run_seed,
        "peer-subscription": run_peer,
    }
    try:
        return runners[args.command](args, out)
    except OperatorError as error:
        out.print(f"[red]error[/]: {escape(str(error))}", soft_wrap=True)
        return EXIT_CANNOT_START


# ---------------------------------------------------------------------------------------------
# up


def run_up(args: argparse.Namespace, console: Console) -> int:
    if not args.skip_image_check and not images_pass_before_up(args.stack, console):
        return EXIT_CANNOT_START
    settings = RetrySettings(
        deadline=args.deadline, min_delay=args.min_delay, max_delay=args.max_delay
    )
    stack = open_stack(args.stack, create=True)
    configured = stack.get_config(AVAILABILITY_DOMAIN_KEY)
    volume_domain = stack.data_volume_domain()
    names: Sequence[str] | None = None
    if args.domains is None:
        names = _availability_domains(stack.config())
        count = len(names)
    else:
        count = args.domains
    plan = plan_domains(configured, names, count, volume_domain)
    console.print(
        f"pulumi up on stack {escape(args.stack)} with the policy pack; {count} availability "
        f"domain(s); deadline {format_duration(settings.deadline)}; waits "
        f"{format_duration(settings.min_delay)} to {format_duration(settings.max_delay)}"
    )
    with console.status("pulumi up …") as spinner:

        def show(line: str) -> None:
            if line.strip():
                spinner.update(f"pulumi: {escape(line.strip()[:100])}")

        retry = CapacityRetry(
            stack,
            plan,
            settings,
            clock=SystemClock(),
            jitter=random.Random(),
            console=console,
            on_output=show,
            allow_replace=args.allow_replace,
        )
        return retry.run()


def _availability_domains(config: Mapping[str, str]) -> Sequence[str]:
    try:
        names = connect(config).availability_domains()
    except (CloudError, OperatorError) as error:
        raise OperatorError(
            f"cannot list the region's availability domains ({error}); pass --domains N"
        ) from None
    if not names:
        raise OperatorError("OCI lists no availability domain for the tenancy")
    return names


# ---------------------------------------------------------------------------------------------
# status


def require_output(outputs: Mapping[str, Any], name: str) -> str:
    value = outputs.get(name)
    if not isinstance(value, str) or not value:
        raise OperatorError(
            f"the stack has no output {name!r}; `python -m deploy` needs __main__.py to export "
            f"it (run `python -m deploy up` after updating); outputs present: "
            f"{', '.join(sorted(outputs)) or 'none'}"
        )
    return value


def run_status(stack_name: str, console: Console) -> int:
    stack = open_stack(stack_name, create=False)
    outputs = stack.outputs()
    config = stack.config()
    host = require_output(outputs, "publicIp")
    instance_id = require_output(outputs, "instanceId")
    cloud, unavailable = _optional_cloud(config)
    try:
        volume_id: str | None = require_output(outputs, "dataVolumeId")
    except OperatorError as error:
        volume_id, unavailable = None, str(error)
    replica = replica_output(outputs)
    expected = stack.deployed_containers(A1_HOST_KEY)
    replica_part: ReplicaStatus | None = None
    with identity_file(config) as key, tempfile.TemporaryDirectory(prefix="ai-swarm-") as control:
        shell = SshShell(host, instance_id, key, Path(control))
        try:
            report = collect_status(
                shell,
                expected,
                now=SystemClock().now(),
                cloud=cloud,
                data_volume_id=volume_id,
                cloud_unavailable=unavailable,
            )
            if outputs.get("offsiteBucket"):
                store = lambda: connect_store(config, outputs)  # noqa: E731
                report = with_offsite(report, shell, store, SystemClock().now())
            if replica is not None:
                micro = SshShell(replica["publicIp"], replica["instanceId"], key, Path(control))
                try:
                    expected_there = stack.deployed_containers(REPLICA_HOST_KEY)
                    replica_part = collect_replica_status(shell, micro, expected_there)
                finally:
                    micro.close()
        except StatusReadError as error:
            console.print(f"[red]error[/]: {escape(str(error))}")
            return 1
        finally:
            shell.close()
    replica_shown = None
    if replica is not None and replica_part is not None:
        replica_shown = (f"replica ({replica['publicIp']})", replica_part)
    level = render_status(report, console, f"{stack_name} ({host})", replica_shown)
    return 1 if level is Level.FAIL else 0


def _optional_cloud(config: Mapping[str, str]) -> tuple[Cloud | None, str | None]:
    try:
        return connect(config), None
    except OperatorError as error:
        return None, str(error)


def render_status(
    report: StatusReport,
    console: Console,
    title: str,
    replica: tuple[str, ReplicaStatus] | None = None,
) -> Level:
    """The host's containers and checks, the replica's part (titled), then the verdict over
    all of it, which is returned."""
    render_containers(report.containers, console, title)
    checks = Table(title="host", title_justify="left")
    checks.add_column("check")
    checks.add_column("")
    checks.add_column("detail")
    for check in report.checks:
        style = LEVEL_STYLE[check.level]
        checks.add_row(
            escape(check.subject), f"[{style}]{check.level.name.lower()}[/]", escape(check.summary)
        )
    console.print(checks)
    level = report.level
    if replica is not None:
        replica_title, part = replica
        render_containers(part.containers, console, replica_title)
        render_replication(part.replication, console)
        level = max(level, part.level)
    verdict = {
        Level.OK: "[green]healthy[/]",
        Level.WARN: "[yellow]healthy, with warnings[/]",
        Level.FAIL: "[red]unhealthy[/]",
    }[level]
    console.print(verdict)
    return level


def render_containers(containers: Sequence[ContainerStatus], console: Console, title: str) -> None:
    table = Table(title=f"containers on {escape(title)}", title_justify="left")
    for column in ("container", "state", "health", "restarts", "memory", "CPU"):
        table.add_column(column, justify="right" if column in ("restarts",) else "left")
    for row in containers:
        style = LEVEL_STYLE[row.level]
        table.add_row(
            f"[{style}]{escape(row.name)}[/]",
            escape(row.state),
            escape(row.health or "-"),
            str(row.restarts),
            _memory_cell(row.memory_used, row.memory_limit),
            _cpu_cell(row.cpu_percent, row.cpu_limit),
        )
    console.print(table)


def _memory_cell(used: int | None, limit: int | None) -> str:
    if used is None:
        return "-"
    mib = f"{used / 1024**2:.0f} MiB"
    if not limit:
        return f"{mib} (no limit)"
    return f"{mib} / {limit / 1024**2:.0f} MiB ({used / limit:.0%})"


def _cpu_cell(percent: float | None, limit: float | None) -> str:
    if percent is None:
        return "-"
    return f"{percent:.1f}%" + (f" of {limit:g} CPU" if limit else "")


# ---------------------------------------------------------------------------------------------
# idle-check


def run_idle_check(stack_name: str, console: Console) -> int:
    """One verdict per instance of the stack; the exit code is the worst one's."""
    stack = open_stack(stack_name, create=False)
    outputs = stack.outputs()
    instances = [("A1 host", require_output(outputs, "instanceId"), A1_AT_RISK)]
    replica = replica_output(outputs)
    if replica is not None:
        instances.append(("replica", str(replica["instanceId"]), REPLICA_AT_RISK))
    cloud = connect(stack.config())
    worst = 0
    for label, instance_id, advice in instances:
        try:
            report = idle_report(cloud, instance_id, SystemClock().now())
        except CloudError as error:
            console.print(f"[red]error[/] ({label}): {escape(str(error))}")
            worst = 1
            continue
        render_idle(report, console, label, advice)
        worst = max(worst, report.exit_code)
    return worst


A1_AT_RISK: Final = (
    "Oracle may stop this Always Free instance as idle. See docs/operations.md (idle-check) for "
    "your options; do not burn CPU to dodge the rule."
)


def render_idle(
    report: IdleReport, console: Console, label: str = "", advice: str = A1_AT_RISK
) -> None:
    days = WINDOW.days
    table = Table(
        title=f"{label + ': ' if label else ''}Oracle's idle rule over the last {days} days "
        f"({report.window_start:%Y-%m-%d %H:%M} to {report.window_end:%Y-%m-%d %H:%M} UTC)",
        title_justify="left",
    )
    for column in ("figure", "statistic", "value", "idle (< 20%)", "samples"):
        table.add_column(column)
    for figure in report.figures:
        value = "no data" if figure.percent is None else f"{figure.percent:.2f}%"
        idle = {None: "?", True: "[yellow]yes[/]", False: "[green]no[/]"}[figure.idle]
        table.add_row(figure.name, figure.statistic, value, idle, str(figure.samples))
    console.print(table)
    source = "as OCI reports it" if report.bandwidth_reported else "assumed: 1 Gbps per OCPU"
    console.print(f"network bandwidth {report.bandwidth_gbps:g} Gbps ({source})")
    history_days = report.history.total_seconds() / 86400
    if history_days < days - 0.5:
        console.print(f"only {history_days:.1f} days of data so far")
    figures = ", ".join(figure.name for figure in report.figures)
    if report.verdict is Verdict.AT_RISK:
        console.print(
            f"[red]AT RISK[/]: {figures} all under {IDLE_BELOW_PERCENT:g}%; {escape(advice)}"
        )
    elif report.verdict is Verdict.NOT_AT_RISK:
        busy = [f.name for f in report.figures if f.idle is False]
        console.print(f"[green]not at risk[/]: {', '.join(busy)} at or above 20%")
    else:
        missing = [f.name for f in report.figures if f.percent is None]
        console.print(
            f"[yellow]cannot tell[/]: no {', '.join(missing)} data (is the Oracle Cloud Agent's "
            "Compute Instance Monitoring plugin enabled?)"
        )


# ---------------------------------------------------------------------------------------------
# images


def _images_parser(commands: Any) -> None:
    images = commands.add_parser(
        "images",
        help="check every image the stack pulls against its host's platform (arm64 on A1)",
        description="Run the program under mocks for the stack's images and platforms, then "
        "ask each image's registry (anonymously): the tag (or the digest images.lock pins) "
        "resolves, its index has the platform, and that entry's config says the same "
        "architecture. Exit 0 every image passed, 1 one failed.",
    )
    _stack_option(images)
    images.add_argument(
        "--deep",
        action="store_true",
        help="also read the entrypoint (or its interpreter) from the layers and check its ELF "
        "machine type",
    )
    images.add_argument(
        "--lock",
        action="store_true",
        help="check the tags as they are now and, if all pass, write their digests to "
        "images.lock, which the program then pulls",
    )
    images.add_argument("--json", action="store_true", help="print one JSON document")


def make_registry() -> Registry:
    return DxfRegistry()


def run_images(args: argparse.Namespace, console: Console) -> int:
    report = run_images_check(make_registry(), args.stack, deep=args.deep, lock=args.lock)
    if args.json:
        console.file.write(json.dumps(report.document(), indent=2) + "\n")
    else:
        render_images(report, console)
    return report.exit_code


def images_pass_before_up(stack: str, console: Console) -> bool:
    """The check `up` runs first; False (with the reason printed) refuses the deploy."""
    with console.status("checking the images …"):
        report = run_images_check(make_registry(), stack)
    if report.ok:
        console.print(f"images: {len(report.checks)} checked, all pass")
        return True
    render_images(report, console)
    console.print(
        "[red]refusing to deploy[/]: an image failed the check (see above); fix it, or run "
        "`python -m deploy up --skip-image-check` to deploy anyway"
    )
    return False


def render_images(report: ImagesReport, console: Console) -> None:
    table = Table(title=f"images of stack {escape(report.stack)}", title_justify="left")
    for column in ("image", "tag", "platform", "digest", "verdict", "detail"):
        table.add_column(column)
    for check in report.checks:
        digest = check.digest[:19] if check.digest else "-"
        table.add_row(
            escape(check.image),
            escape(check.tag or "-"),
            escape(check.platform),
            escape(digest + (" (pinned)" if check.pinned else "")),
            "[green]ok[/]" if check.ok else "[red]FAIL[/]",
            escape(check.detail),
        )
    console.print(table)
    failed = sum(not check.ok for check in report.checks)
    if failed:
        console.print(f"[red]{failed} of {len(report.checks)} image(s) failed[/]")
    else:
        console.print(f"[green]all {len(report.checks)} image(s) pass[/]")
    for note in report.notes:
        console.print(escape(note))
    if report.lock:
        console.print(f"wrote {escape(report.lock)}")


if __name__ == "__main__":  # pragma: no cover - `python -m deploy` is the entry point
    sys.exit(main())
