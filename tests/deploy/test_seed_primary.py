"""`seed-primary` on real PostgreSQL 15 servers: a primary with a subscribed replica is lost, a
new, empty primary takes its place (same address, the applications' schema and migration rows,
the publication), and the verb seeds it from the replica through the hosts' shells."""

from __future__ import annotations

import argparse
import contextlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from rich.console import Console

from components.replication import subscription_name
from deploy.cli import build_parser
from deploy.ports import OperatorError
from deploy.recovery import WRITERS, SeedHosts, seed_primary
from tests.deploy import pg_pair
from tests.deploy.test_cli import run_module

SPEND = '"LiteLLM_SpendLogs"'


@dataclass(frozen=True)
class Scene:
    replica: pg_pair.Server
    primary: pg_pair.Server  # the new one
    primary_shell: pg_pair.ContainerShell
    replica_shell: pg_pair.ContainerShell

    @property
    def hosts(self) -> SeedHosts:
        return SeedHosts(self.primary_shell, self.replica_shell, WRITERS)


@pytest.fixture
def scene(tmp_path: Path) -> Iterator[Scene]:
    with contextlib.ExitStack() as kept:
        replica = kept.enter_context(pg_pair.server())
        with pg_pair.server() as old:
            for target in (old, replica):
                pg_pair.make_schema(target)
            pg_pair.make_publisher(old)
            old.sql(
                f"INSERT INTO {SPEND} (note) SELECT 'row ' || n FROM generate_series(1, 5) n; "
                f"DELETE FROM {SPEND} WHERE id = 2; "
                "INSERT INTO _prisma_migrations VALUES ('m1', 'init')",
                "litellm",
            )
            old.sql(
                "INSERT INTO \"user\" VALUES ('u1', 'Ada'), ('u2', 'Grace'); "
                "INSERT INTO chat (user_id, title) VALUES ('u1', 'a'), ('u2', 'b'), ('u1', 'c'); "
                "INSERT INTO alembic_version VALUES ('old-head')",
                "openwebui",
            )
            pg_pair.subscribe(replica, old.daemon.port)
            pg_pair.wait_streaming(old, replica)
            pg_pair.wait_for(f"SELECT count(*) FROM {SPEND}", "4", replica, "litellm")
            pg_pair.wait_for("SELECT count(*) FROM chat", "3", replica, "openwebui")
            port = old.daemon.port
        # The old primary and its data directory are gone. Migration bookkeeping is never
        # published: a row only the replica has must not reach the new primary.
        replica.sql("INSERT INTO alembic_version VALUES ('replica-only')", "openwebui")
        primary = kept.enter_context(pg_pair.server(port=port))
        pg_pair.make_schema(primary)
        pg_pair.make_publisher(primary)
        primary.sql("INSERT INTO _prisma_migrations VALUES ('m1', 'init')", "litellm")
        primary.sql("INSERT INTO alembic_version VALUES ('new-head')", "openwebui")
        yield Scene(
            replica,
            primary,
            pg_pair.primary_shell(tmp_path, primary),
            pg_pair.replica_shell(tmp_path, replica),
        )


def _returned(server: pg_pair.Server, insert: str, database: str) -> str:
    """The RETURNING value (psql prints the command tag after it)."""
    return server.sql(insert, database).splitlines()[0]


def _args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["seed-primary", *argv])


def _seed(scene: Scene, *argv: str, answer: bool = True) -> tuple[int, str, list[str]]:
    out = io.StringIO()
    asked: list[str] = []

    def confirm(question: str) -> bool:
        asked.append(question)
        return answer

    code = seed_primary(
        _args(*argv), scene.hosts, Console(file=out, width=200, color_system=None), confirm
    )
    return code, out.getvalue(), asked


