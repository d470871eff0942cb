"""`python -m deploy peer-subscription`: what an off-cloud x86 subscriber (Railway, a home
server) runs to follow the primary: the CA certificate its connection verifies the primary
with, and per database a `CREATE SUBSCRIPTION` statement for the `peer` role over TLS
(`sslmode=verify-full`) to the A1's public IP.

Everything comes from the stack's outputs `postgresCaCert`, `postgresPeer` and
`postgresPeerPassword`; the password is printed only with `--show-secrets`, otherwise a
placeholder stands in its place.
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from rich.console import Console

from components.replication import (
    MIGRATION_TABLES,
    conninfo,
    create_subscription_sql,
    peer_subscription_name,
)
from components.services.render import quote_identifier
from deploy.adapters import open_stack
from deploy.ports import OperatorError

PASSWORD_PLACEHOLDER: Final = "<peer password: add --show-secrets>"
# Where the statement expects the CA file on the subscriber: inside the data directory of the
# official image (and Railway's), which the server's user can read and which survives restarts.
DEFAULT_CA_PATH: Final = "/var/lib/postgresql/data/ai-swarm-ca.pem"


def add_peer_parser(commands: Any, stack_option: Callable[[argparse.ArgumentParser], None]) -> None:
    peer = commands.add_parser(
        "peer-subscription",
        help="print the CA certificate and CREATE SUBSCRIPTION statements for an off-cloud peer",
        description="For a PostgreSQL 15+ subscriber outside Oracle's network whose address "
        "is in ai-swarm:replica.externalCidrs: print the primary's CA certificate (save it "
        "on the subscriber at --ca-path) and, per database, the schema copy and the CREATE "
        "SUBSCRIPTION statement for the `peer` role (TLS, verify-full, to the A1's public "
        "IP). The password is shown only with --show-secrets. Exit 0 printed, 1 when the "
        "stack has no peer configured.",
    )
    stack_option(peer)
    peer.add_argument(
        "--show-secrets",
        action="store_true",
        help="print the peer role's password in the statements (else a placeholder)",
    )
    peer.add_argument(
        "--ca-path",
        default=DEFAULT_CA_PATH,
        metavar="PATH",
        help=f"where the CA file lives on the subscriber (default {DEFAULT_CA_PATH})",
    )


@dataclass(frozen=True)
class Peer:
    host: str
    port: int
    user: str
    databases: tuple[str, ...]
    publication: str

    @classmethod
    def of(cls, output: Mapping[str, Any]) -> Peer:
        try:
            databases = output["databases"]
            if isinstance(databases, str) or not isinstance(databases, Sequence):
                raise TypeError("databases is not a list")
            return cls(
                host=str(output["host"]),
                port=int(output["port"]),
                user=str(output["user"]),
                databases=tuple(str(database) for database in databases),
                publication=str(output["publication"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise OperatorError(
                f"the stack's output 'postgresPeer' is not what this version reads ({error}): "
                "run `python -m deploy up` after updating"
            ) from None


NO_PEER: Final = (
    "this stack has no off-cloud peer: set ai-swarm:replica.externalCidrs to the "
    'subscriber\'s outbound address (e.g. ["203.0.113.7/32"]) and run `python -m deploy up`; '
    "docs/replica.md has the recipe"
)


def peer_text(outputs: Mapping[str, Any], *, show_secrets: bool, ca_path: str) -> str:
    """The CA certificate and the statements (module docstring); `OperatorError` when the
    stack has no peer."""
    output, ca = outputs.get("postgresPeer"), outputs.get("postgresCaCert")
    if not output:
        raise OperatorError(NO_PEER)
    if not isinstance(output, Mapping):
        raise OperatorError("the stack's output 'postgresPeer' is not an object")
    if not isinstance(ca, str) or "BEGIN CERTIFICATE" not in ca:
        raise OperatorError("the stack has a peer but no output 'postgresCaCert'")
    peer = Peer.of(output)
    password = outputs.get("postgresPeerPassword") if show_secrets else PASSWORD_PLACEHOLDER
    if not isinstance(password, str) or not password:
        raise OperatorError("the stack has a peer but no output 'postgresPeerPassword'")
    lines = [
        f"-- 1. Save this CA certificate on the subscriber as {ca_path}",
        "--    (readable by its postgres user):",
        *(f"-- {line}" if line else "--" for line in ca.strip().splitlines()),
        "--",
        "-- 2. Per database, on the subscriber (as a superuser): make the database, copy the",
        "--    schema from the primary (logical replication copies rows, never DDL), subscribe.",
    ]
    for database in peer.databases:
        connection = conninfo(peer.host, peer.port, database, peer.user, ca_path, password=password)
        excluded = " ".join(f"--exclude-table={table}" for table in MIGRATION_TABLES)
        lines += [
            "",
            f"-- {database}",
            f"--   createdb {database}",
            f"--   pg_dump --schema-only --no-owner --no-privileges {excluded} \\",
            f"--     {shlex.quote(connection)} | psql -d {database}",
            f"\\connect {quote_identifier(database)}",
            create_subscription_sql(peer_subscription_name(database), connection),
        ]
    return "\n".join(lines) + "\n"


def run_peer(args: argparse.Namespace, console: Console) -> int:
    stack = open_stack(args.stack, create=False)
    text = peer_text(stack.outputs(), show_secrets=args.show_secrets, ca_path=args.ca_path)
    console.file.write(text)
    return 0
