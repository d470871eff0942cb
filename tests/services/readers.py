"""Readers over a program run for the service tests: containers, their env, files and owners."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ai_swarm_policies import contract
from dryrun.engine import ProgramRun, Registration, run_program

CONTAINER = contract.CONTAINER
REMOTE_IMAGE = contract.REMOTE_IMAGE
NETWORK = contract.DOCKER_NETWORK
PROVIDER = "pulumi:providers:docker"
PASSWORD = contract.RANDOM_PASSWORD
COMMAND = contract.REMOTE_COMMAND
INSTANCE = contract.INSTANCE
SERVICE_PREFIX = "ai-swarm:service:"


def run_with(
    overrides: Mapping[str, str] | None = None,
    preview: bool = False,
    secrets: Mapping[str, str] | None = None,
) -> ProgramRun:
    """The program with `overrides`, and `secrets` set as `pulumi config set --secret` does."""
    return run_program(overrides=overrides, preview=preview, secrets=secrets)


def ssh_options(run: ProgramRun) -> list[str]:
    """The docker provider's ssh_opts (provider config travels JSON-encoded)."""
    options = json.loads(run.one(PROVIDER).inputs["sshOpts"])
    assert isinstance(options, list)
    return options


def container(run: ProgramRun, name: str) -> Registration:
    """The container Docker knows as `name` (its resource is named after its service)."""
    [found] = [r for r in run.of_type(CONTAINER) if r.inputs["name"] == name]
    return found


def container_names(run: ProgramRun) -> set[str]:
    return {r.inputs["name"] for r in run.of_type(CONTAINER)}


def env(registration: Registration) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in registration.inputs.get("envs", []))
    return {name: value for name, value in pairs}


def upload(registration: Registration, path: str) -> str:
    found = [u["content"] for u in registration.inputs.get("uploads", []) if u["file"] == path]
    assert len(found) == 1, f"{registration.name} uploads {path} {len(found)} times"
    content = found[0]
    assert isinstance(content, str)
    return content


def binds(registration: Registration) -> dict[str, str]:
    """The container's bind mounts from the data volume: {host path: container path}."""
    return {
        m["source"]: m["target"]
        for m in registration.inputs.get("mounts", [])
        if m["type"] == "bind" and m["source"].startswith("/mnt/data/")
    }


def instance_id(run: ProgramRun) -> str:
    """The OCID the mocked cloud gave the instance (it follows the instance's inputs)."""
    return run.ids[run.one(INSTANCE).urn]


def component(run: ProgramRun, name: str) -> Registration:
    return run.one(SERVICE_PREFIX + name)


def owner(run: ProgramRun, registration: Registration) -> Registration:
    """The service component a resource belongs to."""
    return run.by_urn()[registration.parent]


def depends_on(run: ProgramRun, registration: Registration) -> set[str]:
    """Docker names of the containers a container waits for."""
    urns = run.by_urn()
    return {urns[u].inputs["name"] for u in registration.dependencies if urns[u].type == CONTAINER}


def label(registration: Registration, name: str) -> str | None:
    values = [
        item["value"] for item in registration.inputs.get("labels", []) if item["label"] == name
    ]
    return values[0] if values else None


def strings(value: Any) -> list[str]:
    """Every string leaf of an input value."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in strings(item)]
    return []


def directives(text: str) -> list[list[str]]:
    """A redis.conf / sentinel.conf / pg_hba.conf as lines of words (no quoting in these)."""
    return [line.split() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def vault_secret(run: ProgramRun, variable: str) -> str:
    """The value the program writes into Vault for one of LiteLLM's variables (its KV write
    command's stdin)."""
    value = run.one(COMMAND, f"vault-kv-{variable}").inputs["stdin"]
    assert isinstance(value, str)
    return value
