"""How the replica is kept: TLS, the subscribers' roles, and the reconcile on both hosts.

With `ai-swarm:replica.enabled` true, `PostgresReplication` (`ai-swarm:postgres:Replication`)
makes, before any service is placed:
- the CA and the primary's server certificate (`components.postgres_tls`), and the passwords
  of the `replicator` role (the Micro's) and, with `externalCidrs`, of the `peer` role
  (pulumi-random, secret Outputs);
- the `ReplicationLink` both hosts' services read: the primary's settings, pg_hba lines and TLS
  files and its port on the A1's private address; the replica's settings and CA file.

Once both hosts' services are placed, `keep` adds the steps that reach an existing data
directory too (the image's init files run on an empty one only):
- on the A1, a remote command after Postgres (and the applications that migrate it) are
  healthy: the roles with their passwords, then replica identities and the publication; and a
  systemd timer that runs the publication part again, so that tables a later migration makes
  are published without hand work;
- on the Micro, a remote command after the replica and the primary's step: the schema from the
  primary, the subscriptions made or refreshed (`sslmode=verify-full` with the CA); and a timer
  that runs it again.
Every password travels on a command's stdin, never in a command line or a log.
"""

from __future__ import annotations

import posixpath
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import pulumi
import pulumi_command as command
import pulumi_random as random

from components import replication
from components.config import ReplicaSettings
from components.host_config import UNIT_DIR, HostFile, install_files_script
from components.postgres_tls import PostgresTls, PostgresTlsArgs
from components.services.base import Service
from components.services.catalog import CATALOG
from components.services.placement import Placement
from components.services.postgres import PORT, Postgres
from components.services.postgres_replica import PostgresReplica
from components.services.replication_link import LinkFile, ReplicationLink

PASSWORD_LENGTH = 32
PRIMARY_CONTAINER = CATALOG["postgres"].containers[0]
# The timers: each runs its reconcile through one oneshot unit, so that a timer's run and the
# one an `up` starts never overlap (systemd queues a start of a unit that is running).
PUBLICATION_UNIT = "ai-swarm-pg-publication"
SUBSCRIPTION_UNIT = "ai-swarm-pg-subscription"
SBIN = "/usr/local/sbin"
# How soon a table that an application's migration made is published and subscribed to.
RECONCILE_EVERY = "15min"
# A reconcile brings schema and starts copies (the copies run on in the server): it ends in
# minutes, or it hangs, and the next run should not wait behind it for ever.
RECONCILE_TIMEOUT = "30min"
# The replicator's password on the Micro, for its timer: root's, 0600 (letters and digits
# only, so systemd reads it as is).
SUBSCRIPTION_ENV_FILE = "/etc/ai-swarm/pg-subscription.env"
# Heredoc marker for the SQL a host script hands psql.
END_OF_SQL = "AI_SWARM_END_OF_SQL"
# psql as the superuser inside a Postgres container of the image: `local` logins use scram, so
# it takes the image's POSTGRES_PASSWORD from the container's own environment.
PSQL_AS_SUPERUSER = (
    'PGPASSWORD="$POSTGRES_PASSWORD" psql -X -q -v ON_ERROR_STOP=1 '
    '--username="$POSTGRES_USER" --dbname=postgres -f -'
)


def psql_in(container: str, sql: str, env_names: Sequence[str] = ()) -> str:
    """Host shell lines: `sql` run by psql as the superuser inside `container`, the named
    variables passed on from the host's environment (their values never in argv)."""
    if END_OF_SQL in sql:
        raise ValueError("the SQL holds the heredoc marker")
    argv = replication.docker_exec_argv(container, PSQL_AS_SUPERUSER, env_names)
    return f"{shlex.join(argv)} <<'{END_OF_SQL}'\n{sql}{END_OF_SQL}\n"


def publication_script() -> str:
    """`ai-swarm-pg-publication` on the A1: replica identities and the publication, as the
    applications' migrations left the tables (no password needed: the superuser's is the
    container's own)."""
    return "#!/bin/sh\nset -eu\n" + psql_in(PRIMARY_CONTAINER, replication.publication_sql())


def subscription_script(primary_ip: str) -> str:
    """`ai-swarm-pg-subscription` on the Micro: the subscriber's reconcile inside the replica,
    with the replicator's password from the unit's environment."""
    argv = replication.docker_exec_argv(
        replication.REPLICA_CONTAINER,
        replication.subscriber_reconcile_script(primary_ip),
        [replication.REPLICATOR_PASSWORD_ENV],
    )
    return f"#!/bin/sh\nset -eu\nexec {shlex.join(argv)}\n"


