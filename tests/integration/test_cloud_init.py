"""The instance's rendered user data against Debian's cloud-init schema validator, the unit
drop-in it writes against systemd's own checks, and its first boot run by cloud-init's own code
on a real block device (a loop device) in a private mount namespace; the replica's Micro, which
has no data volume, the same way, and its swap file made by cloud-init's own swap step."""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from components.cloud_init import DOCKER_DROP_IN
from dryrun.engine import ProgramRun, run_program
from tests.helpers import user_data, user_data_text
from tests.integration import daemons, loopdev, systemd


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
    (root / "usr/lib/systemd/system/docker.service").write_text(systemd.DOCKER_STAND_IN_UNIT)
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


# --- The first boot on a real block device --------------------------------------------------

FIRST_BOOT = Path(__file__).with_name("first_boot.py")
# Debian's cloud-init package is installed for the system's Python, not for the venv's.
SYSTEM_PYTHON = "/usr/bin/python3"
ATTACHMENT = "oci:Core/volumeAttachment:VolumeAttachment"
BOOT_TIMEOUT_S = 120
# Each stand-in logs its call; apt-helper is the egress probe, which always answers here, and
# mkfs.ext4 logs its call and runs the real one.
_BOOT_STAND_INS = ("apt-get", "usermod", "systemctl")


@dataclass(frozen=True)
class Boot:
    """What one first boot left: cloud-init's error (None when runcmd succeeded), the source
    mounted at /mnt/data, the files there, and the stand-ins' calls in order."""

    error: str | None
    mounted: str | None
    files: list[str]
    calls: list[str]


