"""Logical replication between two real PostgreSQL 15 servers on loopback, with the settings,
pg_hba lines, role and publication SQL and the subscriber's reconcile script that
components.replication renders.

The primary gets `primary_server_args()` (TLS with a server certificate for 127.0.0.1 made here
by a CA made here) and the replication hba lines with 127.0.0.1 as the Micro's address; the
subscriber gets `subscriber_server_args()` and runs the rendered reconcile script as the
`postgres` OS user, as the replica container would, checking the primary's certificate with
`sslmode=verify-full`. The applications' logins reach the primary over `host` lines for their
own databases from 127.0.0.1 (standing in for the services' network line, which this machine
cannot be on); the A1's loopback line is left out, so a replicator login without TLS has
nothing to match, as it has nothing to match from the Micro.

Both servers here are x86_64, while the A1 is arm64 and the Micro x86_64. That does not weaken
the test: logical replication (pgoutput) sends each row as column values in their text or
binary send/receive form, which every architecture decodes the same way, and the schema is sent
as SQL (pg_dump); no page, WAL record or collation-ordered index ever crosses. Physical
replication would ship pages and WAL and needs both hosts to be the same architecture.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
import secrets
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from components import replication
from components.services.postgres import AUTH, HBA_FILE, ROLES_SQL_FILE
from components.services.render import (
    DatabaseRole,
    Directive,
    render_directives,
    render_roles_sql,
)
from tests.integration import daemons
from tests.integration.test_litellm_own_code import (
    MIGRATIONS_TIMEOUT_S,
    migration_files,
    postgres_psql,
)
from tests.integration.test_open_webui_own_code import _MIGRATE, run_open_webui

SUPERUSER = "postgres"
# An external network the peer is admitted from: TEST-NET-1, never this machine's address.
PEER_NETWORK = IPv4Network("192.0.2.0/24")
REPLICATION_TIMEOUT_S = 90.0
# A bound small enough to pass in a test: two WAL segments.
TINY_WAL_KEEP_MB = 32
WAL_SEGMENT_BYTES = 16 * 1024 * 1024
RUNUSER = daemons.require_program("runuser")
BUSYBOX = daemons.require_program("busybox")
TLS_VERSION = "SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid()"


# --- certificates -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tls:
    ca_pem: str
    cert_pem: str
    key_pem: str


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_tls(ip: str, ca_name: str = "ai-swarm test CA") -> Tls:
    """A CA and a server certificate for `ip` (as a SAN IP address) that it signed."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name(ca_name))
        .issuer_name(_name(ca_name))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(ip))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(IPv4Address(ip))]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return Tls(
        ca.public_bytes(pem).decode(),
        cert.public_bytes(pem).decode(),
        key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
    )