def reconcile_service(unit: str, what: str, env_file: str | None = None) -> str:
    environment = f"EnvironmentFile={env_file}\n" if env_file else ""
    return f"""[Unit]
Description=ai-swarm: {what}
Requires=docker.service
After=docker.service

[Service]
Type=oneshot
ExecStart={SBIN}/{unit}
{environment}TimeoutStartSec={RECONCILE_TIMEOUT}
Nice=10
"""


def reconcile_timer(what: str) -> str:
    """Every RECONCILE_EVERY after the last run ended, and soon after a boot."""
    return f"""[Unit]
Description=ai-swarm: {what}, every {RECONCILE_EVERY}

[Timer]
OnBootSec=5min
OnUnitInactiveSec={RECONCILE_EVERY}

[Install]
WantedBy=timers.target
"""


def unit_files(unit: str, script: str, what: str, env_file: str | None = None) -> list[HostFile]:
    return [
        HostFile(f"{SBIN}/{unit}", script, "0755"),
        HostFile(f"{UNIT_DIR}/{unit}.service", reconcile_service(unit, what, env_file)),
        HostFile(f"{UNIT_DIR}/{unit}.timer", reconcile_timer(what)),
    ]


PUBLICATION_WHAT = "replica identities and the publication of the replicated databases"
SUBSCRIPTION_WHAT = "schema and subscriptions of the Postgres replica"


def _read_stdin(names: Sequence[str]) -> list[str]:
    """Lines that read one value a line from the command's stdin into exported variables."""
    lines = [f"IFS= read -r {name}" for name in names]
    return [*lines, f"export {' '.join(names)}"] if names else []


def primary_step_script(peer: bool) -> str:
    """The A1's step in `up`: the roles with the passwords read from stdin (one a line: the
    replicator's, then the peer's), the publication unit and its timer installed, and the
    publication reconciled through that unit."""
    names = [replication.REPLICATOR_PASSWORD_ENV] + (
        [replication.PEER_PASSWORD_ENV] if peer else []
    )
    unit = PUBLICATION_UNIT
    return install_files_script(
        unit_files(unit, publication_script(), PUBLICATION_WHAT),
        before=_read_stdin(names),
        then=[
            psql_in(PRIMARY_CONTAINER, replication.roles_sql(peer=peer), names).rstrip("\n"),
            "sudo systemctl daemon-reload",
            f"sudo systemctl enable --now {unit}.timer",
            f"sudo systemctl start {unit}.service",
        ],
    )


def subscriber_step_script(primary_ip: str) -> str:
    """The Micro's step in `up`: the replicator's password (stdin) into the unit's environment
    file, the subscription unit and its timer installed, and the reconcile run through it."""
    unit = SUBSCRIPTION_UNIT
    env = replication.REPLICATOR_PASSWORD_ENV
    return install_files_script(
        unit_files(unit, subscription_script(primary_ip), SUBSCRIPTION_WHAT, SUBSCRIPTION_ENV_FILE),
        before=_read_stdin([env]),
        then=[
            f"sudo install -d -m 0700 {posixpath.dirname(SUBSCRIPTION_ENV_FILE)}",
            f"printf '{env}=%s\\n' \"${env}\" | sudo sh -c "
            f"'umask 077; cat > {SUBSCRIPTION_ENV_FILE}.new && mv -f {SUBSCRIPTION_ENV_FILE}.new "
            f"{SUBSCRIPTION_ENV_FILE}'",
            "sudo systemctl daemon-reload",
            f"sudo systemctl enable --now {unit}.timer",
            f"sudo systemctl start {unit}.service",
        ],
    )


@dataclass(frozen=True)
class PostgresReplicationArgs:
    settings: ReplicaSettings
    # The A1's fixed private address and its reserved public one (the off-cloud peer's).
    primary_ip: str
    public_ip: pulumi.Output[str]


def primary_link(settings: ReplicaSettings, primary_ip: str, tls: PostgresTls) -> ReplicationLink:
    """What the primary and the replica add to their containers."""
    return ReplicationLink(
        primary_ip=primary_ip,
        primary_args=tuple(replication.primary_server_args()),
        primary_hba=tuple(
            replication.primary_hba_rules(settings.private_ip, settings.external_cidrs)
        ),
        primary_files=(
            LinkFile(replication.PRIMARY_TLS_CERT_FILE, tls.server_cert_pem),
            LinkFile(replication.PRIMARY_TLS_KEY_FILE, tls.server_key_pem, secret=True),
        ),
        subscriber_args=tuple(replication.subscriber_server_args()),
        subscriber_files=(LinkFile(replication.SUBSCRIBER_CA_FILE, tls.ca_cert_pem),),
    )


