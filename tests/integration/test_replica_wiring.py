"""The replica's wiring as the hosts would run it: the primary's container files on a real
PostgreSQL 15, a verify-full client with the stack's CA, the reconcile steps' scripts with
stand-ins for sudo, systemctl and docker, and their units under `systemd-analyze verify`.

The program runs under mocks with the replica on; its mocked pulumi-tls makes real keys and
certificates (dryrun/tls_mocks.py). The Postgres container's variables, command and uploads
(with each upload's permissions) go to Debian's PostgreSQL 15 set up as the image would; the
upload's owner is the container's user (checked), which is this machine's `postgres` here.
`docker exec` becomes a stand-in that runs the container's shell command as `postgres` with the
container's variables and the variables `-e` names, aimed at the test server. A new address is
not made for the certificate's names: libpq connects to `hostaddr` 127.0.0.1 and checks the
certificate against `host`, as a client of the A1's private or public address would.

What the replication itself does between two servers is tests/integration/test_replication.py.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from components import postgres_replication as wiring
from components import replication
from dryrun.engine import ProgramRun, Registration, run_program
from tests.helpers import installed_files
from tests.integration import daemons, systemd
from tests.integration.rendered import CONTAINER, RenderedContainer
from tests.integration.stand_ins import container_env, run_script, stand_in

COMMAND = "command:remote:Command"
PRIMARY_STEP = "postgres-replication-primary"
SUBSCRIBER_STEP = "postgres-replication-subscriber"
A1_PRIVATE_IP = "10.0.1.10"
PEER_CIDR = "198.51.100.0/28"
HOST_DIRS = ("/usr/local/sbin", "/etc/systemd/system", "/etc/ai-swarm")
TLS_VERSION = "SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
RUNUSER = daemons.require_program("runuser")
WORLD_READABLE = "0644"


@pytest.fixture(scope="module")
def run() -> ProgramRun:
    return run_program(
        overrides={
            "replica": json.dumps({"enabled": True, "externalCidrs": [PEER_CIDR]}),
            "dataVolumeGb": "100",
        }
    )


def _raw_container(run: ProgramRun, name: str) -> Registration:
    [found] = [r for r in run.of_type(CONTAINER) if r.inputs["name"] == name]
    return found


@pytest.fixture(scope="module")
def primary(run: ProgramRun) -> Iterator[daemons.PostgresDaemon]:
    """The primary as its container would start, each upload with its permissions."""
    rendered = RenderedContainer.of(run, "postgres")
    raw = _raw_container(run, "postgres")
    uid = raw.inputs["user"].split(":")[0]
    modes = {}
    for upload in raw.inputs["uploads"]:
        if upload.get("permissions"):
            # Owned by the user the container runs as: `postgres` there, `postgres` here.
            assert upload["owner"] == uid, upload["file"]
        # An upload without permissions of its own is world-readable (components.services.base,
        # `Upload`).
        modes[upload["file"]] = int(upload.get("permissions") or WORLD_READABLE, 8)
    command, *server_args = rendered.command
    assert command == "postgres"
    with daemons.postgres_like_image(
        rendered.envs, rendered.uploads, server_args, modes=modes
    ) as daemon:
        yield daemon


def _ca_file(run: ProgramRun, tmp_path: Path) -> Path:
    path = tmp_path / "ca.crt"
    path.write_text(run.outputs["postgresCaCert"])
    return path


def _verify_full(
    server: daemons.PostgresDaemon,
    host: str,
    ca_file: Path,
    *,
    user: str,
    password: str,
    database: str,
    sql: str = TLS_VERSION,
) -> subprocess.CompletedProcess[str]:
    conninfo = replication.conninfo(host, server.port, database, user, str(ca_file))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PGPASSWORD"] = password
    return subprocess.run(
        [
            "psql",
            "-X",
            "-w",
            "-A",
            "-t",
            "-d",
            f"{conninfo} hostaddr={daemons.LOOPBACK}",
            "-c",
            sql,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=daemons.COMMAND_TIMEOUT_S,
        check=False,
    )


def test_the_primary_serves_tls_13_to_a_verify_full_client_at_both_its_addresses(
    run: ProgramRun, primary: daemons.PostgresDaemon, tmp_path: Path
) -> None:
    envs = RenderedContainer.of(run, "postgres").envs
    ca_file = _ca_file(run, tmp_path)
    superuser = {"user": envs["POSTGRES_USER"], "password": envs["POSTGRES_PASSWORD"]}
    for host in (A1_PRIVATE_IP, run.outputs["publicIp"]):
        done = _verify_full(primary, host, ca_file, database="postgres", **superuser)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "TLSv1.3"
    # An address the certificate does not name is refused by the client.
    done = _verify_full(primary, "10.0.1.99", ca_file, database="postgres", **superuser)
    assert done.returncode != 0
    assert "does not match host name" in done.stderr


# --- the reconcile steps, with stand-ins --------------------------------------------------------


@dataclass(frozen=True)
class Host:
    root: Path
    bin_dir: Path
    systemctl_log: Path
    docker_log: Path

    def at(self, host_path: str) -> Path:
        return self.root / host_path.lstrip("/")

    def retarget(self, text: str) -> str:
        for host_path in HOST_DIRS:
            text = text.replace(host_path, str(self.at(host_path)))
        return text


def _docker_stand_in(host: Host, env: dict[str, str], run_as_postgres: bool) -> None:
    """`docker exec -i -u postgres [-e NAME]... CONTAINER sh -c SCRIPT`: logs the container,
    the names and every argument, then runs SCRIPT (as `postgres`, with the container's
    variables and the named ones from its own environment) or, with `run_as_postgres` false,
    only records the named variables' values."""
    program = f"""#!{sys.executable}
import json, os, sys
args = sys.argv[1:]
assert args[0] == "exec", args
names, i = [], 1
while args[i].startswith("-"):
    if args[i] == "-e":
        names.append(args[i + 1]); i += 2
    elif args[i] == "-u":
        i += 2
    else:
        i += 1
container, script = args[i], args[i + 3]
assert args[i + 1 : i + 3] == ["sh", "-c"], args
passed = {{name: os.environ[name] for name in names}}
with open({str(host.docker_log)!r}, "a") as log:
    log.write(json.dumps({{"container": container, "argv": args, "env": passed}}) + "\\n")
if {run_as_postgres!r}:
    env = {{**{env!r}, **passed, "PATH": os.environ["PATH"]}}
    os.execve({RUNUSER!r}, ["runuser", "-u", "postgres", "--", "sh", "-c", script], env)
"""
    path = host.bin_dir / "docker"
    path.write_text(program)
    path.chmod(0o755)


