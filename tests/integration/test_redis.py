"""The rendered redis.conf and sentinel.conf on Debian's redis-server and redis-sentinel (7.0)."""

from __future__ import annotations

import time

from components.services import redis as redis_service
from dryrun.engine import ProgramRun
from tests.integration import daemons
from tests.integration.rendered import RenderedContainer, retarget, run_healthcheck

SENTINEL_SETTLE_TIMEOUT_S = 10.0


def rendered_directives(conf: str) -> dict[str, str]:
    """Single-valued directives of a rendered redis.conf, by name (last one wins, as in redis)."""
    words = [line.split(None, 1) for line in conf.splitlines() if line.strip()]
    return {parts[0]: parts[1] for parts in words if len(parts) == 2 and parts[0] != "sentinel"}


def config_get(daemon: daemons.RedisDaemon, name: str) -> str:
    key, value = daemon.cli("CONFIG", "GET", name).splitlines()
    assert key == name
    return value


def test_generated_password_authenticates(
    redis_master: daemons.RedisDaemon, program_run: ProgramRun
) -> None:
    # The password the consumers are given, not only the one in the file, must open the server.
    litellm = RenderedContainer.of(program_run, "litellm")
    assert litellm.envs["REDIS_PASSWORD"] == redis_master.password
    assert redis_master.cli("SET", "integration:probe", "1") == "OK"
    assert redis_master.cli("GET", "integration:probe") == "1"


def test_unauthenticated_command_is_refused(redis_master: daemons.RedisDaemon) -> None:
    assert redis_master.cli("GET", "integration:probe", authenticate=False).startswith("NOAUTH")


def test_persistence_and_memory_settings_in_effect(
    redis_master: daemons.RedisDaemon, redis_master_container: RenderedContainer
) -> None:
    rendered = rendered_directives(redis_master_container.upload(redis_service.CONFIG_FILE))
    assert rendered["appendonly"] == "yes"
    for name in ("appendonly", "appendfsync", "maxmemory-policy", "protected-mode"):
        assert config_get(redis_master, name) == rendered[name], name
    megabytes = int(rendered["maxmemory"].removesuffix("mb"))
    assert int(config_get(redis_master, "maxmemory")) == megabytes * 1024 * 1024
    assert "aof_enabled:1" in redis_master.cli("INFO", "persistence").splitlines()


def test_master_healthcheck_succeeds_and_needs_the_password(
    redis_master: daemons.RedisDaemon, redis_master_container: RenderedContainer
) -> None:
    check = container_healthcheck(redis_master_container, redis_service.PORT, redis_master.port)
    assert run_healthcheck(check, redis_master_container.envs).returncode == 0
    # Without the container's REDISCLI_AUTH the same probe fails: it really checks the server.
    assert run_healthcheck(check, {"REDISCLI_AUTH": ""}).returncode != 0


def test_sentinel_knows_the_master(
    sentinel: daemons.RedisDaemon, redis_master: daemons.RedisDaemon
) -> None:
    answer = sentinel.cli("SENTINEL", "get-master-addr-by-name", redis_service.MASTER_NAME)
    assert answer.splitlines() == [daemons.LOOPBACK, str(redis_master.port)]


def test_sentinel_authenticates_to_the_master(sentinel: daemons.RedisDaemon) -> None:
    # The role comes from the master's INFO reply, which needs `sentinel auth-pass` to be right.
    deadline = time.monotonic() + SENTINEL_SETTLE_TIMEOUT_S
    while master_field(sentinel, "role-reported") != "master":
        assert time.monotonic() < deadline, sentinel.log_path.read_text()
        time.sleep(daemons.POLL_INTERVAL_S)
    assert "disconnected" not in master_field(sentinel, "flags")


def test_sentinel_rewrites_its_file_in_place(sentinel: daemons.RedisDaemon) -> None:
    assert sentinel.cli("SENTINEL", "FLUSHCONFIG") == "OK"
    rewritten = sentinel.conf_path.read_text()
    assert "sentinel myid " in rewritten
    assert f"sentinel monitor {redis_service.MASTER_NAME} {daemons.LOOPBACK}" in rewritten
    assert "error" not in sentinel.log_path.read_text().lower()


def test_sentinel_healthcheck_succeeds(
    sentinel: daemons.RedisDaemon, sentinel_container: RenderedContainer
) -> None:
    check = container_healthcheck(sentinel_container, redis_service.SENTINEL_PORT, sentinel.port)
    assert run_healthcheck(check, sentinel_container.envs).returncode == 0


def container_healthcheck(container: RenderedContainer, rendered_port: int, port: int) -> list[str]:
    """The container's probe, pointed at the test daemon's port instead of the container's."""
    check = retarget(container.healthcheck, f"-p {rendered_port}", f"-p {port}")
    assert check != list(container.healthcheck), f"no -p {rendered_port} in {container.healthcheck}"
    return check


def master_field(sentinel: daemons.RedisDaemon, name: str) -> str:
    lines = sentinel.cli("SENTINEL", "master", redis_service.MASTER_NAME).splitlines()
    fields = dict(zip(lines[::2], lines[1::2], strict=True))
    return fields[name]
