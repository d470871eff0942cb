"""The node-exporter command line on Debian's prometheus-node-exporter.

The container sees the host's `/` at a bind-mount target; here the flags get this machine's
paths instead (the mount's source), and every other flag is passed exactly as rendered.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from components.services import node_exporter as node_exporter_service
from dryrun.engine import ProgramRun
from tests.integration import daemons
from tests.integration.rendered import RenderedContainer, retarget, run_healthcheck

MOUNTPOINT = re.compile(r'^node_filesystem_avail_bytes\{[^}]*mountpoint="([^"]*)"', re.MULTILINE)
# Flags widely copied into node-exporter commands: Prometheus-only ones, and the deprecated
# spelling of the mount-point filter (which cannot be combined with its replacement).
REFUSED_FLAGS = [
    ("--web.enable-lifecycle", "unknown long flag '--web.enable-lifecycle'"),
    ("--web.enable-admin-api", "unknown long flag '--web.enable-admin-api'"),
    (
        "--collector.filesystem.ignored-mount-points=^/(sys|proc)($|/)",
        "mutually exclusive",
    ),
]


@pytest.fixture(scope="module")
def container(program_run: ProgramRun) -> RenderedContainer:
    return RenderedContainer.of(program_run, "node-exporter")


@pytest.fixture(scope="module")
def local_flags(container: RenderedContainer) -> list[str]:
    assert container.bind_mounts, "node-exporter sees the host through a bind mount"
    return host_paths(list(container.command), container.bind_mounts)


@pytest.fixture(scope="module")
def exporter(
    local_flags: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[daemons.HttpDaemon]:
    with daemons.node_exporter(local_flags, tmp_path_factory.mktemp("node-exporter")) as daemon:
        yield daemon


def host_paths(flags: list[str], mounts: Mapping[str, str]) -> list[str]:
    """Flag values under a bind-mount target rewritten to the mount's source on this machine."""
    mapped = []
    for flag in flags:
        name, sep, value = flag.partition("=")
        for target, source in mounts.items():
            if sep and (value == target or value.startswith(target + "/")):
                value = str(Path(source) / value[len(target) :].lstrip("/"))
        mapped.append(f"{name}{sep}{value}")
    return mapped


def test_rootfs_flag_is_mapped_to_this_machine(local_flags: list[str]) -> None:
    assert "--path.rootfs=/" in local_flags


def test_rendered_flags_serve_host_metrics(
    exporter: daemons.HttpDaemon, local_flags: list[str]
) -> None:
    metrics = exporter.get("/metrics")
    assert metrics.status == 200
    text = metrics.body.decode()
    assert "node_exporter_build_info" in text
    reported = set(MOUNTPOINT.findall(text))
    assert "/" in reported, reported
    # The rendered exclusion is in effect: none of the mount points it names is reported.
    exclude = re.compile(flag_value(local_flags, "--collector.filesystem.mount-points-exclude"))
    assert not {mountpoint for mountpoint in reported if exclude.match(mountpoint)}


def flag_value(flags: list[str], name: str) -> str:
    values = [flag.split("=", 1)[1] for flag in flags if flag.startswith(name + "=")]
    assert len(values) == 1, f"{name} given {len(values)} times"
    return values[0]


def test_no_flag_is_deprecated(exporter: daemons.HttpDaemon) -> None:
    assert "DEPRECATED" not in exporter.log()


def test_healthcheck_succeeds(exporter: daemons.HttpDaemon, container: RenderedContainer) -> None:
    address = exporter.base_url.removeprefix("http://")
    check = retarget(container.healthcheck, node_exporter_service.LISTEN, address)
    assert check != list(container.healthcheck), container.healthcheck
    assert run_healthcheck(check, container.envs).returncode == 0


@pytest.mark.parametrize(("flag", "complaint"), REFUSED_FLAGS)
def test_commonly_copied_flags_would_have_failed(
    local_flags: list[str], flag: str, complaint: str, tmp_path: Path
) -> None:
    assert flag.split("=", 1)[0] not in " ".join(local_flags)
    assert complaint in daemons.node_exporter_refusal([*local_flags, flag], tmp_path)
