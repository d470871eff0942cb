"""Program runs for the service tests: both profiles, the UIs exposed, models configured."""

from __future__ import annotations

import json

import pytest

from dryrun.engine import ProgramRun
from tests.services.readers import run_with

# Fake provider keys: recognisable in any leak, and not keys of anything.
MODEL_API_KEYS = {
    "OPENAI_API_KEY": "sk-test-openai-0000000000000000000000",
    "ANTHROPIC_API_KEY": "sk-ant-test-1111111111111111111111",
}
MODELS = [
    {"name": "gpt-4o-mini", "model": "openai/gpt-4o-mini", "apiKey": "OPENAI_API_KEY"},
    {
        "name": "claude",
        "model": "anthropic/claude-sonnet-4-5",
        "apiKey": "ANTHROPIC_API_KEY",
        "apiBase": "https://api.anthropic.com",
    },
    {"name": "local", "model": "ollama/llama3", "apiBase": "http://10.0.1.20:11434"},
]
WITH_MODELS = {"models": json.dumps(MODELS)}
API_KEYS = {"modelApiKeys": json.dumps(MODEL_API_KEYS)}  # set with --secret, as documented


@pytest.fixture(scope="session")
def free_run() -> ProgramRun:
    return run_with(WITH_MODELS, secrets=API_KEYS)


@pytest.fixture(scope="session")
def big_run() -> ProgramRun:
    return run_with({**WITH_MODELS, "profile": "a1-4x24"}, secrets=API_KEYS)


@pytest.fixture(scope="session")
def exposed_run() -> ProgramRun:
    return run_with({"exposeUis": "true"})
