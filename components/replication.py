"""PostgreSQL logical replication of the applications' databases to a subscriber (issue #19).

Pure: names and renderers from plain values, no resources. The primary is the A1's `postgres`
container, the subscriber the Micro's `postgres-replica` (and, optionally, an off-cloud peer).
Logical replication sends rows as values (text or binary per type, decoded on each side), never
pages or WAL records, so the two servers may differ in CPU architecture and C library: the A1 is
arm64 and the Micro x86_64. Physical replication would need both to be the same.

What each part renders:
- primary: server settings (`postgres -c ...`), pg_hba lines, a psql script for the roles and
  the publication (run on every reconcile; passwords from the environment);
- subscriber: server settings for a 1 GB host, and a POSIX sh script run inside the replica
  container that creates the databases, brings the schema from the primary and creates or
  refreshes the subscriptions;
- the libpq connection string and `CREATE SUBSCRIPTION` for a subscriber (the Micro and the
  off-cloud peer).
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network

from components.services.postgres import AUTH, CONSUMERS
from components.services.render import Directive, quote_identifier, quote_literal

# The replicated databases: each application's own.
DATABASES: tuple[str, ...] = CONSUMERS
PUBLICATION = "ai_swarm"
REPLICATOR = "replicator"  # the Micro's role on the primary
PEER = "peer"  # the off-cloud subscriber's role on the primary
# The applications' migration bookkeeping: never published (the subscriber runs no migrations;
# the reconcile brings the schema the migrations made).
MIGRATION_TABLES: tuple[str, ...] = ("_prisma_migrations", "alembic_version", "migratehistory")
REPLICA_CONTAINER = "postgres-replica"

# TLS files inside the containers. The key must be the server user's and 0600 (uid 70 in the
# alpine image), or PostgreSQL refuses to start.
PRIMARY_TLS_CERT_FILE = "/etc/postgresql/tls/server.crt"
PRIMARY_TLS_KEY_FILE = "/etc/postgresql/tls/server.key"
SUBSCRIBER_CA_FILE = "/etc/postgresql/tls/ca.crt"
# The replicator's password for the subscriptions' connections, as a libpq password file on the
# replica's data volume, written by every reconcile (so a new password needs no SQL change and
# never sits in the subscription's catalog row or in a dump of the replica).
SUBSCRIBER_PASSFILE = "/var/lib/postgresql/data/replicator.pgpass"
# Environment variables that carry the passwords into the reconcile scripts (never argv).
REPLICATOR_PASSWORD_ENV = "REPLICATOR_PASSWORD"
PEER_PASSWORD_ENV = "PEER_PASSWORD"

# Replication slots on the primary. Permanent: one per database for the Micro and one per
# database for an off-cloud peer. Temporary: while a subscription copies a table (initial copy,
# a new or re-synchronised table), each of its table-sync workers holds a slot of its own, up to
# the subscriber's max_sync_workers_per_subscription (PostgreSQL's default: 2; the Micro uses
# fewer, a peer may keep the default). Each slot in use also holds a WAL sender.
SUBSCRIBERS = 2  # the Micro and an off-cloud peer
SYNC_WORKERS_PER_SUBSCRIPTION = 2
REPLICATION_SLOTS = SUBSCRIBERS * len(DATABASES) * (1 + SYNC_WORKERS_PER_SUBSCRIPTION)
# The most WAL the slots may hold back. A subscriber away longer than it takes the primary to
# write this much loses its slot (wal_status 'lost') instead of filling the data volume; the
# reconcile then starts its subscription afresh with a new copy. 4 GB is 4% of the largest data
# volume a replica allows (100 GB).
MAX_SLOT_WAL_KEEP_SIZE_MB = 4096
TLS_MIN_PROTOCOL = "TLSv1.3"

# The Micro: 1 GB shared with Docker, node-exporter and the OS (components.sizing).
SUBSCRIBER_SHARED_BUFFERS_MB = 64
SUBSCRIBER_MAX_CONNECTIONS = 20
SUBSCRIBER_SYNC_WORKERS = 1  # one table copied at a time per subscription: memory, not speed


def subscription_name(database: str) -> str:
    """The Micro's subscription to `database` (its replication slot has the same name)."""
    return f"{PUBLICATION}_{database}"


def peer_subscription_name(database: str) -> str:
    """The off-cloud peer's subscription and slot: distinct from the Micro's."""
    return f"{PUBLICATION}_{PEER}_{database}"


def _settings(values: Sequence[tuple[str, str]]) -> list[str]:
    return [arg for name, value in values for arg in ("-c", f"{name}={value}")]


