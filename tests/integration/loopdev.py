"""Loop devices over sparse files: block devices the first-boot script and the readiness gate can
probe, format and mount, as they do the host's data volume. Detached again whatever happens."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.integration import daemons

VOLUME_MB = 64
DATA_ROOT = "/mnt/data"


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=daemons.COMMAND_TIMEOUT_S, check=False
    )


@contextlib.contextmanager
def loop_device(backing: Path) -> Iterator[str]:
    """A blank loop device of VOLUME_MB over `backing` (made here); its path."""
    losetup = daemons.require_program("losetup")
    with backing.open("wb") as sparse:
        sparse.truncate(VOLUME_MB * 1024 * 1024)
    attached = _run([losetup, "--find", "--show", str(backing)])
    if attached.returncode != 0:
        raise daemons.DaemonError(f"losetup --find: {attached.stderr}")
    device = attached.stdout.strip()
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
