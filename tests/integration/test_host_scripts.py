"""The shell the host runs: the first-boot scripts (cloud-init), the readiness gate and the
host settings (SSH).

shellcheck reads them all; the readiness gate also runs, with stand-ins for cloud-init and
Docker, in a private mount namespace on real mounts of a loop device, to show which outcomes let
`pulumi up` go on; the package script runs in a test host whose egress is absent and then
present; the sshd settings install with the real `sshd -t` over a private /etc/ssh.
"""

from __future__ import annotations

import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from components.cloud_init import (
    APT_ATTEMPTS,
    EGRESS_PROBE_URL,
    EGRESS_WAIT_TRIES,
    INSTALL_PACKAGES_SCRIPT,
    PACKAGES,
    PREPARE_DATA_SCRIPT,
)
from components.host import DATA_ROOT
from dryrun.engine import ProgramRun
from tests.helpers import command_script, installed_files, user_data
from tests.integration import daemons, loopdev
from tests.integration.netns import ADMIN_ADDRESS, netns_hosts, serving_http
from tests.integration.stand_ins import stand_in

COMMAND = "command:remote:Command"
READY_NAME = "host-ready"
HOST_SETTINGS = ("host-settings-firewall", "host-settings-sshd")


def _first_boot_script(run: ProgramRun, path: str) -> str:
    [entry] = [f for f in user_data(run)["write_files"] if f["path"] == path]
    return str(entry["content"])


@pytest.mark.parametrize("path", [PREPARE_DATA_SCRIPT, INSTALL_PACKAGES_SCRIPT])
def test_first_boot_scripts_pass_shellcheck(
    program_run: ProgramRun, tmp_path: Path, path: str
) -> None:
    script = _first_boot_script(program_run, path)
    assert script.startswith("#!/bin/sh\n")
    result = daemons.shellcheck(script, "sh", tmp_path)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("name", HOST_SETTINGS)
def test_host_settings_scripts_pass_shellcheck(
    program_run: ProgramRun, tmp_path: Path, name: str
) -> None:
    """The command as SSH runs it (bash), and every script it installs (by its own shebang)."""
    script = command_script(program_run, name)
    result = daemons.shellcheck(script, "bash", tmp_path)
    assert result.returncode == 0, result.stdout
    for path, content in installed_files(script).items():
        if content.startswith("#!/bin/sh\n"):
            result = daemons.shellcheck(content, "sh", tmp_path)
            assert result.returncode == 0, f"{path}: {result.stdout}"


def test_readiness_script_passes_shellcheck(program_run: ProgramRun, tmp_path: Path) -> None:
    result = daemons.shellcheck(_ready_script(program_run), "bash", tmp_path)
    assert result.returncode == 0, result.stdout


def _ready_script(run: ProgramRun) -> str:
    return str(run.one(COMMAND, READY_NAME).inputs["create"])


def _data_dirs_scripts(run: ProgramRun) -> list[str]:
    return [str(c.inputs["create"]) for c in run.of_type(COMMAND) if c.name.endswith("-data-dirs")]


def test_data_directory_scripts_pass_shellcheck(program_run: ProgramRun, tmp_path: Path) -> None:
    scripts = _data_dirs_scripts(program_run)
    assert len(scripts) == 6  # every container with state: postgres, redis x2, ... vault (raft)
    for script in scripts:
        result = daemons.shellcheck(script, "bash", tmp_path)
        assert result.returncode == 0, result.stdout


def _stand_ins(bin_dir: Path, cloud_init_exit: int, mounted: bool) -> None:
    """`sudo` runs its arguments; the rest answer as a host in the given state would."""
    scripts = {
        "sudo": 'case "$1" in mkdir|chown) echo "sudo $*";; *) exec "$@";; esac',
        "timeout": 'shift; exec "$@"',
        "cloud-init": f"exit {cloud_init_exit}",
        "mountpoint": f"exit {0 if mounted else 1}",
        "sg": 'echo "sg $*"',
    }
    for name, body in scripts.items():
        path = bin_dir / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(path.stat().st_mode | stat.S_IEXEC)