def primary_server_args(
    max_slot_wal_keep_size_mb: int = MAX_SLOT_WAL_KEEP_SIZE_MB,
) -> list[str]:
    """`postgres -c ...` arguments the primary adds to its own: logical WAL, slots and senders
    for the subscribers, the WAL bound, and TLS with the server certificate (TLS 1.3 only)."""
    return _settings(
        [
            ("wal_level", "logical"),
            ("max_replication_slots", str(REPLICATION_SLOTS)),
            ("max_wal_senders", str(REPLICATION_SLOTS)),
            ("max_slot_wal_keep_size", f"{max_slot_wal_keep_size_mb}MB"),
            ("ssl", "on"),
            ("ssl_cert_file", PRIMARY_TLS_CERT_FILE),
            ("ssl_key_file", PRIMARY_TLS_KEY_FILE),
            ("ssl_min_protocol_version", TLS_MIN_PROTOCOL),
        ]
    )


def primary_hba_rules(
    replica_ip: IPv4Address | None, external_cidrs: Sequence[IPv4Network]
) -> list[Directive]:
    """pg_hba lines for the subscribers, to add to the primary's own (postgres.hba_rules()):
    TLS and scram only, the replicator from the Micro's address alone, the peer from the
    external networks alone, each to the replicated databases only. Normal database entries:
    a logical replication connection names its database (the `replication` keyword is for
    physical replication)."""
    rules: list[Directive] = []
    if replica_ip is not None:
        rules += [("hostssl", [db, REPLICATOR, f"{replica_ip}/32", AUTH]) for db in DATABASES]
    for network in external_cidrs:
        rules += [("hostssl", [db, PEER, str(network), AUTH]) for db in DATABASES]
    return rules


def subscriber_server_args() -> list[str]:
    """`postgres -c ...` arguments for the replica on the 1 GB Micro: small buffers, few
    connections, an apply worker per subscription plus one table-sync worker each."""
    subscriptions = len(DATABASES)
    workers = subscriptions * (1 + SUBSCRIBER_SYNC_WORKERS)
    return _settings(
        [
            ("shared_buffers", f"{SUBSCRIBER_SHARED_BUFFERS_MB}MB"),
            ("max_connections", str(SUBSCRIBER_MAX_CONNECTIONS)),
            ("work_mem", "4MB"),
            ("maintenance_work_mem", "32MB"),
            ("effective_cache_size", "256MB"),
            ("max_logical_replication_workers", str(workers)),
            ("max_sync_workers_per_subscription", str(SUBSCRIBER_SYNC_WORKERS)),
            # On a subscriber this bounds the replication origins: one per subscription and
            # one per table being copied.
            ("max_replication_slots", str(workers)),
            # The launcher and the logical workers are background workers, as is a parallel
            # query's helper: room for all, and no parallel query on one vCPU.
            ("max_worker_processes", str(workers + 2)),
            ("max_parallel_workers_per_gather", "0"),
        ]
    )


def _conninfo_value(value: str) -> str:
    # libpq keyword/value syntax: single quotes, with backslash and quote escaped.
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def conninfo(
    host: str,
    port: int,
    database: str,
    user: str,
    ca_file: str,
    *,
    passfile: str | None = None,
    password: str | None = None,
) -> str:
    """The libpq connection string a subscriber uses: TLS with the primary's certificate
    checked against `ca_file` for `host` (verify-full). The password comes from `passfile`
    (the Micro) or, for a subscriber that has no file of its own (the peer), `password`."""
    pairs = [
        ("host", host),
        ("port", str(port)),
        ("dbname", database),
        ("user", user),
        ("sslmode", "verify-full"),
        ("sslrootcert", ca_file),
    ]
    if passfile is not None:
        pairs.append(("passfile", passfile))
    if password is not None:
        pairs.append(("password", password))
    return " ".join(f"{key}={_conninfo_value(value)}" for key, value in pairs)


def create_subscription_sql(name: str, connection: str) -> str:
    """`CREATE SUBSCRIPTION` for one database: the publication, an initial copy, and the
    subscription disabled on an apply error (a schema the subscriber lacks) until the next
    reconcile re-enables it, rather than retried every few seconds on a 1/8-OCPU host."""
    return (
        f"CREATE SUBSCRIPTION {quote_identifier(name)} CONNECTION {quote_literal(connection)} "
        f"PUBLICATION {quote_identifier(PUBLICATION)} WITH (disable_on_error = true);"
    )


def docker_exec_argv(container: str, script: str, env_names: Sequence[str]) -> list[str]:
    """How a host runs a rendered sh script inside a Postgres container, as the server's OS
    user, passing the named variables from its own environment (values never in argv)."""
    env_args = [arg for name in env_names for arg in ("-e", name)]
    return ["docker", "exec", "-i", "-u", "postgres", *env_args, container, "sh", "-c", script]
