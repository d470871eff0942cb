"""Redis: an append-only cache master and one Sentinel for discovery, both behind ACL users.

One host gives discovery (clients ask the Sentinel where the master is), not high availability.

Nobody connects without a user and password, on either server. Each consumer has its own user
with a generated password and the least it needs; the Sentinel reaches the master as its own
user with the rights the Redis docs list for Sentinel ("Redis Access Control List
authentication" in the Sentinel docs); the healthchecks may only PING. The `default` user, which
a client without a user name gets, is off and has no password on both servers.

LiteLLM finds the master through the Sentinel and sends its user and password to both (litellm
`_redis.py`: the Sentinel connections get the master's connection arguments, `username`
included, with `password` replaced by `sentinel_password`). Open WebUI cannot authenticate to a
Sentinel at all (open-webui v0.6.18 `backend/open_webui/utils/redis.py` builds
`redis.sentinel.Sentinel(hosts, port=, db=, username=, password=)` without `sentinel_kwargs`,
and redis-py then sends the Sentinels no credentials; python-socketio's `redis+sentinel://`
URL does the same): it talks to the master by its network alias instead, which on one host is
the only master there is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi

from components.services.base import ContainerSpec, DataDir, Health, Service, ServiceArgs, Upload
from components.services.render import Directive, acl_user, disabled_user, render_directives

PORT = 6379
SENTINEL_PORT = 26379
MASTER_NAME = "mymaster"
MASTER_HOST = "redis"
SENTINEL_HOST = "redis-sentinel"
SENTINELS = 1
CONFIG_FILE = "/usr/local/etc/redis/redis.conf"
# Sentinel rewrites its config file, so it lives in its writable data directory (the image's
# entrypoint hands /data to the redis user).
SENTINEL_FILE = "/data/sentinel.conf"
# Share of the container limit Redis may fill; the rest covers the AOF-rewrite fork,
# fragmentation and client buffers.
MAXMEMORY_SHARE = 0.6

# The user a client that names none gets (AUTH <password>, or no AUTH at all).
UNNAMED_USER = "default"
SENTINEL_USER = "sentinel"
HEALTHCHECK_USER = "healthcheck"
LITELLM_USER = "litellm"
OPENWEBUI_USER = "openwebui"
CONSUMERS = (LITELLM_USER, OPENWEBUI_USER)

# Each consumer's keys: the two applications share one server, and neither may read or change
# the other's keys. LiteLLM puts every key under its cache `namespace` (`cache_params.namespace`;
# litellm caching/redis_cache.py, `check_and_fix_namespace`, applied to every get, set, counter
# and Lua script key). Open WebUI v0.6.18 cannot be moved: its REDIS_KEY_PREFIX (env.py) reaches
# only the config keys (config.py); the websocket pools (socket/main.py), documents
# (socket/utils.py) and tasks (tasks.py) are fixed under "open-webui:", and the cleanup lock is
# the unprefixed key "usage_cleanup_lock" (socket/main.py, RedisLock). Its pub/sub channels:
# python-socketio's AsyncRedisManager's "socketio" and tasks.py's "open-webui:tasks:commands".
LITELLM_KEY_PREFIX = "litellm"
# The rate limiter's counters, which LiteLLM up to the pinned v1.88.0 keeps outside its
# namespace: its Lua scripts get raw keys ("{<scope>:<value>}:requests|tokens|window",
# proxy/hooks/parallel_request_limiter_v3.py; redis_cache.py `async_register_script` adds no
# namespace there). No key of Open WebUI's starts with "{".
LITELLM_RATE_LIMIT_KEYS = "{*"
OPENWEBUI_KEY_PREFIX = "open-webui"
OPENWEBUI_LOCK_KEY = "usage_cleanup_lock"


def _data_rules(*key_patterns: str) -> tuple[str, ...]:
    """Data commands on these keys only, nothing that administers the server: `-@dangerous`
    last takes back FLUSHALL/FLUSHDB, KEYS, CONFIG, DEBUG, MIGRATE/RESTORE, SHUTDOWN, REPLICAOF,
    MONITOR, ACL, CLIENT KILL/LIST and the like that the categories before it include."""
    keys = tuple(f"~{pattern}" for pattern in key_patterns)
    return ("resetkeys", *keys, "-@all", "+@read", "+@write", "+@keyspace", "+@transaction",
            "+@connection")  # fmt: skip


# What a Sentinel sends a master it monitors (Redis docs, Sentinel, "Redis Access Control List
# authentication"), and no key.
_SENTINEL_RULES = (
    "&*", "-@all", "+multi", "+slaveof", "+ping", "+exec", "+subscribe", "+config|rewrite",
    "+role", "+publish", "+info", "+client|setname", "+client|kill", "+script|kill",
)  # fmt: skip


@dataclass(frozen=True)
class RedisUser:
    """An ACL user with a generated password: its rules on the master and on the Sentinel
    (None: no such user there)."""

    name: str
    master_rules: tuple[str, ...] | None
    sentinel_rules: tuple[str, ...] | None


USERS: Sequence[RedisUser] = (
    # The Sentinel only monitors: it has no user on itself.
    RedisUser(SENTINEL_USER, _SENTINEL_RULES, None),
    RedisUser(HEALTHCHECK_USER, ("-@all", "+ping"), ("-@all", "+ping")),
    # The cache (GET/SET/MGET, pipelines, Lua scripts for its counters), no pub/sub; INFO once
    # at start for the server version (litellm caching/redis_cache.py). On the Sentinel: where
    # the master is, nothing that changes what it monitors.
    RedisUser(
        LITELLM_USER,
        (
            *_data_rules(f"{LITELLM_KEY_PREFIX}:*", LITELLM_RATE_LIMIT_KEYS),
            "resetchannels",
            "+@scripting",
            "-@dangerous",
            "+info",
        ),
        ("-@all", "+ping", "+sentinel|masters", "+sentinel|get-master-addr-by-name"),
    ),
    # Its config, websocket pools and locks (hashes, sets, lists, SET NX), KEYS over its own
    # prefix (open-webui v0.6.18 socket/utils.py), and pub/sub for the websocket manager
    # (python-socketio's AsyncRedisManager). No Sentinel user: it cannot send one.
    RedisUser(
        OPENWEBUI_USER,
        (
            *_data_rules(f"{OPENWEBUI_KEY_PREFIX}:*", OPENWEBUI_LOCK_KEY),
            "resetchannels",
            "&socketio",
            f"&{OPENWEBUI_KEY_PREFIX}:*",
            "+@pubsub",
            "-@dangerous",
            "+keys",
        ),
        None,
    ),
)


@dataclass(frozen=True)
class RedisCredentials:
    """A consumer's user and its generated password (secret)."""

    username: str
    password: pulumi.Output[str]


