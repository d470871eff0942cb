"""The command line: help without the Pulumi CLI, argument errors naming the flag, the missing
CLI's message, and `up` wired to the retry loop."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from deploy import cli
from deploy.adapters import POLICY_PACK_DIR, PROJECT_DIR, PULUMI_INSTALL_URL
from deploy.ports import OperatorError
from deploy.retry import AVAILABILITY_DOMAIN_KEY, EXIT_DEADLINE, EXIT_DEPLOYED
from tests.deploy.fakes import FakeClock, FakeCloud, ScriptedStack

PROJECT = Path(__file__).resolve().parents[2]


def run_module(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`python -m deploy` with an empty PATH: no `pulumi`, no `ssh`."""
    env = {"PATH": str(tmp_path), "HOME": str(tmp_path), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "deploy", *args],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("command", [[], ["up"], ["status"], ["idle-check"]])
def test_help_needs_no_pulumi_cli(command: list[str], tmp_path: Path) -> None:
    done = run_module(*command, "--help", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "--stack" in done.stdout or "COMMAND" in done.stdout


def test_a_missing_pulumi_cli_names_the_install_page(tmp_path: Path) -> None:
    done = run_module("status", tmp_path=tmp_path)
    assert done.returncode == 1
    assert PULUMI_INSTALL_URL in done.stdout
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["up", "--deadline", "5x"], "--deadline"),
        (["up", "--min-delay", "-1s"], "--min-delay"),
        (["up", "--max-delay", "15"], "--max-delay"),
        (["up", "--domains", "0"], "--domains"),
        (["up", "--min-delay", "20m", "--max-delay", "15m"], "--min-delay"),
    ],
)
def test_bad_input_is_an_argparse_error_naming_the_flag(
    args: list[str], flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(args)
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert f"argument {flag}:" in error
    assert error.startswith("usage: python -m deploy up")


def test_zero_durations_are_accepted() -> None:
    args = cli.build_parser().parse_args(["up", "--deadline", "0s", "--min-delay", "0s"])
    assert (args.deadline, args.min_delay, args.max_delay) == (0, 0, 900)


def test_a_missing_output_is_named_and_no_value_is_shown() -> None:
    outputs = {"publicIp": "192.0.2.10", "litellmMasterKey": "sk-do-not-print"}
    with pytest.raises(OperatorError) as raised:
        cli.require_output(outputs, "instanceId")
    message = str(raised.value)
    assert "'instanceId'" in message
    assert "litellmMasterKey" in message  # names present, to show what the stack has
    assert "sk-do-not-print" not in message
    assert "192.0.2.10" not in message


# ---------------------------------------------------------------------------------------------
# `up` wiring


@pytest.fixture
def wired(monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    wiring: dict[str, object] = {}

    def open_stack(name: str, *, create: bool) -> ScriptedStack:
        wiring["opened"] = (name, create)
        stack = wiring["stack"]
        assert isinstance(stack, ScriptedStack)
        return stack

    def connect(config: object) -> FakeCloud:
        wiring["connected"] = True
        return FakeCloud()

    monkeypatch.setattr(cli, "open_stack", open_stack)
    monkeypatch.setattr(cli, "connect", connect)
    monkeypatch.setattr(cli, "SystemClock", FakeClock)
    monkeypatch.setattr(cli, "images_pass_before_up", lambda stack, console: True)
    return wiring


def run_cli(args: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    code = cli.main(args, console=Console(file=out, width=300, color_system=None))
    return code, out.getvalue()


def test_up_asks_oci_for_the_domains_unless_given(wired: dict[str, object]) -> None:
    stack = ScriptedStack(["capacity", "capacity", None])
    wired["stack"] = stack
    code, printed = run_cli(["up", "--stack", "oracle"])
    assert code == EXIT_DEPLOYED
    assert wired["opened"] == ("oracle", True)
    assert wired.get("connected") is True
    assert "3 availability domain(s)" in printed  # FakeCloud lists three
    assert stack.domains_tried == [None, "2", "3"]


def test_up_with_domains_skips_the_lookup(wired: dict[str, object]) -> None:
    stack = ScriptedStack(["capacity"], values={AVAILABILITY_DOMAIN_KEY: "1"})
    wired["stack"] = stack
    code, _printed = run_cli(["up", "--domains", "2", "--deadline", "0s"])
    assert code == EXIT_DEADLINE
    assert "connected" not in wired
    assert stack.values[AVAILABILITY_DOMAIN_KEY] == "1"


def test_an_operator_error_exits_1_with_one_line(wired: dict[str, object]) -> None:
    wired["stack"] = ScriptedStack([], values={AVAILABILITY_DOMAIN_KEY: "7"})
    code, printed = run_cli(["up", "--domains", "3"])
    assert code == 1
    assert (
        printed.strip() == "error: ai-swarm:availabilityDomain is 7, but the region has 3 domain(s)"
    )


def test_the_project_is_found_from_the_package_location() -> None:
    # `python -m deploy` finds the project from its own location, not the working directory.
    assert (PROJECT_DIR / "Pulumi.yaml").is_file()
    assert (POLICY_PACK_DIR / "PulumiPolicy.yaml").is_file()
    assert os.path.isabs(PROJECT_DIR)
