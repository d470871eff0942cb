"""The rendered LiteLLM config.yaml on the real proxy (PyPI `litellm[proxy]`, pinned).

Adapted to this machine, and only so: each model answers from `mock_response` instead of its
provider (no network), the Sentinel address is the test Sentinel's, and the proxy runs without
DATABASE_URL. Its database part cannot run here: the Prisma query engine it needs is a binary
downloaded at first use. Without a database the master key is the only key it accepts.

The proxy starts through the container's own entrypoint, run by busybox's `sh` as the image's
`/bin/sh` is, which reads the master, salt and provider keys from the file the program's Vault
Agent renders (real `bao`, see openbao.py); only the file's path and the image entrypoint's path
are moved to this machine. The master key the proxy accepts is the one in Vault.
"""

from __future__ import annotations

import contextlib
import copy
import subprocess
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.services import litellm as litellm_service
from dryrun.engine import ProgramRun
from tests.integration import daemons
from tests.integration.openbao import KV_STEP_PREFIX, VaultStack, host_steps, run_step, vault_stack
from tests.integration.rendered import CONTAINER, RenderedContainer, retarget, run_healthcheck

MOCK_REPLY = "integration-test reply"
# The entrypoint polls the file every ENV_FILE_POLL_S; the Agent here re-renders every second.
RESTART_TIMEOUT_S = litellm_service.ENV_FILE_POLL_S + 15.0
RESTART_EXIT_CODE = 75  # EX_TEMPFAIL: the entrypoint's "start me again"
CACHE_KEY_HEADER = "x-litellm-cache-key"
IMAGE_SHELL = "/bin/sh"
BUSYBOX_SH = [daemons.require_program("busybox"), "sh"]


@pytest.fixture(scope="module")
def container(program_run: ProgramRun) -> RenderedContainer:
    return RenderedContainer.of(program_run, "litellm")


