"""The rendered LiteLLM config.yaml on the real proxy (PyPI `litellm[proxy]`, pinned).

Adapted to this machine, and only so: each model answers from `mock_response` instead of its
provider (no network), the Sentinel address is the test Sentinel's, and the proxy runs without
DATABASE_URL. Its database part cannot run here: the Prisma query engine it needs is a binary
downloaded at first use. Without a database the master key is the only key it accepts.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import yaml

from components.services import litellm as litellm_service
from dryrun.engine import ProgramRun
from tests.integration import daemons
from tests.integration.rendered import RenderedContainer, retarget, run_healthcheck

MOCK_REPLY = "integration-test reply"
CACHE_KEY_HEADER = "x-litellm-cache-key"


@pytest.fixture(scope="module")
def container(program_run: ProgramRun) -> RenderedContainer:
    return RenderedContainer.of(program_run, "litellm")


@pytest.fixture(scope="module")
def rendered_config(container: RenderedContainer) -> dict[str, Any]:
    document = yaml.safe_load(container.upload(litellm_service.CONFIG_FILE))
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def proxy(
    container: RenderedContainer,
    rendered_config: dict[str, Any],
    sentinel: daemons.RedisDaemon,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[daemons.HttpDaemon]:
    config = offline_config(rendered_config, sentinel.port)
    env = {k: v for k, v in container.envs.items() if k != "DATABASE_URL"}
    workdir = tmp_path_factory.mktemp("litellm")
    with daemons.litellm_proxy(
        yaml.safe_dump(config), workdir, args=container.command, env=env
    ) as daemon:
        yield daemon


def offline_config(rendered: Mapping[str, Any], sentinel_port: int) -> dict[str, Any]:
    config = copy.deepcopy(dict(rendered))
    assert config["model_list"], "no model rendered to test with"
    for model in config["model_list"]:
        model["litellm_params"]["mock_response"] = MOCK_REPLY
    cache = config["litellm_settings"]["cache_params"]
    assert len(cache["sentinel_nodes"]) == 1
    cache["sentinel_nodes"] = [[daemons.LOOPBACK, sentinel_port]]
    return config


def chat(
    proxy: daemons.HttpDaemon, model: str, key: str | None, prompt: str = "hello"
) -> daemons.HttpReply:
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    payload = {"model": model, "messages": [{"role": "user", "content": prompt}]}
    return proxy.post("/v1/chat/completions", payload, headers)


def first_model(config: Mapping[str, Any]) -> str:
    return str(config["model_list"][0]["model_name"])


def test_liveliness_answers_and_the_healthcheck_passes(
    proxy: daemons.HttpDaemon, container: RenderedContainer
) -> None:
    assert proxy.get("/health/liveliness").status == 200
    address = proxy.base_url.removeprefix("http://")
    check = retarget(container.healthcheck, f"127.0.0.1:{litellm_service.PORT}", address)
    assert check != list(container.healthcheck), container.healthcheck
    assert run_healthcheck(check, {}).returncode == 0


def test_chat_with_the_master_key_succeeds(
    proxy: daemons.HttpDaemon, container: RenderedContainer, rendered_config: dict[str, Any]
) -> None:
    reply = chat(proxy, first_model(rendered_config), container.envs["LITELLM_MASTER_KEY"])
    assert reply.status == 200, reply.body
    assert reply.json_object()["choices"][0]["message"]["content"] == MOCK_REPLY


@pytest.mark.parametrize("key", [None, "sk-not-the-master-key"])
def test_chat_without_the_master_key_is_refused(
    proxy: daemons.HttpDaemon, rendered_config: dict[str, Any], key: str | None
) -> None:
    reply = chat(proxy, first_model(rendered_config), key)
    assert 400 <= reply.status < 500, (reply.status, reply.body)


def test_responses_are_cached_in_redis_through_sentinel(
    proxy: daemons.HttpDaemon,
    container: RenderedContainer,
    rendered_config: dict[str, Any],
    redis_master: daemons.RedisDaemon,
) -> None:
    key, model = container.envs["LITELLM_MASTER_KEY"], first_model(rendered_config)
    first = chat(proxy, model, key, prompt="cache me")
    second = chat(proxy, model, key, prompt="cache me")
    assert first.status == second.status == 200
    first_id = first.json_object()["id"]
    assert second.json_object()["id"] == first_id  # the second answer came from the cache
    assert first_id in redis_master.cli("GET", second.headers[CACHE_KEY_HEADER])
