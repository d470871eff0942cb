"""Every password, key and token is generated once, travels as a secret, and leaks nowhere."""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest
from google.protobuf import json_format
from pulumi.runtime import rpc

from components.services.vault import SEAL_KEY_BYTES
from dryrun.engine import SECRET, ProgramRun, Registration
from tests.services.conftest import MODEL_API_KEYS
from tests.services.readers import (
    COMMAND,
    CONTAINER,
    PASSWORD,
    container,
    container_names,
    env,
    owner,
    strings,
    vault_secret,
)

BYTES = "random:index/randomBytes:RandomBytes"

# Generated values are letters and digits; no ordinary word in an input is this long.
SECRET_TOKEN = re.compile(r"[A-Za-z0-9]{16,}")


def _split(wire: Any, secret: list[str], plain: list[str]) -> None:
    """Sort the string leaves of wire-form inputs into those inside a secret and the rest."""
    if isinstance(wire, dict) and wire.get(rpc._special_sig_key) == rpc._special_secret_sig:
        secret.extend(strings(wire.get("value")))
    elif isinstance(wire, dict):
        for item in wire.values():
            _split(item, secret, plain)
    elif isinstance(wire, list):
        for item in wire:
            _split(item, secret, plain)
    elif isinstance(wire, str):
        plain.append(wire)


def _leaves(registrations: tuple[Registration, ...]) -> tuple[list[str], list[str]]:
    secret: list[str] = []
    plain: list[str] = []
    for registration in registrations:
        _split(json_format.MessageToDict(registration.wire_inputs), secret, plain)
    return secret, plain


@pytest.mark.parametrize("run_name", ["free_run", "big_run", "exposed_run"])
def test_no_secret_value_appears_in_any_plain_input(
    request: pytest.FixtureRequest, run_name: str
) -> None:
    run: ProgramRun = request.getfixturevalue(run_name)
    secret, plain = _leaves(run.registrations)
    tokens = {token for text in secret for token in SECRET_TOKEN.findall(text)}
    # Not vacuous: every generated password is among the secret tokens.
    assert len(tokens) >= len(run.of_type(PASSWORD))
    leaks = sorted({token for token in tokens for text in plain if token in text})
    assert leaks == []


@pytest.mark.parametrize("run_name", ["free_run", "big_run", "exposed_run"])
def test_every_generated_value_travels_inside_a_secret(
    request: pytest.FixtureRequest, run_name: str
) -> None:
    """Checked against the values the generators made, so a secret that the program passes on
    as plain text everywhere is found too."""
    run: ProgramRun = request.getfixturevalue(run_name)
    secret, plain = _leaves(run.registrations)
    # A password has one value; random bytes have two encodings (base64, hex) of one value.
    assert len(run.generated) == len(run.of_type(PASSWORD)) + 2 * len(run.of_type(BYTES)) > 0
    assert run.of_type(BYTES)  # the seal key
    for value in run.generated:
        encodings = _encodings(value, run.generated)
        assert any(e in text for e in encodings for text in secret), "a value is in no secret"
        assert not any(e in text for e in encodings for text in plain), "a value is in plain"


def _encodings(value: str, generated: tuple[str, ...]) -> set[str]:
    """`value` and the other generated encodings of the same bytes."""
    return {value, *(other for other in generated if _decoded(other) == _decoded(value))}


def _decoded(value: str) -> bytes | str:
    """The bytes a base64 or hex encoding of 32 random bytes stands for; else the text."""
    for decode in (bytes.fromhex, base64.b64decode):
        try:
            raw = decode(value)
        except ValueError:
            continue
        if len(raw) == SEAL_KEY_BYTES:
            return raw
    return value


def test_provider_api_keys_reach_vault_only_as_secret_stdin(free_run: ProgramRun) -> None:
    secret, plain = _leaves(free_run.registrations)
    for value in MODEL_API_KEYS.values():
        assert any(value in text for text in secret)
        assert not any(value in text for text in plain)
    for name, value in MODEL_API_KEYS.items():
        carriers = [r.name for r in free_run.registrations if _holds(r, value)]
        assert carriers == [f"vault-kv-{name}"]
        assert vault_secret(free_run, name) == value


def _holds(registration: Registration, value: str) -> bool:
    return any(value in text for text in strings(registration.inputs))


@pytest.mark.parametrize("run_name", ["free_run", "big_run", "exposed_run"])
def test_no_secret_in_any_container_env_command_line_or_plain_output(
    request: pytest.FixtureRequest, run_name: str
) -> None:
    """Provider, master and salt keys, the seal key and the Agent's secret-id: none in any
    container's env, command or entrypoint, any host command's script, or a plain output."""
    run: ProgramRun = request.getfixturevalue(run_name)
    in_vault = [c.inputs["stdin"] for c in run.of_type(COMMAND) if "stdin" in c.inputs]
    seal_key = [v for v in run.generated if isinstance(_decoded(v), bytes)]
    values = [*in_vault, *seal_key]
    assert len(in_vault) >= 3 and len(seal_key) == 2  # master, salt, secret-id; base64 and hex
    kept_from: dict[str, list[str]] = {
        CONTAINER: ["envs", "command", "entrypoints"],
        COMMAND: ["create", "update", "delete", "environment", "triggers"],
    }
    # Open WebUI calls LiteLLM with a virtual key of its own: the master key is in no
    # container's env, Open WebUI's included (only in secret stdin, to Vault and to LiteLLM's
    # key API).
    master_key = vault_secret(run, "LITELLM_MASTER_KEY")
    values.append(master_key)
    assert env(container(run, "open-webui"))["OPENAI_API_KEYS"].split(";")[0] != master_key
    for registration in run.registrations:
        for field in kept_from.get(registration.type, []):
            text = "\n".join(strings(registration.inputs.get(field)))
            found = [v for v in values if v in text]
            assert not found, f"{registration.name}.{field}"
    plain_outputs = [o for o in run.outputs.values() if o is not SECRET]
    assert not [v for v in values if v in "\n".join(strings(plain_outputs))]