def test_the_new_primary_gets_the_rows_sequences_ahead_and_replicates_again(
    scene: Scene,
) -> None:
    code, text, asked = _seed(scene)
    assert code == 0, text
    assert asked == ["Seed the primary from the replica?"]
    primary, replica = scene.primary, scene.replica
    assert primary.sql(
        f"SELECT string_agg(id || ':' || note, ',' ORDER BY id) FROM {SPEND}", "litellm"
    ) == ("1:row 1,3:row 3,4:row 4,5:row 5")
    assert primary.sql("SELECT count(*) FROM chat", "openwebui") == "3"
    assert (
        primary.sql("SELECT string_agg(id, ',' ORDER BY id) FROM \"user\"", "openwebui") == "u1,u2"
    )
    # The new primary's own migration rows, untouched.
    assert primary.sql("SELECT version_num FROM alembic_version", "openwebui") == "new-head"
    # Sequences were stale on the replica (never replicated): new rows take the next ids.
    assert (
        _returned(primary, f"INSERT INTO {SPEND} (note) VALUES ('after') RETURNING id", "litellm")
        == "6"
    )
    assert (
        _returned(
            primary,
            "INSERT INTO chat (user_id, title) VALUES ('u2', 'd') RETURNING id",
            "openwebui",
        )
        == "4"
    )
    # New writes reach the replica through its new subscriptions.
    pg_pair.wait_for(f"SELECT note FROM {SPEND} WHERE id = 6", "after", replica, "litellm")
    pg_pair.wait_for("SELECT title FROM chat WHERE id = 4", "d", replica, "openwebui")
    for database in ("litellm", "openwebui"):
        name = subscription_name(database)
        assert (
            replica.sql(
                "SELECT subname || ' ' || subslotname || ' ' || subenabled FROM pg_subscription "
                "WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
                database,
            )
            == f"{name} {name} true"
        )
    assert primary.sql(
        "SELECT string_agg(slot_name, ',' ORDER BY slot_name) FROM pg_replication_slots"
    ) == ",".join(subscription_name(db) for db in ("litellm", "openwebui"))
    assert scene.primary_shell.docker_calls == [
        "docker stop litellm open-webui",
        "docker start litellm open-webui",
    ]
    assert 'litellm: rows restored; sequences public."LiteLLM_SpendLogs_id_seq" = 5' in text


def test_a_primary_with_rows_is_refused_declined_or_overwritten(scene: Scene) -> None:
    primary, replica = scene.primary, scene.replica
    primary.sql(f"INSERT INTO {SPEND} (note) VALUES ('written at first start')", "litellm")
    with pytest.raises(
        OperatorError,
        match=r'the primary is not empty: litellm: public\."LiteLLM_SpendLogs" \(1 rows\)',
    ):
        _seed(scene, "--yes")
    code, text, asked = _seed(scene, "--overwrite", answer=False)
    assert code == 1 and len(asked) == 1 and "nothing changed" in text
    assert "(replacing the primary's rows)" in text
    assert scene.primary_shell.docker_calls == []
    assert primary.sql(f"SELECT note FROM {SPEND}", "litellm") == "written at first start"
    assert replica.sql("SELECT count(*) FROM pg_subscription") == "2"
    code, text, asked = _seed(scene, "--overwrite", "--yes")
    assert code == 0 and asked == [], text
    assert primary.sql(f"SELECT count(*) FROM {SPEND} WHERE note LIKE 'row %'", "litellm") == "4"
    assert primary.sql(f"SELECT count(*) FROM {SPEND}", "litellm") == "4"


def test_a_primary_without_the_schema_or_the_publication_or_already_followed_is_refused(
    scene: Scene,
) -> None:
    primary = scene.primary
    primary.sql("ALTER TABLE chat RENAME TO chat_elsewhere", "openwebui")
    with pytest.raises(
        OperatorError, match=r"lacks table\(s\) the replica has: openwebui\.public\.chat;"
    ):
        _seed(scene, "--yes")
    primary.sql("ALTER TABLE chat_elsewhere RENAME TO chat; DROP PUBLICATION ai_swarm", "openwebui")
    with pytest.raises(OperatorError, match="no publication ai_swarm with tables in openwebui"):
        _seed(scene, "--yes")
    pg_pair.make_publisher(primary)
    # The replica's reconcile got to the new primary first (it made its slot there).
    primary.sql("SELECT pg_create_logical_replication_slot('ai_swarm_litellm', 'pgoutput')")
    with pytest.raises(
        OperatorError, match=r"already subscribes to the new primary \(slots ai_swarm_litellm\)"
    ):
        _seed(scene, "--yes")
    assert scene.primary_shell.docker_calls == []


def test_the_verb_has_help_and_needs_the_pulumi_cli(tmp_path: Path) -> None:
    shown = run_module("seed-primary", "--help", tmp_path=tmp_path)
    assert shown.returncode == 0, shown.stderr
    for flag in ("--overwrite", "--yes", "--stack"):
        assert flag in shown.stdout
    done = run_module("seed-primary", "--yes", tmp_path=tmp_path)
    assert done.returncode == 1
    assert "Pulumi CLI is not installed" in done.stdout and "Traceback" not in done.stderr
