"""LiteLLM: config.yaml from ai-swarm:models, keys from the Vault Agent's file, cache through
Sentinel."""

from __future__ import annotations

from typing import Any

import yaml

from components.services import litellm as litellm_service
from components.services.privileges import PRIVILEGES
from components.services.render import render_env_runner
from dryrun.engine import ProgramRun
from tests.services.conftest import MODEL_API_KEYS, MODELS
from tests.services.readers import COMMAND, container, depends_on, env, upload, vault_secret
from tests.services.test_redis import CONF as REDIS_CONF
from tests.services.test_redis import SENTINEL_CONF, digest, users

CONFIG = "/app/config.yaml"


def _config(run: ProgramRun) -> dict[str, Any]:
    document = yaml.safe_load(upload(container(run, "litellm"), CONFIG))
    assert isinstance(document, dict)
    return document


def test_model_list_follows_the_config_with_keys_by_reference(free_run: ProgramRun) -> None:
    models = _config(free_run)["model_list"]
    assert [m["model_name"] for m in models] == [m["name"] for m in MODELS]
    for entry, route in zip(models, MODELS, strict=True):
        params = entry["litellm_params"]
        assert params["model"] == route["model"]
        assert params.get("api_base") == route.get("apiBase")
        if "apiKey" in route:
            assert params["api_key"] == f"os.environ/{route['apiKey']}"
        else:
            assert "api_key" not in params
    text = upload(container(free_run, "litellm"), CONFIG)
    assert not any(key in text for key in MODEL_API_KEYS.values())


def test_no_models_configured_gives_an_empty_list(exposed_run: ProgramRun) -> None:
    assert _config(exposed_run)["model_list"] == []


def test_cache_finds_redis_through_sentinel_as_its_own_user(free_run: ProgramRun) -> None:
    settings = _config(free_run)["litellm_settings"]
    assert settings["cache"] is True
    assert settings["cache_params"] == {
        "type": "redis",
        "service_name": "mymaster",
        "sentinel_nodes": [["redis-sentinel", 26379]],
        "username": "litellm",
        "password": "os.environ/REDIS_PASSWORD",
        "sentinel_password": "os.environ/REDIS_PASSWORD",
        "namespace": "litellm",  # its keys' prefix, the only keys its Redis user may touch
    }
    litellm = env(container(free_run, "litellm"))
    # Its own user's password on both servers (the files hold its SHA-256), no other's.
    for server, path in (("redis", REDIS_CONF), ("redis-sentinel", SENTINEL_CONF)):
        assert users(free_run, server, path)["litellm"][1] == digest(litellm["REDIS_PASSWORD"])
    assert litellm["REDIS_PASSWORD"] != env(container(free_run, "redis"))["REDISCLI_AUTH"]


def test_master_key_and_database_come_from_the_env(free_run: ProgramRun) -> None:
    assert _config(free_run)["general_settings"] == {
        "master_key": "os.environ/LITELLM_MASTER_KEY",
        "database_url": "os.environ/DATABASE_URL",
    }
    litellm = env(container(free_run, "litellm"))
    assert litellm["DATABASE_URL"].endswith("@postgres:5432/litellm")
    salt_key, master_key = (vault_secret(free_run, f"LITELLM_{k}_KEY") for k in ("SALT", "MASTER"))
    assert salt_key != master_key.removeprefix("sk-")


def test_container_env_holds_no_provider_master_or_salt_key(free_run: ProgramRun) -> None:
    litellm = container(free_run, "litellm")
    variables = {"LITELLM_MASTER_KEY", "LITELLM_SALT_KEY", *MODEL_API_KEYS}
    assert not variables & set(env(litellm))
    values = [vault_secret(free_run, name) for name in variables]
    for field in ("envs", "entrypoints", "command"):
        text = "\n".join(litellm.inputs.get(field, []))
        assert not any(value in text for value in values), field


def test_entrypoint_loads_the_agents_file_then_runs_the_image_entrypoint(
    free_run: ProgramRun,
) -> None:
    inputs = container(free_run, "litellm").inputs
    [shell, flag, script, name] = inputs["entrypoints"]
    assert (shell, flag, name) == ("/bin/sh", "-c", "litellm-env")
    assert script == render_env_runner(
        "/run/ai-swarm/vault/litellm.env",
        "docker/prod_entrypoint.sh",
        sorted({"LITELLM_MASTER_KEY", "LITELLM_SALT_KEY", *MODEL_API_KEYS}),
        wait_s=litellm_service.ENV_FILE_WAIT_S,
        poll_s=litellm_service.ENV_FILE_POLL_S,
    )
    # Docker's restart policy is what starts LiteLLM again after the file changed.
    assert inputs["restart"] == "unless-stopped"


def test_mounts_the_agents_tmpfs_volume_read_only(free_run: ProgramRun) -> None:
    litellm = container(free_run, "litellm")
    volumes = [m for m in litellm.inputs["mounts"] if m["type"] == "volume"]
    assert volumes == [
        {
            "type": "volume",
            "source": "vault-rendered",
            "target": "/run/ai-swarm/vault",
            "readOnly": True,
        }
    ]
    # It reads the Agent's file as a member of the Agent's group, with no capability
    # (tests/integration/test_litellm_secrets.py reads it so).
    assert litellm.inputs["capabilities"]["adds"] == []
    assert litellm.inputs["groupAdds"] == [str(PRIVILEGES["vault-agent"].runs_as.gid)]


def test_runs_the_uploaded_config_and_probes_liveliness_only(free_run: ProgramRun) -> None:
    inputs = container(free_run, "litellm").inputs
    assert inputs["command"] == ["--config", CONFIG, "--port", "4000"]
    probe = inputs["healthcheck"]["tests"]
    assert probe[-1] == "http://127.0.0.1:4000/health/liveliness"
    assert not any(part.endswith("/health") for part in probe)  # /health calls every model


def test_starts_after_its_peers_and_publishes_on_loopback(free_run: ProgramRun) -> None:
    litellm = container(free_run, "litellm")
    peers = {"postgres", "redis", "redis-sentinel", "vault", "vault-agent"}
    assert depends_on(free_run, litellm) == peers
    # ... and after every one of its secrets is in Vault.
    writes = {
        free_run.by_urn()[u].name
        for u in litellm.dependencies
        if free_run.by_urn()[u].type == COMMAND
    }
    assert {f"vault-kv-{v}" for v in ("LITELLM_MASTER_KEY", "LITELLM_SALT_KEY")} <= writes
    assert litellm.inputs["ports"] == [{"internal": 4000, "external": 4000, "ip": "127.0.0.1"}]