@pytest.fixture
def host(tmp_path: Path) -> Host:
    made = Host(
        tmp_path / "root", tmp_path / "bin", tmp_path / "systemctl.log", tmp_path / "docker.log"
    )
    for directory in (made.root, made.bin_dir):
        directory.mkdir()
    for host_path in HOST_DIRS:
        made.at(host_path).mkdir(parents=True, exist_ok=True)
    stand_in(made.bin_dir, "sudo", 'exec "$@"')
    # `start <unit>.service` runs its ExecStart with its EnvironmentFile loaded, as systemd does.
    units = made.at("/etc/systemd/system")
    stand_in(
        made.bin_dir,
        "systemctl",
        f"""echo "$*" >>{made.systemctl_log}
[ "$1" = start ] || exit 0
unit={units}/"$2"
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
env_file=$(sed -n 's/^EnvironmentFile=//p' "$unit")
if [ -n "$env_file" ]; then set -a; . "$env_file"; set +a; fi
exec "$exec_start"
""",
    )
    return made


def _step(run: ProgramRun, name: str) -> Registration:
    [found] = [c for c in run.of_type(COMMAND) if c.name == name]
    assert found.inputs["update"] == found.inputs["create"]
    return found


def _run_step(run: ProgramRun, name: str, host: Host, tmp_path: Path) -> str:
    """Run the step's script as the host would, its stdin from the registration; returns the
    stdin it was given."""
    step = _step(run, name)
    stdin = tmp_path / "stdin"
    stdin.write_text(step.inputs["stdin"])
    done = run_script(["bash", "-c", host.retarget(step.inputs["create"])], host.bin_dir, {}, stdin)
    assert done.returncode == 0, done.stdout + done.stderr
    return str(step.inputs["stdin"])


