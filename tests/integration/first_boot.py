"""One first boot of the host, as cloud-init runs it, in a private mount namespace.

Run by the system's Python (the one Debian's cloud-init package is installed for) under
`unshare --mount --net`, never imported by the tests:

    unshare --mount --net /usr/bin/python3 first_boot.py SPEC.json

SPEC names the user data, the block device standing in for the attached volume, the device path
the attachment gives it (both null for a host without a data volume), a directory of stand-in
commands (first on PATH) and a report file.
The namespace sees its own `/dev` (the volume and the few character devices the scripts use, so
that no other block device on this machine can be probed or mounted by label), `/run`, `/mnt`,
`/srv`, `/usr/local/sbin` and `/etc/fstab`; all of it goes when the namespace does.

cloud-init's own code does the work: `write_files` writes the entries (the first-boot scripts
with their permissions, the fstab line appended), `util.shellify` makes the `runcmd` script
and `subp.runparts` runs it, as `scripts_user` does. Entries elsewhere under `/etc` (Docker's
drop-in and daemon.json, apt's settings) are not written: they would land on this machine.
"""

from __future__ import annotations

import importlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

DATA_ROOT = "/mnt/data"
APT_HELPER = "/usr/lib/apt/apt-helper"
WRITTEN_UNDER = ("/usr/local/sbin/", "/etc/fstab")
CHARACTER_DEVICES = {"null": (1, 3), "zero": (1, 5), "random": (1, 8), "urandom": (1, 9)}


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True)


def _private_host(device: str | None, attach_as: str | None, bin_dir: Path, fstab: Path) -> None:
    rdev = os.stat(device).st_rdev if device else None
    _run("mount", "-t", "tmpfs", "-o", "mode=0755", "first-boot-dev", "/dev")
    for name, (major, minor) in CHARACTER_DEVICES.items():
        os.mknod(f"/dev/{name}", 0o666 | stat.S_IFCHR, os.makedev(major, minor))
        os.chmod(f"/dev/{name}", 0o666)
    if device and attach_as and rdev is not None:
        os.mknod(device, 0o660 | stat.S_IFBLK, rdev)
        Path(attach_as).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(device, attach_as)
    for directory in ("/run", "/mnt", "/srv", "/usr/local/sbin"):
        _run("mount", "-t", "tmpfs", "-o", "mode=0755", "first-boot", directory)
    fstab.write_text("")
    _run("mount", "--bind", str(fstab), "/etc/fstab")
    # The egress probe always succeeds: apt-get is a stand-in too.
    _run("mount", "--bind", str(bin_dir / "apt-helper"), APT_HELPER)


def _boot(user_data: dict[str, Any], scripts_dir: Path) -> str | None:
    """write_files and runcmd as cloud-init runs them; the error, or None."""
    write_files = importlib.import_module("cloudinit.config.cc_write_files")
    util = importlib.import_module("cloudinit.util")
    subp = importlib.import_module("cloudinit.subp")
    entries = [f for f in user_data["write_files"] if f["path"].startswith(WRITTEN_UNDER)]
    write_files.write_files("write_files", entries, "root:root")
    util.write_file(str(scripts_dir / "runcmd"), util.shellify(user_data["runcmd"]), 0o700)
    try:
        subp.runparts(str(scripts_dir))
    except RuntimeError as error:
        return str(error)
    return None


def _mounted_source() -> str | None:
    found = subprocess.run(
        ["findmnt", "--noheadings", "--output", "SOURCE", "--mountpoint", DATA_ROOT],
        capture_output=True,
        text=True,
        check=False,
    )
    return found.stdout.strip() or None


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    yaml = importlib.import_module("yaml")
    user_data = yaml.safe_load(Path(spec["user_data"]).read_text())
    work = Path(spec["work"])
    bin_dir = Path(spec["bin"])
    _private_host(spec["device"], spec["attach_as"], bin_dir, work / "fstab")
    os.environ["PATH"] = f"{bin_dir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    scripts_dir = work / "scripts"
    scripts_dir.mkdir()
    error = _boot(user_data, scripts_dir)
    source = _mounted_source()
    files: list[str] = []
    if source is not None:
        for name, text in spec.get("add_files", {}).items():
            (Path(DATA_ROOT) / name).write_text(text)
        files = sorted(os.listdir(DATA_ROOT))
    report = {"error": error, "mounted": source, "files": files}
    Path(spec["report"]).write_text(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1])
