"""Open WebUI: LiteLLM and Pipelines as OpenAI backends, Postgres, Redis via Sentinel."""

from __future__ import annotations

import re

from dryrun.engine import ProgramRun
from tests.services.readers import container, depends_on, env, run_with, vault_secret


def test_uses_litellm_and_pipelines_as_openai_backends_with_their_keys(
    free_run: ProgramRun,
) -> None:
    webui = env(container(free_run, "open-webui"))
    assert webui["OPENAI_API_BASE_URLS"].split(";") == [
        "http://litellm:4000/v1",
        "http://pipelines:9099",
    ]
    assert webui["OPENAI_API_KEYS"].split(";") == [
        vault_secret(free_run, "LITELLM_MASTER_KEY"),
        env(container(free_run, "pipelines"))["PIPELINES_API_KEY"],
    ]
    assert webui["ENABLE_OLLAMA_API"] == "false"
    assert "OLLAMA_BASE_URL" not in webui


def test_without_pipelines_only_litellm_is_listed() -> None:
    run = run_with({"services": '{"pipelines": {"enabled": false}}'})
    webui = env(container(run, "open-webui"))
    assert webui["OPENAI_API_BASE_URLS"] == "http://litellm:4000/v1"
    assert webui["OPENAI_API_KEYS"] == vault_secret(run, "LITELLM_MASTER_KEY")
    assert depends_on(run, container(run, "open-webui")) == {
        "postgres",
        "redis",
        "redis-sentinel",
        "litellm",
    }


def test_keeps_its_secret_and_applies_env_changes(free_run: ProgramRun) -> None:
    webui = env(container(free_run, "open-webui"))
    assert re.fullmatch(r"[A-Za-z0-9]{32}", webui["WEBUI_SECRET_KEY"])
    assert webui["ENABLE_PERSISTENT_CONFIG"] == "false"


def test_database_and_redis_through_sentinel(free_run: ProgramRun) -> None:
    webui = env(container(free_run, "open-webui"))
    assert webui["DATABASE_URL"].endswith("@postgres:5432/openwebui")
    password = env(container(free_run, "redis"))["REDISCLI_AUTH"]
    assert webui["REDIS_URL"] == f"redis://:{password}@mymaster:6379/0"
    assert webui["WEBSOCKET_REDIS_URL"] == webui["REDIS_URL"]
    for prefix in ("REDIS", "WEBSOCKET"):
        assert webui[f"{prefix}_SENTINEL_HOSTS"] == "redis-sentinel"
        assert webui[f"{prefix}_SENTINEL_PORT"] == "26379"
    assert webui["WEBSOCKET_MANAGER"] == "redis"


def test_first_start_gets_a_long_start_period(free_run: ProgramRun) -> None:
    inputs = container(free_run, "open-webui").inputs
    assert inputs["healthcheck"]["tests"][-1] == "http://127.0.0.1:8080/health"
    assert int(inputs["healthcheck"]["startPeriod"].removesuffix("s")) >= 300


def test_starts_after_everything_it_talks_to(free_run: ProgramRun) -> None:
    webui = container(free_run, "open-webui")
    assert depends_on(free_run, webui) == {
        "postgres",
        "redis",
        "redis-sentinel",
        "litellm",
        "pipelines",
    }
    assert webui.inputs["ports"] == [{"internal": 8080, "external": 8080, "ip": "127.0.0.1"}]
