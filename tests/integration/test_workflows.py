"""The GitHub workflows under actionlint (with shellcheck on their `run:` scripts when present)."""

from __future__ import annotations

import json
from pathlib import Path

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
