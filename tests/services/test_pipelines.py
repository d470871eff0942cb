"""Pipelines: never the public default key, pipelines kept on the data volume."""

from __future__ import annotations

import re

from dryrun.engine import ProgramRun
from tests.services.readers import container, depends_on, env

PUBLIC_DEFAULT_KEY = "0p3n-w3bu!"


def test_has_its_own_generated_api_key(free_run: ProgramRun) -> None:
    key = env(container(free_run, "pipelines"))["PIPELINES_API_KEY"]
    assert key != PUBLIC_DEFAULT_KEY
    assert re.fullmatch(r"[A-Za-z0-9]{32}", key)


def test_health_is_get_root_and_nothing_is_published(free_run: ProgramRun) -> None:
    pipelines = container(free_run, "pipelines")
    assert pipelines.inputs["healthcheck"]["tests"][-1] == "http://127.0.0.1:9099/"
    assert pipelines.inputs.get("ports", []) == []
    assert depends_on(free_run, pipelines) == set()
