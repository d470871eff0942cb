"""The off-site uploader as installed by the program, run against real dumps of PostgreSQL 15 and
the real `age`, with a stand-in `oci` CLI at its seam.

The stand-in keeps the bucket as a directory, records every call, answers `os object list` in
the CLI's own JSON shape (oci-cli 3.89.3 `render`: `{"data": [...], "prefixes": []}`, and no
`data` at all for an empty bucket) and fails a put on demand. The install script runs with
`/mnt/data`, `/etc`, `/opt` and `/usr/local/sbin` moved under a temporary root and `sudo`,
`apt-get`, `python3 -m venv` and `systemctl` as stand-ins.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from components import backups, offsite
from components.config import BackupSchedule
from components.host import DATA_ROOT
from dryrun.engine import ProgramRun
from tests.integration import daemons
from tests.integration.rendered import RenderedContainer
from tests.integration.stand_ins import container_env, run_script, stand_in
from tests.test_backups import BAD_AGE_KEYS, GOOD_AGE_KEYS

COMMAND = "command:remote:Command"
TIMEOUT_S = 60
MOVED = (DATA_ROOT, "/etc", "/opt", "/usr/local/sbin")

FAKE_OCI = f"""#!{sys.executable}
import json, os, shutil, sys
from pathlib import Path

