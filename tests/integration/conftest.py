"""Integration group: every test here is marked `integration`, and the summary names the daemons.

The program runs once under mocks for the whole group; the daemons several test modules share
(the Redis master and its Sentinel) start once and stop at the end of the session.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from components.services import redis as redis_service
from dryrun.engine import ProgramRun, run_program
from tests.integration import daemons
from tests.integration.rendered import RenderedContainer

HERE = Path(__file__).parent
# The committed stack routes no model; LiteLLM gets one here so its model_list is rendered.
# The key is a name, not a credential: the proxy answers from `mock_response` in the tests.
MODEL_OVERRIDES = {
    "models": json.dumps(
        [{"name": "gpt-4o-mini", "model": "openai/gpt-4o-mini", "apiKey": "OPENAI_API_KEY"}]
    ),
}
MODEL_SECRETS = {"modelApiKeys": json.dumps({"OPENAI_API_KEY": "sk-integration-test-not-a-key"})}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.integration)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if daemons.versions_seen:
        terminalreporter.section("daemons the integration tests ran")
        for label, version in sorted(daemons.versions_seen.items()):
            terminalreporter.write_line(f"{label}: {version}")


@pytest.fixture(scope="session")
def program_run() -> ProgramRun:
    return run_program(stack="oracle", overrides=MODEL_OVERRIDES, secrets=MODEL_SECRETS)


@pytest.fixture(scope="session")
def redis_master_container(program_run: ProgramRun) -> RenderedContainer:
    return RenderedContainer.of(program_run, redis_service.MASTER_HOST)


def reachable_workdir(prefix: str) -> tempfile.TemporaryDirectory[str]:
    """A temporary directory the daemons' own users can reach (pytest's are root's only)."""
    return tempfile.TemporaryDirectory(prefix=f"ai-swarm-{prefix}-")


@pytest.fixture(scope="session")
def redis_master(redis_master_container: RenderedContainer) -> Iterator[daemons.RedisDaemon]:
    conf = redis_master_container.upload(redis_service.CONFIG_FILE)
    with reachable_workdir("redis") as workdir, daemons.redis_server(conf, Path(workdir)) as daemon:
        yield daemon


@pytest.fixture(scope="session")
def sentinel_container(program_run: ProgramRun) -> RenderedContainer:
    return RenderedContainer.of(program_run, redis_service.SENTINEL_HOST)


@pytest.fixture(scope="session")
def sentinel(
    sentinel_container: RenderedContainer, redis_master: daemons.RedisDaemon
) -> Iterator[daemons.RedisDaemon]:
    conf = sentinel_container.upload(redis_service.SENTINEL_FILE)
    with (
        reachable_workdir("sentinel") as workdir,
        daemons.redis_sentinel(conf, Path(workdir), master_port=redis_master.port) as daemon,
    ):
        yield daemon
