"""Vault: server mode on file storage with IPC_LOCK, and a Vault Agent from the same image."""

from __future__ import annotations

import json
from typing import Any

from dryrun.engine import ProgramRun
from tests.services.readers import REMOTE_IMAGE, container, depends_on, env, upload

HEALTH = "/v1/sys/health?uninitcode=200&sealedcode=200&standbyok=true"


def _json(run: ProgramRun, name: str, path: str) -> dict[str, Any]:
    document = json.loads(upload(container(run, name), path))
    assert isinstance(document, dict)
    return document


def test_server_runs_in_server_mode_with_file_storage(free_run: ProgramRun) -> None:
    vault = container(free_run, "vault")
    assert vault.inputs["command"] == ["server"]  # the image's default is a dev server
    assert "VAULT_DEV_ROOT_TOKEN_ID" not in env(vault)
    config = _json(free_run, "vault", "/vault/config/vault.json")
    assert config["storage"] == {"file": {"path": "/vault/file"}}
    assert config["listener"] == {"tcp": {"address": "0.0.0.0:8200", "tls_disable": True}}
    assert config["api_addr"] == "http://vault:8200"
    assert config["disable_mlock"] is False
    # Capabilities come from the privileges table (tests/services/test_privileges.py).
    assert vault.inputs["capabilities"] == {"drops": ["ALL"], "adds": []}


def test_listener_is_reachable_on_the_services_network_only(free_run: ProgramRun) -> None:
    vault = container(free_run, "vault")
    assert vault.inputs.get("ports", []) == []
    assert vault.inputs["networksAdvanced"][0]["aliases"] == ["vault"]


def test_health_accepts_uninitialised_and_sealed(free_run: ProgramRun) -> None:
    for name, host in (("vault", "127.0.0.1"), ("vault-agent", "vault")):
        probe = container(free_run, name).inputs["healthcheck"]["tests"]
        assert probe == ["CMD", "wget", "-q", "-O", "/dev/null", f"http://{host}:8200{HEALTH}"]


def test_agent_uses_the_same_image_with_approle_and_a_template(free_run: ProgramRun) -> None:
    agent = container(free_run, "vault-agent")
    vault = container(free_run, "vault")
    assert agent.property_dependencies["image"] == vault.property_dependencies["image"]
    assert len([r for r in free_run.of_type(REMOTE_IMAGE) if r.name == "vault-image"]) == 1
    assert agent.inputs["command"] == ["agent", "-config=/vault/agent.json"]
    config = _json(free_run, "vault-agent", "/vault/agent.json")
    assert config["vault"] == {"address": "http://vault:8200"}
    method = config["auto_auth"]["method"]
    assert method["type"] == "approle"
    assert set(method["config"]) >= {"role_id_file_path", "secret_id_file_path"}
    assert config["auto_auth"]["sink"][0]["type"] == "file"
    assert [t["destination"] for t in config["template"]] == ["/vault/file/rendered/services.env"]
    assert "{{ with secret " in config["template"][0]["contents"]
    assert depends_on(free_run, agent) == {"vault"}
