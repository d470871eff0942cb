"""LiteLLM: config.yaml from ai-swarm:models, keys from the env, cache through Sentinel."""

from __future__ import annotations

from typing import Any

import yaml

from dryrun.engine import ProgramRun
from tests.services.conftest import MODEL_API_KEYS, MODELS
from tests.services.readers import container, depends_on, env, upload
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
    assert litellm["LITELLM_SALT_KEY"] != litellm["LITELLM_MASTER_KEY"].removeprefix("sk-")


def test_runs_the_uploaded_config_and_probes_liveliness_only(free_run: ProgramRun) -> None:
    inputs = container(free_run, "litellm").inputs
    assert inputs["command"] == ["--config", CONFIG, "--port", "4000"]
    probe = inputs["healthcheck"]["tests"]
    assert probe[-1] == "http://127.0.0.1:4000/health/liveliness"
    assert not any(part.endswith("/health") for part in probe)  # /health calls every model


def test_starts_after_postgres_and_redis_and_publishes_on_loopback(free_run: ProgramRun) -> None:
    litellm = container(free_run, "litellm")
    assert depends_on(free_run, litellm) == {"postgres", "redis", "redis-sentinel"}
    assert litellm.inputs["ports"] == [{"internal": 4000, "external": 4000, "ip": "127.0.0.1"}]
