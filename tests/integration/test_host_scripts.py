"""The shell the host runs: the data-volume script (cloud-init) and the readiness gate (SSH).

shellcheck reads both; the readiness gate also runs, with stand-ins for the host's commands, to
show which cloud-init outcomes let `pulumi up` go on.
"""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest

from components.cloud_init import PREPARE_DATA_SCRIPT
from dryrun.engine import ProgramRun
from tests.helpers import user_data
from tests.integration import daemons

COMMAND = "command:remote:Command"
READY_NAME = "swarm-a1-ready"


def _prepare_data_script(run: ProgramRun) -> str:
    [entry] = [f for f in user_data(run)["write_files"] if f["path"] == PREPARE_DATA_SCRIPT]
    return str(entry["content"])


def _shellcheck(script: str, dialect: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    daemons.require_program("shellcheck")
    daemons.record_version("shellcheck", ["shellcheck", "--version"])
    path = tmp_path / "script.sh"
    path.write_text(script)
    return subprocess.run(
        ["shellcheck", "--shell", dialect, str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_prepare_data_script_passes_shellcheck(program_run: ProgramRun, tmp_path: Path) -> None:
    script = _prepare_data_script(program_run)
    assert script.startswith("#!/bin/sh\n")
    result = _shellcheck(script, "sh", tmp_path)
    assert result.returncode == 0, result.stdout


def test_readiness_script_passes_shellcheck(program_run: ProgramRun, tmp_path: Path) -> None:
    result = _shellcheck(_ready_script(program_run), "bash", tmp_path)
    assert result.returncode == 0, result.stdout


def _ready_script(run: ProgramRun) -> str:
    return str(run.one(COMMAND, READY_NAME).inputs["create"])


def _data_dirs_scripts(run: ProgramRun) -> list[str]:
    return [str(c.inputs["create"]) for c in run.of_type(COMMAND) if c.name.endswith("-data-dirs")]


def test_data_directory_scripts_pass_shellcheck(program_run: ProgramRun, tmp_path: Path) -> None:
    scripts = _data_dirs_scripts(program_run)
    assert len(scripts) == 7  # every container with state: postgres, redis x2, ... vault x2
    for script in scripts:
        result = _shellcheck(script, "bash", tmp_path)
        assert result.returncode == 0, result.stdout


def _stand_ins(bin_dir: Path, cloud_init_exit: int, mounted: bool) -> None:
    """`sudo` runs its arguments; the rest answer as a host in the given state would."""
    scripts = {
        "sudo": 'if [ "$1" = mkdir ]; then echo "sudo $*"; else exec "$@"; fi',
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
        made = result.stdout.split()
        assert (made[:3] == ["sudo", "mkdir", "-p"]) is mounted
        assert all(path.startswith("/mnt/data/") for path in made[3:])
