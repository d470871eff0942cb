"""The rendered redis.conf and sentinel.conf on Debian's redis-server and redis-sentinel (7.0).

Each consumer's user, with the password the program hands that consumer, is tried on the real
daemons; so is everyone who has none. Open WebUI's own Redis client calls (open-webui v0.6.18,
`backend/open_webui/utils/redis.py` and `socket/utils.py`) run through redis-py from the LiteLLM
virtual environment.
"""

from __future__ import annotations

import os
import stat
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from components.services import litellm as litellm_service
from components.services import redis as redis_service
from dryrun.engine import ProgramRun
from tests.integration import daemons
from tests.integration.rendered import RenderedContainer, retarget, run_healthcheck

SENTINEL_SETTLE_TIMEOUT_S = 10.0
PYTHON_WITH_REDIS_PY = daemons.LITELLM_EXECUTABLE.parent / "python"
# What someone on the services' network would try: their own master for Sentinel to report.
INTRUDER_MONITOR = ("SENTINEL", "MONITOR", "intruder", daemons.LOOPBACK, "6399", "1")
# Administration no consumer may do (SHUTDOWN too: refused, it stops nothing).
ADMIN_COMMANDS = [
    ("CONFIG", "SET", "maxmemory", "1"),
    ("FLUSHALL",),
    ("ACL", "LIST"),
    ("BGREWRITEAOF",),
    ("REPLICAOF", daemons.LOOPBACK, "6399"),
    ("CLIENT", "KILL", "TYPE", "normal"),
    ("SHUTDOWN", "NOSAVE"),
]


def rendered_directives(conf: str) -> dict[str, str]:
    """Single-valued directives of a rendered redis.conf, by name (last one wins, as in redis)."""
    words = [line.split(None, 1) for line in conf.splitlines() if line.strip()]
    return {
        parts[0]: parts[1]
        for parts in words
        if len(parts) == 2 and parts[0] not in ("sentinel", "user")
    }


def config_get(daemon: daemons.RedisDaemon, name: str) -> str:
    key, value = daemon.cli("CONFIG", "GET", name).splitlines()
    assert key == name
    return value


@pytest.fixture(scope="module")
def passwords(program_run: ProgramRun) -> dict[str, str]:
    """Each consumer's password, as the program hands it to that consumer."""
    webui = urlsplit(RenderedContainer.of(program_run, "open-webui").envs["REDIS_URL"])
    assert webui.username == redis_service.OPENWEBUI_USER and webui.password
    return {
        redis_service.LITELLM_USER: RenderedContainer.of(program_run, "litellm").envs[
            "REDIS_PASSWORD"
        ],
        redis_service.OPENWEBUI_USER: webui.password,
        redis_service.HEALTHCHECK_USER: RenderedContainer.of(program_run, "redis").envs[
            "REDISCLI_AUTH"
        ],
    }


def refused(reply: str) -> bool:
    """A failed AUTH: redis-cli warns on stderr and sends the command unauthenticated."""
    return reply.startswith(("NOAUTH", "WRONGPASS"))


def as_user(
    daemon: daemons.RedisDaemon, passwords: dict[str, str], user: str
) -> daemons.RedisDaemon:
    return daemon.as_user(user, passwords[user])


# --- nobody without a user ----------------------------------------------------------------------


def test_unauthenticated_redis_commands_are_refused(
    redis_master: daemons.RedisDaemon, passwords: dict[str, str]
) -> None:
    assert redis_master.cli("GET", "probe", authenticate=False).startswith("NOAUTH")
    # `AUTH <password>` alone means the default user, which is off: no password opens it.
    for password in passwords.values():
        reply = redis_master.cli("AUTH", password, authenticate=False)
        assert reply.startswith("WRONGPASS"), reply


@pytest.mark.parametrize(
    "command",
    [("SENTINEL", "get-master-addr-by-name", redis_service.MASTER_NAME), INTRUDER_MONITOR],
)
def test_unauthenticated_sentinel_commands_are_refused(
    sentinel: daemons.RedisDaemon, command: tuple[str, ...]
) -> None:
    assert sentinel.cli(*command, authenticate=False).startswith("NOAUTH")
    assert "intruder" not in sentinel.cli("SENTINEL", "MASTERS")


def test_a_consumer_password_opens_only_its_own_user(
    redis_master: daemons.RedisDaemon, passwords: dict[str, str]
) -> None:
    litellm_password = passwords[redis_service.LITELLM_USER]
    stolen = redis_master.as_user(redis_service.OPENWEBUI_USER, litellm_password)
    assert refused(stolen.cli("PING"))


