"""Docker's SSH against the real sshd and the real ssh client, on loopback.

pulumi-docker runs one `ssh` per Docker call with the provider's `ssh_opts`, many at once. Here
a real sshd stands for the host: with the drop-in the host settings install, it admits a burst
of such connections that its defaults drop; and with the provider's options, a replaced
instance (a new host key behind the same address, a new OCID) is reached without any edit of
known_hosts, while a changed key on the same instance is refused. Only where ssh keeps its
files is adapted to this machine: `~/.ssh/` in the options becomes a temporary directory.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from components.host_config import SSHD_DROP_IN
from dryrun.engine import ProgramRun, run_program
from tests.helpers import command_script, installed_files, user_data
from tests.integration import daemons
from tests.integration.netns import AS_ROOT
from tests.services.readers import COMMAND, PROVIDER

SSHD = "/usr/sbin/sshd"
# sshd refuses to start without its privilege separation directory (compiled into Debian's
# sshd). systemd makes it from ssh.service's RuntimeDirectory=sshd; a test's sshd never went
# through that unit, and /run is a fresh tmpfs after every boot.
PRIVSEP_DIRECTORY = "/run/sshd"
BURST = 40  # parallel connections, as many Docker calls of an `up` start together


@dataclass(frozen=True)
class Keys:
    client: Path
    host: Path
    other_host: Path  # a replaced instance's new host key


@pytest.fixture(scope="module", autouse=True)
def privilege_separation_directory() -> None:
    """Every sshd here, `sshd -t` and `sshd -T` included, needs it."""
    subprocess.run(
        [*AS_ROOT, "install", "-d", "-m", "0755", PRIVSEP_DIRECTORY], check=True, timeout=10
    )


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    directory = tmp_path_factory.mktemp("keys")
    made = Keys(directory / "client", directory / "host", directory / "other_host")
    for path in (made.client, made.host, made.other_host):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
            check=True,
            timeout=30,
        )
    return made


def _drop_in(run: ProgramRun) -> str:
    return installed_files(command_script(run, "host-settings-sshd"))[SSHD_DROP_IN]


def _sshd_config(
    directory: Path, port: int, host_key: Path, keys: Keys, drop_in: str | None
) -> Path:
    """A config for this test; `Include` first, as Ubuntu's sshd_config has it."""
    lines = []
    if drop_in is not None:
        (directory / "drop-in.conf").write_text(drop_in)
        lines.append(f"Include {directory / 'drop-in.conf'}")
    (directory / "authorized_keys").write_text(keys.client.with_suffix(".pub").read_text())
    lines += [
        f"Port {port}",
        "ListenAddress 127.0.0.1",
        f"HostKey {host_key}",
        f"AuthorizedKeysFile {directory / 'authorized_keys'}",
        "StrictModes no",
        "PidFile none",
        "UsePAM no",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password",
    ]
    config = directory / "sshd_config"
    config.write_text("\n".join(lines) + "\n")
    return config


