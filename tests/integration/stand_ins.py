"""What the host-script tests share: stand-in commands and running a script as the host would.

A host script runs here with a directory of stand-ins first on its PATH (`sudo` that just runs
its command, a `systemctl` that records, ...), then PostgreSQL's client programs and the system.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path

from tests.integration import daemons
from tests.integration.rendered import RenderedContainer

SCRIPT_TIMEOUT_S = 60


def stand_in(bin_dir: Path, name: str, body: str) -> None:
    """An executable `name` in `bin_dir` that runs `body` with /bin/sh."""
    path = bin_dir / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def run_script(
    argv: list[str], bin_dir: Path, env: Mapping[str, str], stdin: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `argv` with the stand-ins in `bin_dir` first on its PATH and only `env` besides."""
    path = f"{bin_dir}:{daemons.PG_BIN}:/usr/bin:/bin"
    with (stdin or Path("/dev/null")).open("rb") as given:
        done = subprocess.run(
            argv,
            stdin=given,
            capture_output=True,
            env={"PATH": path, "LC_ALL": "C", **env},
            timeout=SCRIPT_TIMEOUT_S,
            check=False,
        )
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode(errors="replace"), done.stderr.decode()
    )


def container_env(container: RenderedContainer, server: daemons.PostgresDaemon) -> dict[str, str]:
    """What a shell in the Postgres container sees: its variables, libpq aimed at the test
    server."""
    return {**container.envs, **server.client_env()}
