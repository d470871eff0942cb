"""`peer-subscription`: the CA and the statements an off-cloud subscriber runs, the password
only on request, and a clear refusal when the stack has no peer."""

from __future__ import annotations

import io
import secrets
import subprocess
from collections.abc import Mapping
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from components.replication import (
    DATABASES,
    PRIMARY_TLS_CERT_FILE,
    PRIMARY_TLS_KEY_FILE,
    primary_hba_rules,
    primary_server_args,
)
from components.services.postgres import AUTH, HBA_FILE
from components.services.render import render_directives
from deploy import cli
from deploy.peer import DEFAULT_CA_PATH, PASSWORD_PLACEHOLDER, peer_text
from deploy.ports import OperatorError
from tests.deploy import pg_pair
from tests.deploy.fakes import OutputsStack
from tests.deploy.test_cli import run_module
from tests.integration import daemons
from tests.integration.test_replication import make_tls

CA = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUstand+in\n-----END CERTIFICATE-----\n"
PASSWORD = "peer-Pa55-with'quote"
OUTPUTS: Mapping[str, Any] = {
    "postgresCaCert": CA,
    "postgresPeer": {
        "host": "203.0.113.10",
        "port": 5432,
        "user": "peer",
        "databases": ["litellm", "openwebui"],
        "publication": "ai_swarm",
    },
    "postgresPeerPassword": PASSWORD,
}


def _statements(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("CREATE SUBSCRIPTION")]


def test_without_show_secrets_a_placeholder_stands_for_the_password() -> None:
    text = peer_text(OUTPUTS, show_secrets=False, ca_path=DEFAULT_CA_PATH)
    assert "Pa55" not in text
    statements = _statements(text)
    assert len(statements) == 2
    first = statements[0]
    assert first.startswith('CREATE SUBSCRIPTION "ai_swarm_peer_litellm" CONNECTION ')
    for part in (
        "host=''203.0.113.10''",
        "port=''5432''",
        "dbname=''litellm''",
        "user=''peer''",
        "sslmode=''verify-full''",
        f"sslrootcert=''{DEFAULT_CA_PATH}''",
        f"password=''{PASSWORD_PLACEHOLDER}''",
    ):
        assert part in first
    assert first.endswith('PUBLICATION "ai_swarm" WITH (disable_on_error = true);')
    assert "ai_swarm_peer_openwebui" in statements[1] and "dbname=''openwebui''" in statements[1]


def test_show_secrets_puts_the_password_in_the_connection() -> None:
    text = peer_text(OUTPUTS, show_secrets=True, ca_path="/data/ca.pem")
    assert PASSWORD_PLACEHOLDER not in text
    # libpq quoting (\') inside an SQL literal ('')
    assert "password=''peer-Pa55-with\\''quote''" in _statements(text)[0]
    assert "sslrootcert=''/data/ca.pem''" in text


def test_the_ca_certificate_is_printed_whole_as_comments() -> None:
    text = peer_text(OUTPUTS, show_secrets=False, ca_path=DEFAULT_CA_PATH)
    commented = [line.removeprefix("-- ") for line in text.splitlines() if line.startswith("-- ")]
    start = commented.index("-----BEGIN CERTIFICATE-----")
    assert "\n".join(commented[start : start + 3]) + "\n" == CA


@pytest.mark.parametrize("peer", [None, {}])
def test_no_peer_is_refused_naming_the_setting(peer: object) -> None:
    with pytest.raises(
        OperatorError, match=r"no off-cloud peer: set ai-swarm:replica\.externalCidrs"
    ):
        peer_text({**OUTPUTS, "postgresPeer": peer}, show_secrets=False, ca_path=DEFAULT_CA_PATH)


def _main(
    monkeypatch: pytest.MonkeyPatch, outputs: Mapping[str, Any], *argv: str
) -> tuple[int, str]:
    monkeypatch.setattr("deploy.peer.open_stack", lambda name, create: OutputsStack(outputs))
    out = io.StringIO()
    code = cli.main(["peer-subscription", *argv], console=Console(file=out, width=300))
    return code, out.getvalue()


def test_the_verb_exits_0_with_the_statements_and_1_without_a_peer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, text = _main(monkeypatch, OUTPUTS)
    assert code == 0 and len(_statements(text)) == 2 and PASSWORD not in text
    code, text = _main(monkeypatch, {**OUTPUTS, "postgresPeer": None})
    assert code == 1
    assert text.startswith("error: this stack has no off-cloud peer")


