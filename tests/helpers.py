"""Small readers over a program run, shared by the test modules."""

from __future__ import annotations

import base64
from typing import Any

import yaml

from dryrun.engine import ProgramRun

INSTANCE = "oci:Core/instance:Instance"


def user_data_text(run: ProgramRun) -> str:
    """The cloud-config the instance boots with, decoded from its metadata."""
    encoded = run.one(INSTANCE).inputs["metadata"]["user_data"]
    return base64.b64decode(encoded).decode()


def user_data(run: ProgramRun) -> dict[str, Any]:
    document = yaml.safe_load(user_data_text(run))
    assert isinstance(document, dict)
    return document
