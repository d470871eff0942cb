"""Shared fixtures: the whole program run in-process under mocks, once per profile and mode."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from components.services import image_lock
from dryrun.engine import ProgramRun, run_program


@pytest.fixture(scope="session", autouse=True)
def _no_image_lock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The program as it runs without images.lock (pulling the catalog's tags), whether or not
    the repository has one; the lock's tests point `LOCK_FILE` at the files they write."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(image_lock, "LOCK_FILE", tmp_path_factory.mktemp("no-lock") / "images.lock")
        yield


@pytest.fixture(scope="session")
def always_free_run() -> ProgramRun:
    return run_program(stack="oracle")


@pytest.fixture(scope="session")
def a1_4x24_run() -> ProgramRun:
    return run_program(stack="oracle", overrides={"profile": "a1-4x24"})


@pytest.fixture(scope="session")
def preview_run() -> ProgramRun:
    return run_program(stack="oracle", preview=True)