# --- each consumer's user works, and can do no more ----------------------------------------------


# The key prefix each application writes under, as its own source has it: LiteLLM's cache
# namespace from its config.yaml, Open WebUI v0.6.18's fixed "open-webui:" (see redis.py).
OWN_PREFIX = {redis_service.LITELLM_USER: "litellm:", redis_service.OPENWEBUI_USER: "open-webui:"}
# Each one's keys outside its prefix: LiteLLM v1.88.0's rate-limit counters (Lua, raw keys,
# proxy/hooks/parallel_request_limiter_v3.py), Open WebUI's cleanup lock (socket/main.py).
OWN_KEYS = {
    redis_service.LITELLM_USER: ["{api_key:0123}:requests"],
    redis_service.OPENWEBUI_USER: ["usage_cleanup_lock"],
}


@pytest.mark.parametrize("user", redis_service.CONSUMERS)
def test_each_consumer_reads_and_writes_as_its_own_user(
    redis_master: daemons.RedisDaemon, passwords: dict[str, str], user: str
) -> None:
    client = as_user(redis_master, passwords, user)
    assert client.cli("ACL", "WHOAMI").startswith("NOPERM")  # not even that: data only
    for key in (f"{OWN_PREFIX[user]}probe", *OWN_KEYS[user]):
        assert client.cli("SET", key, "1", "EX", "60") == "OK"
        assert client.cli("GET", key) == "1"
        assert redis_master.cli("GET", key) == "1"  # the harness sees the same server
        redis_master.cli("DEL", key)  # the application's own calls below start afresh


def test_litellm_names_its_prefix_as_its_cache_namespace(program_run: ProgramRun) -> None:
    litellm = RenderedContainer.of(program_run, "litellm")
    config = yaml.safe_load(litellm.upload(litellm_service.CONFIG_FILE))
    assert f"{config['litellm_settings']['cache_params']['namespace']}:" == OWN_PREFIX["litellm"]


@pytest.mark.parametrize("user", redis_service.CONSUMERS)
def test_each_consumer_reaches_only_its_own_keys(
    redis_master: daemons.RedisDaemon, passwords: dict[str, str], user: str
) -> None:
    """The other application's keys, keys of nobody's, and the other's channels: all refused,
    for reading, writing, deleting and subscribing alike."""
    [other] = set(redis_service.CONSUMERS) - {user}
    client = as_user(redis_master, passwords, user)
    others = [f"{OWN_PREFIX[other]}probe", "probe", f"x{OWN_PREFIX[user]}probe", *OWN_KEYS[other]]
    for key in others:
        redis_master.cli("SET", key, "secret")
        for command in (("GET", key), ("SET", key, "1"), ("DEL", key), ("EXISTS", key)):
            assert client.cli(*command).startswith("NOPERM"), (user, command)
        assert redis_master.cli("GET", key) == "secret"
        redis_master.cli("DEL", key)
    assert client.cli("MGET", f"{OWN_PREFIX[user]}probe", "probe").startswith("NOPERM")
    assert client.cli("PUBLISH", f"{OWN_PREFIX[other]}channel", "x").startswith("NOPERM")


