"""The Postgres container's set-up on Debian's PostgreSQL 15, as the official image would do it.

initdb with the container's variables, its pg_hba.conf and command-line settings, its role
script from /docker-entrypoint-initdb.d; then each consumer logs in with the URL it is given.
Logins here arrive from 127.0.0.1, so they match the loopback line; the lines for the services'
network cannot be reached from this machine and are checked as the server parsed them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import pytest

from components.services import postgres as postgres_service
from dryrun.engine import ProgramRun
from tests.integration import daemons
from tests.integration.rendered import CONTAINER, RenderedContainer, run_healthcheck

SCRAM = "scram-sha-256"


@dataclass(frozen=True)
class Login:
    user: str
    password: str
    database: str


@pytest.fixture(scope="module")
def container(program_run: ProgramRun) -> RenderedContainer:
    return RenderedContainer.of(program_run, "postgres")


@pytest.fixture(scope="module")
def superuser(container: RenderedContainer) -> Login:
    envs = container.envs
    return Login(envs["POSTGRES_USER"], envs["POSTGRES_PASSWORD"], envs["POSTGRES_DB"])


@pytest.fixture(scope="module")
def consumers(program_run: ProgramRun) -> list[Login]:
    """Every database login the program hands a container, from its DATABASE_URL."""
    urls = [
        env.split("=", 1)[1]
        for registration in program_run.of_type(CONTAINER)
        for env in registration.inputs.get("envs", ())
        if env.startswith("DATABASE_URL=")
    ]
    return [login_of(url) for url in urls]


@pytest.fixture(scope="module")
def server(container: RenderedContainer) -> Iterator[daemons.PostgresDaemon]:
    command, *server_args = container.command
    assert command == "postgres"
    with daemons.postgres_like_image(container.envs, container.uploads, server_args) as daemon:
        yield daemon


def login_of(url: str) -> Login:
    parts = urlsplit(url)
    assert parts.scheme in ("postgresql", "postgres"), parts.scheme
    assert parts.username and parts.password, "a database URL without its credentials"
    return Login(unquote(parts.username), unquote(parts.password), parts.path.lstrip("/"))


def query(server: daemons.PostgresDaemon, login: Login, sql: str, password: str | None) -> str:
    done = server.psql(sql, user=login.user, database=login.database, password=password)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def refusal(server: daemons.PostgresDaemon, login: Login, password: str | None) -> str:
    done = server.psql("SELECT 1", user=login.user, database=login.database, password=password)
    assert done.returncode != 0, f"{login.user} got in with password {password is not None}"
    return done.stderr


def test_every_consumer_role_is_given_a_url(consumers: list[Login]) -> None:
    assert sorted(login.user for login in consumers) == sorted(postgres_service.CONSUMERS)


def test_each_consumer_logs_in_over_tcp_with_its_password(
    server: daemons.PostgresDaemon, consumers: list[Login]
) -> None:
    assert_consumers_log_in(server, consumers)


def assert_consumers_log_in(server: daemons.PostgresDaemon, consumers: list[Login]) -> None:
    for login in consumers:
        answer = query(server, login, "SELECT current_user, current_database()", login.password)
        assert answer == f"{login.user}|{login.database}"


def test_wrong_or_missing_password_is_refused(
    server: daemons.PostgresDaemon, consumers: list[Login], superuser: Login
) -> None:
    for login in [*consumers, superuser]:
        assert "password authentication failed" in refusal(server, login, login.password + "x")
        # A refusal without a password means no `trust` line lets the role in.
        assert "no password supplied" in refusal(server, login, None)


def test_only_scram_is_in_effect(
    server: daemons.PostgresDaemon, superuser: Login, consumers: list[Login]
) -> None:
    # The rendered pg_hba.conf is the one in force, not the image's default in the data dir.
    hba_copy = server.files[postgres_service.HBA_FILE]
    assert query(server, superuser, "SHOW hba_file", superuser.password) == str(hba_copy)
    rules = query(
        server,
        superuser,
        "SELECT auth_method, coalesce(error, '') FROM pg_hba_file_rules",
        superuser.password,
    ).splitlines()
    assert rules, "pg_hba_file_rules is empty"
    assert set(rules) == {f"{SCRAM}|"}, rules
    assert query(server, superuser, "SHOW password_encryption", superuser.password) == SCRAM
    stored = query(
        server,
        superuser,
        "SELECT rolname, left(rolpassword, 14) FROM pg_authid WHERE rolpassword IS NOT NULL",
        superuser.password,
    ).splitlines()
    roles = {line.split("|")[0] for line in stored}
    assert roles == {superuser.user, *(login.user for login in consumers)}
    assert all(line.endswith("|SCRAM-SHA-256$") for line in stored), stored


def test_consumer_cannot_open_another_consumers_database(
    server: daemons.PostgresDaemon, consumers: list[Login]
) -> None:
    first, second, *_ = consumers
    intruder = Login(first.user, first.password, second.database)
    assert "permission denied" in refusal(server, intruder, first.password)


def test_roles_script_can_be_rerun(
    server: daemons.PostgresDaemon, superuser: Login, consumers: list[Login]
) -> None:
    # The component says the script is idempotent, for re-running it after a password rotation.
    script = server.files[postgres_service.ROLES_SQL_FILE]
    done = server.psql_args(
        ["-f", str(script)],
        user=superuser.user,
        database=superuser.database,
        password=superuser.password,
    )
    assert done.returncode == 0, done.stderr
    assert_consumers_log_in(server, consumers)


def test_healthcheck_succeeds_and_fails_without_a_server(
    server: daemons.PostgresDaemon, container: RenderedContainer
) -> None:
    # The probe names no port: libpq's PGPORT points it at the test server, the rest as rendered.
    up = run_healthcheck(container.healthcheck, {**container.envs, "PGPORT": str(server.port)})
    assert up.returncode == 0, up.stdout + up.stderr
    elsewhere = {**container.envs, "PGPORT": str(daemons.free_port())}
    down = run_healthcheck(container.healthcheck, elsewhere)
    assert down.returncode != 0
