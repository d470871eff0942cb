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

import shlex
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network

from components.services.postgres import AUTH, CONSUMERS, PORT
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


def _role_sql(role: str, env_name: str, *, enabled: bool) -> list[str]:
    """A subscriber's role: LOGIN and REPLICATION, nothing else, its password from `env_name`
    (psql's \\getenv: the value never appears in the script or in argv); a role no longer
    wanted keeps existing (it may own nothing, but its name is fixed) without LOGIN."""
    name, literal = quote_identifier(role), quote_literal(role)
    variable = f"{role}_password"
    if not enabled:
        return [
            f"SELECT format('ALTER ROLE %I NOLOGIN', {literal}) "
            f"WHERE EXISTS (SELECT FROM pg_roles WHERE rolname = {literal})\\gexec"
        ]
    return [
        f"\\getenv {variable} {env_name}",
        f"\\if :{{?{variable}}}",
        "\\else",
        f"DO $$ BEGIN RAISE EXCEPTION '{env_name} is not set'; END $$;",
        "\\endif",
        f"SELECT format('CREATE ROLE %I', {literal}) "
        f"WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {literal})\\gexec",
        f"ALTER ROLE {name} WITH LOGIN REPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE "
        f"NOINHERIT NOBYPASSRLS PASSWORD :'{variable}';",
    ]


def _grants_sql(database: str, role: str) -> list[str]:
    """SELECT on every table and sequence of the database's public schema (a sequence's value
    only: the migration bookkeeping's dump reads it), now and as its application's role (of
    the same name, components.services.postgres) creates them later."""
    db, name = quote_identifier(database), quote_identifier(role)
    owner = quote_identifier(database)  # the application's role has its database's name
    return [
        f"GRANT CONNECT ON DATABASE {db} TO {name};",
        f"GRANT USAGE ON SCHEMA public TO {name};",
        f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {name};",
        f"GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO {name};",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public "
        f"GRANT SELECT ON TABLES TO {name};",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public "
        f"GRANT SELECT ON SEQUENCES TO {name};",
    ]


def roles_sql(*, peer: bool) -> str:
    """psql script, run as the superuser in each reconcile: the replicator (and the peer when
    an external network is admitted) exists with the password in REPLICATOR_PASSWORD
    (PEER_PASSWORD) and may read, never write, every table of the replicated databases."""
    lines = ["SET password_encryption = 'scram-sha-256';"]
    lines += _role_sql(REPLICATOR, REPLICATOR_PASSWORD_ENV, enabled=True)
    lines += _role_sql(PEER, PEER_PASSWORD_ENV, enabled=peer)
    roles = (REPLICATOR, PEER) if peer else (REPLICATOR,)
    for database in DATABASES:
        lines.append(f"\\connect {quote_identifier(database)}")
        for role in roles:
            lines += _grants_sql(database, role)
    return "\n".join(lines) + "\n"


def _sql_array(values: Sequence[str]) -> str:
    return "ARRAY[" + ", ".join(quote_literal(value) for value in values) + "]::text[]"


# The tables a publication carries: permanent ordinary (or partitioned) tables of the public
# schema, no partition of one, no migration bookkeeping. A plpgsql expression over pg_class `c`.
_PUBLISHED = (
    "c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') "
    "AND c.relpersistence = 'p' AND NOT c.relispartition "
    f"AND c.relname <> ALL ({_sql_array(MIGRATION_TABLES)})"
)