def _gate(
    run: ProgramRun, tmp_path: Path, data: str, cloud_init_exit: int = 0, after: str = "true"
) -> GateRun:
    """The readiness gate in a private mount namespace whose /mnt/data is set up by `data` (a
    shell step: mounts the volume or not), `after` run once it is done; cloud-init and Docker
    are stand-ins, `findmnt`, `blkid` and `mktemp` the real ones."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _stand_ins(bin_dir, cloud_init_exit, mounted=True)
    (bin_dir / "mountpoint").unlink()  # the real one: whatever the gate asks, it asks the kernel
    host = (
        f"mount -t tmpfs gate /mnt && mkdir {DATA_ROOT} && {data} || exit 100\n"
        f'bash -c "$0"; gate=$?; {after}; exit "$gate"'
    )
    result = subprocess.run(
        [daemons.require_program("unshare"), "--mount", "sh", "-c", host, _ready_script(run)],
        env={"PATH": f"{bin_dir}:/usr/sbin:/usr/bin:/sbin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return GateRun(result.returncode == 0, result.stdout, result.stderr)


@dataclass(frozen=True)
class GateRun:
    passed: bool
    stdout: str
    stderr: str


@pytest.fixture
def data_volume(program_run: ProgramRun, tmp_path: Path) -> Iterator[str]:
    """A loop device with the filesystem the first boot makes (its label as the fstab names it)."""
    with loopdev.loop_device(tmp_path / "volume.img") as device:
        loopdev.make_ext4(device, loopdev.fstab_label(user_data(program_run)))
        yield device


@pytest.mark.parametrize(("cloud_init_exit", "ready"), [(0, True), (2, True), (1, False)])
def test_readiness_gate_outcomes(
    program_run: ProgramRun, tmp_path: Path, data_volume: str, cloud_init_exit: int, ready: bool
) -> None:
    gate = _gate(program_run, tmp_path, f"mount {data_volume} {DATA_ROOT}", cloud_init_exit)
    assert gate.passed is ready, gate.stderr
    assert ("docker info" in gate.stdout) is ready
    assert ("cloud-init did not finish" in gate.stderr) is not ready


def test_the_gate_passes_on_the_data_volume_and_leaves_nothing_on_it(
    program_run: ProgramRun, tmp_path: Path, data_volume: str
) -> None:
    listing = tmp_path / "listing"
    gate = _gate(
        program_run,
        tmp_path,
        f"mount {data_volume} {DATA_ROOT}",
        after=f"ls -A {DATA_ROOT} >{listing}",
    )
    assert gate.passed, gate.stderr
    assert "docker info" in gate.stdout
    # The write probe is gone again: only what mkfs.ext4 makes is on the volume.
    assert listing.read_text().split() == ["lost+found"]


@pytest.mark.parametrize(
    ("data", "refusal"),
    [
        ("true", "/mnt/data is not mounted"),  # the boot disk's empty directory
        ("mount -t tmpfs other /mnt/data", "not the data volume"),
        ("mount -o ro {device} /mnt/data", "/mnt/data is not writable"),
        ("e2label {device} other-data && mount {device} /mnt/data", "(label 'other-data')"),
    ],
    ids=["plain-directory", "another-filesystem", "read-only", "wrong-label"],
)
def test_the_gate_refuses_anything_but_the_writable_data_volume(
    program_run: ProgramRun, tmp_path: Path, data_volume: str, data: str, refusal: str
) -> None:
    gate = _gate(program_run, tmp_path, data.format(device=data_volume))
    assert not gate.passed
    assert refusal in gate.stderr
    assert "docker info" not in gate.stdout


@pytest.mark.parametrize("mounted", [True, False])
def test_data_directories_are_made_only_on_the_mounted_volume(
    program_run: ProgramRun, tmp_path: Path, mounted: bool
) -> None:
    """Stand-ins: `mountpoint` answers as the host would, `sudo mkdir` only says what it does."""
    _stand_ins(tmp_path, cloud_init_exit=0, mounted=mounted)
    for script in _data_dirs_scripts(program_run):
        result = subprocess.run(
            ["bash", "-c", script],
            env={"PATH": f"{tmp_path}:/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert (result.returncode == 0) is mounted, result.stderr
        steps = [line.split() for line in result.stdout.splitlines()]
        made = steps[0] if steps else []
        assert (made[:3] == ["sudo", "mkdir", "-p"]) is mounted
        # Each directory is handed to its container's user after it is made.
        assert all(step[:2] == ["sudo", "chown"] for step in steps[1:])
        assert all(path.startswith("/mnt/data/") for step in steps for path in step[3:])


# --- First boot without luck: egress comes late, apt fails now and then ---------------------

EGRESS_PORT = 8089
APT_FAILURES = 2  # installs the stand-in fails before one succeeds
_PACKAGE_STAND_INS = {
    # Each wait is logged and shortened: the bound is the number of waits, not the clock.
    "sleep": 'echo "sleep $*" >>"$(dirname "$0")/calls.log"\nexec /bin/sleep 0.1',
    "apt-get": (
        'log="$(dirname "$0")/calls.log"\n'
        'echo "apt-get $*" >>"$log"\n'
        'case "$*" in *" install "*)\n'
        '  count=$(grep -c " install " "$log")\n'
        '  [ "$count" -gt "$FAILURES" ] || exit 100;;\n'
        "esac"
    ),
}


def _package_script_runner(
    run: ProgramRun, tmp_path: Path, apt_failures: int
) -> tuple[list[str], Path]:
    """The package script as cloud-init runs it, probing the test's "internet" (an HTTP server
    in the client namespace) instead of Canonical's, with apt-get and sleep stood in."""
    script = _first_boot_script(run, INSTALL_PACKAGES_SCRIPT)
    assert EGRESS_PROBE_URL in script
    script = script.replace(EGRESS_PROBE_URL, f"http://{ADMIN_ADDRESS}:{EGRESS_PORT}/")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in _PACKAGE_STAND_INS.items():
        path = bin_dir / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    environment = [f"PATH={bin_dir}:/usr/sbin:/usr/bin:/sbin:/bin", f"FAILURES={apt_failures}"]
    return ["env", *environment, "sh", "-c", script], bin_dir / "calls.log"