def master_directives(passwords: Mapping[str, str], container_memory_mb: int) -> list[Directive]:
    maxmemory_mb = int(container_memory_mb * MAXMEMORY_SHARE)
    return [
        ("bind", ["0.0.0.0"]),
        ("port", [str(PORT)]),
        ("protected-mode", ["yes"]),
        disabled_user(UNNAMED_USER),
        *[
            acl_user(user.name, passwords[user.name], user.master_rules)
            for user in USERS
            if user.master_rules is not None
        ],
        ("dir", ["/data"]),
        ("appendonly", ["yes"]),
        ("appendfsync", ["everysec"]),
        ("maxmemory", [f"{maxmemory_mb}mb"]),
        ("maxmemory-policy", ["allkeys-lru"]),
    ]


def sentinel_directives(passwords: Mapping[str, str]) -> list[Directive]:
    # resolve-hostnames must precede the monitor line that names the master by its DNS alias.
    return [
        ("port", [str(SENTINEL_PORT)]),
        ("dir", ["/data"]),
        disabled_user(UNNAMED_USER),
        *[
            acl_user(user.name, passwords[user.name], user.sentinel_rules)
            for user in USERS
            if user.sentinel_rules is not None
        ],
        ("sentinel", ["resolve-hostnames", "yes"]),
        ("sentinel", ["announce-hostnames", "yes"]),
        ("sentinel", ["monitor", MASTER_NAME, MASTER_HOST, str(PORT), str(SENTINELS)]),
        ("sentinel", ["auth-user", MASTER_NAME, SENTINEL_USER]),
        ("sentinel", ["auth-pass", MASTER_NAME, passwords[SENTINEL_USER]]),
        ("sentinel", ["down-after-milliseconds", MASTER_NAME, "10000"]),
        ("sentinel", ["failover-timeout", MASTER_NAME, "60000"]),
    ]


def ping_probe(port: int) -> list[str]:
    """PING as the healthcheck user; redis-cli reads its password from REDISCLI_AUTH, so the
    password stays out of the probe's command line."""
    return ["CMD-SHELL", f"redis-cli --user {HEALTHCHECK_USER} -p {port} ping | grep -q PONG"]


class Redis(Service):
    key = "redis"

    def __init__(
        self, name: str, args: ServiceArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(name, args, opts)
        self.passwords: dict[str, pulumi.Output[str]] = {
            user.name: self.generated_secret(f"{user.name}-user") for user in USERS
        }
        names = list(self.passwords)
        resolved = pulumi.Output.all(*self.passwords.values()).apply(
            lambda values: dict(zip(names, values, strict=True))
        )
        memory_mb = self.context.allocation(self.entry, MASTER_HOST).memory_mb
        probe_auth = {"REDISCLI_AUTH": self.passwords[HEALTHCHECK_USER]}
        master = self.run(
            ContainerSpec(
                name=MASTER_HOST,
                health=Health(ping_probe(PORT)),
                secret_env=probe_auth,
                command=["redis-server", CONFIG_FILE],
                uploads=[
                    Upload(
                        CONFIG_FILE,
                        resolved.apply(
                            lambda pw: render_directives(master_directives(pw, memory_mb))
                        ),
                        secret=True,
                    )
                ],
                data=[DataDir("redis/master", "/data")],
            )
        )
        self.run(
            ContainerSpec(
                name=SENTINEL_HOST,
                health=Health(ping_probe(SENTINEL_PORT)),
                secret_env=probe_auth,
                command=["redis-server", SENTINEL_FILE, "--sentinel"],
                uploads=[
                    Upload(
                        SENTINEL_FILE,
                        resolved.apply(lambda pw: render_directives(sentinel_directives(pw))),
                        secret=True,
                    )
                ],
                data=[DataDir("redis/sentinel", "/data")],
                depends_on=[master],
            )
        )
        self.finish()

    def credentials(self, consumer: str) -> RedisCredentials:
        if consumer not in CONSUMERS:
            raise KeyError(f"{consumer!r} is not a Redis consumer; they are {CONSUMERS}")
        return RedisCredentials(consumer, self.passwords[consumer])

    def direct_url(self, consumer: str, db: int = 0) -> pulumi.Output[str]:
        """A redis:// URL to the master by its network alias, as `consumer` (secret)."""
        credentials = self.credentials(consumer)
        return pulumi.Output.secret(
            pulumi.Output.concat(
                f"redis://{credentials.username}:",
                credentials.password,
                f"@{MASTER_HOST}:{PORT}/{db}",
            )
        )
