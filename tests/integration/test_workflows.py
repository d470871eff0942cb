"""The GitHub workflows under actionlint (with shellcheck on their `run:` scripts when present)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tests.integration import daemons

WORKFLOWS = Path(__file__).resolve().parents[2] / ".github" / "workflows"


def findings(paths: list[Path]) -> list[dict[str, object]]:
    linted = daemons.actionlint(paths)
    assert linted.returncode in (0, 1), linted.stderr  # 1: findings; anything else: it failed
    return [json.loads(line) for line in linted.stdout.splitlines() if line.strip()]


def test_workflows_pass_actionlint() -> None:
    workflows = sorted(WORKFLOWS.glob("*.yml"))
    assert workflows, f"no workflow in {WORKFLOWS}"
    assert [f"{f['filepath']}:{f['line']}: {f['message']}" for f in findings(workflows)] == []


def test_actionlint_reports_a_broken_workflow(tmp_path: Path) -> None:
    # The same run on a copy with an unknown event finds it: the check above can fail.
    workflow = sorted(WORKFLOWS.glob("*.yml"))[0]
    broken = tmp_path / workflow.name
    broken.write_text(workflow.read_text().replace("\non:\n", "\non:\n  not_an_event:\n", 1))
    assert any("not_an_event" in str(f["message"]) for f in findings([broken]))


def _jobs_reading_secrets(workflow: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Jobs that read a secret other than the run's own GITHUB_TOKEN."""
    reading = {}
    for name, job in workflow["jobs"].items():
        text = json.dumps(job).replace("secrets.GITHUB_TOKEN", "")
        if "secrets." in text:
            reading[name] = job
    return reading


def test_jobs_with_secrets_run_in_an_environment_that_can_require_approval() -> None:
    """Repository secrets reach any branch pushed to the repository; environment secrets only
    runs a reviewer approved."""
    readers = {
        f"{path.name}:{name}": job
        for path in sorted(WORKFLOWS.glob("*.yml"))
        for name, job in _jobs_reading_secrets(yaml.safe_load(path.read_text())).items()
    }
    assert readers, "no workflow reads a secret: the preview job should"
    assert {name: job.get("environment") for name, job in readers.items()} == {
        name: "preview" for name in readers
    }