# --- the two servers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    daemon: daemons.PostgresDaemon
    password: str  # the superuser's

    def sql(self, query: str, database: str = SUPERUSER) -> str:
        done = self.daemon.psql(
            query, user=SUPERUSER, database=database, password=self.password, tcp=False
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def script(self, text: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        """A psql script on stdin as the superuser, with `env` (the passwords) added."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        argv = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", str(self.daemon.socket_dir)]
        argv += ["-p", str(self.daemon.port), "-U", SUPERUSER, "-d", SUPERUSER, "-f", "-"]
        return subprocess.run(
            argv,
            input=text,
            capture_output=True,
            text=True,
            env={**base, **env, "PGPASSWORD": self.password},
            timeout=daemons.COMMAND_TIMEOUT_S,
            check=False,
        )


@dataclass(frozen=True)
class Pair:
    primary: Server
    subscriber: Server
    tls: Tls
    apps: dict[str, str]  # application role (= database) -> password
    replicator_password: str
    peer_password: str

    def reconcile_primary(self) -> None:
        env = {
            replication.REPLICATOR_PASSWORD_ENV: self.replicator_password,
            replication.PEER_PASSWORD_ENV: self.peer_password,
        }
        done = self.primary.script(replication.primary_reconcile_sql(peer=True), env)
        assert done.returncode == 0, done.stderr

    @property
    def passfile(self) -> Path:
        # The subscriber's cluster directory: the server's own, as the data volume is.
        return self.subscriber.daemon.socket_dir.parent / "replicator.pgpass"

    def subscriber_script(self) -> str:
        return replication.subscriber_reconcile_script(
            daemons.LOOPBACK,
            self.primary.daemon.port,
            ca_file=str(self.subscriber.daemon.files[replication.SUBSCRIBER_CA_FILE]),
            passfile=str(self.passfile),
        )

    def reconcile_subscriber(self) -> subprocess.CompletedProcess[str]:
        """The rendered script, run by busybox's `sh` (the alpine image's /bin/sh) as the
        server's OS user, as in the container."""
        script = self.subscriber_script()
        env = {
            "PATH": "/usr/bin:/bin",
            "PGHOST": str(self.subscriber.daemon.socket_dir),
            "PGPORT": str(self.subscriber.daemon.port),
            "PGUSER": SUPERUSER,
            "POSTGRES_PASSWORD": self.subscriber.password,
            replication.REPLICATOR_PASSWORD_ENV: self.replicator_password,
        }
        return subprocess.run(
            [RUNUSER, "-u", daemons.POSTGRES_OS_USER, "--", BUSYBOX, "sh", "-c", script],
            capture_output=True,
            text=True,
            env=env,
            cwd="/",
            timeout=300,
            check=False,
        )

    def reconcile(self) -> None:
        self.reconcile_primary()
        done = self.reconcile_subscriber()
        assert done.returncode == 0, done.stderr[-4000:]

    def app_sql(self, database: str, query: str) -> str:
        """`query` as the application's own role in its database, over TCP like the app."""
        done = self.primary.daemon.psql(
            query, user=database, database=database, password=self.apps[database]
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()


def primary_hba() -> str:
    rules: list[Directive] = [("local", ["all", "all", AUTH])]
    rules += [("host", [db, db, "127.0.0.1/32", AUTH]) for db in replication.DATABASES]
    rules += replication.primary_hba_rules(IPv4Address(daemons.LOOPBACK), [PEER_NETWORK])
    return render_directives(rules)


@contextlib.contextmanager
def started_pair(wal_keep_mb: int = replication.MAX_SLOT_WAL_KEEP_SIZE_MB) -> Iterator[Pair]:
    tls = make_tls(daemons.LOOPBACK)
    apps = {db: secrets.token_urlsafe(16) for db in replication.DATABASES}
    primary_password, subscriber_password = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    primary_uploads = {
        HBA_FILE: primary_hba(),
        ROLES_SQL_FILE: render_roles_sql([DatabaseRole(n, n, p) for n, p in apps.items()]),
        replication.PRIMARY_TLS_CERT_FILE: tls.cert_pem,
        replication.PRIMARY_TLS_KEY_FILE: tls.key_pem,
    }
    primary_args = ["-c", f"hba_file={HBA_FILE}", "-c", f"password_encryption={AUTH}"]
    primary_args += replication.primary_server_args(wal_keep_mb)
    with contextlib.ExitStack() as stack:
        primary = stack.enter_context(
            daemons.postgres_like_image(
                {"POSTGRES_USER": SUPERUSER, "POSTGRES_PASSWORD": primary_password},
                primary_uploads,
                primary_args,
            )
        )
        subscriber = stack.enter_context(
            daemons.postgres_like_image(
                {"POSTGRES_USER": SUPERUSER, "POSTGRES_PASSWORD": subscriber_password},
                {replication.SUBSCRIBER_CA_FILE: tls.ca_pem},
                replication.subscriber_server_args(),
            )
        )
        yield Pair(
            Server(primary, primary_password),
            Server(subscriber, subscriber_password),
            tls,
            apps,
            secrets.token_urlsafe(16),
            secrets.token_urlsafe(16),
        )


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + REPLICATION_TIMEOUT_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {REPLICATION_TIMEOUT_S:.0f} s")
        time.sleep(0.5)


def table_text(server: Server, database: str, table: str, order: str) -> str:
    return server.sql(f'SELECT * FROM "{table}" ORDER BY {order}', database)


def caught_up(pair: Pair, database: str, table: str, order: str) -> Callable[[], bool]:
    return lambda: (
        table_text(pair.subscriber, database, table, order)
        == table_text(pair.primary, database, table, order)
    )


def errors(pair: Pair, database: str) -> tuple[int, int]:
    """(apply errors, table-sync errors) of the database's subscription, as status shows them."""
    row = pair.subscriber.sql(
        "SELECT apply_error_count, sync_error_count FROM pg_stat_subscription_stats "
        f"WHERE subname = '{replication.subscription_name(database)}'",
        database,
    )
    apply_errors, sync_errors = row.split("|")
    return int(apply_errors), int(sync_errors)


def all_ready(pair: Pair, database: str) -> Callable[[], bool]:
    """Every table of the subscription copied and streaming (state 'r')."""
    query = "SELECT count(*) FILTER (WHERE srsubstate <> 'r'), count(*) FROM pg_subscription_rel"
    return lambda: pair.subscriber.sql(query, database).split("|")[0] == "0"


def columns(server: Server, database: str) -> list[str]:
    """Every column of the public schema but the migration bookkeeping, with type and nullity."""
    return server.sql(
        "SELECT c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod) "
        "|| CASE WHEN a.attnotnull THEN ' not null' ELSE '' END FROM pg_class c "
        "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
        "WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' "
        "AND c.relname NOT IN ('_prisma_migrations', 'alembic_version', 'migratehistory') "
        "ORDER BY 1",
        database,
    ).splitlines()


# --- rows ---------------------------------------------------------------------------------------

_APP_TABLES = """
CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL);
CREATE TABLE keyless (id varchar(255) NOT NULL, body text);
CREATE UNIQUE INDEX keyless_id ON keyless (id);
CREATE TABLE loose (a int, b text);
INSERT INTO items (name) SELECT 'item ' || n FROM generate_series(1, 50) n;
INSERT INTO keyless SELECT 'k' || n, 'body ' || n FROM generate_series(1, 20) n;
INSERT INTO loose SELECT n, 'loose ' || n FROM generate_series(1, 10) n;
"""

_CHANGES = """
INSERT INTO items (name) VALUES ('added');
UPDATE items SET name = 'renamed' WHERE id = 3;
DELETE FROM items WHERE id = 4;
INSERT INTO keyless VALUES ('new', 'new body');
UPDATE keyless SET body = 'changed' WHERE id = 'k1';
DELETE FROM keyless WHERE id = 'k2';
UPDATE loose SET b = 'changed' WHERE a = 1;
DELETE FROM loose WHERE a = 2;
"""
ORDERS = {"items": "id", "keyless": "id", "loose": "a"}


def test_initial_copy_then_inserts_updates_and_deletes_arrive_without_errors() -> None:
    with started_pair() as pair:
        db = "litellm"
        pair.app_sql(db, _APP_TABLES)
        pair.reconcile()
        for table, order in ORDERS.items():
            wait_for(caught_up(pair, db, table, order), f"initial copy of {table}")
        assert pair.subscriber.sql("SELECT count(*) FROM items", db) == "50"
        # The application's role changes rows of every kind of table, including those without
        # a primary key (the primary would refuse the UPDATE without a replica identity).
        pair.app_sql(db, _CHANGES)
        for table, order in ORDERS.items():
            wait_for(caught_up(pair, db, table, order), f"changes to {table}")
        assert pair.subscriber.sql("SELECT name FROM items WHERE id = 3", db) == "renamed"
        assert errors(pair, db) == (0, 0)
        # A second reconcile changes nothing: the same subscription, the same rows, streaming.
        before = pair.subscriber.sql("SELECT oid FROM pg_subscription", db)
        pair.reconcile()
        assert pair.subscriber.sql("SELECT oid FROM pg_subscription", db) == before
        pair.app_sql(db, "INSERT INTO items (name) VALUES ('after the second reconcile')")
        wait_for(caught_up(pair, db, "items", "id"), "a row after the second reconcile")
        assert errors(pair, db) == (0, 0)
        # The other database is replicated too (empty: no table yet).
        assert (
            pair.subscriber.sql(
                "SELECT subenabled FROM pg_subscription WHERE subname = "
                f"'{replication.subscription_name('openwebui')}'"
            )
            == "t"
        )


def test_the_primary_admits_the_replicator_only_with_tls_and_only_to_the_replicated_databases() -> (
    None
):
    with started_pair() as pair:
        pair.reconcile_primary()
        ca = pair.subscriber.daemon.files[replication.SUBSCRIBER_CA_FILE]

        def login(
            user: str, database: str, query: str = TLS_VERSION, **options: str
        ) -> subprocess.CompletedProcess[str]:
            info = replication.conninfo(
                daemons.LOOPBACK, pair.primary.daemon.port, database, user, str(ca)
            )
            info += "".join(f" {key}={value}" for key, value in options.items())
            env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
            passwords = {replication.REPLICATOR: pair.replicator_password}
            env["PGPASSWORD"] = passwords.get(user, pair.peer_password)
            return subprocess.run(
                ["psql", "-X", "-w", "-A", "-t", "-d", info, "-c", query],
                capture_output=True,
                text=True,
                env=env,
                timeout=daemons.COMMAND_TIMEOUT_S,
                check=False,
            )

        admitted = login(replication.REPLICATOR, "litellm")
        assert admitted.returncode == 0, admitted.stderr
        assert admitted.stdout.strip() == "TLSv1.3"
        # A CA path with a space and a quote reaches libpq intact.
        odd = pair.passfile.with_name("a dir") / "o'ca.crt"
        odd.parent.mkdir()
        odd.write_text(pair.tls.ca_pem)
        ca = odd
        assert login(replication.REPLICATOR, "litellm").stdout.strip() == "TLSv1.3"
        plain = login(replication.REPLICATOR, "litellm", sslmode="disable")
        assert "no pg_hba.conf entry" in plain.stderr and "no encryption" in plain.stderr
        # The superuser's own database is not replicated, so not admitted.
        assert "no pg_hba.conf entry" in login(replication.REPLICATOR, SUPERUSER).stderr
        # The peer is admitted from its external network only, and 127.0.0.1 is not in it.
        assert "no pg_hba.conf entry" in login(replication.PEER, "litellm").stderr
        old_tls = login(replication.REPLICATOR, "litellm", ssl_max_protocol_version="TLSv1.2")
        assert old_tls.returncode != 0
        # A certificate from another CA fails verify-full before any password is sent.
        other_ca = pair.passfile.with_name("other-ca.crt")
        other_ca.write_text(make_tls(daemons.LOOPBACK, "another CA").ca_pem)
        stranger = login(replication.REPLICATOR, "litellm", sslrootcert=str(other_ca))
        assert "certificate verify failed" in stranger.stderr
        # The replicator reads every table and writes none.
        pair.app_sql("litellm", "CREATE TABLE later (id int PRIMARY KEY)")
        read = login(replication.REPLICATOR, "litellm", "SELECT count(*) FROM later")
        assert read.stdout.strip() == "0", read.stderr
        write = login(replication.REPLICATOR, "litellm", "INSERT INTO later VALUES (1)")
        assert "permission denied for table later" in write.stderr


# --- the applications' own migrations ----------------------------------------------------------


def migrate_open_webui(pair: Pair, workdir: Path) -> None:
    """Open WebUI 0.6.18's peewee and Alembic migrations, as its role (its start does this)."""
    password = pair.apps["openwebui"]
    where = f"{daemons.LOOPBACK}:{pair.primary.daemon.port}"
    url = f"postgresql://openwebui:{password}@{where}/openwebui"
    done = run_open_webui(_MIGRATE, {"DATABASE_URL": url}, workdir)
    assert done.returncode == 0, done.stderr[-3000:]


# The table prisma's `migrate deploy` keeps its record in (prisma's migration engine makes it).
_PRISMA_MIGRATIONS = """CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id" VARCHAR(36) PRIMARY KEY NOT NULL,
    "checksum" VARCHAR(64) NOT NULL,
    "finished_at" TIMESTAMPTZ,
    "migration_name" VARCHAR(255) NOT NULL,
    "logs" TEXT,
    "rolled_back_at" TIMESTAMPTZ,
    "started_at" TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count" INTEGER NOT NULL DEFAULT 0
);
"""


def _recorded(path: Path) -> str:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return (
        'INSERT INTO "_prisma_migrations" (id, checksum, finished_at, migration_name, '
        f"applied_steps_count) VALUES ('{uuid.uuid4()}', '{digest}', now(), "
        f"'{path.parent.name}', 1);\n"
    )


def migrate_litellm(pair: Pair, files: Sequence[Path], workdir: Path) -> None:
    """LiteLLM's SQL migrations `files`, in order, as its role, each recorded in
    `_prisma_migrations` as prisma's `migrate deploy` does."""
    record = workdir / f"record-{files[0].parent.name}.sql"
    record.write_text(_PRISMA_MIGRATIONS + "".join(_recorded(path) for path in files))
    args = [arg for path in [*files, record] for arg in ("-f", str(path))]
    done = subprocess.run(
        [*postgres_psql(pair.primary.daemon, "litellm", "litellm"), *args],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "PGPASSWORD": pair.apps["litellm"]},
        timeout=MIGRATIONS_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def test_the_applications_migrations_are_published_and_user_updates_reach_the_replica(
    tmp_path: Path,
) -> None:
    with started_pair() as pair:
        migrate_open_webui(pair, tmp_path)
        migrate_litellm(pair, migration_files(), tmp_path)
        pair.app_sql(
            "openwebui",
            'INSERT INTO "user" (id, name, email, role, profile_image_url, last_active_at, '
            "updated_at, created_at) VALUES ('u1', 'Ada', 'ada@example.org', 'admin', '', 0, 0, 0)",
        )
        pair.reconcile()
        for db in replication.DATABASES:
            wait_for(all_ready(pair, db), f"initial copy of {db}")
        # The nine tables without a primary key are published, and the primary still takes
        # Open WebUI's UPDATE of its users (without a replica identity it refuses it).
        pair.app_sql("openwebui", "UPDATE \"user\" SET name = 'Ada L.' WHERE id = 'u1'")
        wait_for(
            lambda: pair.subscriber.sql('SELECT name FROM "user"', "openwebui") == "Ada L.",
            "the updated user on the replica",
        )
        pair.app_sql("openwebui", 'DELETE FROM auth; DELETE FROM "user"')
        wait_for(
            lambda: pair.subscriber.sql('SELECT count(*) FROM "user"', "openwebui") == "0",
            "the deleted user on the replica",
        )
        pair.app_sql(
            "litellm",
            "INSERT INTO \"LiteLLM_Config\" VALUES ('general_settings', '{\"a\": 1}'); "
            'UPDATE "LiteLLM_Config" SET param_value = \'{"a": 2}\'',
        )
        wait_for(caught_up(pair, "litellm", "LiteLLM_Config", "param_name"), "LiteLLM's config row")
        for db in replication.DATABASES:
            assert columns(pair.subscriber, db) == columns(pair.primary, db)
            assert errors(pair, db) == (0, 0)
        # The migration bookkeeping is copied, not published: a restore from the replica knows
        # which migrations its schema has.
        bookkeeping = {
            "litellm": "SELECT count(*) FROM _prisma_migrations",
            "openwebui": "SELECT (SELECT version_num FROM alembic_version) || "
            "(SELECT count(*) FROM migratehistory)",
        }
        for db, query in bookkeeping.items():
            assert pair.subscriber.sql(query, db) == pair.primary.sql(query, db)
        # and copied again only when it changed: another reconcile leaves the table as it was.
        copied = "SELECT 'public._prisma_migrations'::regclass::oid"
        before = pair.subscriber.sql(copied, "litellm")
        pair.reconcile()
        assert pair.subscriber.sql(copied, "litellm") == before
        published = pair.primary.sql(
            "SELECT string_agg(tablename, ',') FROM pg_publication_tables", "openwebui"
        ).split(",")
        assert "user" in published and not set(replication.MIGRATION_TABLES) & set(published)


def test_an_upgrade_of_litellm_catches_up_after_reconcile(tmp_path: Path) -> None:
    files = migration_files()
    # Before the MCP server table's column is renamed and another one dropped (2025-08, -09).
    older = [path for path in files if path.parent.name < "20250806"]
    assert 0 < len(older) < len(files)
    with started_pair() as pair:
        migrate_litellm(pair, older, tmp_path)
        pair.reconcile()
        pair.app_sql(
            "litellm",
            'INSERT INTO "LiteLLM_MCPServerTable" (server_id, alias, url) '
            "VALUES ('s1', 'first', 'https://mcp.example.org')",
        )
        wait_for(all_ready(pair, "litellm"), "initial copy")
        wait_for(
            caught_up(pair, "litellm", "LiteLLM_MCPServerTable", "server_id"), "the MCP server row"
        )
        # The new image's migrations run on the primary: renamed and dropped columns, new tables.
        migrate_litellm(pair, files[len(older) :], tmp_path)
        pair.reconcile()
        pair.app_sql(
            "litellm",
            """UPDATE "LiteLLM_MCPServerTable" SET server_name = 'renamed' WHERE server_id = 's1';
            INSERT INTO "LiteLLM_Config" VALUES ('after', NULL)""",
        )
        wait_for(all_ready(pair, "litellm"), "the re-created and new tables copied")
        for table, order in (("LiteLLM_MCPServerTable", "server_id"), ("LiteLLM_Config", "1")):
            wait_for(caught_up(pair, "litellm", table, order), f"{table} after the upgrade")
        assert columns(pair.subscriber, "litellm") == columns(pair.primary, "litellm")
        assert errors(pair, "litellm") == (0, 0)


def test_a_change_made_before_the_reconcile_stalls_the_subscription_until_it_runs() -> None:
    with started_pair() as pair:
        pair.app_sql("litellm", "CREATE TABLE notes (id int PRIMARY KEY, body text)")
        pair.reconcile()
        wait_for(all_ready(pair, "litellm"), "initial copy")
        # A migration adds a column and the application writes it before any reconcile.
        pair.app_sql(
            "litellm",
            "ALTER TABLE notes ADD COLUMN tag text; INSERT INTO notes VALUES (1, 'b', 't')",
        )
        name = replication.subscription_name("litellm")
        wait_for(
            lambda: (
                pair.subscriber.sql(
                    f"SELECT subenabled FROM pg_subscription WHERE subname = '{name}'"
                )
                == "f"
            ),
            "the subscription disabled by its apply error",
        )
        assert errors(pair, "litellm")[0] >= 1
        pair.reconcile()
        wait_for(caught_up(pair, "litellm", "notes", "id"), "the row written before reconcile")
        assert pair.subscriber.sql("SELECT tag FROM notes", "litellm") == "t"


@contextlib.contextmanager
def writing(pair: Pair, database: str, statement: Callable[[int], str]) -> Iterator[None]:
    """The application writing `statement(n)` for n = 1, 2, ... every 50 ms meanwhile."""
    stop = threading.Event()

    def write() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            pair.app_sql(database, statement(n))
            stop.wait(0.05)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        yield
    finally:
        stop.set()
        writer.join()


def test_a_dropped_column_copies_the_table_again_while_rows_keep_arriving() -> None:
    with started_pair() as pair:
        pair.app_sql(
            "litellm",
            "CREATE TABLE notes (id int PRIMARY KEY, body text, old text); "
            "INSERT INTO notes SELECT n, 'b' || n, 'o' FROM generate_series(1, 100000) n",
        )
        pair.reconcile()
        wait_for(caught_up(pair, "litellm", "notes", "id"), "initial copy")
        pair.app_sql("litellm", "ALTER TABLE notes DROP COLUMN old")
        # Rows written before, while and after the table is dropped, re-created and copied.
        with writing(pair, "litellm", lambda n: f"INSERT INTO notes VALUES ({200000 + n}, 'x')"):
            time.sleep(1)
            pair.reconcile()
            time.sleep(5)
        wait_for(all_ready(pair, "litellm"), "the re-created table copied")
        wait_for(caught_up(pair, "litellm", "notes", "id"), "the rows written meanwhile")
        assert columns(pair.subscriber, "litellm") == columns(pair.primary, "litellm")
        assert errors(pair, "litellm") == (0, 0)


def pg_ctl(server: Server, *args: str) -> None:
    cluster = server.daemon.socket_dir.parent
    argv = [str(daemons.PG_BIN / "pg_ctl"), "-D", str(cluster / "data"), *args]
    done = subprocess.run(
        [RUNUSER, "-u", daemons.POSTGRES_OS_USER, "--", *argv],
        capture_output=True,
        text=True,
        timeout=daemons.COMMAND_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_dead_subscriber_loses_its_slot_at_the_bound_and_reconcile_copies_anew() -> None:
    with started_pair(wal_keep_mb=TINY_WAL_KEEP_MB) as pair:
        pair.app_sql("litellm", "CREATE TABLE events (id serial PRIMARY KEY, body text)")
        pair.app_sql("litellm", "INSERT INTO events (body) VALUES ('before')")
        pair.reconcile()
        wait_for(caught_up(pair, "litellm", "events", "id"), "initial copy")
        slot = (
            "SELECT active, wal_status, pg_current_wal_lsn() - restart_lsn FROM "
            f"pg_replication_slots WHERE slot_name = '{replication.subscription_name('litellm')}'"
        )
        # The replica's host dies; the primary keeps taking writes and checkpoints.
        pg_ctl(pair.subscriber, "stop", "-m", "immediate", "-w")
        try:
            wait_for(lambda: pair.primary.sql(slot).startswith("f|"), "the slot inactive")
            for _ in range(3 * TINY_WAL_KEEP_MB * 1024 * 1024 // WAL_SEGMENT_BYTES):
                pair.app_sql("litellm", "INSERT INTO events (body) SELECT 'while away'")
                pair.primary.sql("SELECT pg_switch_wal()")
            pair.primary.sql("CHECKPOINT")
            # The slot holds no WAL back any more: the bound, not the replica, decides.
            assert pair.primary.sql(slot) == "f|lost|"
        finally:
            # The replica comes back (with the options it had).
            restart_log = pair.passfile.with_name("restarted.log")
            pg_ctl(pair.subscriber, "restart", "-w", "-l", str(restart_log))
        # The reconcile starts its subscription afresh with a new copy.
        done = pair.reconcile_subscriber()
        assert done.returncode == 0, done.stderr
        assert "is lost: copying litellm anew" in done.stderr
        pair.app_sql("litellm", "INSERT INTO events (body) VALUES ('after')")
        wait_for(caught_up(pair, "litellm", "events", "id"), "the table copied anew")
        assert pair.primary.sql(slot).split("|")[:2] == ["t", "reserved"]
        assert errors(pair, "litellm") == (0, 0)


def test_the_subscriber_script_passes_shellcheck_as_posix_sh(tmp_path: Path) -> None:
    # The replica image's /bin/sh is busybox ash: no bash features may slip in.
    script = replication.subscriber_reconcile_script("10.0.0.2")
    result = daemons.shellcheck(script, "sh", tmp_path)
    assert result.returncode == 0, result.stdout
