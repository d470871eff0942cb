"""The program's Vault, run by the real `bao` on loopback: what the server, its remote steps and
the Agent are, read from the program's registrations and moved into a temp dir.

Only where files live and where the server listens change, and the services' network, from
which alone the Agent may log in, becomes loopback; the host steps run as the host would run
them, with `docker exec -i vault ` dropped so that `sh` runs the same program here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.services import vault as vault_service
from dryrun.engine import ProgramRun
from tests.integration import daemons
from tests.integration.rendered import RenderedContainer

COMMAND = "command:remote:Command"
KV_STEP_PREFIX = "vault-kv-"
APPROLE_STEP = "vault-agent-approle"
RECONCILE_STEP = "vault-agent-reconcile"
# The services' network as the Agent's AppRole names it, and what stands for it here.
SERVICES_CIDR_HERE = "127.0.0.0/8"


def services_network_here(document: Any) -> Any:
    """`document` (a config or a script) with the services' network replaced by loopback."""
    text = json.dumps(document)
    assert vault_service.SERVICES_CIDR in text
    return json.loads(text.replace(vault_service.SERVICES_CIDR, SERVICES_CIDR_HERE))


REWRAP_STEP = "vault-seal-rewrap"
# The Agent re-reads KV every RENDER_INTERVAL (30 s); here it may do so every second so that a
# re-render shows without a long wait. Nothing else in its config changes.
TEST_RENDER_INTERVAL = "1s"


@dataclass(frozen=True)
class HostStep:
    name: str
    script: str  # as the host runs it
    stdin: str

    def here(self) -> str:
        """The script with the container prefix dropped: `sh -c '<program>'` runs here."""
        if vault_service.IN_SERVER not in self.script:
            raise AssertionError(f"{self.name} does not run in the server container")
        here = self.script.replace(vault_service.IN_SERVER, "")
        return here.replace(vault_service.SERVICES_CIDR, SERVICES_CIDR_HERE)


def rewrap_step(run: ProgramRun) -> HostStep:
    """The seal rewrap step (it reads nothing from stdin)."""
    [command] = [c for c in run.of_type(COMMAND) if c.name == REWRAP_STEP]
    return HostStep(command.name, command.inputs["create"], "")


def host_steps(run: ProgramRun) -> dict[str, HostStep]:
    """The Vault component's remote steps that carry a value, by resource name."""
    return {
        c.name: HostStep(c.name, c.inputs["create"], c.inputs.get("stdin", ""))
        for c in run.of_type(COMMAND)
        if c.name.startswith(KV_STEP_PREFIX) or c.name in (RECONCILE_STEP, APPROLE_STEP)
    }


def local_paths(workdir: Path) -> dict[str, str]:
    """Container directory -> its stand-in under `workdir`."""
    return {
        inside: str(workdir / inside.strip("/").replace("/", "-"))
        for inside in (
            vault_service.RAFT_DIR,
            vault_service.SEAL_DIR,
            vault_service.AGENT_DIR,
            vault_service.RENDERED_DIR,
        )
    }


def server_setup(server: RenderedContainer, workdir: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """The server's config and seal key files, moved into `workdir`."""
    paths = local_paths(workdir)
    config = daemons.rewrite_paths(
        services_network_here(json.loads(server.upload(vault_service.SERVER_CONFIG_FILE))), paths
    )
    files = {
        daemons.rewrite_paths(path, paths): content
        for path, content in server.uploads.items()
        if path.startswith(vault_service.SEAL_DIR)
    }
    return config, files


def agent_setup(agent: RenderedContainer, workdir: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """The Agent's config and AppRole files, moved into `workdir`."""
    paths = local_paths(workdir)
    config = daemons.rewrite_paths(json.loads(agent.upload(vault_service.AGENT_CONFIG_FILE)), paths)
    config["template_config"]["static_secret_render_interval"] = TEST_RENDER_INTERVAL
    files = {
        daemons.rewrite_paths(path, paths): agent.upload(path)
        for path in (vault_service.ROLE_ID_FILE, vault_service.SECRET_ID_FILE)
    }
    return config, files


def run_step(server: daemons.BaoServer, step: HostStep, stdin: str | None = None) -> None:
    done = server.run_script(step.here(), step.stdin if stdin is None else stdin)
    assert done.returncode == 0, (step.name, done.stderr)


def provision(server: daemons.BaoServer, run: ProgramRun) -> dict[str, str]:
    """Every host step the program registers, run once; LiteLLM's values by variable."""
    steps = host_steps(run)
    for step in steps.values():
        run_step(server, step)
    return {
        name.removeprefix(KV_STEP_PREFIX): step.stdin
        for name, step in steps.items()
        if name.startswith(KV_STEP_PREFIX)
    }


def env_lines(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line)
    return {name: value for name, value in pairs}


@dataclass(frozen=True)
class VaultStack:
    server: daemons.BaoServer
    agent: daemons.BaoAgent
    values: Mapping[str, str]  # what the program wrote, by variable


def vault_stack(run: ProgramRun, workdir: Path) -> Iterator[VaultStack]:
    """Server, host steps and Agent, as `pulumi up` sets them up (a generator for fixtures)."""
    server_config, seal_files = server_setup(RenderedContainer.of(run, "vault"), workdir)
    agent_config, agent_files = agent_setup(RenderedContainer.of(run, "vault-agent"), workdir)
    with daemons.bao_server(server_config, seal_files, workdir / "server") as server:
        values = provision(server, run)
        with daemons.bao_agent(agent_config, agent_files, server.address, workdir) as agent:
            yield VaultStack(server, agent, values)
