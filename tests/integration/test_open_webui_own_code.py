"""Open WebUI 0.6.18's own code (its PyPI wheel, in .venv-openwebui) against the real
PostgreSQL 15 and Redis, with the pg_hba, roles, passwords, redis.conf and ACL users the program
renders and the DATABASE_URL and REDIS_URL it gives the container (only the host and port move
to the test's daemons).

- Its migrations, in the order its start runs them: importing `open_webui.internal.db` applies
  the peewee migrations, then Alembic upgrades to head as `open_webui.config.run_migrations`
  does (that function logs and swallows a failure; here a failure fails the test). They run as
  the `openwebui` role and make its tables in its own database; the same role cannot open
  LiteLLM's database.
- Its Redis helper (`open_webui.utils.redis.get_redis_connection`) reads and writes keys under
  its prefix, and publishes and receives on the channel python-socketio's Redis manager uses;
  a command the ACL denies it fails.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from components.services import litellm as litellm_service
from components.services import open_webui as open_webui_service
from dryrun.engine import PROJECT_DIR, ProgramRun
from tests.integration import daemons
from tests.integration.rendered import RenderedContainer

OPENWEBUI_PYTHON = PROJECT_DIR / ".venv-openwebui/bin/python"
# The tables 0.6.18 makes, besides the migration bookkeeping (REFERENCE.md: 24 in all).
OPENWEBUI_TABLES = {"auth", "chat", "user", "file", "function", "model", "tool", "memory"}
BOOKKEEPING = {"alembic_version", "migratehistory"}
# python-socketio's AsyncRedisManager default channel, which Open WebUI's websocket manager uses.
SOCKETIO_CHANNEL = "socketio"
# Outside its ACL user's rules (`-@dangerous`): it must not empty the keyspace LiteLLM shares.
DENIED_COMMAND = ("FLUSHALL",)
RUN_TIMEOUT_S = 120


def moved(url: str, port: int, database: str | None = None) -> str:
    """`url` with its host moved to loopback:`port` (and its database replaced)."""
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    path = parts.path if database is None else f"/{database}"
    return urlunsplit(parts._replace(netloc=f"{credentials}@{daemons.LOOPBACK}:{port}", path=path))


def run_open_webui(
    script: str, env: Mapping[str, str], workdir: Path, args: Sequence[str] = ()
) -> subprocess.CompletedProcess[str]:
    """`script` (with `args`) in Open WebUI's environment, its data directory in `workdir`."""
    python = daemons.require_program(OPENWEBUI_PYTHON)
    return subprocess.run(
        [python, "-W", "ignore", "-c", script, *args],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(workdir), "DATA_DIR": str(workdir), **env},
        cwd=workdir,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )


@pytest.fixture(scope="module")
def container(program_run: ProgramRun) -> RenderedContainer:
    return RenderedContainer.of(program_run, "open-webui")


# --- migrations ---------------------------------------------------------------------------------

_MIGRATE = """import open_webui.internal.db  # the peewee migrations run on import
from alembic import command
from alembic.config import Config
from open_webui.env import OPEN_WEBUI_DIR
config = Config(OPEN_WEBUI_DIR / "alembic.ini")
config.set_main_option("script_location", str(OPEN_WEBUI_DIR / "migrations"))
command.upgrade(config, "head")
print("migrated")
"""

_CONNECT = """import os, psycopg2
psycopg2.connect(os.environ["DATABASE_URL"]).close()
"""


@pytest.fixture(scope="module")
def postgres(program_run: ProgramRun) -> Iterator[daemons.PostgresDaemon]:
    server = RenderedContainer.of(program_run, "postgres")
    command, *server_args = server.command
    assert command == "postgres"
    with daemons.postgres_like_image(server.envs, server.uploads, server_args) as daemon:
        yield daemon


