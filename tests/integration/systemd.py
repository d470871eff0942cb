"""`systemd-analyze verify` on unit files, in a root directory of the test's own.

The root holds this machine's system units (so that targets and the units ours refer to
resolve) and whatever the test puts in it; nothing is read from or written to the real /etc.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.integration import daemons

SYSTEM_UNITS = Path("/usr/lib/systemd/system")


def systemd_root(root: Path) -> Path:
    """A root with the system's units and empty /etc/systemd/system and /usr/local/sbin."""
    daemons.require_program("systemd-analyze")
    daemons.record_version("systemd", ["systemd-analyze", "--version"])
    shutil.copytree(SYSTEM_UNITS, root / "usr/lib/systemd/system", symlinks=True)
    for directory in ("etc/systemd/system", "usr/local/sbin", "usr/bin"):
        (root / directory).mkdir(parents=True, exist_ok=True)
    return root


def verify(root: Path, *units: str) -> subprocess.CompletedProcess[str]:
    """`systemd-analyze verify` of `units` as the root has them; the caller judges the result."""
    return subprocess.run(
        ["systemd-analyze", "verify", f"--root={root}", "--man=no", *units],
        capture_output=True,
        text=True,
        timeout=daemons.COMMAND_TIMEOUT_S,
        check=False,
    )


# Docker as the package ships it, in short: the ordering of other units against it is what
# the tests judge.
DOCKER_STAND_IN_UNIT = """[Unit]
Description=Docker Application Container Engine (stand-in)
After=network-online.target
Wants=network-online.target

[Service]
ExecStart=/usr/bin/dockerd -H fd://

[Install]
WantedBy=multi-user.target
"""


def docker_stand_in(root: Path) -> None:
    """A `docker.service` (and a `dockerd` that exits) in the root."""
    (root / "usr/lib/systemd/system/docker.service").write_text(DOCKER_STAND_IN_UNIT)
    dockerd = root / "usr/bin/dockerd"
    dockerd.write_text("#!/bin/sh\nexit 0\n")
    dockerd.chmod(0o755)


def ordering_probe(root: Path, *, after: str, before: str) -> str:
    """The cycle probe: a unit that pulls in `after` and `before` and is ordered between them.
    Verifying it finds an ordering cycle exactly when `before` is ordered before `after`
    (directly or through other units); systemd then drops a job to break it and says so on
    stderr ("ordering cycle"). Returns the probe's unit name."""
    name = "ai-swarm-ordering-probe.target"
    (root / "etc/systemd/system" / name).write_text(
        f"[Unit]\nWants={after} {before}\nAfter={after}\nBefore={before}\n"
    )
    return name
