"""Redis: a protected append-only cache master and a Sentinel that finds it by name."""

from __future__ import annotations

from dryrun.engine import ProgramRun
from tests.services.readers import CONTAINER, binds, container, depends_on, directives, env, upload

CONF = "/usr/local/etc/redis/redis.conf"
SENTINEL_CONF = "/data/sentinel.conf"


def _settings(run: ProgramRun) -> dict[str, list[str]]:
    return {words[0]: words[1:] for words in directives(upload(container(run, "redis"), CONF))}


def test_master_requires_its_password_and_persists_append_only(free_run: ProgramRun) -> None:
    settings = _settings(free_run)
    password = env(container(free_run, "redis"))["REDISCLI_AUTH"]
    assert settings["requirepass"] == [password]
    assert settings["masterauth"] == [password]
    assert settings["appendonly"] == ["yes"]
    assert settings["dir"] == ["/data"]
    assert container(free_run, "redis").inputs["command"] == ["redis-server", CONF]


# An append-only rewrite forks the server, and copy-on-write can double the dataset's pages
# while it runs: a quarter of the container limit at least stays free for that, fragmentation
# and client buffers, or the kernel kills Redis at the limit.
MAX_DATASET_SHARE = 0.75


def test_master_only_answers_authenticated_clients_and_loses_at_most_a_second(
    free_run: ProgramRun,
) -> None:
    settings = _settings(free_run)
    assert settings["protected-mode"] == ["yes"]
    # `no` leaves flushing to the kernel (up to ~30 s of writes lost on a crash).
    assert settings["appendfsync"] in (["everysec"], ["always"])


def test_maxmemory_leaves_room_below_the_container_limit_and_evicts_like_a_cache(
    free_run: ProgramRun, big_run: ProgramRun
) -> None:
    for run in (free_run, big_run):
        settings = _settings(run)
        maxmemory_mb = int(settings["maxmemory"][0].removesuffix("mb"))
        limit_mb = container(run, "redis").inputs["memory"]
        assert 0 < maxmemory_mb <= limit_mb * MAX_DATASET_SHARE
        assert settings["maxmemory-policy"] == ["allkeys-lru"]


def test_sentinel_monitors_the_master_by_name_with_a_matching_quorum(free_run: ProgramRun) -> None:
    sentinel = container(free_run, "redis-sentinel")
    lines = directives(upload(sentinel, SENTINEL_CONF))
    sentinel_lines = [words[1:] for words in lines if words[0] == "sentinel"]
    # Hostnames must be resolvable before the monitor line names the master by one.
    assert sentinel_lines[:2] == [["resolve-hostnames", "yes"], ["announce-hostnames", "yes"]]
    sentinels = [r for r in free_run.of_type(CONTAINER) if r.name.endswith("sentinel")]
    assert ["monitor", "mymaster", "redis", "6379", str(len(sentinels))] in sentinel_lines
    password = env(container(free_run, "redis"))["REDISCLI_AUTH"]
    assert ["auth-pass", "mymaster", password] in sentinel_lines
    assert sentinel.inputs["command"] == ["redis-server", SENTINEL_CONF, "--sentinel"]


def test_sentinel_config_sits_in_its_writable_data_directory(free_run: ProgramRun) -> None:
    """Sentinel rewrites its config file at run time: it must sit on the data volume."""
    sentinel = container(free_run, "redis-sentinel")
    config_path = sentinel.inputs["command"][1]
    assert any(config_path.startswith(f"{inside}/") for inside in binds(sentinel).values())
    assert any(u["file"] == config_path for u in sentinel.inputs["uploads"])
    assert depends_on(free_run, sentinel) == {"redis"}


def test_health_pings_without_a_password_on_the_command_line(free_run: ProgramRun) -> None:
    for name, port in (("redis", 6379), ("redis-sentinel", 26379)):
        test = container(free_run, name).inputs["healthcheck"]["tests"]
        assert test == ["CMD-SHELL", f"redis-cli -p {port} ping | grep -q PONG"]
    assert "REDISCLI_AUTH" not in env(container(free_run, "redis-sentinel"))