args = sys.argv[1:]
with open(os.environ["FAKE_OCI_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
if args == ["--version"]:
    print("{offsite.OCI_CLI_VERSION}")
    sys.exit(0)
if args[:2] != ["--auth", "instance_principal"]:
    sys.exit("stand-in oci: not the instance principal")
command, rest = args[2:5], args[5:]
options = {{}}
while rest:
    flag = rest.pop(0)
    options[flag] = rest.pop(0) if rest and not rest[0].startswith("--") else True
bucket = Path(os.environ["FAKE_OCI_BUCKET"])
if command == ["os", "object", "list"]:
    claimed = json.loads(os.environ.get("FAKE_OCI_CLAIMED", "{{}}"))
    stored = [p for p in bucket.rglob("*") if p.is_file()]
    found = {{str(p.relative_to(bucket)): p.stat().st_size for p in stored}}
    found.update(claimed)
    listing = {{"prefixes": []}}
    if found:
        listing["data"] = [{{"name": n, "size": s}} for n, s in sorted(found.items())]
    print(json.dumps(listing, indent=4))
elif command == ["os", "object", "put"]:
    if os.environ.get("FAKE_OCI_FAIL_PUT"):
        sys.exit("ServiceError: status 503, InternalServerError (stand-in failure)")
    target = bucket / options["--name"]
    if target.exists():
        sys.exit("ServiceError: status 409: the host may not overwrite an object")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(options["--file"], target)
    print(json.dumps({{"etag": "stand-in"}}))
else:
    sys.exit(f"stand-in oci: {{command}} is not offered")
"""


@dataclass(frozen=True)
class Host:
    root: Path
    bin_dir: Path
    bucket: Path
    oci_log: Path
    calls_log: Path

    def at(self, host_path: str) -> Path:
        return self.root / host_path.lstrip("/")

    def retarget(self, text: str) -> str:
        for host_path in MOVED:
            text = text.replace(f"{host_path}/", f"{self.at(host_path)}/")
        return text

    @property
    def dump_dir(self) -> Path:
        return self.at(backups.DUMP_DIR)

    def oci_calls(self) -> list[list[str]]:
        if not self.oci_log.exists():
            return []
        return [json.loads(line) for line in self.oci_log.read_text().splitlines()]

    def objects(self) -> dict[str, bytes]:
        return {
            str(p.relative_to(self.bucket)): p.read_bytes()
            for p in self.bucket.rglob("*")
            if p.is_file()
        }


@pytest.fixture
def host(tmp_path: Path) -> Host:
    made = Host(
        tmp_path / "root", tmp_path / "bin", tmp_path / "bucket", tmp_path / "oci.log",
        tmp_path / "calls.log",
    )  # fmt: skip
    for directory in (made.bin_dir, made.bucket, made.root):
        directory.mkdir()
    for host_path in (*MOVED, backups.SYSTEMD_DIR, backups.DUMP_DIR):
        made.at(host_path).mkdir(parents=True, exist_ok=True)
    stand_in(made.bin_dir, "sudo", 'exec "$@"')
    for name in ("apt-get", "systemctl", "env"):
        stand_in(made.bin_dir, name, f'echo "{name} $*" >>{made.calls_log}')
    # `python3 -m venv DIR` makes DIR/bin/pip, whose `install` puts the stand-in CLI there.
    cli = made.bin_dir / "oci-stand-in"
    cli.write_text(FAKE_OCI)
    cli.chmod(0o755)
    stand_in(
        made.bin_dir,
        "python3",
        f'echo "python3 $*" >>{made.calls_log}; mkdir -p "$3/bin"; printf '
        f'\'#!/bin/sh\\necho "pip $*" >>{made.calls_log}; cp {cli} "$(dirname "$0")/oci"\\n\' '
        '>"$3/bin/pip"; chmod +x "$3/bin/pip"',
    )
    return made


def _install_script(run: ProgramRun) -> str:
    [installer] = [c for c in run.of_type(COMMAND) if c.name == "offsite-uploader"]
    assert installer.inputs["update"] == installer.inputs["create"]
    return str(installer.inputs["create"])


def _run(
    argv: list[str], host: Host, env: Mapping[str, str] = {}, stdin: Path | None = None
) -> subprocess.CompletedProcess[str]:
    fake_oci = {"FAKE_OCI_LOG": str(host.oci_log), "FAKE_OCI_BUCKET": str(host.bucket)}
    return run_script(argv, host.bin_dir, {**fake_oci, **env}, stdin)


def _install(run: ProgramRun, host: Host) -> subprocess.CompletedProcess[str]:
    # `sudo env DEBIAN_FRONTEND=... apt-get` reaches the `env` stand-in, which records it.
    return _run(["bash", "-c", host.retarget(_install_script(run))], host)


@pytest.fixture
def installed(program_run: ProgramRun, host: Host) -> Path:
    done = _install(program_run, host)
    assert done.returncode == 0, done.stderr
    return host.at(offsite.UPLOAD_SCRIPT_PATH)


def _unit_env(host: Host, **changed: str) -> dict[str, str]:
    """The unit's environment: the env file as installed (retargeted), the unit's PATH."""
    text = host.at(offsite.ENV_FILE).read_text()
    env = dict(line.split("=", 1) for line in text.splitlines())
    path = host.retarget(offsite.UNIT_PATH + ":")
    return {**env, "PATH": f"{path}/usr/bin:/bin", **changed}


def _upload(installed: Path, host: Host, **env: str) -> subprocess.CompletedProcess[str]:
    # The stand-in CLI is at the unit's PATH, where the install's pip put it.
    return _run([str(installed)], host, _unit_env(host, **env))


def _puts(host: Host) -> list[str]:
    return [c[c.index("--name") + 1] for c in host.oci_calls() if c[2:5] == ["os", "object", "put"]]


# --- the install and the unit -------------------------------------------------------------------


def test_install_script_passes_shellcheck(program_run: ProgramRun, tmp_path: Path) -> None:
    done = daemons.shellcheck(_install_script(program_run), "bash", tmp_path / "install")
    assert done.returncode == 0, done.stdout


def test_install_makes_the_pinned_cli_once_writes_the_files_and_enables_the_unit(
    program_run: ProgramRun, host: Host
) -> None:
    for _ in range(2):
        done = _install(program_run, host)
        assert done.returncode == 0, done.stderr
    venv = host.at(offsite.OCI_CLI_VENV)
    calls = host.calls_log.read_text().splitlines()
    apt = (
        "env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y "
        "--no-install-recommends age python3-venv"
    )
    assert calls == [
        apt,
        f"python3 -m venv {venv}",
        f"pip install --quiet oci-cli=={offsite.OCI_CLI_VERSION}",
        "systemctl daemon-reload",
        "systemctl enable ai-swarm-offsite-upload.service",
        apt,  # the second run finds the pinned CLI and makes no new venv
        "systemctl daemon-reload",
        "systemctl enable ai-swarm-offsite-upload.service",
    ]
    env = host.at(offsite.ENV_FILE).read_text()
    assert "OFFSITE_BUCKET=ai-swarm-oracle-pg-dumps\n" in env
    assert "OFFSITE_NAMESPACE=dryrunnamespace\n" in env
    assert "OFFSITE_LIMIT_BYTES=20000000000\n" in env
    assert "OFFSITE_DAYS=14\n" in env
    script = host.at(offsite.UPLOAD_SCRIPT_PATH)
    assert stat.S_IMODE(script.stat().st_mode) == 0o755
    assert script.read_text() == offsite.UPLOAD_SCRIPT


def test_the_unit_passes_systemd_analyze_verify(
    installed: Path, host: Host, tmp_path: Path
) -> None:
    units = host.at(backups.SYSTEMD_DIR)
    # The dump units the upload unit names, as their own install writes them.
    for file in backups.dump_files(BackupSchedule()):
        host.at(file.path).write_text(host.retarget(file.content))
        host.at(file.path).chmod(int(file.mode, 8))
    docker_units = tmp_path / "docker-units"
    docker_units.mkdir()
    (docker_units / "docker.service").write_text(
        "[Unit]\nDescription=stand-in for Docker's unit\n\n[Service]\nExecStart=/bin/true\n"
    )
    done = daemons.systemd_verify(
        [units / f"{offsite.UPLOAD_UNIT}.service", units / f"{backups.DUMP_UNIT}.service"],
        [units, docker_units],
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout + done.stderr == ""


# --- dumps of the real server -------------------------------------------------------------------


@pytest.fixture(scope="module")
def container(program_run: ProgramRun) -> RenderedContainer:
    return RenderedContainer.of(program_run, "postgres")


@pytest.fixture(scope="module")
def server(container: RenderedContainer) -> Iterator[daemons.PostgresDaemon]:
    _command, *server_args = container.command
    with daemons.postgres_like_image(container.envs, container.uploads, server_args) as daemon:
        yield daemon


def _stamp(seconds_ago: float = 0) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() - seconds_ago))


def _dump(
    host: Host, container: RenderedContainer, server: daemons.PostgresDaemon, db: str, stamp: str
) -> Path:
    """One dump as the dump script takes it (its pg_dump command, in the container's shell)."""
    target = host.dump_dir / f"{db}-{stamp}.dump"
    one = backups._DUMP_ONE
    with target.open("wb") as out:
        subprocess.run(
            ["sh", "-c", one, "sh", db],
            stdout=out,
            env={"PATH": f"{daemons.PG_BIN}:/usr/bin:/bin", **container_env(container, server)},
            timeout=TIMEOUT_S,
            check=True,
        )
    target.chmod(0o600)
    return target


def _sql(server: daemons.PostgresDaemon, container: RenderedContainer, sql: str, db: str) -> str:
    done = server.psql(
        sql,
        user=container.envs["POSTGRES_USER"],
        database=db,
        password=container.envs["POSTGRES_PASSWORD"],
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _identity(tmp_path: Path) -> tuple[Path, str]:
    key = tmp_path / "operator.key"
    done = subprocess.run(
        ["age-keygen", "-o", str(key)], capture_output=True, text=True, check=True
    )
    recipient = done.stderr.strip().rsplit(" ", 1)[1]
    return key, recipient


def test_dump_encrypt_upload_download_decrypt_restore(
    installed: Path,
    host: Host,
    container: RenderedContainer,
    server: daemons.PostgresDaemon,
    tmp_path: Path,
) -> None:
    daemons.require_program("age")
    daemons.record_version("age", ["age", "--version"])
    _sql(server, container, "CREATE DATABASE notes", "postgres")
    try:
        _sql(server, container, "CREATE TABLE note (id int, body text)", "notes")
        _sql(server, container, "INSERT INTO note VALUES (1, 'kept'), (2, 'off-site')", "notes")
        stamp = _stamp()
        dump = _dump(host, container, server, "notes", stamp)
        original = dump.read_bytes()
        key, recipient = _identity(tmp_path)

        done = _upload(installed, host, OFFSITE_AGE_RECIPIENT=recipient)
        assert done.returncode == 0, done.stderr
        name = f"postgres/notes-{stamp}.dump.age"
        assert _puts(host) == [name], done.stderr
        stored = host.objects()[name]
        assert stored.startswith(b"age-encryption.org/v1\n")
        assert original not in stored and b"off-site" not in stored
        assert dump.read_bytes() == original  # the local dump is kept as it was
        staging = host.at(offsite.STAGING_DIR)
        assert list(staging.iterdir()) == []  # no clear or encrypted copy left behind
        assert stat.S_IMODE(staging.stat().st_mode) == 0o700

        # The operator's side: the object, decrypted with the identity, restored.
        downloaded = tmp_path / "downloaded.age"
        downloaded.write_bytes(stored)
        clear = tmp_path / "restored.dump"
        subprocess.run(
            ["age", "--decrypt", "-i", str(key), "-o", str(clear), str(downloaded)], check=True
        )
        assert clear.read_bytes() == original
        _sql(server, container, "DROP DATABASE notes", "postgres")
        restored = _run(
            ["sh", "-c", backups.RESTORE_IN_CONTAINER],
            host,
            container_env(container, server),
            stdin=clear,
        )
        assert restored.returncode == 0, restored.stderr
        rows = _sql(
            server, container, "SELECT string_agg(body, ',' ORDER BY id) FROM note", "notes"
        )
        assert rows == "kept,off-site"

        # The next run finds it there: one listing, no second put, nothing overwritten.
        again = _upload(installed, host, OFFSITE_AGE_RECIPIENT=recipient)
        assert again.returncode == 0, again.stderr
        assert _puts(host) == [name]
    finally:
        _sql(server, container, "DROP DATABASE IF EXISTS notes", "postgres")


def test_without_a_recipient_the_dump_goes_as_it_is(
    installed: Path, host: Host, container: RenderedContainer, server: daemons.PostgresDaemon
) -> None:
    stamp = _stamp()
    dump = _dump(host, container, server, "postgres", stamp)
    done = _upload(installed, host)
    assert done.returncode == 0, done.stderr
    assert host.objects() == {f"postgres/postgres-{stamp}.dump": dump.read_bytes()}
    for call in host.oci_calls():
        assert call[:2] == ["--auth", "instance_principal"]


def test_a_failed_upload_keeps_the_dump_fails_and_is_retried(
    installed: Path, host: Host, container: RenderedContainer, server: daemons.PostgresDaemon
) -> None:
    stamp = _stamp()
    dump = _dump(host, container, server, "postgres", stamp)
    failed = _upload(installed, host, FAKE_OCI_FAIL_PUT="1")
    assert failed.returncode == 1
    assert "InternalServerError" in failed.stderr
    assert "the local dump is kept and tried again next run" in failed.stderr
    assert dump.exists() and host.objects() == {}
    retried = _upload(installed, host)
    assert retried.returncode == 0, retried.stderr
    assert list(host.objects()) == [f"postgres/postgres-{stamp}.dump"]


def test_the_bucket_never_passes_the_free_20_gb(
    installed: Path, host: Host, container: RenderedContainer, server: daemons.PostgresDaemon
) -> None:
    older = _dump(host, container, server, "postgres", _stamp(3 * 86_400))
    newer = _dump(host, container, server, "postgres", _stamp())
    # What the bucket already holds, as its listing claims: room for the newer dump exactly.
    held = offsite.FREE_OBJECT_STORAGE_BYTES - newer.stat().st_size
    refused = _upload(installed, host, FAKE_OCI_CLAIMED=json.dumps({"postgres/old.dump": held}))
    assert refused.returncode == 1
    assert (
        f"{offsite.OBJECT_PREFIX}{older.name}: refused: the bucket holds "
        f"{offsite.FREE_OBJECT_STORAGE_BYTES} bytes and would hold "
        f"{offsite.FREE_OBJECT_STORAGE_BYTES + older.stat().st_size}, over the "
        f"{offsite.FREE_OBJECT_STORAGE_BYTES} bytes of the free allowance"
    ) in refused.stderr
    # The newest went first, up to the allowance exactly; the older one stays local only.
    assert list(host.objects()) == [f"postgres/{newer.name}"]
    assert older.exists()


def test_a_dump_older_than_the_bucket_keeps_is_not_sent(
    installed: Path, host: Host, container: RenderedContainer, server: daemons.PostgresDaemon
) -> None:
    old = _dump(host, container, server, "postgres", _stamp(15 * 86_400))
    done = _upload(installed, host)
    assert done.returncode == 0, done.stderr
    assert f"{old.name}: older than the 14 days the bucket keeps" in done.stderr
    assert host.objects() == {}


def test_a_bucket_that_cannot_be_listed_fails_the_run_and_sends_nothing(
    installed: Path, host: Host, container: RenderedContainer, server: daemons.PostgresDaemon
) -> None:
    _dump(host, container, server, "postgres", _stamp())
    done = _upload(installed, host, FAKE_OCI_CLAIMED="{not json")
    assert done.returncode == 1
    assert "cannot list bucket ai-swarm-oracle-pg-dumps" in done.stderr
    assert _puts(host) == []


# --- the config reader agrees with age ----------------------------------------------------------


def test_age_itself_refuses_every_key_the_config_refuses_and_takes_the_good_ones(
    tmp_path: Path,
) -> None:
    daemons.require_program("age")
    plain = tmp_path / "plain"
    plain.write_text("x")
    for key in (*BAD_AGE_KEYS, *GOOD_AGE_KEYS):
        done = subprocess.run(
            ["age", "-r", str(key), "-o", os.devnull, str(plain)],
            capture_output=True,
            check=False,
        )
        assert (done.returncode == 0) is (key in GOOD_AGE_KEYS), key
