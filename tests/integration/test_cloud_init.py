"""The instance's rendered user data against Debian's cloud-init schema validator, and the unit
drop-in it writes against systemd's own checks."""

from __future__ import annotations

from pathlib import Path

from components.cloud_init import DOCKER_DROP_IN
from dryrun.engine import ProgramRun
from tests.helpers import user_data, user_data_text
from tests.integration import daemons, systemd


def test_user_data_passes_the_cloud_init_schema(program_run: ProgramRun, tmp_path: Path) -> None:
    user_data = user_data_text(program_run)
    assert user_data.startswith("#cloud-config\n")
    checked = daemons.cloud_init_schema(user_data, tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Valid cloud-config" in checked.stdout
    # 22.4 lists deprecated keys without failing: a listed one is a finding all the same.
    assert "deprecat" not in checked.stdout.lower() + checked.stderr.lower()


def test_the_validator_rejects_a_broken_document(program_run: ProgramRun, tmp_path: Path) -> None:
    # The same call on the rendered text with a type error fails: the check above can fail.
    broken = user_data_text(program_run) + "\nruncmd: 7\n"
    checked = daemons.cloud_init_schema(broken, tmp_path)
    assert checked.returncode != 0
    assert "runcmd" in checked.stdout + checked.stderr


# Docker as the package ships it, in short: the drop-in changes only its [Unit] dependencies.
_DOCKER_UNIT = """[Unit]
Description=Docker Application Container Engine (stand-in)
After=network-online.target
Wants=network-online.target

[Service]
ExecStart=/usr/bin/dockerd -H fd://

[Install]
WantedBy=multi-user.target
"""
# A probe: a mount of /mnt/data ordered after Docker. It closes an ordering cycle exactly when
# Docker is ordered after (and requires) the mount, which systemd then refuses to start.
_MOUNT_AFTER_DOCKER = """[Unit]
After=docker.service

[Mount]
What=/dev/disk/by-label/ai-swarm-data
Where=/mnt/data
Type=ext4
"""


def _docker_root(root: Path, drop_in: str | None) -> Path:
    systemd.systemd_root(root)
    (root / "usr/lib/systemd/system/docker.service").write_text(_DOCKER_UNIT)
    dockerd = root / "usr/bin/dockerd"
    dockerd.write_text("#!/bin/sh\nexit 0\n")
    dockerd.chmod(0o755)
    if drop_in is not None:
        path = root / DOCKER_DROP_IN.lstrip("/")
        path.parent.mkdir(parents=True)
        path.write_text(drop_in)
    return root


def _written_file(run: ProgramRun, path: str) -> str:
    [entry] = [f for f in user_data(run)["write_files"] if f["path"] == path]
    return str(entry["content"])


def test_docker_drop_in_passes_systemd_analyze_verify(
    program_run: ProgramRun, tmp_path: Path
) -> None:
    root = _docker_root(tmp_path, _written_file(program_run, DOCKER_DROP_IN))
    verified = systemd.verify(root, "docker.service")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stderr == ""


def test_docker_cannot_start_before_the_data_mount(program_run: ProgramRun, tmp_path: Path) -> None:
    root = _docker_root(tmp_path / "with", _written_file(program_run, DOCKER_DROP_IN))
    (root / "etc/systemd/system/mnt-data.mount").write_text(_MOUNT_AFTER_DOCKER)
    verified = systemd.verify(root, "docker.service")
    assert verified.returncode != 0
    assert "ordering cycle" in verified.stderr and "mnt-data.mount" in verified.stderr
    # Without the drop-in the same probe is harmless: the cycle above is the drop-in's doing.
    bare = _docker_root(tmp_path / "without", drop_in=None)
    (bare / "etc/systemd/system/mnt-data.mount").write_text(_MOUNT_AFTER_DOCKER)
    assert systemd.verify(bare, "docker.service").returncode == 0
