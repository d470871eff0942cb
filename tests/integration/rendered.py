"""What the program hands a container, read from its registration under mocks.

The integration tests take every config file, command line and healthcheck from here, so they
test exactly what `pulumi up` would send to Docker.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ai_swarm_policies import contract
from dryrun.engine import ProgramRun

CONTAINER = contract.CONTAINER
HEALTHCHECK_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class RenderedContainer:
    """One docker.Container's inputs as plain values (secrets unwrapped by the engine)."""

    name: str
    command: tuple[str, ...]
    envs: Mapping[str, str]
    uploads: Mapping[str, str]  # container path -> content
    healthcheck: tuple[str, ...]
    bind_mounts: Mapping[str, str]  # container path -> host path

    @classmethod
    def of(cls, run: ProgramRun, name: str) -> RenderedContainer:
        [inputs] = [r.inputs for r in run.of_type(CONTAINER) if r.inputs["name"] == name]
        return cls(
            name=name,
            command=tuple(inputs.get("command", ())),
            envs=dict(line.split("=", 1) for line in inputs.get("envs", ())),
            uploads={upload["file"]: upload["content"] for upload in inputs.get("uploads", ())},
            healthcheck=tuple(inputs["healthcheck"]["tests"]),
            bind_mounts=_bind_mounts(inputs.get("mounts", ())),
        )

    @property
    def data_paths(self) -> tuple[str, ...]:
        """Where the container's data directories (on the data volume) are mounted."""
        return tuple(
            inside for inside, host in self.bind_mounts.items() if host.startswith("/mnt/data/")
        )

    def upload(self, path: str) -> str:
        if path not in self.uploads:
            raise LookupError(f"{self.name} uploads no {path}; it uploads {sorted(self.uploads)}")
        return self.uploads[path]


def _bind_mounts(mounts: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    return {m["target"]: m["source"] for m in mounts if m.get("type") == "bind"}


def healthcheck_argv(tests: Sequence[str]) -> list[str]:
    """Docker's healthcheck `tests` as an argv: `CMD` runs as is, `CMD-SHELL` through sh."""
    kind, *rest = tests
    if kind == "CMD":
        return rest
    if kind == "CMD-SHELL":
        return ["sh", "-c", *rest]
    raise ValueError(f"healthcheck kind {kind!r} is neither CMD nor CMD-SHELL")


def run_healthcheck(
    tests: Sequence[str], env: Mapping[str, str]
) -> subprocess.CompletedProcess[str]:
    """Run the healthcheck on this machine with the container's variables (`env`) added."""
    return subprocess.run(
        healthcheck_argv(tests),
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=HEALTHCHECK_TIMEOUT_S,
        check=False,
    )


def retarget(words: Sequence[str], old: str, new: str) -> list[str]:
    """`words` with `old` (a container address such as "127.0.0.1:9100") replaced by `new`."""
    return [word.replace(old, new) for word in words]
