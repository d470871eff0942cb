"""Postgres: the databases of LiteLLM and Open WebUI, scram-sha-256 only, data on the volume.

With the replica (`ai-swarm:replica.enabled`), the context's `ReplicationLink` adds the primary's
logical-replication and TLS settings, the subscribers' `hostssl` lines and the TLS files, and
publishes 5432 on the host's private address alone (`components.postgres_replication`).
"""

from __future__ import annotations

import pulumi

from components.services.base import (
    ContainerSpec,
    DataDir,
    Health,
    PublishedPort,
    Service,
    ServiceArgs,
    Upload,
)
from components.services.catalog import NETWORK_SUBNET
from components.services.render import DatabaseRole, Directive, render_directives, render_roles_sql
from components.services.replication_link import LinkFile, ReplicationLink

PORT = 5432
SUPERUSER = "postgres"
HBA_FILE = "/etc/postgresql/pg_hba.conf"
# The image runs files here once, on an empty data directory only (first start). Later role
# changes: docs/operations.md's
# `docker exec postgres sh -c 'PGPASSWORD="$POSTGRES_PASSWORD" psql ...'`
# with this file (it is idempotent; `local` connections use scram, so psql needs the password).
ROLES_SQL_FILE = "/docker-entrypoint-initdb.d/10-ai-swarm-roles.sql"
DATA_MOUNT = "/var/lib/postgresql/data"
PGDATA = f"{DATA_MOUNT}/pgdata"
# role = database name, one per consumer
CONSUMERS = ("litellm", "openwebui")
AUTH = "scram-sha-256"


# The image's server as the primary and the replica run it. -h: the entrypoint's init-time
# server listens on the socket only, so the check stays unhealthy until the real server is up.
HEALTH = Health(["CMD", "pg_isready", "-h", "127.0.0.1", "-U", SUPERUSER, "-d", SUPERUSER])
ENV = {"POSTGRES_USER": SUPERUSER, "POSTGRES_DB": SUPERUSER, "PGDATA": PGDATA}


def server_command(*settings: str) -> list[str]:
    """The container's command: the server with our pg_hba file, scram only, and `settings`."""
    return [
        "postgres",
        "-c",
        f"hba_file={HBA_FILE}",
        "-c",
        f"password_encryption={AUTH}",
        *settings,
    ]


def hba_rules() -> list[Directive]:
    """Local socket and loopback for the superuser; each consumer only to its own database,
    only from the services' network. Anything else matches no line and is refused."""
    return [
        ("local", ["all", "all", AUTH]),
        ("host", ["all", "all", "127.0.0.1/32", AUTH]),
        *[("host", [name, name, str(NETWORK_SUBNET), AUTH]) for name in CONSUMERS],
    ]


def link_files(link: ReplicationLink | None) -> tuple[LinkFile, ...]:
    return link.primary_files if link else ()


class Postgres(Service):
    key = "postgres"

    def __init__(
        self, name: str, args: ServiceArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(name, args, opts)
        # The data directory on the volume keeps the roles with the passwords they were made
        # with (the image sets them on an empty directory only): a new value would lock every
        # client out of its data, so each is made once and protected.
        superuser_password = self.generated_secret("superuser", protect=True)
        self.passwords = {name: self.generated_secret(name, protect=True) for name in CONSUMERS}
        roles_sql = pulumi.Output.all(*self.passwords.values()).apply(
            lambda passwords: render_roles_sql(
                [DatabaseRole(n, n, p) for n, p in zip(CONSUMERS, passwords, strict=True)]
            )
        )
        link = self.context.replication
        self.run(
            ContainerSpec(
                name="postgres",
                health=HEALTH,
                env=ENV,
                secret_env={"POSTGRES_PASSWORD": superuser_password},
                command=server_command(*(link.primary_args if link else ())),
                uploads=[
                    Upload(
                        HBA_FILE,
                        render_directives([*hba_rules(), *(link.primary_hba if link else ())]),
                    ),
                    Upload(ROLES_SQL_FILE, roles_sql, secret=True),
                    *(Upload(f.path, f.content, secret=f.secret) for f in link_files(link)),
                ],
                data=[DataDir("postgres", DATA_MOUNT)],
                # For the subscribers: on the A1's private address only, never on 0.0.0.0.
                published=[PublishedPort(self.context.private_ip, PORT)] if link else [],
            )
        )
        self.finish()

    def database_url(self, name: str) -> pulumi.Output[str]:
        """The consumer's connection URL (secret), over the services' network."""
        return pulumi.Output.secret(
            pulumi.Output.concat(
                f"postgresql://{name}:", self.passwords[name], f"@postgres:{PORT}/{name}"
            )
        )
