"""Loop devices over sparse files: block devices the first-boot script and the readiness gate can
probe, format and mount, as they do the host's data volume. Detached again whatever happens."""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.integration import daemons

VOLUME_MB = 64
LOOP_MAJOR = 7
ATTACH_TRIES = 3
DATA_ROOT = "/mnt/data"


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=daemons.COMMAND_TIMEOUT_S, check=False
    )


def _attach(losetup: str, backing: Path) -> str:
    """Attach `backing` to a free loop device; its path. The kernel makes a free device when
    there is none, but in a container (CI's is privileged) nothing adds its node to /dev: the
    node is made here then, as udev would make it. Another process may take the same device
    between the look-up and the attach: then the next free one is tried."""
    failures = []
    for _ in range(ATTACH_TRIES):
        found = _run([losetup, "--find"])
        if found.returncode != 0:
            raise daemons.DaemonError(f"losetup --find: {found.stderr}")
        device = found.stdout.strip()
        if not os.path.exists(device):
            minor = int(device.removeprefix("/dev/loop"))
            os.mknod(device, 0o660 | stat.S_IFBLK, os.makedev(LOOP_MAJOR, minor))
        attached = _run([losetup, device, str(backing)])
        if attached.returncode == 0:
            return device
        failures.append(attached.stderr.strip())
    raise daemons.DaemonError(f"losetup {backing}: {failures}")


@contextlib.contextmanager
def loop_device(backing: Path, size_mb: int = VOLUME_MB) -> Iterator[str]:
    """A blank loop device of `size_mb` over `backing` (made here); its path. With 0 it is a
    device with no size, as an attached volume can be before it is ready."""
    losetup = daemons.require_program("losetup")
    with backing.open("wb") as sparse:
        sparse.truncate(size_mb * 1024 * 1024)
    device = _attach(losetup, backing)
    try:
        yield device
    finally:
        _run([losetup, "--detach", device])


def probe(device: str) -> tuple[int, dict[str, str]]:
    """`blkid -p` on the device: its exit (2: nothing found) and the tags it reports."""
    found = _run([daemons.require_program("blkid"), "-p", "-o", "export", device])
    tags = dict(line.split("=", 1) for line in found.stdout.splitlines() if "=" in line)
    return found.returncode, tags


def make_ext4(device: str, label: str) -> None:
    made = _run([daemons.require_program("mkfs.ext4"), "-q", "-F", "-L", label, device])
    if made.returncode != 0:
        raise daemons.DaemonError(f"mkfs.ext4 {device}: {made.stderr}")


def fstab_label(user_data: dict[str, Any]) -> str:
    """The label in the cloud-config's fstab line: what the host mounts /mnt/data by."""
    [entry] = [f for f in user_data["write_files"] if f["path"] == "/etc/fstab"]
    source, mount_point, *_ = str(entry["content"]).split()
    assert mount_point == DATA_ROOT and source.startswith("LABEL=")
    return source.removeprefix("LABEL=")
