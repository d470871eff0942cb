"""The command line: help without the Pulumi CLI, argument errors naming the flag, the missing
CLI's message, and `up` wired to the retry loop."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from deploy import cli
from deploy.adapters import POLICY_PACK_DIR, PROJECT_DIR, PULUMI_INSTALL_URL
from deploy.ports import OperatorError
from deploy.retry import AVAILABILITY_DOMAIN_KEY
from tests.deploy.fakes import FIXTURES, FakeClock, FakeCloud, ScriptedStack, fixture_text

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


def test_up_help_shows_allow_replace(tmp_path: Path) -> None:
    done = run_module("up", "--help", tmp_path=tmp_path)
    assert done.returncode == 0
    assert "--allow-replace" in done.stdout


def test_the_documented_up_usage_lists_every_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["up", "--help"])
    # The options list: each flag starts its own line of the help.
    shown = set(re.findall(r"^ {2}(--[a-z-]+)", capsys.readouterr().out, re.MULTILINE))
    shown -= {"--help"}
    page = (PROJECT / "docs" / "operations.md").read_text()
    usage = page.partition("```sh\npython -m deploy up ")[2].partition("```")[0]
    assert usage, "docs/operations.md shows no usage of python -m deploy up"
    assert {word.strip("[]") for word in usage.split() if word.startswith("[--")} == shown


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
    assert code == 0
    assert wired["opened"] == ("oracle", True)
    assert wired.get("connected") is True
    assert "3 availability domain(s)" in printed  # FakeCloud lists three
    assert stack.domains_tried == [None, "2", "3"]


def test_up_with_domains_skips_the_lookup(wired: dict[str, object]) -> None:
    stack = ScriptedStack(["capacity"], values={AVAILABILITY_DOMAIN_KEY: "1"})
    wired["stack"] = stack
    code, _printed = run_cli(["up", "--domains", "2", "--deadline", "0s"])
    assert code == 2
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


def test_allow_replace_reaches_the_retry_loop(wired: dict[str, object]) -> None:
    refused = ScriptedStack([None], preview_name="replace_instance")
    wired["stack"] = refused
    code, printed = run_cli(["up", "--domains", "3"])
    assert code == 1
    assert refused.domains_tried == []
    allowed = ScriptedStack([None], preview_name="replace_instance")
    wired["stack"] = allowed
    code, printed = run_cli(["up", "--domains", "3", "--allow-replace"])
    assert code == 0
    assert allowed.domains_tried == [None]
    assert "(allowed by --allow-replace)" in printed


# ---------------------------------------------------------------------------------------------
# `python -m deploy up` as a shell runs it: the real Automation API against a stand-in CLI


class FakePulumi:
    """A directory with a `pulumi` on PATH that runs tests/deploy/fake_pulumi.py."""

    def __init__(
        self, tmp_path: Path, *, volume: bool, preview: str, ups: tuple[str, ...] = ("capacity",)
    ) -> None:
        self.home = tmp_path / "pulumi-home"
        self.bin = tmp_path / "bin"
        self.home.mkdir()
        self.bin.mkdir()
        script = Path(__file__).with_name("fake_pulumi.py")
        wrapper = self.bin / "pulumi"
        wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{script}" "$@"\n')
        wrapper.chmod(0o755)
        self.write_config({AVAILABILITY_DOMAIN_KEY: "1"})
        state = json.loads(fixture_text("state/export.json"))
        if not volume:
            deployment = state["deployment"]
            deployment["resources"] = [
                r for r in deployment["resources"] if r["type"] != "oci:Core/volume:Volume"
            ]
        (self.home / "state.json").write_text(json.dumps(state))
        (self.home / "preview.jsonl").write_text(fixture_text(f"preview/{preview}.jsonl"))
        # Each `up` fails with the recorded capacity error, or hangs until Ctrl-C.
        modes = ["hang" if u == "hang" else "fail" for u in ups]
        (self.home / "up_modes").write_text("\n".join(modes))
        recorded = (FIXTURES / "up" / "capacity.txt").read_text()
        stdout = recorded.partition(" stdout: ")[2].partition("\n stderr: ")[0]
        (self.home / "up.txt").write_text(stdout)

    def write_config(self, config: dict[str, str]) -> None:
        (self.home / "config.json").write_text(json.dumps(config))

    def config(self) -> dict[str, str]:
        config: dict[str, str] = json.loads((self.home / "config.json").read_text())
        return config

    def calls(self) -> list[list[str]]:
        path = self.home / "calls.jsonl"
        if not path.exists():
            return []
        return [
            [arg for arg in json.loads(line) if arg != "--non-interactive"]
            for line in path.read_text().splitlines()
        ]

    def commands(self) -> list[str]:
        """The subcommands run: `up`, `preview`, `config set`, `stack export`, ..."""
        return [
            " ".join(call[:2]) if call[0] in ("config", "stack") else call[0]
            for call in self.calls()
        ]

    def start(self, *args: str) -> subprocess.Popen[str]:
        env = {
            "PATH": str(self.bin),
            "HOME": str(self.home),
            "COLUMNS": "200",
            "FAKE_PULUMI_DIR": str(self.home),
        }
        return subprocess.Popen(
            # The image check before `up` needs a registry: tests/deploy/test_images*.py.
            [sys.executable, "-m", "deploy", "up", "--skip-image-check", *args],
            cwd=PROJECT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group, as a shell's foreground job
        )


def test_a_zero_deadline_after_a_capacity_failure_exits_2(tmp_path: Path) -> None:
    cli_ = FakePulumi(tmp_path, volume=False, preview="updates_only")
    done = cli_.start("--domains", "3", "--deadline", "0s")
    stdout, stderr = done.communicate(timeout=120)
    assert done.returncode == 2, stderr
    assert "attempt 1 · domain 1/3 · out of host capacity · deadline reached" in stdout
    assert cli_.commands().count("up") == 1
    assert cli_.commands().index("preview") < cli_.commands().index("up")
    assert cli_.config() == {AVAILABILITY_DOMAIN_KEY: "1"}


def test_ctrl_c_during_up_exits_1_and_puts_the_domain_back(tmp_path: Path) -> None:
    # Domain 3 has no capacity; Ctrl-C while the rotation tries domain 1.
    cli_ = FakePulumi(tmp_path, volume=False, preview="updates_only", ups=("capacity", "hang"))
    cli_.write_config({AVAILABILITY_DOMAIN_KEY: "3"})
    process = cli_.start("--domains", "3")
    deadline = time.monotonic() + 90
    while cli_.commands().count("up") < 2:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "pulumi up never started"
        time.sleep(0.2)
    time.sleep(0.5)
    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C: the whole foreground process group
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 1, stderr
    assert "interrupted: no further attempt" in stdout
    assert "ai-swarm:availabilityDomain restored to 3" in stdout
    assert "Traceback" not in stderr
    assert [call[2:] for call in cli_.calls() if call[:2] == ["config", "set"]] == [
        ["ai-swarm:availabilityDomain", "--plaintext", "--stack", "oracle", "--", "1"],
        ["ai-swarm:availabilityDomain", "--plaintext", "--stack", "oracle", "--", "3"],
    ]
    assert cli_.config() == {AVAILABILITY_DOMAIN_KEY: "3"}


def test_a_refused_plan_exits_1_and_never_runs_up(tmp_path: Path) -> None:
    cli_ = FakePulumi(tmp_path, volume=True, preview="replace_instance")
    cli_.write_config({AVAILABILITY_DOMAIN_KEY: "2"})  # the recorded volume's domain
    done = cli_.start("--domains", "3")
    stdout, stderr = done.communicate(timeout=120)
    assert done.returncode == 1, stderr
    assert "up" not in cli_.commands()
    assert "  replace the instance host-instance (because of metadata)" in stdout.splitlines()


def test_a_stack_with_its_data_volume_never_rotates_the_domain(tmp_path: Path) -> None:
    cli_ = FakePulumi(tmp_path, volume=True, preview="updates_only")
    cli_.write_config({AVAILABILITY_DOMAIN_KEY: "2"})
    done = cli_.start("--domains", "3", "--deadline", "0s")
    stdout, stderr = done.communicate(timeout=120)
    assert done.returncode == 2, stderr
    assert stdout.splitlines()[1] == (
        "the data volume lives in Uocm:EU-FRANKFURT-1-AD-2 (domain 2/3): A1 capacity is "
        "retried in that domain only; ai-swarm:availabilityDomain is not rotated"
    )
    assert not any(call[:2] == ["config", "set"] for call in cli_.calls())


def test_a_config_away_from_the_data_volume_stops_before_any_preview(
    wired: dict[str, object],
) -> None:
    stack = ScriptedStack(
        [None], values={AVAILABILITY_DOMAIN_KEY: "1"}, volume_domain="Uocm:EU-FRANKFURT-1-AD-3"
    )
    wired["stack"] = stack
    code, printed = run_cli(["up", "--domains", "3"])
    assert code == 1
    assert printed.strip() == (
        "error: ai-swarm:availabilityDomain is 1, but the data volume lives in "
        "Uocm:EU-FRANKFURT-1-AD-3 (domain 3) and cannot move: set ai-swarm:availabilityDomain "
        "to 3 (or Uocm:EU-FRANKFURT-1-AD-3)"
    )
    assert stack.previews == 0
    assert stack.domains_tried == []