@contextlib.contextmanager
def _sshd(config: Path, port: int) -> Iterator[None]:
    daemons.require_program(SSHD)
    daemons.record_version("sshd", ["ssh", "-V"])
    checked = subprocess.run(
        [*AS_ROOT, SSHD, "-t", "-f", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    process = subprocess.Popen(
        [*AS_ROOT, SSHD, "-D", "-e", "-f", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + daemons.START_TIMEOUT_S
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise daemons.DaemonError("sshd did not start")
            time.sleep(0.05)
        yield
    finally:
        process.terminate()
        process.wait(timeout=daemons.STOP_TIMEOUT_S)


def _provider_options(run: ProgramRun, home: Path) -> list[str]:
    """The Docker provider's ssh options, with `~/.ssh/` moved to the test's directory."""
    options = json.loads(run.one(PROVIDER).inputs["sshOpts"])
    assert any(option.startswith("UserKnownHostsFile=~/.ssh/") for option in options)
    return [option.replace("~/.ssh/", f"{home}/") for option in options]


def _ssh(options: list[str], keys: Keys, port: int) -> subprocess.CompletedProcess[str]:
    """What pulumi-docker runs for one Docker call, with a harmless command instead."""
    return subprocess.run(
        ["ssh", *options, "-i", str(keys.client), "-p", str(port),
         f"{getpass.getuser()}@127.0.0.1", "true"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip


def _burst(options: list[str], keys: Keys, port: int) -> list[int]:
    with ThreadPoolExecutor(max_workers=BURST) as pool:
        results = list(pool.map(lambda _: _ssh(options, keys, port), range(BURST)))
    return [result.returncode for result in results]


def test_sshd_takes_the_drop_in(program_run: ProgramRun, keys: Keys, tmp_path: Path) -> None:
    port = daemons.free_port()
    config = _sshd_config(tmp_path, port, keys.host, keys, _drop_in(program_run))
    effective = subprocess.run(
        [*AS_ROOT, SSHD, "-T", "-f", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert effective.returncode == 0, effective.stderr
    # Room for a burst of 40 unauthenticated connections: full refusal only past 128.
    assert "maxstartups 64:30:128" in effective.stdout.splitlines()


def test_a_burst_of_docker_connections_gets_through(
    program_run: ProgramRun, keys: Keys, tmp_path: Path
) -> None:
    options = _provider_options(program_run, tmp_path)
    port = daemons.free_port()
    with _sshd(_sshd_config(tmp_path, port, keys.host, keys, _drop_in(program_run)), port):
        assert _ssh(options, keys, port).returncode == 0  # the host key learnt first
        assert _burst(options, keys, port) == [0] * BURST


def test_sshds_defaults_drop_such_a_burst(
    program_run: ProgramRun, keys: Keys, tmp_path: Path
) -> None:
    """The same burst against the defaults (MaxStartups 10:30:100): some are dropped."""
    options = _provider_options(program_run, tmp_path)
    port = daemons.free_port()
    with _sshd(_sshd_config(tmp_path, port, keys.host, keys, drop_in=None), port):
        assert _ssh(options, keys, port).returncode == 0
        assert any(code != 0 for code in _burst(options, keys, port))


def test_a_replaced_instance_is_reached_without_editing_known_hosts(
    program_run: ProgramRun, keys: Keys, tmp_path: Path
) -> None:
    old = _provider_options(program_run, tmp_path)
    # Another availability domain: the instance is replaced and gets a new OCID.
    new = _provider_options(run_program(overrides={"availabilityDomain": "2"}), tmp_path)
    assert old != new
    port = daemons.free_port()
    drop_in = _drop_in(program_run)
    with _sshd(_sshd_config(tmp_path, port, keys.host, keys, drop_in), port):
        assert _ssh(old, keys, port).returncode == 0
    # Same address and port, a new host key: the new instance behind the reserved IP.
    with _sshd(_sshd_config(tmp_path, port, keys.other_host, keys, drop_in), port):
        refused = _ssh(old, keys, port)
        assert refused.returncode != 0
        assert "HOST IDENTIFICATION HAS CHANGED" in refused.stderr
        reached = _ssh(new, keys, port)
        assert reached.returncode == 0, reached.stderr


def _pinned_options(host_key: str, port: int, directory: Path) -> list[str]:
    """pulumi-command's check of `connection.hostKey`, said to OpenSSH's client: it parses the
    line (`ssh.ParseAuthorizedKey`), accepts that key alone (`ssh.FixedHostKey`) and offers the
    server only its algorithm (`HostKeyAlgorithms: []string{publicKey.Type()}`), learning nothing
    (pulumi/pulumi-command provider/pkg/provider/remote/connection.go, `SSHConfig`)."""
    known = directory / "pinned_known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {host_key.strip()}\n")
    return [
        "-o", f"HostKeyAlgorithms={host_key.split(maxsplit=1)[0]}",
        "-o", f"UserKnownHostsFile={known}",
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "StrictHostKeyChecking=yes",
        "-o", "BatchMode=yes",
    ]  # fmt: skip


def test_remote_commands_reach_the_host_with_the_key_cloud_init_installed_only(
    program_run: ProgramRun, keys: Keys, tmp_path: Path
) -> None:
    # cloud-init's cc_ssh writes `ssh_keys.ed25519_private` to the host key file, mode 0600.
    installed = tmp_path / "ssh_host_ed25519_key"
    installed.write_text(user_data(program_run)["ssh_keys"]["ed25519_private"])
    installed.chmod(0o600)
    port = daemons.free_port()
    [host_key] = {
        command.inputs["connection"]["hostKey"] for command in program_run.of_type(COMMAND)
    }
    options = _pinned_options(host_key, port, tmp_path)
    drop_in = _drop_in(program_run)
    with _sshd(_sshd_config(tmp_path, port, installed, keys, drop_in), port):
        reached = _ssh(options, keys, port)
        assert reached.returncode == 0, reached.stderr
    # Whoever answers at that address with another key (before or after the real host booted)
    # is refused, before anything is sent to it.
    with _sshd(_sshd_config(tmp_path, port, keys.other_host, keys, drop_in), port):
        refused = _ssh(options, keys, port)
        assert refused.returncode != 0
        assert "Host key verification failed" in refused.stderr
