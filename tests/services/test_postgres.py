"""Postgres: scram-sha-256 only, one role and database per consumer, health over TCP."""

from __future__ import annotations

import re

from components.services.catalog import NETWORK_SUBNET
from dryrun.engine import ProgramRun
from tests.services.readers import binds, container, depends_on, directives, env, upload

HBA = "/etc/postgresql/pg_hba.conf"
ROLES_SQL = "/docker-entrypoint-initdb.d/10-ai-swarm-roles.sql"


def test_server_reads_the_uploaded_hba_file_and_hashes_with_scram(free_run: ProgramRun) -> None:
    command = container(free_run, "postgres").inputs["command"]
    assert command[0] == "postgres"
    settings = dict(arg.split("=", 1) for arg in command[2::2])
    assert command[1::2] == ["-c"] * len(settings)
    assert settings == {"hba_file": HBA, "password_encryption": "scram-sha-256"}


def test_hba_admits_each_consumer_to_its_own_database_from_the_network(
    free_run: ProgramRun,
) -> None:
    rules = directives(upload(container(free_run, "postgres"), HBA))
    assert {rule[-1] for rule in rules} == {"scram-sha-256"}  # never md5, trust or password
    assert ["local", "all", "all", "scram-sha-256"] in rules
    remote = [rule for rule in rules if rule[0] == "host" and rule[3] != "127.0.0.1/32"]
    assert remote == [
        ["host", name, name, str(NETWORK_SUBNET), "scram-sha-256"]
        for name in ("litellm", "openwebui")
    ]


def test_init_sql_creates_each_role_with_its_password_and_database(free_run: ProgramRun) -> None:
    sql = upload(container(free_run, "postgres"), ROLES_SQL)
    assert sql.startswith("SET password_encryption = 'scram-sha-256';\n")
    urls = {
        name: env(container(free_run, user))["DATABASE_URL"]
        for name, user in (("litellm", "litellm"), ("openwebui", "open-webui"))
    }
    passwords = set()
    for name, url in urls.items():
        match = re.fullmatch(rf"postgresql://{name}:([A-Za-z0-9]{{32}})@postgres:5432/{name}", url)
        assert match, url
        passwords.add(match[1])
        assert f"""ALTER ROLE "{name}" WITH LOGIN PASSWORD '{match[1]}';""" in sql
        assert f"WHERE rolname = '{name}') THEN CREATE ROLE \"{name}\" LOGIN;" in sql
        assert f"format('CREATE DATABASE %I OWNER %I', '{name}', '{name}')" in sql
        assert f'REVOKE ALL ON DATABASE "{name}" FROM PUBLIC;' in sql
    assert len(passwords) == 2  # each consumer has its own
    assert env(container(free_run, "postgres"))["POSTGRES_PASSWORD"] not in passwords


def test_health_waits_for_the_real_server_not_the_init_one(free_run: ProgramRun) -> None:
    test = container(free_run, "postgres").inputs["healthcheck"]["tests"]
    assert test == ["CMD", "pg_isready", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres"]


def test_data_directory_is_a_subdirectory_of_the_mount(free_run: ProgramRun) -> None:
    postgres = container(free_run, "postgres")
    assert env(postgres)["PGDATA"] == "/var/lib/postgresql/data/pgdata"
    assert binds(postgres) == {"/mnt/data/postgres": "/var/lib/postgresql/data"}
    assert depends_on(free_run, postgres) == set()
    assert "ports" not in postgres.inputs or postgres.inputs["ports"] == []
