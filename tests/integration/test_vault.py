"""The Vault server and agent configs, as Vault would read them.

No Vault binary is installable here (not in Debian, not on PyPI). The files are HCL's JSON form,
which python-hcl2 does not read (it parses HCL's native syntax only), so they are parsed as
JSON and checked for what Vault needs from them: server mode on durable storage inside a data
directory, the listener the others use, and the agent's auto_auth and template stanzas.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.services import vault as vault_service
from dryrun.engine import ProgramRun
from tests.integration.rendered import RenderedContainer

SERVER_CONFIG_DIR = "/vault/config/"  # what the image's entrypoint hands `vault server`


@pytest.fixture(scope="module")
def server(program_run: ProgramRun) -> RenderedContainer:
    return RenderedContainer.of(program_run, "vault")


@pytest.fixture(scope="module")
def agent(program_run: ProgramRun) -> RenderedContainer:
    return RenderedContainer.of(program_run, "vault-agent")


def config_of(container: RenderedContainer, path: str) -> dict[str, Any]:
    document = json.loads(container.upload(path))
    assert isinstance(document, dict)
    return document


def inside(path: str, directories: tuple[str, ...]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in directories)


def test_server_runs_in_server_mode_on_its_config_directory(server: RenderedContainer) -> None:
    assert server.command == ("server",)  # never the image's default `server -dev`
    assert vault_service.SERVER_CONFIG_FILE.startswith(SERVER_CONFIG_DIR)
    assert "VAULT_DEV_ROOT_TOKEN_ID" not in server.envs


def test_server_storage_is_on_a_data_directory(server: RenderedContainer) -> None:
    config = config_of(server, vault_service.SERVER_CONFIG_FILE)
    (kind, settings), *others = config["storage"].items()
    assert not others
    assert kind in ("file", "raft")
    assert inside(settings["path"], server.data_paths), (settings, server.data_paths)


def test_server_listener_is_the_address_the_agent_uses(
    server: RenderedContainer, agent: RenderedContainer
) -> None:
    config = config_of(server, vault_service.SERVER_CONFIG_FILE)
    listener = config["listener"]["tcp"]
    port = listener["address"].rsplit(":", 1)[1]
    agent_config = config_of(agent, vault_service.AGENT_CONFIG_FILE)
    assert agent_config["vault"]["address"] == f"http://{server.name}:{port}"
    assert config["api_addr"] == agent_config["vault"]["address"]
    # Plain HTTP is stated, not defaulted into: Vault's listener defaults to TLS.
    assert listener["tls_disable"] is True


def test_agent_runs_its_own_config(agent: RenderedContainer) -> None:
    assert agent.command == ("agent", f"-config={vault_service.AGENT_CONFIG_FILE}")
    assert not vault_service.AGENT_CONFIG_FILE.startswith(SERVER_CONFIG_DIR)


def test_agent_auto_auth_uses_approle_files_on_its_data_directory(
    agent: RenderedContainer,
) -> None:
    auto_auth = config_of(agent, vault_service.AGENT_CONFIG_FILE)["auto_auth"]
    method = auto_auth["method"]
    assert method["type"] == "approle"
    for key in ("role_id_file_path", "secret_id_file_path"):
        assert inside(method["config"][key], agent.data_paths), method["config"][key]
    sinks = auto_auth["sink"]
    assert sinks
    assert all(inside(s["config"]["path"], agent.data_paths) for s in sinks)


def test_agent_templates_render_into_its_data_directory(agent: RenderedContainer) -> None:
    templates = config_of(agent, vault_service.AGENT_CONFIG_FILE)["template"]
    assert templates
    for template in templates:
        assert inside(template["destination"], agent.data_paths), template["destination"]
        assert "{{ with secret" in template["contents"]
        assert template["perms"] == "0600"
