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

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import pulumi
import pulumi_command as command
import pulumi_random as random

from components import replication
from components.config import ReplicaSettings
from components.postgres_tls import PostgresTls, PostgresTlsArgs
from components.services.base import Service
from components.services.placement import Placement
from components.services.postgres import PORT, Postgres
from components.services.postgres_replica import PostgresReplica
from components.services.replication_link import LinkFile, ReplicationLink

PASSWORD_LENGTH = 32


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
        """The steps on both hosts, after their containers: see the module's docstring."""
        primary = _service_host(placed, Postgres)
        replica = _service_host(placed, PostgresReplica)
        self.primary_service = primary[1]
        self.replica_service = replica[1]
        self.register_outputs({"caCertPem": self.ca_cert_pem})

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