@pytest.mark.parametrize("user", redis_service.CONSUMERS)
@pytest.mark.parametrize("command", ADMIN_COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_consumers_cannot_administer_the_server(
    redis_master: daemons.RedisDaemon,
    passwords: dict[str, str],
    user: str,
    command: tuple[str, ...],
) -> None:
    reply = as_user(redis_master, passwords, user).cli(*command)
    assert reply.startswith("NOPERM"), reply
    assert redis_master.cli("PING") == "PONG"


def test_litellm_has_no_pub_sub(
    redis_master: daemons.RedisDaemon, passwords: dict[str, str]
) -> None:
    litellm = as_user(redis_master, passwords, redis_service.LITELLM_USER)
    assert litellm.cli("PUBLISH", "socketio", "x").startswith("NOPERM")


def test_litellm_finds_the_master_on_the_sentinel_and_cannot_repoint_it(
    sentinel: daemons.RedisDaemon, redis_master: daemons.RedisDaemon, passwords: dict[str, str]
) -> None:
    litellm = as_user(sentinel, passwords, redis_service.LITELLM_USER)
    answer = litellm.cli("SENTINEL", "get-master-addr-by-name", redis_service.MASTER_NAME)
    assert answer.splitlines() == [daemons.LOOPBACK, str(redis_master.port)]
    for command in (
        INTRUDER_MONITOR,
        ("SENTINEL", "REMOVE", redis_service.MASTER_NAME),
        ("SENTINEL", "SET", redis_service.MASTER_NAME, "auth-pass", "x"),
        ("SENTINEL", "FAILOVER", redis_service.MASTER_NAME),
        ("SENTINEL", "CONFIG", "SET", "resolve-hostnames", "no"),
    ):
        assert litellm.cli(*command).startswith("NOPERM"), command


def test_open_webui_has_no_sentinel_user(
    sentinel: daemons.RedisDaemon, passwords: dict[str, str]
) -> None:
    webui = as_user(sentinel, passwords, redis_service.OPENWEBUI_USER)
    assert refused(webui.cli("PING"))


_OPEN_WEBUI_CLIENT = """
import sys, time
import redis
from redis.sentinel import Sentinel

url, sentinel_port = sys.argv[1], int(sys.argv[2])
r = redis.Redis.from_url(url, decode_responses=True)
# socket/utils.py: RedisDict, RedisLock, YdocManager; config.py: the config keys; main.py: KEYS.
r.hset("open-webui:session_pool", "sid", "{}")
assert r.hget("open-webui:session_pool", "sid") == "{}"
assert r.hkeys("open-webui:session_pool") == ["sid"] and r.hexists("open-webui:session_pool", "sid")
assert r.hlen("open-webui:session_pool") == 1 and r.hgetall("open-webui:session_pool")
assert r.set("usage_cleanup_lock", "id", nx=True, ex=60)
assert r.set("usage_cleanup_lock", "id", xx=True, ex=60)
r.rpush("open-webui:doc:updates", "[1]")
assert r.lrange("open-webui:doc:updates", 0, -1) == ["[1]"]
r.sadd("open-webui:doc:users", "u1")
assert r.smembers("open-webui:doc:users") == {"u1"} and r.exists("open-webui:doc:users") == 1
assert "open-webui:doc:users" in r.keys("open-webui:*")
r.srem("open-webui:doc:users", "u1")
r.delete("usage_cleanup_lock", "open-webui:doc:updates", "open-webui:session_pool")
# python-socketio's AsyncRedisManager: SUBSCRIBE to its channel, PUBLISH to it.
p = r.pubsub()
p.subscribe("socketio")
assert p.get_message(timeout=5)["type"] == "subscribe"
assert r.publish("socketio", "hello") == 1
deadline = time.monotonic() + 5
message = None
while message is None and time.monotonic() < deadline:
    message = p.get_message(timeout=1, ignore_subscribe_messages=True)
assert message and message["data"] == "hello", message
# utils/redis.py with REDIS_SENTINEL_HOSTS set: Sentinel(hosts, port=, db=, username=, password=)
# with no sentinel_kwargs, so the Sentinel gets no credentials.
parsed = redis.connection.parse_url(url)
sentinel = Sentinel([("127.0.0.1", sentinel_port)], username=parsed["username"],
                    password=parsed["password"], decode_responses=True)
try:
    sentinel.master_for("mymaster").ping()
except redis.exceptions.RedisError as refused:
    print("sentinel refused:", type(refused).__name__, refused)
else:
    print("sentinel answered without credentials")
"""


def test_open_webui_client_calls_work_as_its_user_on_the_master_only(
    redis_master: daemons.RedisDaemon,
    sentinel: daemons.RedisDaemon,
    program_run: ProgramRun,
) -> None:
    url = RenderedContainer.of(program_run, "open-webui").envs["REDIS_URL"]
    rendered_address = f"@{redis_service.MASTER_HOST}:{redis_service.PORT}/"
    assert rendered_address in url
    local = url.replace(rendered_address, f"@{daemons.LOOPBACK}:{redis_master.port}/")
    program = daemons.require_program(PYTHON_WITH_REDIS_PY)
    done = subprocess.run(
        [program, "-c", _OPEN_WEBUI_CLIENT, local, str(sentinel.port)],
        capture_output=True,
        text=True,
        timeout=daemons.COMMAND_TIMEOUT_S,
        env={"PATH": os.environ["PATH"]},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    # Why Open WebUI is not pointed at the Sentinel: its client cannot authenticate there.
    assert "sentinel refused:" in done.stdout, done.stdout
    assert "NOAUTH" in done.stdout or "Authentication" in done.stdout, done.stdout


# --- the servers' own settings ------------------------------------------------------------------


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


@pytest.mark.parametrize(
    ("server", "commands"),
    [
        ("redis_master", [("GET", "probe"), ("CONFIG", "GET", "*")]),
        ("sentinel", [INTRUDER_MONITOR, ("SENTINEL", "MASTERS")]),
    ],
)
def test_healthcheck_user_may_only_ping(
    request: pytest.FixtureRequest,
    passwords: dict[str, str],
    server: str,
    commands: list[tuple[str, ...]],
) -> None:
    daemon: daemons.RedisDaemon = request.getfixturevalue(server)
    probe = as_user(daemon, passwords, redis_service.HEALTHCHECK_USER)
    assert probe.cli("PING") == "PONG"
    for command in commands:
        assert probe.cli(*command).startswith("NOPERM"), command


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


def test_sentinel_authenticates_to_the_master_as_its_user(
    sentinel: daemons.RedisDaemon, redis_master: daemons.RedisDaemon
) -> None:
    # The role comes from the master's INFO reply, which needs `sentinel auth-user/auth-pass`.
    deadline = time.monotonic() + SENTINEL_SETTLE_TIMEOUT_S
    while master_field(sentinel, "role-reported") != "master":
        assert time.monotonic() < deadline, sentinel.log_path.read_text()
        time.sleep(daemons.POLL_INTERVAL_S)
    assert "disconnected" not in master_field(sentinel, "flags")
    clients = redis_master.cli("CLIENT", "LIST")
    assert f"user={redis_service.SENTINEL_USER}" in clients, clients


def test_sentinel_rewrites_its_owner_only_file_in_place(
    sentinel: daemons.RedisDaemon, sentinel_container: RenderedContainer
) -> None:
    assert sentinel.cli("SENTINEL", "FLUSHCONFIG") == "OK"
    rewritten = sentinel.conf_path.read_text()
    assert "sentinel myid " in rewritten
    assert f"sentinel monitor {redis_service.MASTER_NAME} {daemons.LOOPBACK}" in rewritten
    assert f"sentinel auth-user {redis_service.MASTER_NAME} {redis_service.SENTINEL_USER}" in (
        rewritten
    )
    # The rendered users survive the rewrite, passwords still as SHA-256 only.
    rendered = sentinel_container.upload(redis_service.SENTINEL_FILE)
    for line in rendered.splitlines():
        if line.startswith("user ") and " on " in line:
            name, digest = line.split()[1], line.split()[3].strip('"')
            assert f"user {name} on {digest}" in rewritten or _user_line(rewritten, name, digest)
    mode = sentinel.conf_path.stat()
    assert stat.S_IMODE(mode.st_mode) & 0o077 == 0, oct(mode.st_mode)
    if os.geteuid() == 0:
        # Sentinel ran as the packaged redis user: the owner-only file was enough to rewrite.
        assert Path(sentinel.conf_path).owner() == daemons.REDIS_OS_USER
    # The one notice that says "error" is Redis' reminder that `default` is off, as rendered.
    errors = [
        line
        for line in sentinel.log_path.read_text().lower().splitlines()
        if "error" in line and "the user 'default' is disabled" not in line
    ]
    assert errors == []


def _user_line(text: str, name: str, digest: str) -> bool:
    return any(
        line.split()[:2] == ["user", name] and digest in line.split() for line in text.splitlines()
    )


def test_sentinel_healthcheck_succeeds_and_needs_the_password(
    sentinel: daemons.RedisDaemon, sentinel_container: RenderedContainer
) -> None:
    check = container_healthcheck(sentinel_container, redis_service.SENTINEL_PORT, sentinel.port)
    assert run_healthcheck(check, sentinel_container.envs).returncode == 0
    assert run_healthcheck(check, {"REDISCLI_AUTH": ""}).returncode != 0


def container_healthcheck(container: RenderedContainer, rendered_port: int, port: int) -> list[str]:
    """The container's probe, pointed at the test daemon's port instead of the container's."""
    check = retarget(container.healthcheck, f"-p {rendered_port}", f"-p {port}")
    assert check != list(container.healthcheck), f"no -p {rendered_port} in {container.healthcheck}"
    return check


def master_field(sentinel: daemons.RedisDaemon, name: str) -> str:
    lines = sentinel.cli("SENTINEL", "master", redis_service.MASTER_NAME).splitlines()
    fields = dict(zip(lines[::2], lines[1::2], strict=True))
    return fields[name]
