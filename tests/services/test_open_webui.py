"""Open WebUI: LiteLLM and Pipelines as OpenAI backends, Postgres, Redis via Sentinel."""

from __future__ import annotations

import re

from dryrun.engine import ProgramRun
from tests.services.readers import container, depends_on, env, run_with
from tests.services.test_redis import CONF as REDIS_CONF
from tests.services.test_redis import digest, openwebui_password, users


def test_uses_litellm_and_pipelines_as_openai_backends_with_their_keys(
    free_run: ProgramRun,
) -> None:
    webui = env(container(free_run, "open-webui"))
    assert webui["OPENAI_API_BASE_URLS"].split(";") == [
        "http://litellm:4000/v1",
        "http://pipelines:9099",
    ]
    assert webui["OPENAI_API_KEYS"].split(";") == [
        env(container(free_run, "litellm"))["LITELLM_MASTER_KEY"],
        env(container(free_run, "pipelines"))["PIPELINES_API_KEY"],
    ]
    assert webui["ENABLE_OLLAMA_API"] == "false"
    assert "OLLAMA_BASE_URL" not in webui


def test_without_pipelines_only_litellm_is_listed() -> None:
    run = run_with({"services": '{"pipelines": {"enabled": false}}'})
    webui = env(container(run, "open-webui"))
    assert webui["OPENAI_API_BASE_URLS"] == "http://litellm:4000/v1"
    assert webui["OPENAI_API_KEYS"] == env(container(run, "litellm"))["LITELLM_MASTER_KEY"]
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


def test_database_and_redis_as_its_own_user_on_the_master(free_run: ProgramRun) -> None:
    webui = env(container(free_run, "open-webui"))
    assert webui["DATABASE_URL"].endswith("@postgres:5432/openwebui")
    password = openwebui_password(free_run)
    assert webui["REDIS_URL"] == f"redis://openwebui:{password}@redis:6379/0"
    assert users(free_run, "redis", REDIS_CONF)["openwebui"][1] == digest(password)
    assert webui["WEBSOCKET_REDIS_URL"] == webui["REDIS_URL"]
    # Open WebUI v0.6.18 cannot send a Sentinel password: with these set it would try the
    # Sentinel without one and be refused.
    assert not [name for name in webui if "SENTINEL" in name]
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