def test_packages_wait_for_egress_then_retry_apt(program_run: ProgramRun, tmp_path: Path) -> None:
    argv, log = _package_script_runner(program_run, tmp_path, APT_FAILURES)
    with netns_hosts() as hosts:
        started = hosts.start_on_server(argv)
        time.sleep(1.5)  # no egress yet: the script must keep probing
        assert started.poll() is None
        assert not any(line.startswith("apt-get") for line in log.read_text().splitlines())
        (tmp_path / "www").mkdir()
        with serving_http(hosts, ADMIN_ADDRESS, EGRESS_PORT, str(tmp_path / "www")):
            _, stderr = started.communicate(timeout=60)
    assert started.returncode == 0, stderr
    calls = log.read_text().splitlines()
    first_apt = next(i for i, line in enumerate(calls) if line.startswith("apt-get"))
    assert first_apt >= 2 and all(line.startswith("sleep") for line in calls[:first_apt])
    installs = [line for line in calls if " install " in line]
    assert len(installs) == APT_FAILURES + 1
    assert installs[-1].endswith(" ".join(PACKAGES))


def test_without_egress_the_wait_and_the_retries_are_bounded(
    program_run: ProgramRun, tmp_path: Path
) -> None:
    argv, log = _package_script_runner(program_run, tmp_path, apt_failures=APT_ATTEMPTS + 1)
    with netns_hosts() as hosts:
        result = hosts.start_on_server(argv)
        _, stderr = result.communicate(timeout=120)
    assert result.returncode == 1
    assert "no egress" in stderr and "packages not installed" in stderr
    calls = log.read_text().splitlines()
    assert len([line for line in calls if " install " in line]) == APT_ATTEMPTS
    # A wait after each failed probe but the last, and after each failed install but the last.
    assert len([line for line in calls if line.startswith("sleep")]) == (
        EGRESS_WAIT_TRIES - 1 + APT_ATTEMPTS - 1
    )


# --- Host settings installed over SSH: put() and the sshd drop-in -----------------------------

SSHD_NAME = "host-settings-sshd"
# An sshd_config as Ubuntu ships it, in short: drop-ins first, then the host's own settings.
_SSHD_CONFIG = """Include /etc/ssh/sshd_config.d/*.conf
HostKey /etc/ssh/ssh_host_ed25519_key
KbdInteractiveAuthentication no
UsePAM yes
Subsystem sftp /usr/lib/openssh/sftp-server
"""
OLD_DROP_IN = "# in force before this install\nMaxStartups 20:30:60\n"