def test_the_verb_has_help(tmp_path: Path) -> None:
    shown = run_module("peer-subscription", "--help", tmp_path=tmp_path)
    assert shown.returncode == 0, shown.stderr
    for flag in ("--show-secrets", "--ca-path", "--stack"):
        assert flag in shown.stdout


# ---------------------------------------------------------------------------------------------
# The printed text, run as the recipe says, against a real primary over TLS (verify-full)

CA_UPLOAD = "/var/lib/postgresql/data/ai-swarm-ca.pem"


def _recipe_steps(text: str, database: str) -> tuple[str, str]:
    """The database's commented schema copy (as one shell command) and the SQL to run."""
    lines = text.splitlines()
    start = lines.index(f"-- {database}")
    block = lines[start + 1 :]
    end = next((i for i, line in enumerate(block) if line == ""), len(block))
    block = block[:end]
    copy = " ".join(
        line.removeprefix("--").strip().removesuffix("\\").strip()
        for line in block
        if line.startswith("--") and "createdb" not in line
    )
    sql = "\n".join(line for line in block if not line.startswith("--"))
    return copy, sql


def test_the_printed_recipe_subscribes_a_peer_over_tls(tmp_path: Path) -> None:
    tls = make_tls(daemons.LOOPBACK)
    hba = render_directives(
        [
            ("local", ["all", "all", AUTH]),
            *primary_hba_rules(None, [IPv4Network(f"{daemons.LOOPBACK}/32")]),
        ]
    )
    uploads = {
        HBA_FILE: hba,
        PRIMARY_TLS_CERT_FILE: tls.cert_pem,
        PRIMARY_TLS_KEY_FILE: tls.key_pem,
    }
    args = ["-c", f"hba_file={HBA_FILE}", "-c", f"password_encryption={AUTH}"]
    args += primary_server_args()
    password = "peer-" + secrets.token_hex(8)
    with (
        pg_pair.server(uploads=uploads, server_args=args) as primary,
        pg_pair.server(uploads={CA_UPLOAD: tls.ca_pem}) as peer,
    ):
        pg_pair.make_schema(primary)
        pg_pair.make_publisher(primary, peer_password=password)
        primary.sql("INSERT INTO \"LiteLLM_SpendLogs\" (note) VALUES ('before')", "litellm")
        outputs = {
            "postgresCaCert": tls.ca_pem,
            "postgresPeer": {
                "host": daemons.LOOPBACK,
                "port": primary.daemon.port,
                "user": "peer",
                "databases": list(DATABASES),
                "publication": "ai_swarm",
            },
            "postgresPeerPassword": password,
        }
        ca_path = str(peer.daemon.files[CA_UPLOAD])
        text = peer_text(outputs, show_secrets=True, ca_path=ca_path)
        env = {"PATH": f"{daemons.PG_BIN}:/usr/bin:/bin", "PGUSER": "postgres"}
        env |= {"PGPASSWORD": peer.password, **peer.daemon.client_env()}
        for database in DATABASES:
            peer.sql(f"CREATE DATABASE {database}")
            copy, sql = _recipe_steps(text, database)
            assert copy.startswith("pg_dump --schema-only")
            done = subprocess.run(
                ["sh", "-c", f"set -e; {copy}"],
                env=env,
                capture_output=True,
                text=True,
                timeout=daemons.COMMAND_TIMEOUT_S,
                check=False,
            )
            assert done.returncode == 0, done.stderr
            done = subprocess.run(
                ["psql", "-X", "-v", "ON_ERROR_STOP=1", "-d", "postgres", "-f", "-"],
                input=sql,
                env=env,
                capture_output=True,
                text=True,
                timeout=daemons.COMMAND_TIMEOUT_S,
                check=False,
            )
            assert done.returncode == 0, done.stderr
        pg_pair.wait_for('SELECT note FROM "LiteLLM_SpendLogs"', "before", peer, "litellm")
        primary.sql("INSERT INTO \"user\" VALUES ('u9', 'after')", "openwebui")
        pg_pair.wait_for("SELECT name FROM \"user\" WHERE id = 'u9'", "after", peer, "openwebui")
        # The peer's walsenders: its role, over TLS.
        assert (
            primary.sql(
                "SELECT string_agg(DISTINCT r.usename || ' ' || s.ssl::text, ',') "
                "FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid)"
            )
            == "peer true"
        )
        # The migration bookkeeping's schema stayed home (the peer runs no migrations).
        assert peer.sql("SELECT to_regclass('_prisma_migrations') IS NULL", "litellm") == "t"
