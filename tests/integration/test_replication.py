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
import os
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
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

SUPERUSER = "postgres"
# An external network the peer is admitted from: TEST-NET-1, never this machine's address.
PEER_NETWORK = IPv4Network("192.0.2.0/24")
REPLICATION_TIMEOUT_S = 90.0
# A bound small enough to pass in a test: two WAL segments.
TINY_WAL_KEEP_MB = 32
WAL_SEGMENT_BYTES = 16 * 1024 * 1024
RUNUSER = daemons.require_program("runuser")
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
        """The rendered script, run by `sh` as the server's OS user, as in the container."""
        env = {
            "PATH": "/usr/bin:/bin",
            "PGHOST": str(self.subscriber.daemon.socket_dir),
            "PGPORT": str(self.subscriber.daemon.port),
            "PGUSER": SUPERUSER,
            "POSTGRES_PASSWORD": self.subscriber.password,
            replication.REPLICATOR_PASSWORD_ENV: self.replicator_password,
        }
        return subprocess.run(
            [RUNUSER, "-u", daemons.POSTGRES_OS_USER, "--", "sh", "-c", self.subscriber_script()],
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