# For each such table: keep its primary key (REPLICA IDENTITY DEFAULT); else use a unique,
# valid, immediate, non-partial index on plain NOT NULL columns (the fewest columns, then by
# name), such as Open WebUI 0.6.18's `<table>_id`; else FULL (every column identifies the row;
# the subscriber then finds rows by scanning). A published table without one makes the primary
# refuse its UPDATE and DELETE. Then the publication carries exactly those tables.
_PUBLICATION_BLOCK = """DO $reconcile$
DECLARE
  t record;
  wanted text;
  tables text;
BEGIN
  FOR t IN SELECT c.oid, c.relname, c.relreplident,
      EXISTS (SELECT FROM pg_index x WHERE x.indrelid = c.oid AND x.indisprimary) AS has_pkey,
      (SELECT x.indexrelid::regclass::text FROM pg_index x WHERE x.indrelid = c.oid
         AND x.indisreplident) AS current_index,
      (SELECT i.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
         WHERE x.indrelid = c.oid AND x.indisunique AND x.indisvalid AND x.indimmediate
           AND x.indpred IS NULL AND x.indexprs IS NULL
           AND NOT EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = c.oid
             AND a.attnum = ANY (x.indkey) AND NOT a.attnotnull)
         ORDER BY x.indnatts, i.relname LIMIT 1) AS usable_index
    FROM pg_class c WHERE __PUBLISHED__
  LOOP
    IF t.has_pkey THEN
      wanted := CASE WHEN t.relreplident = 'd' THEN NULL ELSE 'DEFAULT' END;
    ELSIF t.usable_index IS NOT NULL THEN
      wanted := CASE WHEN t.relreplident = 'i'
          AND t.current_index = quote_ident(t.usable_index) THEN NULL
        ELSE format('USING INDEX %I', t.usable_index) END;
    ELSE
      wanted := CASE WHEN t.relreplident = 'f' THEN NULL ELSE 'FULL' END;
    END IF;
    IF wanted IS NOT NULL THEN
      RAISE NOTICE 'ai-swarm reconcile: table % gets REPLICA IDENTITY %', t.relname, wanted;
      EXECUTE format('ALTER TABLE public.%I REPLICA IDENTITY %s', t.relname, wanted);
    END IF;
  END LOOP;

  SELECT string_agg(format('public.%I', c.relname), ', ' ORDER BY c.relname) INTO tables
    FROM pg_class c WHERE __PUBLISHED__;
  IF NOT EXISTS (SELECT FROM pg_publication WHERE pubname = __PUBLICATION__) THEN
    EXECUTE format('CREATE PUBLICATION %I', __PUBLICATION__);
  END IF;
  IF tables IS NULL THEN
    FOR t IN SELECT tablename FROM pg_publication_tables WHERE pubname = __PUBLICATION__ LOOP
      EXECUTE format('ALTER PUBLICATION %I DROP TABLE public.%I', __PUBLICATION__, t.tablename);
    END LOOP;
  ELSIF tables IS DISTINCT FROM (SELECT string_agg(format('%I.%I', schemaname, tablename), ', '
      ORDER BY tablename) FROM pg_publication_tables WHERE pubname = __PUBLICATION__) THEN
    RAISE NOTICE 'ai-swarm reconcile: publication % now carries %', __PUBLICATION__, tables;
    EXECUTE format('ALTER PUBLICATION %I SET TABLE %s', __PUBLICATION__, tables);
  END IF;
END
$reconcile$;"""


def publication_sql() -> str:
    """psql script, run as the superuser in each reconcile after the applications migrated:
    in each replicated database, every published table gets a replica identity, then the
    publication carries exactly the published tables (created when missing). Idempotent: a
    second run changes nothing."""
    block = _PUBLICATION_BLOCK.replace("__PUBLISHED__", _PUBLISHED).replace(
        "__PUBLICATION__", quote_literal(PUBLICATION)
    )
    lines: list[str] = []
    for database in DATABASES:
        lines += [f"\\connect {quote_identifier(database)}", block]
    return "\n".join(lines) + "\n"


def primary_reconcile_sql(*, peer: bool) -> str:
    """The primary's whole reconcile as one psql script (roles, grants, replica identities,
    publication), for `psql -X -v ON_ERROR_STOP=1 -d postgres -f -` as the superuser, with
    REPLICATOR_PASSWORD (and PEER_PASSWORD when `peer`) in psql's environment."""
    return roles_sql(peer=peer) + publication_sql()


# --- the subscriber's reconcile -------------------------------------------------------------------

