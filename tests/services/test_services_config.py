"""ai-swarm:services / models / modelApiKeys / exposeUis / sshIdentityFile: validated up front,
and what each setting changes in the program."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from ai_swarm_policies.contract import SECURITY_LIST
from components.config import ConfigError
from components.config.services import is_reserved_env_name
from components.services import litellm as litellm_service
from dryrun.engine import ProgramError, ProgramRun
from tests.helpers import command_script
from tests.services.readers import (
    CONTAINER,
    REMOTE_IMAGE,
    SERVICE_PREFIX,
    container,
    container_names,
    env,
    run_with,
    ssh_options,
)

PRIVATE_IP = "10.0.1.10"  # the mocked instance's private address


def _services(value: dict[str, Any]) -> dict[str, str]:
    return {"services": json.dumps(value)}


# (overrides, key named in the error, a fragment of the allowed values)
BAD = [
    (_services({"mongo": {}}), "ai-swarm:services.mongo", "one of postgres, redis, nodeExporter"),
    (_services({"redis": {"memory": 5}}), "ai-swarm:services.redis.memory", "memoryMb, enabled"),
    (_services({"redis": {"cpus": "lots"}}), "ai-swarm:services.redis.cpus", "from 0.01 to 2"),
    (_services({"redis": {"cpus": 3}}), "ai-swarm:services.redis.cpus", "from 0.01 to 2"),
    (_services({"redis": {"cpus": True}}), "ai-swarm:services.redis.cpus", "from 0.01 to 2"),
    (_services({"redis": {"cpus": "inf"}}), "ai-swarm:services.redis.cpus", "from 0.01 to 2"),
    (_services({"vault": {"memoryMb": 12289}}), "ai-swarm:services.vault.memoryMb", "to 12288"),
    (_services({"vault": {"memoryMb": "1.5"}}), "ai-swarm:services.vault.memoryMb", "whole"),
    (
        _services({"litellm": {"image": "ghcr.io/berriai/litellm:main-stable"}}),
        "ai-swarm:services.litellm.image",
        "not a moving tag",
    ),
    (
        _services({"redis": {"image": "redis:latest"}}),
        "ai-swarm:services.redis.image",
        "not a moving tag",
    ),
    (
        _services({"litellm": {"image": "ghcr.io/berriai/litellm"}}),
        "ai-swarm:services.litellm.image",
        "pinned to a version tag or digest",
    ),
    # The data on the volume is PostgreSQL 15: no other major may start on it.
    (
        _services({"postgres": {"image": "postgres:16.4-alpine"}}),
        "ai-swarm:services.postgres.image",
        "an image of PostgreSQL 15",
    ),
    (
        _services({"postgres": {"image": "pgvector/pgvector:0.8.0-pg17"}}),
        "ai-swarm:services.postgres.image",
        "the data on the volume is PostgreSQL 15 and a new major cannot read it",
    ),
    (
        _services({"postgres": {"image": f"postgres@sha256:{'0' * 64}"}}),
        "ai-swarm:services.postgres.image",
        "sudo systemctl start ai-swarm-pg-dump.service",
    ),
    (_services({"redis": {"enabled": "maybe"}}), "ai-swarm:services.redis.enabled", "true or"),
    (
        _services({"vault": {"enabled": False}}),
        "ai-swarm:services.vault.enabled",
        "litellm needs vault",
    ),
    (
        _services({"postgres": {"enabled": False}}),
        "ai-swarm:services.postgres.enabled",
        "litellm needs postgres",
    ),
    ({"services": "{not json"}, "ai-swarm:services", "an object keyed by service"),
    ({"services": "[]"}, "ai-swarm:services", "an object keyed by service"),
    (
        {"models": json.dumps([{"name": "x", "model": "openai/x", "apiKey": "OPENAI_API_KEY"}])},
        "ai-swarm:models[0].apiKey",
        "a name in ai-swarm:modelApiKeys (none set)",
    ),
    ({"models": json.dumps([{"name": "x"}])}, "ai-swarm:models[0].model", "non-empty"),
    (
        {"models": json.dumps([{"name": "x", "model": "m", "key": "k"}])},
        "ai-swarm:models[0].key",
        "apiBase",
    ),
    (
        {"models": json.dumps([{"name": "x", "model": "m", "apiBase": "ftp://h"}])},
        "ai-swarm:models[0].apiBase",
        "http(s)://",
    ),
    (
        {"models": json.dumps([{"name": "x", "model": "a"}, {"name": "x", "model": "b"}])},
        "ai-swarm:models",
        "each model name once",
    ),
    ({"modelApiKeys": '{"openai": "sk-x"}'}, "ai-swarm:modelApiKeys.openai", "upper-case"),
    (
        {"modelApiKeys": '{"OPENAI_API_KEY": ""}'},
        "ai-swarm:modelApiKeys.OPENAI_API_KEY",
        "non-empty",
    ),
    *(
        (
            {"modelApiKeys": json.dumps({name: "sk-x"})},
            f"ai-swarm:modelApiKeys.{name}",
            "not a name the program sets",
        )
        for name in ("LITELLM_MASTER_KEY", "DATABASE_URL", "REDIS_PASSWORD", "PATH", "LD_PRELOAD")
    ),
    ({"modelApiKeys": '"sk-pasted-without-path"'}, "ai-swarm:modelApiKeys", "a secret object"),
    (
        {"models": json.dumps([{"name": "x", "model": "m", "apiKey": ["OPENAI_API_KEY"]}])},
        "ai-swarm:models[0].apiKey",
        "a name in ai-swarm:modelApiKeys",
    ),
    ({"exposeUis": "yes"}, "ai-swarm:exposeUis", "true or false"),
    ({"sshIdentityFile": "my key"}, "ai-swarm:sshIdentityFile", "without spaces"),
]


@pytest.mark.parametrize(("overrides", "key", "allowed"), BAD, ids=[case[1] for case in BAD])
def test_bad_services_setting_is_rejected_before_any_resource(
    overrides: dict[str, str], key: str, allowed: str
) -> None:
    # Keys that hold secrets are set as documented, with --secret.
    secrets = {k: v for k, v in overrides.items() if k in SECRET_SETTINGS}
    plain = {k: v for k, v in overrides.items() if k not in SECRET_SETTINGS}
    with pytest.raises(ProgramError) as failure:
        run_with(plain, secrets=secrets)
    error = failure.value.cause
    assert isinstance(error, ConfigError)
    assert error.key == key
    assert str(error).startswith(f"config {key}: ")
    assert allowed in str(error)
    assert failure.value.registrations == ()


SECRET_SETTINGS = ("modelApiKeys",)


@pytest.mark.parametrize(
    "value",
    [
        '{"openai": "sk-do-not-print-me"}',
        '"sk-do-not-print-me"',  # pasted without --path
        '{"OPENAI_API_KEY": "sk-do-not-print-me", "PATH": "x"}',
        "sk-do-not-print-me",  # not even JSON
    ],
)
def test_api_key_values_never_appear_in_an_error(value: str) -> None:
    with pytest.raises(ProgramError) as failure:
        run_with(secrets={"modelApiKeys": value})
    message = str(failure.value.cause)
    assert message.startswith("config ai-swarm:modelApiKeys")
    assert "do-not-print" not in message


def test_api_keys_set_without_secret_are_refused_with_the_fix() -> None:
    with pytest.raises(ProgramError) as failure:
        run_with({"modelApiKeys": json.dumps({"OPENAI_API_KEY": "sk-do-not-print-me"})})
    message = str(failure.value.cause)
    assert message.startswith("config ai-swarm:modelApiKeys: <secret, not shown>")
    assert "pulumi config set --secret --path 'ai-swarm:modelApiKeys.OPENAI_API_KEY'" in message
    assert "do-not-print" not in message
    assert failure.value.registrations == ()


def _admitted_ports(run: ProgramRun) -> set[int]:
    rules = run.one(SECURITY_LIST).inputs["ingressSecurityRules"]
    return {r["tcpOptions"]["min"] for r in rules if r.get("protocol") == "6"}


def _firewall_ports(run: ProgramRun) -> set[int]:
    script = command_script(run, "host-settings-firewall")
    return {int(port) for port in re.findall(r"--dport (\d+) -j ACCEPT", script)}


def test_uis_stay_on_loopback_unless_exposed(free_run: ProgramRun) -> None:
    assert _admitted_ports(free_run) == _firewall_ports(free_run) == {22}
    for name in ("litellm", "open-webui"):
        assert {p["ip"] for p in container(free_run, name).inputs["ports"]} == {"127.0.0.1"}


def test_exposing_opens_the_ui_ports_to_admins_on_the_private_address(
    exposed_run: ProgramRun,
) -> None:
    assert _admitted_ports(exposed_run) == _firewall_ports(exposed_run) == {22, 4000, 8080}
    rules = exposed_run.one(SECURITY_LIST).inputs["ingressSecurityRules"]
    assert {r["source"] for r in rules if r.get("protocol") == "6"} == {"198.51.100.7/32"}
    for name, port in (("litellm", 4000), ("open-webui", 8080)):
        assert container(exposed_run, name).inputs["ports"] == [
            {"internal": port, "external": port, "ip": PRIVATE_IP}
        ]


def test_exposing_opens_only_the_enabled_uis() -> None:
    run = run_with({"exposeUis": "true", **_services({"openWebui": {"enabled": False}})})
    assert _admitted_ports(run) == {22, 4000}


def test_disabled_services_are_not_registered() -> None:
    # LiteLLM needs Vault and Open WebUI needs LiteLLM: Vault goes only with both.
    off = {"vault": "false", "litellm": False, "openWebui": False, "nodeExporter": False}
    run = run_with(_services({key: {"enabled": value} for key, value in off.items()}))
    gone = {"vault", "vault-agent", "litellm", "open-webui", "node-exporter"}
    assert not gone & container_names(run)
    components = {r.type.removeprefix(SERVICE_PREFIX) for r in run.registrations}
    assert not {"Vault", "LiteLLM", "OpenWebUI", "NodeExporter"} & components
    assert len(run.of_type(CONTAINER)) == 4


@pytest.mark.parametrize(
    "image", ["postgres:15.15-alpine", "postgres:15", "pgvector/pgvector:0.8.0-pg15"]
)
def test_postgres_image_of_the_same_major_is_accepted(image: str) -> None:
    run = run_with(_services({"postgres": {"image": image}}))
    assert run.one(REMOTE_IMAGE, "postgres-image").inputs["name"] == image


def test_image_override_replaces_the_catalog_image() -> None:
    image = "ghcr.io/berriai/litellm:v1.88.1"
    run = run_with(_services({"litellm": {"image": image}}))
    assert run.one(REMOTE_IMAGE, "litellm-image").inputs["name"] == image


def test_identity_file_is_handed_to_ssh() -> None:
    run = run_with({"sshIdentityFile": "~/.ssh/ai-swarm"})
    options = ssh_options(run)
    position = options.index("-i")
    assert options[position + 1] == "~/.ssh/ai-swarm"
    assert "IdentitiesOnly=yes" in options


def test_every_variable_the_program_gives_litellm_is_reserved(free_run: ProgramRun) -> None:
    """A provider key may not take the name of a variable LiteLLM's container already gets,
    in its environment or from the Vault Agent's file."""
    given = {*env(container(free_run, "litellm")), litellm_service.MASTER_KEY_ENV}
    given |= {litellm_service.SALT_KEY_ENV}
    assert sorted(name for name in given if not is_reserved_env_name(name)) == []
