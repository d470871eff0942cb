"""The real adapters, against the Automation API's own error type and a stand-in `ssh`."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from pulumi import automation as auto

from components.config import A1_HOST_KEY, REPLICA_HOST_KEY
from components.services.base import HOST_LABEL
from deploy.adapters import (
    CONTAINER_TYPE,
    POLICY_PACK_DIR,
    PULUMI_INSTALL_URL,
    AutomationStack,
    SshShell,
    identity_file,
    open_stack,
)
from deploy.ports import OperatorError, PulumiUpError
from tests.deploy.fakes import fixture_text, recorded_events


class FakeAutoStack:
    """Stands in for `auto.Stack`: records calls, fails `up` like the CLI would."""

    def __init__(
        self, up_error: auto.CommandError | None = None, recorded: str = "updates_only"
    ) -> None:
        self.up_error = up_error
        self.up_kwargs: dict[str, Any] = {}
        self.preview_kwargs: dict[str, Any] = {}
        self.recorded = recorded
        self.config: dict[str, auto.ConfigValue] = {
            "ai-swarm:availabilityDomain": auto.ConfigValue("2"),
            "ai-swarm:sshPrivateKey": auto.ConfigValue("-----BEGIN KEY", secret=True),
        }

    def up(self, **kwargs: Any) -> None:
        self.up_kwargs = kwargs
        kwargs["on_output"]("Updating (oracle):")
        if self.up_error:
            raise self.up_error

    def preview(self, **kwargs: Any) -> auto.PreviewResult:
        """Feeds the recorded events to `on_event` as the SDK's log watcher does."""
        self.preview_kwargs = kwargs
        kwargs["on_output"]("Previewing update (oracle):")
        summary: dict[Any, int] = {}
        for event in recorded_events(self.recorded):
            kwargs["on_event"](event)
            if event.summary_event:
                summary = dict(event.summary_event.resource_changes)
        return auto.PreviewResult(stdout="", stderr="", change_summary=summary)

    def get_all_config(self) -> dict[str, auto.ConfigValue]:
        return self.config

    def set_config(self, key: str, value: auto.ConfigValue) -> None:
        self.config[key] = value

    def remove_config(self, key: str) -> None:
        del self.config[key]

    def outputs(self) -> dict[str, auto.OutputValue]:
        return {"publicIp": auto.OutputValue("192.0.2.10", secret=False)}

    def export_stack(self) -> auto.Deployment:
        container = "docker:index/container:Container"
        return auto.Deployment(
            version=3,
            deployment={
                "resources": [
                    {"type": "pulumi:pulumi:Stack", "outputs": {}},
                    {"type": container, "outputs": {"name": "postgres"}},
                    {"type": "oci:Core/instance:Instance", "outputs": {"name": "not a container"}},
                    {"type": container, "outputs": {"name": "/vault"}},
                ]
            },
        )


def command_error(stdout: str) -> auto.CommandError:
    return auto.errors.create_command_error(auto.CommandResult(stdout=stdout, stderr="", code=255))


def wrap(fake: FakeAutoStack) -> AutomationStack:
    return AutomationStack(fake)  # type: ignore[arg-type]


def test_up_runs_the_policy_pack_and_passes_the_clis_output_on_failure() -> None:
    fake = FakeAutoStack(command_error(fixture_text("up/capacity.txt")))
    seen: list[str] = []
    with pytest.raises(PulumiUpError) as raised:
        wrap(fake).up(seen.append)
    assert fake.up_kwargs["policy_packs"] == [str(POLICY_PACK_DIR)]
    assert seen == ["Updating (oracle):"]
    assert "500-InternalError, Out of host capacity." in raised.value.output


@pytest.mark.parametrize("recorded", ["replace_instance", "delete_attachment", "updates_only"])
def test_preview_runs_the_policy_pack_and_returns_the_engines_steps(recorded: str) -> None:
    fake = FakeAutoStack(recorded=recorded)
    seen: list[str] = []
    preview = wrap(fake).preview(seen.append)
    assert fake.preview_kwargs["policy_packs"] == [str(POLICY_PACK_DIR)]
    assert seen == ["Previewing update (oracle):"]
    # One step per resourcePreEvent, in the engine's order, with its op and URN as written.
    lines = fixture_text(f"preview/{recorded}.jsonl").splitlines()
    pre = [json.loads(line)["resourcePreEvent"] for line in lines if "resourcePreEvent" in line]
    assert [(s.op, s.urn, s.type) for s in preview.steps] == [
        (e["metadata"]["op"], e["metadata"]["urn"], e["metadata"]["type"]) for e in pre
    ]
    summary = next(json.loads(line)["summaryEvent"] for line in lines if "summaryEvent" in line)
    assert preview.counts == summary["resourceChanges"]


def test_a_failed_preview_passes_the_clis_output_on() -> None:
    class FailingPreview(FakeAutoStack):
        def preview(self, **kwargs: Any) -> auto.PreviewResult:
            raise command_error(fixture_text("up/policy.txt"))

    with pytest.raises(PulumiUpError) as raised:
        wrap(FailingPreview()).preview(lambda _line: None)
    assert "[mandatory]" in raised.value.output


