"""Redis: an append-only cache master and a Sentinel that finds it by name, behind ACL users."""

from __future__ import annotations

import hashlib
import shlex
from urllib.parse import urlsplit

from dryrun.engine import ProgramRun
from tests.services.readers import CONTAINER, binds, container, depends_on, env, upload

CONF = "/usr/local/etc/redis/redis.conf"
SENTINEL_CONF = "/data/sentinel.conf"


def _lines(run: ProgramRun, name: str, path: str) -> list[list[str]]:
    """The file's lines as redis reads them (double-quoted words unquoted)."""
    text = upload(container(run, name), path)
    return [shlex.split(line) for line in text.splitlines() if line.strip()]


def _settings(run: ProgramRun) -> dict[str, list[str]]:
    return {words[0]: words[1:] for words in _lines(run, "redis", CONF) if words[0] != "user"}


def users(run: ProgramRun, name: str, path: str) -> dict[str, list[str]]:
    """`user` lines by user name: everything after the name."""
    return {words[1]: words[2:] for words in _lines(run, name, path) if words[0] == "user"}


def digest(password: str) -> str:
    return "#" + hashlib.sha256(password.encode()).hexdigest()


DISABLED = ["off", "resetpass", "resetkeys", "resetchannels", "-@all"]


def litellm_password(run: ProgramRun) -> str:
    return env(container(run, "litellm"))["REDIS_PASSWORD"]


def openwebui_password(run: ProgramRun) -> str:
    url = urlsplit(env(container(run, "open-webui"))["REDIS_URL"])
    assert url.username == "openwebui" and url.password
    return url.password


def healthcheck_password(run: ProgramRun) -> str:
    return env(container(run, "redis"))["REDISCLI_AUTH"]


def test_master_persists_append_only_from_its_config(free_run: ProgramRun) -> None:
    settings = _settings(free_run)
    assert settings["appendonly"] == ["yes"]
    assert settings["dir"] == ["/data"]
    assert container(free_run, "redis").inputs["command"] == ["redis-server", CONF]


def test_every_client_is_a_named_user_with_its_own_password(free_run: ProgramRun) -> None:
    master = users(free_run, "redis", CONF)
    assert set(master) == {"default", "sentinel", "healthcheck", "litellm", "openwebui"}
    # A client that names no user gets `default`: off, and no password opens it.
    assert master.pop("default") == DISABLED
    for name, rules in master.items():
        assert rules[0] == "on", name
        # Only the SHA-256 of a password is in the file, never one a client could send.
        assert rules[1].startswith("#") and len(rules[1]) == 65, name
        assert not any(rule.startswith(">") or rule == "nopass" for rule in rules), name
    assert master["litellm"][1] == digest(litellm_password(free_run))
    assert master["openwebui"][1] == digest(openwebui_password(free_run))
    assert master["healthcheck"][1] == digest(healthcheck_password(free_run))
    assert len({rules[1] for rules in master.values()}) == len(master)
    # A password for everyone at once would undo the users.
    assert "requirepass" not in _settings(free_run)


def test_consumers_may_use_data_but_not_administer(free_run: ProgramRun) -> None:
    master = users(free_run, "redis", CONF)
    for name in ("litellm", "openwebui"):
        rules = master[name][2:]
        assert rules.index("-@all") < rules.index("-@dangerous"), name
        assert "+@all" not in rules and "+@admin" not in rules, name
    # Pub/sub for Open WebUI's websocket manager and tasks only, on their channels.
    assert "+@pubsub" in master["openwebui"] and "&*" not in master["openwebui"]
    assert "resetchannels" in master["litellm"] and "+@pubsub" not in master["litellm"]
    assert master["healthcheck"][2:] == ["-@all", "+ping"]


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
    lines = _lines(free_run, "redis-sentinel", SENTINEL_CONF)
    sentinel_lines = [words[1:] for words in lines if words[0] == "sentinel"]
    # Hostnames must be resolvable before the monitor line names the master by one.
    assert sentinel_lines[:2] == [["resolve-hostnames", "yes"], ["announce-hostnames", "yes"]]
    sentinels = [r for r in free_run.of_type(CONTAINER) if r.name.endswith("sentinel")]
    assert ["monitor", "mymaster", "redis", "6379", str(len(sentinels))] in sentinel_lines
    assert sentinel.inputs["command"] == ["redis-server", SENTINEL_CONF, "--sentinel"]


def test_sentinel_reaches_the_master_as_its_own_user(free_run: ProgramRun) -> None:
    lines = [w[1:] for w in _lines(free_run, "redis-sentinel", SENTINEL_CONF) if w[0] == "sentinel"]
    assert ["auth-user", "mymaster", "sentinel"] in lines
    [auth_pass] = [words[2] for words in lines if words[0] == "auth-pass"]
    master = users(free_run, "redis", CONF)
    assert master["sentinel"][1] == digest(auth_pass)
    # The rights the Redis docs list for a Sentinel user, and no key access.
    assert not any(rule.startswith("~") for rule in master["sentinel"])
    assert {"+role", "+info", "+subscribe", "+publish", "+slaveof", "+config|rewrite"} <= set(
        master["sentinel"]
    )


def test_sentinel_requires_a_user_too(free_run: ProgramRun) -> None:
    sentinel = users(free_run, "redis-sentinel", SENTINEL_CONF)
    # Open WebUI cannot send a Sentinel password, so it has no user there (it uses the master).
    assert set(sentinel) == {"default", "healthcheck", "litellm"}
    assert sentinel["default"] == DISABLED
    master = users(free_run, "redis", CONF)
    assert sentinel["litellm"][1] == master["litellm"][1]
    assert sentinel["healthcheck"][1] == master["healthcheck"][1]
    # Where the master is, and nothing that changes what Sentinel monitors.
    assert not any("monitor" in rule or "remove" in rule for rule in sentinel["litellm"])
    assert "+sentinel|masters" in sentinel["litellm"]
    assert sentinel["litellm"][2] == "-@all"


def test_sentinel_config_sits_in_its_writable_data_directory(free_run: ProgramRun) -> None:
    """Sentinel rewrites its config file at run time: it must sit on the data volume."""
    sentinel = container(free_run, "redis-sentinel")
    config_path = sentinel.inputs["command"][1]
    assert any(config_path.startswith(f"{inside}/") for inside in binds(sentinel).values())
    assert any(u["file"] == config_path for u in sentinel.inputs["uploads"])
    assert depends_on(free_run, sentinel) == {"redis"}


def test_health_pings_as_the_healthcheck_user_without_a_password_on_the_command_line(
    free_run: ProgramRun,
) -> None:
    password = healthcheck_password(free_run)
    for name, port in (("redis", 6379), ("redis-sentinel", 26379)):
        registration = container(free_run, name)
        test = registration.inputs["healthcheck"]["tests"]
        assert test == [
            "CMD-SHELL",
            f"redis-cli --user healthcheck -p {port} ping | grep -q PONG",
        ]
        assert env(registration) == {"REDISCLI_AUTH": password}
