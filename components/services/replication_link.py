"""What Postgres and its replica add to their containers when the replica is enabled.

`components.postgres_replication` makes it from `components.replication`'s renderers and the
TLS files (pulumi-tls) when `ai-swarm:replica.enabled` is true, and hands it to every host's
services; without the replica there is none, and no container changes. The services read only
this, so that `components.replication` (which names Postgres' databases) stays downstream of
them.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.services.render import Directive


@dataclass(frozen=True)
class LinkFile:
    """A file written into a container: public (a certificate) or secret (a key: the server
    user's, 0600)."""

    path: str
    content: pulumi.Output[str]
    secret: bool = False


@dataclass(frozen=True)
class ReplicationLink:
    # The A1's fixed private address: the primary's Postgres is published there and nowhere
    # else, and the replica connects to it (the server certificate names it).
    primary_ip: str
    # `postgres -c ...` arguments, pg_hba lines and files the primary adds to its own.
    primary_args: tuple[str, ...]
    primary_hba: tuple[Directive, ...]
    primary_files: tuple[LinkFile, ...]
    # The replica's server arguments (sized for its host) and files (the CA certificate).
    subscriber_args: tuple[str, ...]
    subscriber_files: tuple[LinkFile, ...]
