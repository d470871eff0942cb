"""`load_config` alone, with the config a `pulumi config set` would leave (used by tests).

Runs the program's own config readers in a fresh Pulumi context, without the rest of the
program: a config check takes milliseconds instead of a whole program run.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
from collections.abc import Mapping
from typing import Any

import pulumi
from pulumi.runtime.stack import run_pulumi_func

from components.config import StackConfig, load_config
from dryrun.engine import (
    DEFAULT_STACK,
    PLACEHOLDER_CONFIG,
    PLACEHOLDER_SECRETS,
    PROJECT,
    CloudMocks,
    RecordingMonitor,
)

AVAILABILITY_DOMAINS = ("Uocm:EU-FRANKFURT-1-AD-1", "Uocm:EU-FRANKFURT-1-AD-2")


def load(
    overrides: Mapping[str, str] | None = None,
    secrets: Mapping[str, str] | None = None,
    unset: frozenset[str] = frozenset(),
) -> StackConfig:
    """The validated config of a stack with the placeholders' identity, `overrides` (full
    keys), `secrets` (set as `--secret` sets them) and none of `unset`; a bad value raises the
    readers' `ConfigError`."""
    config = {**PLACEHOLDER_CONFIG, **PLACEHOLDER_SECRETS, **(overrides or {}), **(secrets or {})}
    for name in unset:
        config.pop(name, None)
    secret_keys = [k for k in (*PLACEHOLDER_SECRETS, *(secrets or {})) if k in config]

    def run() -> StackConfig:
        # As the engine runs a program (dryrun/engine.py), so that the secret Outputs the
        # readers make are settled before the loop closes.
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        monitor = RecordingMonitor(CloudMocks(preview=False))
        loaded: list[StackConfig] = []
        try:
            pulumi.runtime.set_mocks(
                monitor.mocks, project=PROJECT, stack=DEFAULT_STACK, monitor=monitor
            )
            pulumi.runtime.set_all_config(config, secret_keys)
            loop.run_until_complete(
                run_pulumi_func(
                    lambda: loaded.append(load_config(lambda _tenancy: AVAILABILITY_DOMAINS))
                )
            )
            return loaded[0]
        finally:
            asyncio.set_event_loop(None)
            loop.close()

    return contextvars.Context().run(run)


def setting(full_key: str, value: Any) -> dict[str, str]:
    """The config `pulumi config set --path <full_key> <value>` leaves: a structured key's
    field becomes the JSON object Pulumi hands the program (`ai-swarm:backups.keep` ->
    `ai-swarm:backups = {"keep": ...}`)."""
    namespace, _, path = full_key.partition(":")
    top, *fields = path.split(".")
    if not fields:
        return {full_key: value if isinstance(value, str) else json.dumps(value)}
    document: Any = value
    for field in reversed(fields):
        document = {field: document}
    return {f"{namespace}:{top}": json.dumps(document)}
