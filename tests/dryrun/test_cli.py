"""`python -m dryrun` end to end, as a newcomer runs it: a subprocess from the project root."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
from pathlib import Path

import pulumi
import pytest

from dryrun import cli
from dryrun.engine import PROJECT_DIR, ProgramError

SECTIONS = (
    "1. Resources",
    "2. Budget of host 'host'",
    "3. Free-tier allowance",
    "4. Policies",
    "5. Deployment graph",
)
# A section heading as printed: its number at the start of a line.
HEADING = re.compile(r"^(\d+)\. [A-Z]", re.MULTILINE)


def dry_run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dryrun", *args],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_default_stack_passes_and_prints_its_sections_numbered_once_each() -> None:
    result = dry_run()
    assert result.returncode == 0, result.stderr
    positions = [result.stdout.index(section) for section in SECTIONS]
    assert positions == sorted(positions)
    numbers = [int(number) for number in HEADING.findall(result.stdout)]
    assert numbers == list(range(1, len(SECTIONS) + 1))
    assert "OK: no mandatory violation" in result.stdout


def test_the_budget_lists_the_largest_container_first() -> None:
    result = dry_run()
    assert result.returncode == 0, result.stderr
    table = result.stdout.split("2. Budget of host", 1)[1].split("3. Free-tier allowance", 1)[0]
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in table.splitlines()]
    containers = list(itertools.takewhile(lambda row: row[0] != "total", filter(None, rows)))
    memory = [int(row[3]) for row in containers]
    assert len(memory) == 9
    assert memory == sorted(memory, reverse=True)
    assert containers[0][1] == "open-webui"


def test_over_allowance_exits_1_naming_the_policy() -> None:
    result = dry_run("--set", "ocpus=4", "--set", "ai-swarm:memoryGb=24")
    assert result.returncode == 1, result.stderr
    assert "mandatory" in result.stdout
    assert "a1-allowance" in result.stdout


def test_a1_4x24_passes_with_its_policy_profile() -> None:
    result = dry_run(
        "--set", "profile=a1-4x24", "--policy-config", "policies/profiles/a1-4x24.json"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2. Budget of host 'host' (4 OCPU, 24 GB)" in result.stdout


def test_malformed_config_exits_2_with_the_key_and_no_traceback() -> None:
    result = dry_run("--set", "adminCidrs=0.0.0.0/0")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: config ai-swarm:adminCidrs: '0.0.0.0/0' is not allowed; "
        "a range narrower than the whole internet"
    ]
    assert "Traceback" not in result.stderr


def test_unreadable_policy_config_exits_2(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    result = dry_run("--policy-config", str(broken))
    assert result.returncode == 2
    assert str(broken) in result.stderr or "broken.json" in result.stderr


def test_set_without_a_value_is_a_usage_error() -> None:
    result = dry_run("--set", "profile")
    assert result.returncode == 2
    assert "is not KEY=VALUE" in result.stderr


def test_json_holds_resources_budget_policies_and_graph() -> None:
    result = dry_run("--json", "--preview")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["stack"] == "oracle"
    assert document["preview"] is True
    assert document["outputs"]["publicIp"] is None  # unknown until created
    top = {(node["type"], node["name"]) for node in document["resources"]}
    assert ("ai-swarm:oci:ArmHost", "host") in top
    [host] = document["budget"]["hosts"]
    assert (host["host"], host["ocpus"], host["memoryGb"]) == ("host", 2, 12)
    # The pack's default reserve for the OS and Docker, as docs/architecture.md documents it.
    assert host["reservedMemoryMb"] == 1536
    assert host["memoryMb"]["allowed"] == 12 * 1024 - 1536
    assert document["budget"]["a1Ocpus"] == {"used": 2, "allowed": 2, "headroom": 0}
    assert set(document["policies"]) == {"advisory", "mandatory", "remediate", "disabled"}
    assert document["policies"]["mandatory"] == []
    chain = document["graph"]["longestChain"]
    assert chain["length"] == len(chain["members"]) > 1
    assert document["exitCode"] == 0


@pytest.mark.parametrize(
    ("cause", "traceback_printed"),
    [(pulumi.RunError("the program stops: nothing to deploy"), False), (ValueError("bug"), True)],
)
def test_a_clean_program_stop_prints_its_message_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    cause: Exception,
    traceback_printed: bool,
) -> None:
    def failing(*_: object) -> object:
        raise ProgramError(cause, ())

    monkeypatch.setattr(cli, "dry_run", failing)
    assert cli.main([]) == cli.EXIT_ERROR
    stderr = capsys.readouterr().err
    assert stderr.strip().splitlines()[-1] == f"error: {cause}"
    # print_exception's last line names the exception's type: printed for a bug only.
    assert (f"{type(cause).__name__}: {cause}" in stderr) is traceback_printed