def test_the_data_volumes_domain_comes_from_the_exported_state() -> None:
    class Exported(FakeAutoStack):
        def export_stack(self) -> auto.Deployment:
            state = json.loads(fixture_text("state/export.json"))
            return auto.Deployment(version=state["version"], deployment=state["deployment"])

    assert wrap(Exported()).data_volume_domain() == "Uocm:EU-FRANKFURT-1-AD-2"
    assert wrap(FakeAutoStack()).data_volume_domain() is None  # its state holds no volume


def test_config_reads_and_writes_plain_values() -> None:
    fake = FakeAutoStack()
    stack = wrap(fake)
    assert stack.get_config("ai-swarm:availabilityDomain") == "2"
    assert stack.get_config("ai-swarm:hostName") is None
    stack.set_config("ai-swarm:availabilityDomain", "3")
    written = fake.config["ai-swarm:availabilityDomain"]
    assert (written.value, written.secret) == ("3", False)
    stack.remove_config("ai-swarm:availabilityDomain")
    assert "ai-swarm:availabilityDomain" not in fake.config


def test_outputs_and_deployed_containers() -> None:
    stack = wrap(FakeAutoStack())
    assert stack.outputs() == {"publicIp": "192.0.2.10"}
    assert list(stack.deployed_containers()) == ["postgres", "vault"]


def test_deployed_containers_of_one_host_follow_the_host_label() -> None:
    def labelled(name: str, host: str) -> dict[str, object]:
        labels = [{"label": "ai-swarm.instance", "value": "ocid1"}]
        labels.append({"label": HOST_LABEL, "value": host})
        return {"type": CONTAINER_TYPE, "outputs": {"name": name, "labels": labels}}

    class TwoHosts(FakeAutoStack):
        def export_stack(self) -> auto.Deployment:
            resources = [
                labelled("postgres", A1_HOST_KEY),
                labelled("node-exporter", A1_HOST_KEY),
                labelled("postgres-replica", REPLICA_HOST_KEY),
                labelled("node-exporter", REPLICA_HOST_KEY),
                {"type": CONTAINER_TYPE, "outputs": {"name": "unlabelled"}},
            ]
            return auto.Deployment(version=3, deployment={"resources": resources})

    stack = wrap(TwoHosts())
    assert list(stack.deployed_containers(A1_HOST_KEY)) == [
        "postgres",
        "node-exporter",
        "unlabelled",
    ]
    assert list(stack.deployed_containers(REPLICA_HOST_KEY)) == [
        "postgres-replica",
        "node-exporter",
        "unlabelled",
    ]
    assert len(stack.deployed_containers()) == 5


def test_opening_a_stack_without_the_cli_names_the_install_page(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(OperatorError, match=PULUMI_INSTALL_URL):
        open_stack("oracle", create=False)


def test_the_secret_key_is_written_0600_and_removed_afterwards() -> None:
    config = {"ai-swarm:sshPrivateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\nabc"}
    with identity_file(config) as path:
        assert path.read_text().endswith("abc\n")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        kept = path
    assert not kept.exists()


def test_an_identity_file_in_the_config_is_used_as_is(tmp_path: Path) -> None:
    key = tmp_path / "ai-swarm"
    key.write_text("key")
    config = {"ai-swarm:sshIdentityFile": str(key), "ai-swarm:sshPrivateKey": "other"}
    with identity_file(config) as path:
        assert path == key


def test_a_missing_identity_file_is_an_operator_error(tmp_path: Path) -> None:
    with (
        pytest.raises(OperatorError, match="does not exist"),
        identity_file({"ai-swarm:sshIdentityFile": str(tmp_path / "none")}),
    ):
        pass


def test_ssh_gets_the_key_user_and_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    recorder = tmp_path / "ssh"
    recorder.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    recorder.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    shell = SshShell("192.0.2.10", "ocid1.instance.oc1..new", tmp_path / "key", tmp_path)
    result = shell.run("docker ps --format '{{json .}}'")
    args = result.stdout.splitlines()
    assert result.exit_code == 0
    assert args[args.index("-i") + 1] == str(tmp_path / "key")
    assert "StrictHostKeyChecking=accept-new" in args
    # The replaced host's new key goes into a file of the new instance: no known_hosts edit.
    assert "UserKnownHostsFile=~/.ssh/known_hosts.ai-swarm.ocid1.instance.oc1..new" in args
    assert "BatchMode=yes" in args
    assert args[-3:] == ["ubuntu@192.0.2.10", "--", "docker ps --format '{{json .}}'"]


def test_a_failing_cli_command_reports_stderr_and_never_stdout() -> None:
    class FailingConfig(FakeAutoStack):
        def get_all_config(self) -> dict[str, auto.ConfigValue]:
            result = auto.CommandResult(
                stdout='{"ai-swarm:sshPrivateKey": {"value": "-----BEGIN SECRET"}}',
                stderr="warning: A new version of Pulumi is available\n"
                "error: could not decrypt configuration value: incorrect passphrase\n",
                code=255,
            )
            raise auto.errors.create_command_error(result)

    with pytest.raises(OperatorError) as raised:
        wrap(FailingConfig()).get_config("ai-swarm:availabilityDomain")
    assert str(raised.value) == (
        "pulumi failed: error: could not decrypt configuration value: incorrect passphrase"
    )
