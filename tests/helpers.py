"""Small readers over a program run, shared by the test modules."""

from __future__ import annotations

import base64
from typing import Any

import yaml

from ai_swarm_policies import contract
from dryrun.engine import ProgramRun

INSTANCE = contract.INSTANCE


def user_data_text(run: ProgramRun) -> str:
    """The cloud-config the instance boots with, decoded from its metadata."""
    encoded = run.one(INSTANCE).inputs["metadata"]["user_data"]
    return base64.b64decode(encoded).decode()


def user_data(run: ProgramRun) -> dict[str, Any]:
    document = yaml.safe_load(user_data_text(run))
    assert isinstance(document, dict)
    return document


def command_script(run: ProgramRun, name: str) -> str:
    """The script a `command:remote:Command` of the run executes on the host."""
    script = run.one(contract.REMOTE_COMMAND, name).inputs["create"]
    assert isinstance(script, str)
    return script


def installed_files(script: str) -> dict[str, str]:
    """The files a host command writes with `put MODE PATH <<'MARKER'`, by path."""
    found: dict[str, str] = {}
    lines = iter(script.splitlines(keepends=True))
    for line in lines:
        words = line.split()
        if len(words) == 4 and words[0] == "put" and words[3].startswith("<<'"):
            marker = words[3][3:-1]
            body = []
            for body_line in lines:
                if body_line.rstrip("\n") == marker:
                    break
                body.append(body_line)
            found[words[2]] = "".join(body)
    return found


# The boot disk is 50 GB for everything: each container's logs stay well under 1% of it.
MAX_LOGS_MB = 50


def log_size_mb(text: str) -> float:
    """A Docker log size ("10m", "512k", "1g") in MB."""
    units = {"k": 1 / 1024, "m": 1, "g": 1024}
    return float(text[:-1]) * units[text[-1].lower()]