def _boot(
    run: ProgramRun,
    device: str | None,
    workdir: Path,
    *,
    failing_blkid: int | None = None,
    add_files: dict[str, str] | None = None,
    booted: str | None = None,
) -> Boot:
    """One first boot with `device` attached where the program attaches the volume (None: a
    host without one, booting the user data `booted`); with `failing_blkid`, a `blkid` first on PATH
    that exits so (every probe fails)."""
    workdir.mkdir()
    bin_dir = workdir / "bin"
    bin_dir.mkdir()
    calls = workdir / "calls.log"
    scripts = {name: f'echo "{name} $*" >>{calls}' for name in _BOOT_STAND_INS}
    scripts["apt-helper"] = "exit 0"
    scripts["sleep"] = f'echo "sleep $*" >>{calls}'  # the waits, logged and not waited
    mkfs = daemons.require_program("mkfs.ext4")
    scripts["mkfs.ext4"] = f'echo "mkfs.ext4 $*" >>{calls}\nexec {mkfs} "$@"'
    if failing_blkid is not None:
        scripts["blkid"] = f'echo "blkid $*" >>{calls}\nexit {failing_blkid}'
    for name, body in scripts.items():
        path = bin_dir / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)
    (workdir / "user-data").write_text(booted or user_data_text(run))
    spec = {
        "user_data": str(workdir / "user-data"),
        "device": device,
        "attach_as": _attached_as(run) if device else None,
        "bin": str(bin_dir),
        "work": str(workdir),
        "report": str(workdir / "report.json"),
        "add_files": add_files or {},
    }
    (workdir / "spec.json").write_text(json.dumps(spec))
    harness = [SYSTEM_PYTHON, str(FIRST_BOOT), str(workdir / "spec.json")]
    done = subprocess.run(
        [daemons.require_program("unshare"), "--mount", "--net", *harness],
        capture_output=True,
        text=True,
        timeout=BOOT_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads((workdir / "report.json").read_text())
    logged = calls.read_text().splitlines() if calls.exists() else []
    return Boot(report["error"], report["mounted"], report["files"], logged)


def _attached_as(run: ProgramRun) -> str:
    """The device path the volume attachment gives the volume on the instance."""
    return str(run.one(ATTACHMENT).inputs["device"])


@pytest.fixture
def volume(tmp_path: Path) -> Iterator[str]:
    with loopdev.loop_device(tmp_path / "volume.img") as device:
        yield device


def test_a_blank_volume_is_formatted_once_and_keeps_its_files(
    program_run: ProgramRun, tmp_path: Path, volume: str
) -> None:
    assert loopdev.probe(volume)[0] == 2  # blank: low-level probing finds nothing
    first = _boot(program_run, volume, tmp_path / "boot-1", add_files={"state": "kept\n"})
    assert first.error is None
    assert first.mounted == volume
    [made_by] = [call for call in first.calls if call.startswith("mkfs")]
    assert made_by == f"mkfs.ext4 -q -L ai-swarm-data {_attached_as(program_run)}"
    _, made = loopdev.probe(volume)
    assert made["TYPE"] == "ext4"
    assert made["LABEL"] == loopdev.fstab_label(user_data(program_run))
    # A replaced instance boots again on the same volume: the file is there, nothing is made.
    for again in ("boot-2", "boot-3"):
        boot = _boot(program_run, volume, tmp_path / again)
        assert boot.error is None
        assert boot.mounted == volume
        assert not [call for call in boot.calls if call.startswith("mkfs")]
        assert boot.files == ["lost+found", "state"]
        assert loopdev.probe(volume)[1]["UUID"] == made["UUID"]


def test_every_runcmd_step_runs_in_order(
    program_run: ProgramRun, tmp_path: Path, volume: str
) -> None:
    """The steps after the data volume (each a script cloud-init executes by its path, or a
    command) all run, packages first, then the docker group, then Docker."""
    boot = _boot(program_run, volume, tmp_path / "boot")
    assert boot.error is None
    assert boot.calls == [
        f"mkfs.ext4 -q -L ai-swarm-data {_attached_as(program_run)}",
        "apt-get -o Acquire::Retries=3 update",
        "apt-get -o Acquire::Retries=3 install -y --no-install-recommends "
        "docker.io unattended-upgrades",
        "usermod -aG docker ubuntu",
        "systemctl enable --now docker",
    ]


@pytest.mark.parametrize("probe_exit", [4, 8], ids=["probe-error", "ambiguous"])
def test_a_failed_probe_formats_nothing_and_fails_the_boot(
    program_run: ProgramRun, tmp_path: Path, volume: str, probe_exit: int
) -> None:
    blank = _boot(program_run, volume, tmp_path / "blank", failing_blkid=probe_exit)
    assert blank.error is not None
    assert blank.mounted is None
    assert loopdev.probe(volume)[0] == 2  # still blank
    # Six probes 5 s apart (an attachment may take a moment to settle), then the boot stops
    # there: no packages, no Docker.
    probes = [f"blkid -p {_attached_as(program_run)}", "sleep 5"] * 6
    assert blank.calls == probes[:-1]

    kept = _boot(program_run, volume, tmp_path / "made", add_files={"state": "kept\n"})
    assert kept.error is None
    uuid = loopdev.probe(volume)[1]["UUID"]
    failed = _boot(program_run, volume, tmp_path / "failed", failing_blkid=probe_exit)
    assert failed.error is not None and failed.mounted is None and failed.calls == probes[:-1]
    assert loopdev.probe(volume)[1]["UUID"] == uuid
    assert _boot(program_run, volume, tmp_path / "after").files == ["lost+found", "state"]


def test_a_volume_with_another_filesystem_is_not_formatted(
    program_run: ProgramRun, tmp_path: Path, volume: str
) -> None:
    loopdev.make_ext4(volume, "someone-else")
    _, before = loopdev.probe(volume)
    boot = _boot(program_run, volume, tmp_path / "boot")
    assert boot.error is not None  # nothing to mount by the data label: the boot fails
    assert boot.mounted is None and boot.calls == []
    assert loopdev.probe(volume)[1] == before


def test_a_volume_not_ready_yet_is_not_formatted(program_run: ProgramRun, tmp_path: Path) -> None:
    """A device that is there but has no size yet: `blkid -p` finds nothing on it (exit 2),
    as on a blank volume, yet it is probed again, never formatted, and the boot fails."""
    with loopdev.loop_device(tmp_path / "empty.img", size_mb=0) as not_ready:
        assert loopdev.probe(not_ready)[0] == 2
        boot = _boot(program_run, not_ready, tmp_path / "boot")
    assert boot.error is not None and boot.mounted is None
    assert boot.calls == ["sleep 5"] * 5


# --- The replica's Micro: no data volume, a swap file ------------------------------------------


@pytest.fixture(scope="module")
def replica_run() -> ProgramRun:
    return run_program(overrides={"replica": json.dumps({"enabled": True}), "dataVolumeGb": "100"})


def _micro_user_data(run: ProgramRun) -> str:
    encoded = run.one("oci:Core/instance:Instance", "replica-instance").inputs["metadata"]
    return base64.b64decode(encoded["user_data"]).decode()


def test_the_micros_user_data_passes_the_cloud_init_schema(
    replica_run: ProgramRun, tmp_path: Path
) -> None:
    checked = daemons.cloud_init_schema(_micro_user_data(replica_run), tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Valid cloud-config" in checked.stdout
    assert "deprecat" not in checked.stdout.lower() + checked.stderr.lower()
    # A swap size cloud-init cannot read fails the same check: the one above can fail.
    broken = _micro_user_data(replica_run).replace("size: 1073741824", "size: lots", 1)
    assert broken != _micro_user_data(replica_run)
    assert daemons.cloud_init_schema(broken, tmp_path / "broken").returncode != 0


def test_the_micro_binds_its_data_from_the_boot_volume_then_installs_and_starts_docker(
    replica_run: ProgramRun, tmp_path: Path
) -> None:
    boot = _boot(
        replica_run, None, tmp_path / "boot", add_files={"state": "kept\n"},
        booted=_micro_user_data(replica_run),
    )  # fmt: skip
    assert boot.error is None
    # /mnt/data is the boot volume's directory (here on the namespace's /srv), bound there.
    assert boot.mounted is not None and boot.mounted.endswith("[/ai-swarm-data]")
    assert boot.files == ["state"]
    assert boot.calls == [
        "apt-get -o Acquire::Retries=3 update",
        "apt-get -o Acquire::Retries=3 install -y --no-install-recommends "
        "docker.io unattended-upgrades",
        "usermod -aG docker ubuntu",
        "systemctl enable --now docker",
    ]


def test_cloud_init_makes_a_one_gigabyte_swap_file_from_the_micros_settings(
    replica_run: ProgramRun, tmp_path: Path
) -> None:
    """cloud-init's own `handle_swapcfg` (the mounts module's swap step: fallocate, mkswap) on
    the document's `swap` settings; only the file's place is the test's (the real one is
    /swapfile on the boot volume)."""
    swap = yaml.safe_load(_micro_user_data(replica_run))["swap"]
    assert swap["filename"] == "/swapfile"
    made = tmp_path / "swapfile"
    config = json.dumps({**swap, "filename": str(made)})
    program = (
        "import json, sys\n"
        "from cloudinit.config import cc_mounts\n"
        "print(cc_mounts.handle_swapcfg(json.loads(sys.argv[1])))\n"
    )
    done = subprocess.run(
        [SYSTEM_PYTHON, "-c", program, config],
        capture_output=True,
        text=True,
        timeout=BOOT_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(made)
    assert made.stat().st_size == 1024 * 1024 * 1024
    assert oct(made.stat().st_mode & 0o777) == "0o600"
    assert loopdev.probe(str(made))[1]["TYPE"] == "swap"
    made.unlink()
