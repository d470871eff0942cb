"""Shared fixtures: the whole program run in-process under mocks, once per profile and mode."""

from __future__ import annotations

import pytest

from dryrun.engine import ProgramRun, run_program


@pytest.fixture(scope="session")
def always_free_run() -> ProgramRun:
    return run_program(stack="oracle")


@pytest.fixture(scope="session")
def a1_4x24_run() -> ProgramRun:
    return run_program(stack="oracle", overrides={"profile": "a1-4x24"})


@pytest.fixture(scope="session")
def preview_run() -> ProgramRun:
    return run_program(stack="oracle", preview=True)