# What the subscriber reads from the primary, as the replicator, one COPY each into a file of
# the same name: the published tables' columns, every table of the public schema, the public
# enum types, the published tables' constraints, other indexes and replica identities.
_PUBLISHED_OIDS = (
    "SELECT c.oid, c.relname FROM pg_publication_tables p JOIN pg_class c "
    "ON c.relname = p.tablename AND c.relnamespace = 'public'::regnamespace "
    f"WHERE p.pubname = {quote_literal(PUBLICATION)} AND p.schemaname = 'public'"
)


def _catalog_queries(published: str) -> dict[str, str]:
    """Catalog queries over the tables `published` selects (oid, relname); the same text runs
    on both sides, so the primary's and the subscriber's answers compare as text."""
    return {
        "columns": (
            "SELECT t.relname::text, a.attname::text, "
            "format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS not_null, "
            " pg_get_expr(d.adbin, d.adrelid) AS def "
            f"FROM ({published}) t JOIN pg_attribute a "
            "ON a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped LEFT JOIN pg_attrdef d "
            "ON d.adrelid = t.oid AND d.adnum = a.attnum"
        ),
        "constraints": (
            "SELECT t.relname::text, k.conname::text, k.contype::text, "
            "pg_get_constraintdef(k.oid) AS def "
            f"FROM ({published}) t JOIN pg_constraint k ON k.conrelid = t.oid"
        ),
        "indexes": (
            "SELECT t.relname::text, i.relname::text AS indexname, "
            "pg_get_indexdef(x.indexrelid) AS def "
            f"FROM ({published}) t JOIN pg_index x ON x.indrelid = t.oid "
            "JOIN pg_class i ON i.oid = x.indexrelid WHERE NOT EXISTS (SELECT FROM pg_constraint k "
            "WHERE k.conrelid = t.oid AND k.conindid = x.indexrelid AND k.contype IN ('p','u','x'))"
        ),
        "identities": (
            "SELECT t.relname::text, c.relreplident::text AS ident, "
            "coalesce((SELECT i.relname::text FROM pg_index x JOIN pg_class i "
            "ON i.oid = x.indexrelid WHERE x.indrelid = t.oid "
            f"AND x.indisreplident), '') AS indexname FROM ({published}) t "
            "JOIN pg_class c ON c.oid = t.oid"
        ),
    }


_PRIMARY_QUERIES = {
    **_catalog_queries(_PUBLISHED_OIDS),
    "tables": (
        "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace "
        "AND relkind IN ('r', 'p')"
    ),
    "enums": (
        "SELECT t.typname, e.enumlabel, e.enumsortorder FROM pg_type t JOIN pg_enum e "
        "ON e.enumtypid = t.oid WHERE t.typnamespace = 'public'::regnamespace"
    ),
}
# The subscriber's own tables that follow the primary's: all but the migration bookkeeping.
_LOCAL_TABLES = (
    "SELECT c.oid, c.relname FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace "
    f"AND c.relkind IN ('r', 'p') AND c.relname <> ALL ({_sql_array(MIGRATION_TABLES)})"
)
_COLUMNS_OF = {
    "columns": "relname text, attname text, type text, not_null boolean, def text",
    "constraints": "relname text, conname text, contype text, def text",
    "indexes": "relname text, indexname text, def text",
    "identities": "relname text, ident text, indexname text",
    "tables": "relname text",
    "enums": "typname text, label text, sortorder real",
}


