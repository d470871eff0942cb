"""Vault: a server (never dev mode) on file storage, and a Vault Agent from the same image.

Initialising, unsealing and filling Vault is its own issue; here both containers exist and
report healthy whether Vault is uninitialised, sealed or serving.
"""

from __future__ import annotations

from typing import Any

import pulumi

from components.services.base import (
    ContainerSpec,
    DataDir,
    Health,
    Service,
    ServiceArgs,
    Upload,
    http_probe,
)
from components.services.render import render_json

PORT = 8200
ADDRESS = f"http://vault:{PORT}"
SERVER_CONFIG_FILE = "/vault/config/vault.json"  # the entrypoint's `server` reads /vault/config
AGENT_CONFIG_FILE = "/vault/agent.json"  # outside /vault/config: the server must not read it
# The image's entrypoint hands /vault/file to the vault user: both containers keep state there.
STATE_DIR = "/vault/file"
# Healthy means "answering": 200 also when uninitialised (501) or sealed (503), or standby.
HEALTH_PATH = "/v1/sys/health?uninitcode=200&sealedcode=200&standbyok=true"
SERVICES_SECRET = "kv/data/ai-swarm/services"


def server_config() -> dict[str, Any]:
    """Listens inside its container only: no port is published, so only the services' network
    reaches it. Plain HTTP on that network until the TLS issue lands."""
    return {
        "storage": {"file": {"path": STATE_DIR}},
        "listener": {"tcp": {"address": f"0.0.0.0:{PORT}", "tls_disable": True}},
        "api_addr": ADDRESS,
        "disable_mlock": False,  # IPC_LOCK is granted
        "ui": False,
        "log_level": "info",
    }


def agent_config() -> dict[str, Any]:
    """AppRole auto-auth from files the init flow drops into the agent's data directory; until
    then the agent retries, and the template renders once a token and the secret exist."""
    return {
        "vault": {"address": ADDRESS},
        "auto_auth": {
            "method": {
                "type": "approle",
                "config": {
                    "role_id_file_path": f"{STATE_DIR}/role-id",
                    "secret_id_file_path": f"{STATE_DIR}/secret-id",
                    "remove_secret_id_file_after_reading": False,
                },
            },
            "sink": [{"type": "file", "config": {"path": f"{STATE_DIR}/token"}}],
        },
        "template_config": {"exit_on_retry_failure": False, "static_secret_render_interval": "5m"},
        "template": [
            {
                "destination": f"{STATE_DIR}/rendered/services.env",
                "contents": (
                    f'{{{{ with secret "{SERVICES_SECRET}" }}}}'
                    "{{ range $key, $value := .Data.data }}{{ $key }}={{ $value }}\n{{ end }}"
                    "{{ end }}"
                ),
                "perms": "0600",
            }
        ],
    }


class Vault(Service):
    key = "vault"

    def __init__(
        self, name: str, args: ServiceArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(name, args, opts)
        server = self.run(
            ContainerSpec(
                name="vault",
                health=Health(http_probe(f"http://127.0.0.1:{PORT}{HEALTH_PATH}", "wget")),
                env={"VAULT_ADDR": f"http://127.0.0.1:{PORT}"},
                command=["server"],
                uploads=[Upload(SERVER_CONFIG_FILE, render_json(server_config()))],
                data=[DataDir("vault/file", STATE_DIR), DataDir("vault/logs", "/vault/logs")],
            )
        )
        self.run(
            ContainerSpec(
                name="vault-agent",
                # The agent serves nothing itself: healthy means its Vault answers.
                health=Health(http_probe(f"{ADDRESS}{HEALTH_PATH}", "wget")),
                # No IPC_LOCK here: skip the entrypoint's setcap attempt and its warning.
                env={"SKIP_SETCAP": "true", "VAULT_ADDR": ADDRESS},
                command=["agent", f"-config={AGENT_CONFIG_FILE}"],
                uploads=[Upload(AGENT_CONFIG_FILE, render_json(agent_config()))],
                data=[DataDir("vault/agent", STATE_DIR)],
                depends_on=[server],
            )
        )
        self.finish()
