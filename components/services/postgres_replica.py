"""The replica: a PostgreSQL server of Postgres' own image on the Micro, subscribed to the A1's
databases by logical replication (`components.replication`, `components.postgres_replication`).

It is placed only where a host's spec names it, which `ai-swarm:replica.enabled` decides (the
services config refuses `ai-swarm:services.postgresReplica`). It publishes no port: its
subscriptions connect out to the primary, and `docker exec` (the reconcile, `python -m deploy`)
reaches it from its own host. Its data directory is on the Micro's disk (it has no block
volume), and only the local socket and the container's own loopback are admitted.
"""

from __future__ import annotations

import pulumi

from components.services.base import ContainerSpec, DataDir, Service, ServiceArgs, Upload
from components.services.postgres import (
    AUTH,
    DATA_MOUNT,
    ENV,
    HBA_FILE,
    HEALTH,
    server_command,
)
from components.services.render import Directive, render_directives


def replica_hba_rules() -> list[Directive]:
    """The superuser over the socket and the container's loopback: nothing else connects."""
    return [
        ("local", ["all", "all", AUTH]),
        ("host", ["all", "all", "127.0.0.1/32", AUTH]),
    ]


class PostgresReplica(Service):
    key = "postgresReplica"

    def __init__(
        self, name: str, args: ServiceArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        link = args.context.replication
        if link is None:
            raise pulumi.RunError(
                "the Postgres replica is placed only with ai-swarm:replica.enabled true"
            )
        super().__init__(name, args, opts)
        # Kept in the data directory by its first start, as the primary's is; not protected: the
        # data directory is the Micro's, which turning the replica off deletes with it, and
        # nothing regenerates the value while the replica is on.
        superuser_password = self.generated_secret("superuser")
        [container] = self.entry.containers
        self.container = self.run(
            ContainerSpec(
                name=container,
                health=HEALTH,
                env=ENV,
                secret_env={"POSTGRES_PASSWORD": superuser_password},
                command=server_command(*link.subscriber_args),
                uploads=[
                    Upload(HBA_FILE, render_directives(replica_hba_rules())),
                    *(Upload(f.path, f.content, secret=f.secret) for f in link.subscriber_files),
                ],
                data=[DataDir("postgres-replica", DATA_MOUNT)],
            )
        )
        self.finish()