def test_the_primary_step_makes_the_roles_and_the_publication_on_the_real_server(
    run: ProgramRun, primary: daemons.PostgresDaemon, host: Host, tmp_path: Path
) -> None:
    _docker_stand_in(host, container_env(RenderedContainer.of(run, "postgres"), primary), True)
    replicator_password, peer_password = _run_step(run, PRIMARY_STEP, host, tmp_path).split()
    # The publication was reconciled through its unit, and the timer enabled.
    log = host.systemctl_log.read_text().splitlines()
    assert f"enable --now {wiring.PUBLICATION_UNIT}.timer" in log
    assert f"start {wiring.PUBLICATION_UNIT}.service" in log
    ca_file = _ca_file(run, tmp_path)
    for database in replication.DATABASES:
        published = _verify_full(
            primary,
            A1_PRIVATE_IP,
            ca_file,
            user=replication.REPLICATOR,
            password=replicator_password,
            database=database,
            sql=f"SELECT pubname FROM pg_publication WHERE pubname = '{replication.PUBLICATION}'",
        )
        assert published.returncode == 0, published.stderr
        assert published.stdout.strip() == replication.PUBLICATION
    # The peer's role has its own password (admitted from its CIDR only, so not from here).
    roles = primary.psql(
        "SELECT rolname FROM pg_roles WHERE rolreplication AND rolname <> 'postgres' ORDER BY 1",
        user="postgres",
        database="postgres",
        password=RenderedContainer.of(run, "postgres").envs["POSTGRES_PASSWORD"],
        tcp=False,
    )
    assert roles.stdout.split() == sorted([replication.PEER, replication.REPLICATOR])
    assert peer_password != replicator_password
    # No password was ever an argument of a command.
    for line in host.docker_log.read_text().splitlines():
        assert replicator_password not in json.dumps(json.loads(line)["argv"])
        assert peer_password not in json.dumps(json.loads(line)["argv"])


def test_the_subscriber_step_hands_its_unit_the_password_in_a_root_only_file(
    run: ProgramRun, host: Host, tmp_path: Path
) -> None:
    _docker_stand_in(host, {}, False)
    stdin = _run_step(run, SUBSCRIBER_STEP, host, tmp_path)
    password = stdin.strip()
    [call] = [json.loads(line) for line in host.docker_log.read_text().splitlines()]
    assert call["container"] == replication.REPLICA_CONTAINER
    assert call["env"] == {replication.REPLICATOR_PASSWORD_ENV: password}
    assert password not in json.dumps(call["argv"])
    env_file = host.at(wiring.SUBSCRIPTION_ENV_FILE)
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(env_file.parent.stat().st_mode) == 0o700
    assert env_file.stat().st_uid == 0
    # The script run in the replica is the subscriber's reconcile for the A1's private address.
    assert call["argv"][-1] == replication.subscriber_reconcile_script(A1_PRIVATE_IP)
    log = host.systemctl_log.read_text().splitlines()
    assert f"enable --now {wiring.SUBSCRIPTION_UNIT}.timer" in log
    assert log[-1] == f"start {wiring.SUBSCRIPTION_UNIT}.service"


@pytest.mark.parametrize(
    ("step", "unit"),
    [(PRIMARY_STEP, wiring.PUBLICATION_UNIT), (SUBSCRIBER_STEP, wiring.SUBSCRIPTION_UNIT)],
)
def test_the_installed_units_pass_systemd_analyze_verify(
    run: ProgramRun, step: str, unit: str, tmp_path: Path
) -> None:
    root = systemd.systemd_root(tmp_path / "root")
    systemd.docker_stand_in(root)
    files = installed_files(_step(run, step).inputs["create"])
    for path in (
        f"/usr/local/sbin/{unit}",
        f"/etc/systemd/system/{unit}.service",
        f"/etc/systemd/system/{unit}.timer",
    ):
        local = root / path.lstrip("/")
        local.write_text(files[path])
        local.chmod(0o755 if "/sbin/" in path else 0o644)
    verified = systemd.verify(root, f"{unit}.service", f"{unit}.timer")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout + verified.stderr == ""