def test_remote_steps_with_a_secret_take_it_on_stdin_and_log_nothing(free_run: ProgramRun) -> None:
    with_stdin = [c for c in free_run.of_type(COMMAND) if "stdin" in c.inputs]
    assert len(with_stdin) >= len(MODEL_API_KEYS) + 3  # the keys, master, salt, secret-id
    for step in with_stdin:
        assert "stdin" in step.secret_paths, step.name
        assert step.inputs["logging"] == "none", step.name


@pytest.mark.parametrize("run_name", ["free_run", "exposed_run"])
def test_containers_keep_whole_inputs_secret_never_single_items(
    request: pytest.FixtureRequest, run_name: str
) -> None:
    """A set-valued input such as `envs` loses per-item secrecy in the provider's state."""
    run: ProgramRun = request.getfixturevalue(run_name)
    for registration in run.of_type(CONTAINER):
        for path in registration.secret_paths:
            assert path.isidentifier(), f"{registration.name}: {path}"


# container: the env variables that carry a generated or configured secret
SECRET_ENV = {
    "postgres": {"POSTGRES_PASSWORD"},
    "redis": {"REDISCLI_AUTH"},
    # Its master, salt and provider keys come from the Vault Agent's file, not the env.
    "litellm": {"DATABASE_URL", "REDIS_PASSWORD"},
    "open-webui": {
        "OPENAI_API_KEYS",
        "WEBUI_SECRET_KEY",
        "DATABASE_URL",
        "REDIS_URL",
        "WEBSOCKET_REDIS_URL",
    },
    "pipelines": {"PIPELINES_API_KEY"},
}
# container: the uploaded files that hold a secret
SECRET_FILES = {
    "postgres": "/docker-entrypoint-initdb.d/10-ai-swarm-roles.sql",
    "redis": "/usr/local/etc/redis/redis.conf",
    "redis-sentinel": "/data/sentinel.conf",
    "vault": "/openbao/seal/ai-swarm-1.key",
    "vault-agent": "/openbao/agent/secret-id",
}


@pytest.mark.parametrize("name", sorted(SECRET_ENV))
def test_secret_env_makes_the_whole_env_secret(free_run: ProgramRun, name: str) -> None:
    registration = container(free_run, name)
    assert "envs" in registration.secret_paths
    assert SECRET_ENV[name] <= set(env(registration))
    for variable in SECRET_ENV[name]:
        assert SECRET_TOKEN.search(env(registration)[variable])


@pytest.mark.parametrize("name", sorted(SECRET_FILES))
def test_files_with_a_secret_are_uploaded_as_secrets(free_run: ProgramRun, name: str) -> None:
    registration = container(free_run, name)
    assert "uploads" in registration.secret_paths
    assert any(u["file"] == SECRET_FILES[name] for u in registration.inputs["uploads"])


def test_containers_without_secrets_stay_readable(free_run: ProgramRun) -> None:
    readable = {"node-exporter"}
    for name in readable:
        assert container(free_run, name).secret_paths == ()
    assert readable | set(SECRET_ENV) | set(SECRET_FILES) == container_names(free_run)


def test_generated_values_are_made_once_and_never_regenerate(free_run: ProgramRun) -> None:
    passwords = free_run.of_type(PASSWORD)
    assert {p.name for p in passwords} == {
        "postgres-superuser",
        "postgres-litellm",
        "postgres-openwebui",
        "redis-sentinel-user",
        "redis-healthcheck-user",
        "redis-litellm-user",
        "redis-openwebui-user",
        "litellm-master-key",
        "litellm-salt-key",
        "vault-agent-secret-id",
        "openWebui-secret-key",
        "openWebui-litellm-key",
        "pipelines-api-key",
    }
    for password in passwords:
        assert password.inputs["length"] >= 32
        assert password.inputs["special"] is False  # safe in URLs and config files
        assert "keepers" not in password.inputs
        assert password.replace_on_changes == ()
        assert owner(free_run, password).type.startswith("ai-swarm:service:")


def test_litellm_master_key_is_an_sk_key_and_a_secret_output(free_run: ProgramRun) -> None:
    master_key = vault_secret(free_run, "LITELLM_MASTER_KEY")
    assert re.fullmatch(r"sk-[A-Za-z0-9]{32}", master_key)
    assert free_run.outputs["litellmMasterKey"] is SECRET
