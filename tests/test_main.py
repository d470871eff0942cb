"""The composition's stack outputs: what a user reads after `pulumi up`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dryrun.engine import PROJECT_DIR, SECRET, ProgramRun, run_program
from tests.budget_table import markdown_table


def test_outputs_name_the_host_and_the_ui_tunnel(always_free_run: ProgramRun) -> None:
    outputs = always_free_run.outputs
    assert outputs["profile"] == "always-free"
    assert outputs["uiTunnel"] == (
        "ssh -N -L 4000:127.0.0.1:4000 -L 8080:127.0.0.1:8080 ubuntu@192.0.2.10"
    )
    assert outputs["litellmMasterKey"] is SECRET


def test_tunnel_follows_exposed_uis_and_disabled_services() -> None:
    exposed = run_program(overrides={"exposeUis": "true"}).outputs["uiTunnel"]
    assert exposed == "ssh -N -L 4000:10.0.1.10:4000 -L 8080:10.0.1.10:8080 ubuntu@192.0.2.10"
    without_webui = run_program(overrides={"services": '{"openWebui": {"enabled": false}}'})
    assert without_webui.outputs["uiTunnel"] == "ssh -N -L 4000:127.0.0.1:4000 ubuntu@192.0.2.10"


@pytest.mark.parametrize("profile", ["always-free", "a1-4x24"])
def test_readme_budget_tables_match_the_catalog(profile: str) -> None:
    readme = (Path(PROJECT_DIR) / "README.md").read_text()
    block = re.search(
        rf"<!-- budget-table:{profile} -->\n(.*?)\n<!-- /budget-table -->", readme, re.DOTALL
    )
    assert block is not None, f"README has no budget table for {profile}"
    assert block.group(1) == markdown_table(profile)