def _load_primary_catalog() -> str:
    """psql lines: the primary's answers (files in the working directory) as temp tables
    p_<name>, the subscriber's own as views r_<name>, and two helpers that run a statement and,
    when it fails, warn and either drop the table (so it is created again from the primary's
    schema and copied anew) or only warn."""
    lines = ["SET client_min_messages = warning;"]
    for name, columns in _COLUMNS_OF.items():
        lines += [f"CREATE TEMP TABLE p_{name} ({columns});", f"\\copy p_{name} FROM '{name}'"]
    for name, query in _catalog_queries(_LOCAL_TABLES).items():
        lines.append(f"CREATE TEMP VIEW r_{name} AS {query};")
    lines.append(f"CREATE TEMP VIEW r_tables AS SELECT relname::text FROM ({_LOCAL_TABLES}) t;")
    lines.append(
        """CREATE FUNCTION pg_temp.apply_or_resync(tbl text, stmt text) RETURNS void
LANGUAGE plpgsql AS $f$
BEGIN
  EXECUTE stmt;
EXCEPTION WHEN others THEN
  RAISE WARNING 'ai-swarm reconcile: "%" failed (%): table % is copied again', stmt, SQLERRM, tbl;
  EXECUTE format('DROP TABLE IF EXISTS public.%I CASCADE', tbl);
END $f$;
CREATE FUNCTION pg_temp.try(stmt text) RETURNS void LANGUAGE plpgsql AS $f$
BEGIN
  EXECUTE stmt;
EXCEPTION WHEN others THEN
  RAISE WARNING 'ai-swarm reconcile: "%" failed: %', stmt, SQLERRM;
END $f$;"""
    )
    return "\n".join(lines) + "\n"


# Before the missing tables are created from the primary's schema: enum types and labels the
# primary has; tables gone from the primary, and tables with a column the primary no longer has
# (dropped or renamed) or has with another type, dropped here; then in place, columns the
# primary added, NOT NULL and defaults as the primary has them (a change that fails drops the
# table instead). Every statement is chosen from the catalogs, so a second run does nothing.
# Before a table changes, the subscription is disabled and its workers have stopped: a running
# apply worker meets a table between drop and create ("logical replication target relation
# ... does not exist", an apply error). The reconcile enables it again at its end, and the new
# workers start from the catalogs as they are then.
_SCHEMA_IN_PLACE = """SELECT pg_temp.try(format('CREATE TYPE public.%I AS ENUM (%s)', typname,
    string_agg(quote_literal(label), ', ' ORDER BY sortorder)))
  FROM p_enums WHERE to_regtype(format('public.%I', typname)) IS NULL GROUP BY typname;
SELECT pg_temp.try(format('ALTER TYPE public.%I ADD VALUE IF NOT EXISTS %L', typname, label))
  FROM p_enums p WHERE NOT EXISTS (SELECT FROM pg_enum e
    WHERE e.enumtypid = to_regtype(format('public.%I', p.typname)) AND e.enumlabel = p.label)
  ORDER BY typname, sortorder;
CREATE TEMP VIEW gone AS
  SELECT relname FROM r_tables EXCEPT SELECT relname FROM p_tables
  UNION
  SELECT r.relname FROM r_columns r WHERE r.relname IN (SELECT relname FROM p_columns)
    AND NOT EXISTS (SELECT FROM p_columns p
      WHERE (p.relname, p.attname, p.type) = (r.relname, r.attname, r.type));
CREATE TEMP VIEW changes AS
  SELECT p.relname, 1 AS step, p.attname, format('ALTER TABLE public.%I ADD COLUMN %I %s%s%s',
      p.relname, p.attname, p.type, ' DEFAULT ' || p.def,
      CASE WHEN p.not_null THEN ' NOT NULL' ELSE '' END) AS stmt
    FROM p_columns p WHERE p.relname IN (SELECT relname FROM r_tables)
      AND NOT EXISTS (SELECT FROM r_columns r
        WHERE (r.relname, r.attname) = (p.relname, p.attname))
  UNION ALL
  SELECT p.relname, 2, p.attname, format('ALTER TABLE public.%I ALTER COLUMN %I %s NOT NULL',
      p.relname, p.attname, CASE WHEN p.not_null THEN 'SET' ELSE 'DROP' END)
    FROM p_columns p JOIN r_columns r USING (relname, attname, type)
    WHERE p.not_null <> r.not_null
  UNION ALL
  SELECT p.relname, 3, p.attname, CASE WHEN p.def IS NULL
      THEN format('ALTER TABLE public.%I ALTER COLUMN %I DROP DEFAULT', p.relname, p.attname)
      ELSE format('ALTER TABLE public.%I ALTER COLUMN %I SET DEFAULT %s', p.relname, p.attname,
        p.def) END
    FROM p_columns p JOIN r_columns r USING (relname, attname, type)
    WHERE p.def IS DISTINCT FROM r.def;
SELECT EXISTS (SELECT FROM gone) OR EXISTS (SELECT FROM changes) AS changing \\gset
\\if :changing
SELECT format('ALTER SUBSCRIPTION %I DISABLE', subname) FROM pg_subscription
  WHERE subname = __SUBSCRIPTION__ AND subenabled\\gexec
DO $wait$ BEGIN
  FOR i IN 1..__WAIT_TENTHS__ LOOP
    EXIT WHEN NOT EXISTS (SELECT FROM pg_stat_subscription
      WHERE subname = __SUBSCRIPTION__ AND pid IS NOT NULL);
    PERFORM pg_sleep(0.1);
  END LOOP;
END $wait$;
\\endif
SELECT pg_temp.try(format('DROP TABLE IF EXISTS public.%I CASCADE', relname))
  FROM gone ORDER BY relname;
SELECT pg_temp.apply_or_resync(relname, stmt) FROM changes ORDER BY relname, step, attname;
"""
# How long the reconcile waits for a disabled subscription's workers to stop.
WORKER_STOP_WAIT_S = 60