class PostgresReplication(pulumi.ComponentResource):
    """The replica's TLS, its roles' passwords and the steps that keep it subscribed."""

    link: ReplicationLink
    ca_cert_pem: pulumi.Output[str]
    replicator_password: pulumi.Output[str]
    peer_password: pulumi.Output[str] | None

    def __init__(
        self, name: str, args: PostgresReplicationArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("ai-swarm:postgres:Replication", name, None, opts)
        self._name = name
        self._args = args
        tls = PostgresTls(
            f"{name}-tls",
            PostgresTlsArgs(private_ip=args.primary_ip, public_ip=args.public_ip),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.ca_cert_pem = tls.ca_cert_pem
        self.link = primary_link(args.settings, args.primary_ip, tls)
        self.replicator_password = self._password(replication.REPLICATOR)
        self.peer_password = (
            self._password(replication.PEER) if args.settings.external_cidrs else None
        )

    def _password(self, role: str) -> pulumi.Output[str]:
        """A role's password: made once (no keepers); every reconcile sets it on the role, so
        a new one needs no hand work on the Micro (the off-cloud peer takes it from the
        `postgresPeerPassword` output)."""
        password = random.RandomPassword(
            f"{self._name}-{role}",
            length=PASSWORD_LENGTH,
            special=False,
            opts=pulumi.ResourceOptions(parent=self),
        )
        return pulumi.Output.secret(password.result)

    def keep(self, placed: Sequence[tuple[SshHost, Placement]]) -> None:
        """The steps on both hosts, after their containers (see the module's docstring)."""
        primary_host, primary = _service_host(placed, Postgres)
        replica_host, replica = _service_host(placed, PostgresReplica)
        primary_placement = next(p for h, p in placed if h is primary_host)
        # The applications (the services that need Postgres) migrate their databases when they
        # start: the step waits for them and runs again whenever one of them, or Postgres, is a
        # new container.
        migrators = [
            c
            for key, service in primary_placement.services.items()
            if Postgres.key in CATALOG[key].needs
            for c in service.containers
        ]
        containers = [*primary.containers, *migrators]
        peer = self.peer_password is not None
        passwords = [self.replicator_password]
        if self.peer_password is not None:
            passwords.append(self.peer_password)
        self.primary_step = self._step(
            "primary",
            primary_host,
            primary_step_script(peer),
            stdin=pulumi.Output.all(*passwords).apply(_lines),
            after=containers,
            triggers=[primary_host.instance_id, *(c.id for c in containers)],
        )
        self.subscriber_step = self._step(
            "subscriber",
            replica_host,
            subscriber_step_script(self._args.primary_ip),
            stdin=self.replicator_password.apply(lambda password: _lines([password])),
            after=[*replica.containers, self.primary_step],
            triggers=[
                replica_host.instance_id,
                *(c.id for c in replica.containers),
                self.primary_step.id,
            ],
        )
        self.register_outputs(
            {
                "caCertPem": self.ca_cert_pem,
                "timers": [f"{PUBLICATION_UNIT}.timer", f"{SUBSCRIPTION_UNIT}.timer"],
            }
        )

    def _step(
        self,
        purpose: str,
        host: SshHost,
        script: str,
        *,
        stdin: pulumi.Input[str],
        after: Sequence[pulumi.Resource],
        triggers: Sequence[pulumi.Input[str]],
    ) -> command.remote.Command:
        """A reconcile step over SSH: run again when its script or stdin change (an update) and
        when a trigger does (a new host, a new container). Secrets only on its stdin."""
        return command.remote.Command(
            f"{self._name}-{purpose}",
            connection=host.connection,
            create=script,
            update=script,
            stdin=pulumi.Output.secret(stdin),
            triggers=list(triggers),
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(after)),
        )

    def peer_output(self) -> dict[str, Any] | None:
        """`postgresPeer`: where and as whom an off-cloud subscriber connects, or None."""
        if self.peer_password is None:
            return None
        return {
            "host": self._args.public_ip,
            "port": PORT,
            "user": replication.PEER,
            "databases": list(replication.DATABASES),
            "publication": replication.PUBLICATION,
        }


def _lines(values: Sequence[str]) -> str:
    """Values for a step's stdin, one a line (none holds a line break: letters and digits)."""
    return "".join(f"{value}\n" for value in values)


class SshHost(Protocol):
    """What the steps need of a host (`components.host.Host`)."""

    @property
    def connection(self) -> command.remote.ConnectionArgs: ...
    @property
    def instance_id(self) -> pulumi.Output[str]: ...


S = TypeVar("S", bound=Service)


def _service_host(placed: Sequence[tuple[SshHost, Placement]], kind: type[S]) -> tuple[SshHost, S]:
    """The host the one service of `kind` is placed on, and the service."""
    found = [
        (host, service)
        for host, placement in placed
        for service in placement.services.values()
        if isinstance(service, kind)
    ]
    if len(found) != 1:
        raise pulumi.RunError(
            f"the replica needs exactly one {kind.key} service in the stack, not {len(found)}"
        )
    return found[0]
