"""Every password, key and token is generated once, travels as a secret, and leaks nowhere."""

from __future__ import annotations

import re
from typing import Any

import pytest
from google.protobuf import json_format
from pulumi.runtime import rpc

from dryrun.engine import SECRET, ProgramRun, Registration
from tests.services.conftest import MODEL_API_KEYS
from tests.services.readers import (
    CONTAINER,
    PASSWORD,
    container,
    container_names,
    env,
    owner,
    strings,
)

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
    assert len(run.generated) == len(run.of_type(PASSWORD)) > 0
    for value in run.generated:
        assert any(value in text for text in secret), "a generated value is in no secret input"
        assert not any(value in text for text in plain), "a generated value travels in plain"


def test_provider_api_keys_reach_litellm_only_as_secrets(free_run: ProgramRun) -> None:
    secret, plain = _leaves(free_run.registrations)
    for value in MODEL_API_KEYS.values():
        assert any(value in text for text in secret)
        assert not any(value in text for text in plain)
    assert {name: env(container(free_run, "litellm"))[name] for name in MODEL_API_KEYS} == (
        MODEL_API_KEYS
    )


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
    "litellm": {
        "DATABASE_URL",
        "LITELLM_MASTER_KEY",
        "LITELLM_SALT_KEY",
        "REDIS_PASSWORD",
        *MODEL_API_KEYS,
    },
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
    readable = {"node-exporter", "vault", "vault-agent"}
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
        "openWebui-secret-key",
        "pipelines-api-key",
    }
    for password in passwords:
        assert password.inputs["length"] >= 32
        assert password.inputs["special"] is False  # safe in URLs and config files
        assert "keepers" not in password.inputs
        assert password.replace_on_changes == ()
        assert owner(free_run, password).type.startswith("ai-swarm:service:")


def test_litellm_salt_key_is_protected_from_replacement(free_run: ProgramRun) -> None:
    protected = {p.name for p in free_run.of_type(PASSWORD) if p.protect}
    assert protected == {"litellm-salt-key"}


def test_litellm_master_key_is_an_sk_key_and_a_secret_output(free_run: ProgramRun) -> None:
    master_key = env(container(free_run, "litellm"))["LITELLM_MASTER_KEY"]
    assert re.fullmatch(r"sk-[A-Za-z0-9]{32}", master_key)
    assert free_run.outputs["litellmMasterKey"] is SECRET