@dataclass(frozen=True)
class SshHost:
    """A stand-in for the host's /etc/ssh, bound over the real one while a script runs."""

    etc_ssh: Path
    bin_dir: Path

    @property
    def drop_in_dir(self) -> Path:
        return self.etc_ssh / "sshd_config.d"

    @property
    def systemctl_log(self) -> Path:
        return self.bin_dir / "systemctl.log"

    def at(self, host_path: str) -> Path:
        return self.etc_ssh / Path(host_path).relative_to("/etc/ssh")

    def run(self, script: str) -> subprocess.CompletedProcess[str]:
        """`script` as SSH runs it (bash), in a private mount namespace whose /etc/ssh is ours
        and whose /run has sshd's privilege separation directory; the real `sshd`."""
        host = (
            "mount -t tmpfs ssh-run /run && mkdir -m 0755 /run/sshd && "
            f'mount --bind {self.etc_ssh} /etc/ssh && exec bash -c "$0"'
        )
        return subprocess.run(
            [daemons.require_program("unshare"), "--mount", "sh", "-c", host, script],
            env={"PATH": f"{self.bin_dir}:/usr/sbin:/usr/bin:/sbin:/bin"},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def sshd_accepts(self) -> bool:
        return self.run("sshd -t").returncode == 0


@pytest.fixture
def ssh_host(tmp_path: Path) -> SshHost:
    made = SshHost(tmp_path / "etc-ssh", tmp_path / "bin")
    made.drop_in_dir.mkdir(parents=True)
    made.bin_dir.mkdir()
    (made.etc_ssh / "sshd_config").write_text(_SSHD_CONFIG)
    key = made.etc_ssh / "ssh_host_ed25519_key"
    keygen = [daemons.require_program("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-f"]
    subprocess.run([*keygen, str(key)], check=True, capture_output=True, timeout=30)
    stand_in(made.bin_dir, "sudo", 'exec "$@"')
    stand_in(made.bin_dir, "systemctl", f'echo "systemctl $*" >>{made.systemctl_log}')
    assert made.sshd_accepts()  # the configuration before any install is sound
    return made


def _sshd_install(run: ProgramRun) -> tuple[str, str]:
    """The sshd install command as registered, and the drop-in path it writes."""
    script = command_script(run, SSHD_NAME)
    [path] = installed_files(script)
    return script, path


@pytest.mark.parametrize("before", [None, OLD_DROP_IN], ids=["first-install", "over-an-old-one"])
def test_sshd_drop_in_is_installed_and_sshd_reloaded(
    program_run: ProgramRun, ssh_host: SshHost, before: str | None
) -> None:
    script, path = _sshd_install(program_run)
    if before is not None:
        ssh_host.at(path).write_text(before)
    for _ in range(2):  # idempotent
        done = ssh_host.run(script)
        assert done.returncode == 0, done.stderr
    assert ssh_host.at(path).read_text() == installed_files(script)[path]
    assert [p.name for p in ssh_host.drop_in_dir.iterdir()] == [Path(path).name]
    assert ssh_host.systemctl_log.read_text().splitlines() == 2 * [
        "systemctl try-reload-or-restart ssh.service"
    ]
    assert ssh_host.sshd_accepts()


@pytest.mark.parametrize("before", [None, OLD_DROP_IN], ids=["first-install", "over-an-old-one"])
def test_a_drop_in_sshd_rejects_leaves_the_old_one_and_no_reload(
    program_run: ProgramRun, ssh_host: SshHost, before: str | None
) -> None:
    """The same script with a drop-in the real `sshd -t` refuses: the host keeps the drop-in it
    had (or none), so a restart of sshd still finds a configuration it accepts."""
    script, path = _sshd_install(program_run)
    rendered = installed_files(script)[path]
    broken = script.replace(rendered, rendered + "MaxStartups not-a-number\n")
    assert broken != script
    if before is not None:
        ssh_host.at(path).write_text(before)
    done = ssh_host.run(broken)
    assert done.returncode != 0
    assert "MaxStartups" in done.stderr  # sshd's own complaint
    assert "the one in force before is kept" in done.stderr
    kept = ssh_host.at(path)
    assert (kept.read_text() if kept.exists() else None) == before
    assert [p.name for p in ssh_host.drop_in_dir.iterdir()] == ([kept.name] if before else [])
    assert not ssh_host.systemctl_log.exists()
    assert ssh_host.sshd_accepts()


def test_a_write_that_fails_midway_leaves_the_old_file(
    program_run: ProgramRun, ssh_host: SshHost
) -> None:
    """put() with a writer (`tee`) that writes the first line and fails, as on a full disk:
    the old file is untouched, no partial file is left, and the script stops there."""
    script, path = _sshd_install(program_run)
    ssh_host.at(path).write_text(OLD_DROP_IN)
    stand_in(ssh_host.bin_dir, "tee", 'head -n 1 >"$1"\nexit 1')
    done = ssh_host.run(script)
    assert done.returncode != 0
    assert ssh_host.at(path).read_text() == OLD_DROP_IN
    assert [p.name for p in ssh_host.drop_in_dir.glob("*.conf")] == [Path(path).name]
    assert not list(ssh_host.drop_in_dir.glob("*.ai-swarm-new"))
    assert not ssh_host.systemctl_log.exists()
