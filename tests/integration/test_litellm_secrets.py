"""LiteLLM reads the Agent's rendered file through a group, holding no capability.

The real OpenBao Agent runs as the vault-agent container's user and renders LiteLLM's file into
a directory made as the program's tmpfs volume makes it (its uid, gid and mode options). Then a
process set up as the LiteLLM container's (its user, its `group_add` groups, only the
capabilities it adds back) reads the file, and a process of another uid, or of LiteLLM's user
without that group, cannot. Root without DAC_READ_SEARCH or DAC_OVERRIDE is held to the file's
mode like any user, which is what makes the group the only way in.
"""

from __future__ import annotations

import os
import stat
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from components.services import litellm as litellm_service
from components.services import vault as vault_service
from components.services.privileges import PRIVILEGES
from dryrun.engine import ProgramRun
from tests.integration import daemons
from tests.integration.openbao import agent_setup, env_lines, provision, server_setup
from tests.integration.rendered import CONTAINER, RenderedContainer

VOLUME = "docker:index/volume:Volume"
OTHER_UID = 4242  # no user of the stack


@dataclass(frozen=True)
class Process:
    """What a container's process is, as the program registers it."""

    uid: int
    gid: int
    groups: tuple[int, ...]
    capabilities: tuple[str, ...]

    def setpriv(self) -> list[str]:
        """setpriv that runs its command as this process: its ids and groups, and (root or
        not) only its capabilities."""
        groups = (
            [f"--groups={','.join(map(str, self.groups))}"] if self.groups else ["--clear-groups"]
        )
        bounding = ",".join(["-all", *(f"+{c.lower()}" for c in self.capabilities)])
        return [
            "setpriv",
            f"--reuid={self.uid}",
            f"--regid={self.gid}",
            *groups,
            f"--bounding-set={bounding}",
            "--inh-caps=-all",
            "--",
        ]


def process_of(run: ProgramRun, name: str) -> Process:
    """The container's `user` (numeric uid:gid), or else its image's user from the table."""
    [registration] = [r for r in run.of_type(CONTAINER) if r.inputs["name"] == name]
    inputs: Mapping[str, Any] = registration.inputs
    if "user" in inputs:
        uid, gid = (int(part) for part in inputs["user"].split(":"))
    else:
        user = PRIVILEGES[name].runs_as
        uid, gid = user.uid, user.gid
    return Process(
        uid,
        gid,
        tuple(int(g) for g in inputs.get("groupAdds") or ()),
        tuple(inputs["capabilities"]["adds"]),
    )


def tmpfs_options(run: ProgramRun) -> dict[str, str]:
    """The rendered volume's mount options (`uid=..,gid=..,mode=..`)."""
    volume = run.one(VOLUME, "vault-rendered")
    pairs = (o.split("=", 1) for o in volume.inputs["driverOpts"]["o"].split(","))
    return dict(pairs)


def make_like_the_volume(directory: Path, options: Mapping[str, str]) -> None:
    directory.mkdir(parents=True)
    os.chown(directory, int(options["uid"]), int(options["gid"]))
    directory.chmod(int(options["mode"], 8))


@dataclass(frozen=True)
class Rendered:
    path: Path
    values: Mapping[str, str]


@pytest.fixture(scope="module")
def rendered(program_run: ProgramRun) -> Iterator[Rendered]:
    agent_user = process_of(program_run, vault_service.AGENT_NAME)
    # Under /tmp and searchable: the Agent's user must reach its files in here.
    with tempfile.TemporaryDirectory(prefix="ai-swarm-agent-file-") as root:
        workdir = Path(root)
        workdir.chmod(0o755)
        server_config, seal_files = server_setup(
            RenderedContainer.of(program_run, "vault"), workdir
        )
        agent_config, agent_files = agent_setup(
            RenderedContainer.of(program_run, vault_service.AGENT_NAME), workdir
        )
        [template] = agent_config["template"]
        make_like_the_volume(Path(template["destination"]).parent, tmpfs_options(program_run))
        with daemons.bao_server(server_config, seal_files, workdir / "server") as server:
            values = provision(server, program_run)
            with daemons.bao_agent(
                agent_config,
                agent_files,
                server.address,
                workdir / "agent",
                user=(agent_user.uid, agent_user.gid),
            ) as agent:
                yield Rendered(agent.rendered, values)


def read_as(process: Process, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*process.setpriv(), "cat", str(path)],
        capture_output=True,
        text=True,
        timeout=daemons.COMMAND_TIMEOUT_S,
        check=False,
    )


def test_the_agent_renders_the_file_in_its_own_group_and_mode(
    program_run: ProgramRun, rendered: Rendered
) -> None:
    agent = process_of(program_run, vault_service.AGENT_NAME)
    info = rendered.path.stat()
    assert (info.st_uid, info.st_gid) == (agent.uid, agent.gid)
    mode = stat.S_IMODE(info.st_mode)
    # The group reads, and only reads; others have nothing, even past the directory.
    assert mode & 0o070 == 0o040, oct(mode)
    assert mode & 0o007 == 0, oct(mode)


def test_litellms_process_reads_the_file_with_no_dac_capability(
    program_run: ProgramRun, rendered: Rendered
) -> None:
    litellm = process_of(program_run, "litellm")
    assert not {"DAC_READ_SEARCH", "DAC_OVERRIDE"} & set(litellm.capabilities)
    done = read_as(litellm, rendered.path)
    assert done.returncode == 0, done.stderr
    secrets = env_lines(done.stdout)
    assert (
        secrets[litellm_service.MASTER_KEY_ENV] == rendered.values[litellm_service.MASTER_KEY_ENV]
    )


def _without_groups(process: Process) -> Process:
    return Process(process.uid, process.gid, (), process.capabilities)


@pytest.mark.parametrize(
    "who",
    [
        pytest.param(lambda p: Process(OTHER_UID, OTHER_UID, (), ()), id="another-uid"),
        pytest.param(_without_groups, id="litellms-user-without-its-groups"),
    ],
)
def test_nobody_else_reads_the_file(program_run: ProgramRun, rendered: Rendered, who: Any) -> None:
    process: Process = who(process_of(program_run, "litellm"))
    done = read_as(process, rendered.path)
    assert done.returncode != 0
    assert "Permission denied" in done.stderr


def test_the_tables_groups_are_what_the_container_gets(program_run: ProgramRun) -> None:
    """The gid LiteLLM joins is the Agent's: the group that owns the rendered file."""
    groups: Sequence[int] = process_of(program_run, "litellm").groups
    assert list(groups) == [g.gid for g in PRIVILEGES["litellm"].groups]
    assert groups == (process_of(program_run, vault_service.AGENT_NAME).gid,)