def _schema_in_place(subscription: str) -> str:
    return _SCHEMA_IN_PLACE.replace("__SUBSCRIPTION__", quote_literal(subscription)).replace(
        "__WAIT_TENTHS__", str(WORKER_STOP_WAIT_S * 10)
    )


# The published tables still missing here, as pg_dump -t patterns (created from the primary's
# schema next), and whether the database has no table at all (then the whole schema comes).
_MISSING_TABLES = """SELECT format('public.%s', '"' || replace(relname, '"', '""') || '"')
  FROM (SELECT DISTINCT relname FROM p_columns) p
  WHERE to_regclass(format('public.%I', relname)) IS NULL ORDER BY 1;
"""

# After the missing tables exist: constraints and other indexes as the primary has them (extra
# ones dropped, missing or changed ones made; foreign keys last), then replica identities.
_SCHEMA_KEYS = """SELECT pg_temp.try(format('ALTER TABLE public.%I DROP CONSTRAINT %I',
    relname, conname))
  FROM (SELECT relname, conname, contype, def FROM r_constraints
        EXCEPT SELECT relname, conname, contype, def FROM p_constraints) extra
  WHERE relname IN (SELECT relname FROM p_columns) ORDER BY contype = 'f' DESC, relname, conname;
SELECT pg_temp.try(format('DROP INDEX public.%I', indexname))
  FROM (SELECT relname, indexname, def FROM r_indexes
        EXCEPT SELECT relname, indexname, def FROM p_indexes) extra
  WHERE relname IN (SELECT relname FROM p_columns) ORDER BY indexname;
SELECT pg_temp.try(format('ALTER TABLE public.%I ADD CONSTRAINT %I %s', relname, conname, def))
  FROM (SELECT relname, conname, contype, def FROM p_constraints
        EXCEPT SELECT relname, conname, contype, def FROM r_constraints) missing
  WHERE to_regclass(format('public.%I', relname)) IS NOT NULL
  ORDER BY contype = 'f', relname, conname;
SELECT pg_temp.try(def)
  FROM (SELECT relname, indexname, def FROM p_indexes
        EXCEPT SELECT relname, indexname, def FROM r_indexes) missing
  WHERE to_regclass(format('public.%I', relname)) IS NOT NULL ORDER BY indexname;
SELECT pg_temp.try(format('ALTER TABLE public.%I REPLICA IDENTITY %s', relname,
    CASE ident WHEN 'd' THEN 'DEFAULT' WHEN 'f' THEN 'FULL' WHEN 'n' THEN 'NOTHING'
      ELSE format('USING INDEX %I', indexname) END))
  FROM (SELECT relname, ident, indexname FROM p_identities
        EXCEPT SELECT relname, ident, indexname FROM r_identities) differing
  WHERE to_regclass(format('public.%I', relname)) IS NOT NULL ORDER BY relname;
"""


