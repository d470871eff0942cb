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
