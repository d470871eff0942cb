"""LiteLLM 1.88.0's own code against the real PostgreSQL 15 and Redis Sentinel, with the
credentials, pg_hba, ACL users and cache settings the program renders.

- Its schema migrations: the SQL files litellm-proxy-extras ships (what `prisma migrate deploy`
  applies at the proxy's first start), each in order, as the `litellm` role with the URL the
  program gives LiteLLM, into its own database. prisma itself cannot run here: its engines are a
  download at first use, which this machine cannot make, so the virtual-key API stays with the
  recorded-response test (test_litellm_key.py).
- Its Redis cache: `RedisCache`, built by LiteLLM's `get_redis_client`/`_init_redis_sentinel`
  from the rendered `cache_params`, finds the master through the Sentinel and sets and gets a
  key; with a wrong Sentinel password it finds no master.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import yaml

from components.services import litellm as litellm_service
from components.services import redis as redis_service
from dryrun.engine import ProgramRun
from tests.integration import daemons
from tests.integration.rendered import RenderedContainer

LITELLM_PYTHON = daemons.LITELLM_EXECUTABLE.parent / "python"
# Tables the 1.88.0 migrations make (litellm-proxy-extras 0.4.73; REFERENCE.md).
LITELLM_TABLES = 64
MIGRATIONS_TIMEOUT_S = 300


def in_litellm_venv(script: str, *args: str, env: Mapping[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(LITELLM_PYTHON), "-c", script, *args],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "LITELLM_LOCAL_MODEL_COST_MAP": "True", **(env or {})},
        timeout=daemons.LITELLM_START_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


# --- schema migrations --------------------------------------------------------------------------

_MIGRATIONS_DIR = """import pathlib, litellm_proxy_extras
print(pathlib.Path(litellm_proxy_extras.__file__).parent / "migrations")"""


@pytest.fixture(scope="module")
def postgres(program_run: ProgramRun) -> Iterator[daemons.PostgresDaemon]:
    container = RenderedContainer.of(program_run, "postgres")
    command, *server_args = container.command
    assert command == "postgres"
    with daemons.postgres_like_image(container.envs, container.uploads, server_args) as daemon:
        yield daemon


def litellm_login(program_run: ProgramRun) -> tuple[str, str, str]:
    """User, password and database of the DATABASE_URL the program gives LiteLLM."""
    url = urlsplit(RenderedContainer.of(program_run, "litellm").envs["DATABASE_URL"])
    assert url.username and url.password
    return unquote(url.username), unquote(url.password), url.path.lstrip("/")


def migration_files() -> list[Path]:
    root = Path(in_litellm_venv(_MIGRATIONS_DIR).strip())
    return sorted(root.glob("*/migration.sql"))


@pytest.fixture(scope="module")
def migrated(
    program_run: ProgramRun, postgres: daemons.PostgresDaemon
) -> subprocess.CompletedProcess[str]:
    """Every migration, in the order prisma applies them (by directory name), one psql run."""
    user, password, database = litellm_login(program_run)
    files = [arg for path in migration_files() for arg in ("-f", str(path))]
    return subprocess.run(
        [*postgres_psql(postgres, user, database), *files],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "PGPASSWORD": password},
        timeout=MIGRATIONS_TIMEOUT_S,
        check=False,
    )


def postgres_psql(server: daemons.PostgresDaemon, user: str, database: str) -> list[str]:
    return [
        "psql", "-X", "-w", "-q", "-v", "ON_ERROR_STOP=1",
        "-h", daemons.LOOPBACK, "-p", str(server.port), "-U", user, "-d", database,
    ]  # fmt: skip


def test_litellms_migrations_apply_as_its_role_in_its_database(
    program_run: ProgramRun,
    postgres: daemons.PostgresDaemon,
    migrated: subprocess.CompletedProcess[str],
) -> None:
    assert migration_files(), "litellm-proxy-extras ships no migration"
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    user, password, database = litellm_login(program_run)
    assert database == litellm_service.DATABASE
    owners = postgres.psql(
        "SELECT tableowner, count(*) FROM pg_tables WHERE schemaname = 'public' "
        "GROUP BY tableowner",
        user=user,
        database=database,
        password=password,
    )
    assert owners.returncode == 0, owners.stderr
    assert owners.stdout.strip() == f"{user}|{LITELLM_TABLES}"


def test_the_keys_table_takes_a_row_as_litellm(
    program_run: ProgramRun,
    postgres: daemons.PostgresDaemon,
    migrated: subprocess.CompletedProcess[str],
) -> None:
    """What the proxy writes for a virtual key (hashed token, alias), written as its role."""
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    user, password, database = litellm_login(program_run)
    done = postgres.psql(
        'INSERT INTO "LiteLLM_VerificationToken" (token, key_alias) '
        "VALUES ('hashed-integration-token', 'open-webui') RETURNING key_alias",
        user=user,
        database=database,
        password=password,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[0] == "open-webui"


# --- the Redis cache through Sentinel -----------------------------------------------------------

# LiteLLM's own cache class from the rendered `cache_params` (`type` picks the class and is no
# argument of it); `os.environ/REDIS_PASSWORD` is resolved from the environment as the proxy
# does.
_CACHE = """import json, sys
from litellm.caching.redis_cache import RedisCache
params = json.loads(sys.argv[1])
params.pop("type")
cache = RedisCache(**params)
# Under the cache's namespace, if the settings give one, as LiteLLM's own keys are.
key = cache.check_and_fix_namespace("ai-swarm-integration")
cache.redis_client.set(key, "stored by litellm")
print(json.dumps([key, cache.redis_client.get(key).decode()]))
"""


def cache_params(program_run: ProgramRun, sentinel_port: int) -> dict[str, Any]:
    """The rendered cache settings, the Sentinel moved to the test's one."""
    container = RenderedContainer.of(program_run, "litellm")
    config = yaml.safe_load(container.upload(litellm_service.CONFIG_FILE))
    params: dict[str, Any] = dict(config["litellm_settings"]["cache_params"])
    assert params["sentinel_nodes"] == [[redis_service.SENTINEL_HOST, redis_service.SENTINEL_PORT]]
    params["sentinel_nodes"] = [[daemons.LOOPBACK, sentinel_port]]
    return params


def redis_env(program_run: ProgramRun) -> dict[str, str]:
    return {"REDIS_PASSWORD": RenderedContainer.of(program_run, "litellm").envs["REDIS_PASSWORD"]}


def test_litellms_cache_finds_the_master_through_sentinel_and_sets_and_gets(
    program_run: ProgramRun, sentinel: daemons.RedisDaemon, redis_master: daemons.RedisDaemon
) -> None:
    params = cache_params(program_run, sentinel.port)
    out = in_litellm_venv(_CACHE, json.dumps(params), env=redis_env(program_run))
    key, value = json.loads(out.strip().splitlines()[-1])
    assert value == "stored by litellm"
    assert redis_master.cli("GET", key) == "stored by litellm"


def test_a_wrong_sentinel_password_finds_no_master(
    program_run: ProgramRun, sentinel: daemons.RedisDaemon
) -> None:
    params = {**cache_params(program_run, sentinel.port), "sentinel_password": "not-the-password"}
    done = subprocess.run(
        [str(LITELLM_PYTHON), "-c", _CACHE, json.dumps(params)],
        capture_output=True,
        text=True,
        env={
            "PATH": "/usr/bin:/bin",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            **redis_env(program_run),
        },
        timeout=daemons.LITELLM_START_TIMEOUT_S,
        check=False,
    )
    assert done.returncode != 0
    assert "MasterNotFoundError" in done.stderr