_SCRIPT_HEAD = """set -eu
umask 077
: "${__ENV__:?__ENV__ is not set}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"

# libpq's password file for the subscriptions' connections and this script's own.
escaped="$(printf '%s' "$__ENV__" | sed 's/[\\\\:]/\\\\&/g')"
printf '*:*:*:%s:%s\\n' __ROLE__ "$escaped" > __PASSFILE__.new
mv -f __PASSFILE__.new __PASSFILE__

# This server, as the superuser (the image's POSTGRES_PASSWORD when local logins need one).
here() { PGPASSWORD="${POSTGRES_PASSWORD:-}" psql -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }
# The primary, as the replicator, with the subscription's own connection string.
primary() {
  conn="$1"; shift
  (unset PGPASSWORD; psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$conn" "$@")
}
primary_dump() {
  conn="$1"; shift
  (unset PGPASSWORD; pg_dump --no-owner --no-privileges --no-publications --no-subscriptions \\
    --no-security-labels --no-tablespaces -d "$conn" "$@")
}
dump_patterns() { # pg_dump of the tables named (one pattern a line) in file $1, options $2...
  file="$1"; shift
  while IFS= read -r pattern; do set -- "$@" "--table=$pattern"; done < "$file"
  primary_dump "$conn" "$@"
}
"""


def _database_section(database: str, connection: str, subscription: str) -> str:
    """The sh lines that reconcile one database (see subscriber_reconcile_script)."""
    db, conn, sub = shlex.quote(database), shlex.quote(connection), quote_literal(subscription)
    conn_literal = quote_literal(connection)
    empty = shlex.quote(
        "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace "
        "AND relkind IN ('r', 'p')"
    )
    sub_id = quote_identifier(subscription)
    load = _load_primary_catalog()
    fetch = "\n".join(
        f'primary "$conn" -c {shlex.quote(f"COPY ({query}) TO STDOUT")} > {name}'
        for name, query in _PRIMARY_QUERIES.items()
    )
    bookkeeping = shlex.quote(
        "COPY (SELECT format('public.%s', '\"' || relname || '\"') FROM pg_class "
        "WHERE relnamespace = 'public'::regnamespace "
        f"AND relname = ANY ({_sql_array(MIGRATION_TABLES)})) TO STDOUT"
    )
    drop_bookkeeping = ", ".join(f"public.{quote_identifier(t)}" for t in MIGRATION_TABLES)
    # Each bookkeeping table's rows as one digest, the same query on both sides: the copy is
    # made only when they differ (after a migration), not on every run.
    fingerprint = shlex.quote(
        "SELECT coalesce(string_agg(relname || ':' || md5(query_to_xml(format("
        "'SELECT * FROM public.%I ORDER BY 1', relname), false, false, '')::text), ',' "
        "ORDER BY relname), '') FROM pg_class WHERE relnamespace = 'public'::regnamespace "
        f"AND relname = ANY ({_sql_array(MIGRATION_TABLES)})"
    )
    slot = shlex.quote(
        f"SELECT coalesce(wal_status, 'none') FROM pg_replication_slots WHERE slot_name = {sub}"
    )
    return f"""
# --- {database} ---
db={db}
conn={conn}
here -d postgres -v db="$db" <<'SQL'
SELECT format('CREATE DATABASE %I', :'db')
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')\\gexec
SQL
{fetch}
if [ "$(here -d "$db" -c {empty})" = 0 ]; then
  primary_dump "$conn" --schema-only > schema.sql
  here -d "$db" -1 -f schema.sql
fi
here -d "$db" > missing <<'SQL'
{load}\\o /dev/null
{_schema_in_place(subscription)}\\o
{_MISSING_TABLES}SQL
if [ -s missing ]; then
  dump_patterns missing --schema-only > tables.sql
  here -d "$db" -1 -f tables.sql
fi
here -d "$db" > /dev/null <<'SQL'
{load}{_SCHEMA_KEYS}SQL
primary "$conn" -c {bookkeeping} > bookkeeping
theirs="$(primary "$conn" -c {fingerprint})"
if [ -s bookkeeping ] && [ "$theirs" != "$(here -d "$db" -c {fingerprint})" ]; then
  dump_patterns bookkeeping > bookkeeping.sql
  {{ echo 'DROP TABLE IF EXISTS {drop_bookkeeping};'; cat bookkeeping.sql; }} > snapshot.sql
  here -d "$db" -1 -f snapshot.sql
fi
subscribed="$(here -d "$db" -c "SELECT 1 FROM pg_subscription WHERE subname = {sub}")"
slot="$(primary "$conn" -c {slot})"
if [ -n "$subscribed" ] && {{ [ -z "$slot" ] || [ "$slot" = lost ]; }}; then
  echo "ai-swarm reconcile: slot {subscription} is ${{slot:-missing}}: copying $db anew" >&2
  here -d "$db" -c 'ALTER SUBSCRIPTION {sub_id} DISABLE' \\
    -c 'ALTER SUBSCRIPTION {sub_id} SET (slot_name = NONE)' -c 'DROP SUBSCRIPTION {sub_id}'
  subscribed=
fi
if [ -z "$subscribed" ]; then
  if [ -n "$slot" ]; then
    primary "$conn" -c {shlex.quote(f"SELECT pg_drop_replication_slot({sub})")} > /dev/null
  fi
  here -d "$db" <<'SQL'
SELECT format('TRUNCATE TABLE %s', string_agg(format('public.%I', relname), ', '))
  FROM ({_LOCAL_TABLES}) t HAVING count(*) > 0\\gexec
{create_subscription_sql(subscription, connection)}
SQL
else
  here -d "$db" <<'SQL'
SELECT format('ALTER SUBSCRIPTION %I CONNECTION %L', subname, {conn_literal})
  FROM pg_subscription WHERE subname = {sub} AND subconninfo <> {conn_literal}\\gexec
ALTER SUBSCRIPTION {sub_id} ENABLE;
ALTER SUBSCRIPTION {sub_id} REFRESH PUBLICATION;
SQL
fi
"""