@pytest.fixture(scope="module")
def rendered_config(container: RenderedContainer) -> dict[str, Any]:
    document = yaml.safe_load(container.upload(litellm_service.CONFIG_FILE))
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def vault(
    program_run: ProgramRun, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[VaultStack]:
    yield from vault_stack(program_run, tmp_path_factory.mktemp("openbao"))


@pytest.fixture(scope="module")
def master_key(vault: VaultStack) -> str:
    return vault.values[litellm_service.MASTER_KEY_ENV]


def entrypoint_here(run: ProgramRun, rendered: Path) -> list[str]:
    """The container's entrypoint with the Agent's file and the image entrypoint moved here, run
    by busybox's sh: the image (wolfi-base) has no other /bin/sh."""
    [registration] = [r for r in run.of_type(CONTAINER) if r.inputs["name"] == "litellm"]
    words: list[str] = registration.inputs["entrypoints"]
    env_file = f"{litellm_service.SECRETS_DIR}/{rendered.name}"
    here = retarget(words, env_file, str(rendered))
    here = retarget(here, litellm_service.IMAGE_ENTRYPOINT, str(daemons.LITELLM_EXECUTABLE))
    assert here[2] != words[2] and str(daemons.LITELLM_EXECUTABLE) in here[2]
    assert here[0] == IMAGE_SHELL, here[0]
    return [*BUSYBOX_SH, *here[1:]]


Launch = Callable[[], contextlib.AbstractContextManager[daemons.HttpDaemon]]


@pytest.fixture(scope="module")
def entrypoint(program_run: ProgramRun, vault: VaultStack) -> list[str]:
    return entrypoint_here(program_run, vault.agent.rendered)


@pytest.fixture(scope="module")
def launch(
    container: RenderedContainer,
    rendered_config: dict[str, Any],
    sentinel: daemons.RedisDaemon,
    entrypoint: list[str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Launch:
    """Starts the proxy through the container's entrypoint, each time in a new directory."""
    config = yaml.safe_dump(offline_config(rendered_config, sentinel.port))
    env = {k: v for k, v in container.envs.items() if k != "DATABASE_URL"}

    def start() -> contextlib.AbstractContextManager[daemons.HttpDaemon]:
        workdir = tmp_path_factory.mktemp("litellm")
        return daemons.litellm_proxy(
            config, workdir, args=container.command, env=env, entrypoint=entrypoint
        )

    return start


@pytest.fixture(scope="module")
def proxy(launch: Launch) -> Iterator[daemons.HttpDaemon]:
    with launch() as daemon:
        yield daemon


@pytest.fixture
def rotate_master_key(
    program_run: ProgramRun, vault: VaultStack
) -> Iterator[Callable[[str], None]]:
    """Writes a new master key with the program's own step; the program's value comes back
    after the test."""
    step = host_steps(program_run)[KV_STEP_PREFIX + litellm_service.MASTER_KEY_ENV]
    yield lambda value: run_step(vault.server, step, stdin=value)
    run_step(vault.server, step)


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
    proxy: daemons.HttpDaemon, master_key: str, rendered_config: dict[str, Any]
) -> None:
    reply = chat(proxy, first_model(rendered_config), master_key)
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
    master_key: str,
    rendered_config: dict[str, Any],
    redis_master: daemons.RedisDaemon,
) -> None:
    key, model = master_key, first_model(rendered_config)
    first = chat(proxy, model, key, prompt="cache me")
    second = chat(proxy, model, key, prompt="cache me")
    assert first.status == second.status == 200
    first_id = first.json_object()["id"]
    assert second.json_object()["id"] == first_id  # the second answer came from the cache
    assert first_id in redis_master.cli("GET", second.headers[CACHE_KEY_HEADER])


def test_the_cache_uses_litellms_own_redis_user_and_nothing_is_refused(
    proxy: daemons.HttpDaemon,
    master_key: str,
    rendered_config: dict[str, Any],
    redis_master: daemons.RedisDaemon,
    sentinel: daemons.RedisDaemon,
) -> None:
    """Its user, on the Sentinel and the master, has every command the cache sends: the ACL
    log, where Redis records each refused command, stays empty."""
    for server in (redis_master, sentinel):
        assert server.cli("ACL", "LOG", "RESET") == "OK"
    reply = chat(proxy, first_model(rendered_config), master_key, prompt="as its own user")
    assert reply.status == 200, reply.body
    assert redis_master.cli("ACL", "LOG") == ""
    assert sentinel.cli("ACL", "LOG") == ""
    assert "user=litellm" in redis_master.cli("CLIENT", "LIST")


def test_the_secrets_are_in_no_environment_the_container_declares(
    container: RenderedContainer, vault: VaultStack
) -> None:
    assert not set(vault.values) & set(container.envs)
    assert not [v for v in vault.values.values() if v in "\n".join(container.envs.values())]


def test_entrypoint_exports_the_expected_variables_only(
    entrypoint: list[str], vault: VaultStack, tmp_path: Path
) -> None:
    """The container's entrypoint on a file with a stray line: a value that held a newline must
    not set another variable, such as PATH."""
    stray = tmp_path / "litellm.env"
    stray.write_text(vault.agent.rendered.read_text() + "PATH=/nowhere\nUNLISTED=1\n")
    script = retarget(entrypoint, str(vault.agent.rendered), str(stray))
    script = retarget(script, str(daemons.LITELLM_EXECUTABLE), "env")
    done = subprocess.run(
        script,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
        timeout=daemons.COMMAND_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    seen = dict(line.split("=", 1) for line in done.stdout.splitlines())
    assert {k: seen[k] for k in vault.values} == dict(vault.values)
    assert seen["PATH"] == "/usr/bin:/bin"
    assert "UNLISTED" not in seen
    assert done.stderr.count("sets no expected variable") == 2


def test_a_changed_key_stops_litellm_and_its_restart_loads_the_new_one(
    proxy: daemons.HttpDaemon,
    launch: Launch,
    rendered_config: dict[str, Any],
    master_key: str,
    rotate_master_key: Callable[[str], None],
) -> None:
    """Runs last: it stops the module's proxy. The Agent renders the new key; the entrypoint
    sees the file change and exits 75; Docker's restart policy (`unless-stopped`) starts the
    container again, which this test does by hand, and the new key is the one accepted."""
    rotated = "sk-integration-test-rotated-master-key"
    rotate_master_key(rotated)
    assert proxy.process is not None
    try:
        exit_code = proxy.process.wait(timeout=RESTART_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"LiteLLM kept running on the old key:\n{daemons.log_tail(proxy.log_path)}")
    assert exit_code == RESTART_EXIT_CODE
    with launch() as restarted:
        model = first_model(rendered_config)
        assert chat(restarted, model, rotated).status == 200
        assert 400 <= chat(restarted, model, master_key).status < 500
