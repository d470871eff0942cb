"""The shell the host runs: the first-boot scripts (cloud-init), the readiness gate and the
host settings (SSH).

shellcheck reads them all; the readiness gate also runs, with stand-ins for the host's commands,
to show which cloud-init outcomes let `pulumi up` go on, and the package script runs in a test
host whose egress is absent and then present.
"""

from __future__ import annotations

import stat
import subprocess
import time
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
from dryrun.engine import ProgramRun
from tests.helpers import command_script, installed_files, user_data
from tests.integration import daemons
from tests.integration.netns import ADMIN_ADDRESS, netns_hosts, serving_http

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


@pytest.mark.parametrize(
    ("cloud_init_exit", "mounted", "ready"),
    [(0, True, True), (2, True, True), (1, True, False), (0, False, False)],
)
def test_readiness_gate_outcomes(
    program_run: ProgramRun, tmp_path: Path, cloud_init_exit: int, mounted: bool, ready: bool
) -> None:
    _stand_ins(tmp_path, cloud_init_exit, mounted)
    result = subprocess.run(
        ["bash", "-c", _ready_script(program_run)],
        env={"PATH": f"{tmp_path}:/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (result.returncode == 0) is ready, result.stderr
    assert ("docker info" in result.stdout) is ready


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