def subscriber_reconcile_script(
    primary_host: str,
    primary_port: int = PORT,
    *,
    ca_file: str = SUBSCRIBER_CA_FILE,
    passfile: str = SUBSCRIBER_PASSFILE,
) -> str:
    """POSIX sh script run inside the replica container as the server's OS user (`postgres`),
    with psql and pg_dump, the replicator's password in REPLICATOR_PASSWORD and, when local
    logins need one, the superuser's in POSTGRES_PASSWORD (the image's variable). For each
    replicated database: create it when missing; bring the schema from the primary (TLS,
    verify-full against `ca_file`): all of it into an empty database, else new tables created,
    added columns, NOT NULL and defaults applied in place, a table with a dropped, renamed or
    retyped column (or one whose change fails) dropped and created again, tables gone from the
    primary dropped, constraints, indexes and replica identities as the primary has them; copy
    the migration bookkeeping (not replicated: a restore from the replica must know which
    migrations its schema has); then create the subscription (emptying the tables, which it
    copies anew) or re-enable it and refresh its tables (new or re-created ones are copied).
    A lost or missing slot on the primary starts the subscription afresh. Idempotent; safe to
    run from a timer (not twice at once: run it through one systemd unit)."""
    lines = [
        _SCRIPT_HEAD.replace("__ENV__", REPLICATOR_PASSWORD_ENV)
        .replace("__ROLE__", REPLICATOR)
        .replace("__PASSFILE__", shlex.quote(passfile))
    ]
    for database in DATABASES:
        connection = conninfo(
            primary_host, primary_port, database, REPLICATOR, ca_file, passfile=passfile
        )
        lines.append(_database_section(database, connection, subscription_name(database)))
    return "".join(lines)
