"""Redis: a password-protected, append-only cache master and one Sentinel for discovery.

One host gives discovery (clients ask the Sentinel where the master is), not high availability.
"""

from __future__ import annotations

import pulumi

from components.services.base import ContainerSpec, DataDir, Health, Service, ServiceArgs, Upload
from components.services.render import Directive, render_directives

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


def master_directives(password: str, container_memory_mb: int) -> list[Directive]:
    maxmemory_mb = int(container_memory_mb * MAXMEMORY_SHARE)
    return [
        ("bind", ["0.0.0.0"]),
        ("port", [str(PORT)]),
        ("protected-mode", ["yes"]),
        ("requirepass", [password]),
        ("masterauth", [password]),
        ("dir", ["/data"]),
        ("appendonly", ["yes"]),
        ("appendfsync", ["everysec"]),
        ("maxmemory", [f"{maxmemory_mb}mb"]),
        ("maxmemory-policy", ["allkeys-lru"]),
    ]


def sentinel_directives(password: str) -> list[Directive]:
    # resolve-hostnames must precede the monitor line that names the master by its DNS alias.
    return [
        ("port", [str(SENTINEL_PORT)]),
        ("dir", ["/data"]),
        ("sentinel", ["resolve-hostnames", "yes"]),
        ("sentinel", ["announce-hostnames", "yes"]),
        ("sentinel", ["monitor", MASTER_NAME, MASTER_HOST, str(PORT), str(SENTINELS)]),
        ("sentinel", ["auth-pass", MASTER_NAME, password]),
        ("sentinel", ["down-after-milliseconds", MASTER_NAME, "10000"]),
        ("sentinel", ["failover-timeout", MASTER_NAME, "60000"]),
    ]


def _ping(port: int) -> Health:
    return Health(["CMD-SHELL", f"redis-cli -p {port} ping | grep -q PONG"])


class Redis(Service):
    key = "redis"

    def __init__(
        self, name: str, args: ServiceArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(name, args, opts)
        self.password = self.generated_secret("password")
        memory_mb = self.context.allocation(self.entry, MASTER_HOST).memory_mb
        master = self.run(
            ContainerSpec(
                name=MASTER_HOST,
                health=_ping(PORT),
                # redis-cli reads the password from REDISCLI_AUTH: it stays out of the probe.
                secret_env={"REDISCLI_AUTH": self.password},
                command=["redis-server", CONFIG_FILE],
                uploads=[
                    Upload(
                        CONFIG_FILE,
                        self.password.apply(
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
                health=_ping(SENTINEL_PORT),
                command=["redis-server", SENTINEL_FILE, "--sentinel"],
                uploads=[
                    Upload(
                        SENTINEL_FILE,
                        self.password.apply(lambda pw: render_directives(sentinel_directives(pw))),
                        secret=True,
                    )
                ],
                data=[DataDir("redis/sentinel", "/data")],
                depends_on=[master],
            )
        )
        self.finish()

    def url(self, db: int = 0) -> pulumi.Output[str]:
        """A redis:// URL whose host is the Sentinel master name (for Sentinel-aware clients)."""
        return pulumi.Output.secret(
            pulumi.Output.concat("redis://:", self.password, f"@{MASTER_NAME}:{PORT}/{db}")
        )