@pytest.fixture(scope="module")
def migrated(
    container: RenderedContainer,
    postgres: daemons.PostgresDaemon,
    tmp_path_factory: pytest.TempPathFactory,
) -> subprocess.CompletedProcess[str]:
    url = moved(container.envs["DATABASE_URL"], postgres.port)
    return run_open_webui(_MIGRATE, {"DATABASE_URL": url}, tmp_path_factory.mktemp("owui"))


def owned_tables(server: daemons.PostgresDaemon, container: RenderedContainer) -> dict[str, str]:
    url = urlsplit(container.envs["DATABASE_URL"])
    assert url.username and url.password
    done = server.psql(
        "SELECT tablename, tableowner FROM pg_tables WHERE schemaname = 'public'",
        user=url.username,
        database=url.path.lstrip("/"),
        password=url.password,
    )
    assert done.returncode == 0, done.stderr
    return dict(line.split("|") for line in done.stdout.split())


def test_its_migrations_run_to_the_end_as_its_role_in_its_database(
    container: RenderedContainer,
    postgres: daemons.PostgresDaemon,
    migrated: subprocess.CompletedProcess[str],
) -> None:
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    assert migrated.stdout.strip().endswith("migrated")
    assert urlsplit(container.envs["DATABASE_URL"]).path == f"/{open_webui_service.DATABASE}"
    tables = owned_tables(postgres, container)
    assert set(tables) >= OPENWEBUI_TABLES | BOOKKEEPING
    assert set(tables.values()) == {urlsplit(container.envs["DATABASE_URL"]).username}


def test_its_role_cannot_open_litellms_database(
    container: RenderedContainer,
    postgres: daemons.PostgresDaemon,
    tmp_path: Path,
) -> None:
    own = moved(container.envs["DATABASE_URL"], postgres.port)
    assert run_open_webui(_CONNECT, {"DATABASE_URL": own}, tmp_path).returncode == 0
    other = moved(container.envs["DATABASE_URL"], postgres.port, litellm_service.DATABASE)
    done = run_open_webui(_CONNECT, {"DATABASE_URL": other}, tmp_path)
    assert done.returncode != 0
    assert "no pg_hba.conf entry" in done.stderr or "permission denied" in done.stderr


# --- Redis --------------------------------------------------------------------------------------

_REDIS = """import json, os, sys
from open_webui.env import REDIS_KEY_PREFIX
from open_webui.utils.redis import get_redis_connection
redis = get_redis_connection(os.environ["REDIS_URL"], [])
key = f"{REDIS_KEY_PREFIX}:integration"
out = {"set": redis.set(key, "written by open-webui"), "get": redis.get(key)}
redis.hset(f"{key}:pool", "sid", "user"); out["hget"] = redis.hget(f"{key}:pool", "sid")
listener = redis.pubsub()
listener.subscribe(sys.argv[1])
listener.get_message(timeout=5)  # the subscribe confirmation
out["receivers"] = redis.publish(sys.argv[1], "event")
message = listener.get_message(timeout=5)
out["message"] = message and message["data"]
try:
    redis.execute_command(*sys.argv[2:])
    out["denied"] = None
except Exception as error:
    out["denied"] = type(error).__name__ + ": " + str(error)
print(json.dumps(out))
"""


def test_its_redis_helper_reads_writes_and_uses_pub_sub_and_the_acl_denies_the_rest(
    container: RenderedContainer, redis_master: daemons.RedisDaemon, tmp_path: Path
) -> None:
    # Every Redis setting the container gets (its key prefix among them), the URL moved here.
    env = {k: v for k, v in container.envs.items() if k.startswith("REDIS_")}
    env["REDIS_URL"] = moved(container.envs["REDIS_URL"], redis_master.port)
    done = run_open_webui(_REDIS, env, tmp_path, [SOCKETIO_CHANNEL, *DENIED_COMMAND])
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["set"] is True
    assert seen["get"] == "written by open-webui"
    assert seen["hget"] == "user"
    assert seen["receivers"] == 1
    assert seen["message"] == "event"
    assert seen["denied"] is not None and "NoPermissionError" in seen["denied"]
