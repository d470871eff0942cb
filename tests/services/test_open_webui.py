"""Open WebUI: LiteLLM (with a virtual key of its own) and Pipelines as OpenAI backends, Postgres,
Redis as its own user on the master."""

from __future__ import annotations

import json
import re
import shlex

from components.services import open_webui
from dryrun.engine import ProgramRun, Registration
from tests.services.readers import (
    COMMAND,
    container,
    depends_on,
    env,
    instance_id,
    run_with,
    strings,
)
from tests.services.test_redis import CONF as REDIS_CONF
from tests.services.test_redis import digest, openwebui_password, users

KEY_COMMAND = "openWebui-register-litellm-key"


def key_command(run: ProgramRun) -> Registration:
    return run.one(COMMAND, KEY_COMMAND)


def key_stdin(run: ProgramRun) -> dict[str, str]:
    document = json.loads(key_command(run).inputs["stdin"])
    assert isinstance(document, dict) and set(document) == {"master_key", "key"}
    return document


def test_uses_litellm_and_pipelines_as_openai_backends_with_their_keys(
    free_run: ProgramRun,
) -> None:
    webui = env(container(free_run, "open-webui"))
    assert webui["OPENAI_API_BASE_URLS"].split(";") == [
        "http://litellm:4000/v1",
        "http://pipelines:9099",
    ]
    assert webui["OPENAI_API_KEYS"].split(";") == [
        key_stdin(free_run)["key"],
        env(container(free_run, "pipelines"))["PIPELINES_API_KEY"],
    ]
    assert webui["ENABLE_OLLAMA_API"] == "false"
    assert "OLLAMA_BASE_URL" not in webui


def test_without_pipelines_only_litellm_is_listed() -> None:
    run = run_with({"services": '{"pipelines": {"enabled": false}}'})
    webui = env(container(run, "open-webui"))
    assert webui["OPENAI_API_BASE_URLS"] == "http://litellm:4000/v1"
    assert webui["OPENAI_API_KEYS"] == key_stdin(run)["key"]
    assert depends_on(run, container(run, "open-webui")) == {"postgres", "redis", "redis-sentinel"}


def test_its_litellm_key_is_a_generated_virtual_key_not_the_master_key(
    free_run: ProgramRun,
) -> None:
    keys = key_stdin(free_run)
    virtual, master = keys["key"], keys["master_key"]
    assert re.fullmatch(r"sk-[A-Za-z0-9]{32}", virtual)
    assert virtual.removeprefix("sk-") in free_run.generated
    assert master != virtual and master.removeprefix("sk-") in free_run.generated
    # The master key is LiteLLM's: some resource outside Open WebUI hands it to LiteLLM.
    webui_urns = {r.urn for r in free_run.registrations if r.parent.endswith("::openWebui")}
    holders = [
        r
        for r in free_run.registrations
        if r.urn not in webui_urns and any(master in text for text in strings(r.inputs))
    ]
    assert holders


def test_the_master_key_reaches_no_input_of_open_webuis_container(free_run: ProgramRun) -> None:
    master = key_stdin(free_run)["master_key"]
    webui = container(free_run, "open-webui")
    texts = strings(webui.inputs)
    assert texts
    assert not any(master in text or master.removeprefix("sk-") in text for text in texts)


def test_the_key_is_registered_after_litellm_is_healthy_keys_on_stdin_only(
    free_run: ProgramRun,
) -> None:
    registered = key_command(free_run)
    litellm = container(free_run, "litellm")
    assert litellm.inputs["wait"] is True  # created means healthy
    assert litellm.urn in registered.dependencies
    assert registered.inputs["triggers"] == [instance_id(free_run), free_run.ids[litellm.urn]]
    # Secrets only in stdin (secret), never in the script, an environment or the logs.
    assert "stdin" in registered.secret_paths
    keys = key_stdin(free_run)
    script = registered.inputs["create"]
    assert not any(value in script for value in keys.values())
    assert not any(value.removeprefix("sk-") in script for value in keys.values())
    assert "environment" not in registered.inputs
    assert registered.inputs["logging"] == "none"


def test_the_script_runs_the_program_in_the_litellm_container_reading_stdin(
    free_run: ProgramRun,
) -> None:
    first, rest = key_command(free_run).inputs["create"].split("\n", 1)
    assert first == "set -eu"
    argv = shlex.split(rest)  # one command: the program is one quoted word
    assert len(argv) == 8
    assert argv[:6] == ["docker", "exec", "-i", "litellm", "python3", "-c"]
    assert json.loads(argv[7]) == open_webui.key_program_args()
    compile(argv[6], "key-program", "exec")  # the container's python3 gets valid Python


def test_the_key_may_call_llm_routes_only(free_run: ProgramRun) -> None:
    base, alias, key_type, routes, attempts, wait_s = open_webui.key_program_args()
    assert base == "http://127.0.0.1:4000"
    assert (alias, key_type, routes) == ("open-webui", "llm_api", ["llm_api_routes"])
    # It outlasts LiteLLM reaching its database after the healthcheck passes.
    assert attempts * wait_s >= 180


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


def test_starts_after_what_its_start_reads_and_beside_its_model_backends(
    free_run: ProgramRun,
) -> None:
    # Its start migrates Postgres and reads its config from Redis; LiteLLM and Pipelines are
    # called per request, so `pulumi up` need not wait for them (nor for the key registration).
    webui = container(free_run, "open-webui")
    assert depends_on(free_run, webui) == {"postgres", "redis", "redis-sentinel"}
    assert key_command(free_run).urn not in webui.dependencies
    assert webui.inputs["ports"] == [{"internal": 8080, "external": 8080, "ip": "127.0.0.1"}]
