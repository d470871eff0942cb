"""The composition's stack outputs: what a user reads after `pulumi up`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ai_swarm_policies.contract import REMOTE_COMMAND as COMMAND
from ai_swarm_policies.contract import SECURITY_LIST, VOLUME
from dryrun.engine import (
    PROJECT_DIR,
    SECRET,
    ProgramRun,
    RecordingMonitor,
    run_program,
)
from tests.budget_table import markdown_table
from tests.helpers import INSTANCE
from tests.services.readers import instance_id

DOCKER_PREFIX = "docker:"
FIREWALL = "host-settings-firewall"


def _known_hosts(run: ProgramRun) -> str:
    """The tunnel's ssh options that pin the host key in the instance's own file."""
    return (
        f"-o 'UserKnownHostsFile=~/.ssh/known_hosts.ai-swarm.{run.outputs['instanceId']}' "
        "-o StrictHostKeyChecking=accept-new"
    )


def test_outputs_name_the_host_and_the_ui_tunnel(always_free_run: ProgramRun) -> None:
    outputs = always_free_run.outputs
    assert outputs["profile"] == "always-free"
    assert outputs["uiTunnel"] == (
        f"ssh -N {_known_hosts(always_free_run)} "
        "-L 4000:127.0.0.1:4000 -L 8080:127.0.0.1:8080 ubuntu@192.0.2.10"
    )
    assert outputs["litellmMasterKey"] is SECRET


def test_tunnel_follows_exposed_uis_and_disabled_services() -> None:
    exposed = run_program(overrides={"exposeUis": "true"})
    assert exposed.outputs["uiTunnel"] == (
        f"ssh -N {_known_hosts(exposed)} "
        "-L 4000:10.0.1.10:4000 -L 8080:10.0.1.10:8080 ubuntu@192.0.2.10"
    )
    without_webui = run_program(overrides={"services": '{"openWebui": {"enabled": false}}'})
    assert without_webui.outputs["uiTunnel"] == (
        f"ssh -N {_known_hosts(without_webui)} -L 4000:127.0.0.1:4000 ubuntu@192.0.2.10"
    )


@pytest.mark.parametrize("profile", ["always-free", "a1-4x24"])
def test_the_documented_budget_tables_match_the_catalog(profile: str) -> None:
    page = (Path(PROJECT_DIR) / "docs" / "architecture.md").read_text()
    block = re.search(
        rf"<!-- budget-table:{profile} -->\n(.*?)\n<!-- /budget-table -->", page, re.DOTALL
    )
    assert block is not None, f"docs/architecture.md has no budget table for {profile}"
    assert block.group(1) == markdown_table(profile)


# --- Stable registrations: settings change resources in place, never their names -----------


def _registered(run: ProgramRun) -> list[str]:
    """The URNs a run registered; the order of registration follows the event loop, and the
    engine does not depend on it."""
    return sorted(r.urn for r in run.registrations)


def test_admin_settings_leave_the_instance_untouched(always_free_run: ProgramRun) -> None:
    changed = run_program(
        overrides={"adminCidrs": '["203.0.113.0/28", "192.0.2.0/24"]', "exposeUis": "true"}
    )
    before, after = always_free_run.one(INSTANCE), changed.one(INSTANCE)
    assert after == before  # inputs in wire form, dependencies and options alike
    # ... while the security list and the host firewall follow the settings.
    for type_, name in [(SECURITY_LIST, "swarm-admin-ingress"), (COMMAND, FIREWALL)]:
        assert changed.one(type_, name).wire_inputs != always_free_run.one(type_, name).wire_inputs


def test_a_new_instance_reaches_every_docker_resource(always_free_run: ProgramRun) -> None:
    moved = run_program(overrides={"availabilityDomain": "2"})
    assert instance_id(moved) != instance_id(always_free_run)
    docker = [r for r in always_free_run.registrations if r.type.startswith(DOCKER_PREFIX)]
    assert len(docker) >= 17  # provider, network, images and containers
    by_urn = moved.by_urn()
    for resource in docker:
        assert by_urn[resource.urn].wire_inputs != resource.wire_inputs, resource.urn
    # The commands on the host run again on the new instance as well.
    for command in always_free_run.of_type(COMMAND):
        assert by_urn[command.urn].wire_inputs != command.wire_inputs, command.urn


def test_a_new_host_name_keeps_every_urn_and_renames_in_place(
    always_free_run: ProgramRun,
) -> None:
    renamed = run_program(overrides={"hostName": "renamed-host"})
    assert _registered(renamed) == _registered(always_free_run)
    assert renamed.one(INSTANCE).inputs["displayName"] == "renamed-host"
    assert renamed.one(VOLUME).inputs["displayName"] == "renamed-host-data"
    # The host key that containers are placed by is the component's name, not the hostName:
    # no Docker resource sees the rename, so none is replaced.
    assert renamed.one(INSTANCE).inputs["freeformTags"] == {"ai-swarm-host": "host"}
    by_urn = renamed.by_urn()
    docker = [r for r in always_free_run.registrations if r.type.startswith(DOCKER_PREFIX)]
    assert docker
    for resource in docker:
        assert by_urn[resource.urn].wire_inputs == resource.wire_inputs, resource.urn


def test_stacks_named_after_the_host_keep_their_resources(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The host component was named after `hostName`, its children `<hostName>-<part>`: each
    is aliased to that name in the same parent (a URN holds the parent's type, not its name)."""
    aliases: dict[str, list[Any]] = {}
    record = RecordingMonitor.RegisterResource

    def recording(monitor: RecordingMonitor, request: Any) -> Any:
        aliases[request.name] = list(request.aliases)
        return record(monitor, request)

    monkeypatch.setattr(RecordingMonitor, "RegisterResource", recording)
    run = run_program(overrides={"hostName": "old-name"})
    host = run.one("ai-swarm:oci:ArmHost")
    members = [host, *(r for r in run.registrations if r.parent == host.urn)]
    assert len(members) == 7
    for member in members:
        [alias] = aliases[member.name]
        former = "old-name" + member.name.removeprefix(host.name)
        assert (alias.spec.name, alias.spec.type, alias.spec.parentUrn) == (former, "", "")


_DUMP_REGISTRATIONS = """
import json
from google.protobuf import json_format
from dryrun.engine import run_program
run = run_program()
print(json.dumps([
    [r.urn, r.parent, r.provider, sorted(r.dependencies),
     {k: sorted(v) for k, v in r.property_dependencies.items()},
     [r.protect, r.retain_on_delete, r.delete_before_replace],
     list(r.ignore_changes), list(r.replace_on_changes),
     json_format.MessageToDict(r.wire_inputs)]
    for r in sorted(run.registrations, key=lambda r: r.urn)
], sort_keys=True))
"""


def _registrations_with_hash_seed(seed: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", _DUMP_REGISTRATIONS],
        cwd=PROJECT_DIR,
        env={**os.environ, "PYTHONHASHSEED": seed},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout


def test_the_same_config_registers_the_same_resources() -> None:
    """Two runs in fresh interpreters with different string hashing: any set iteration, time
    or random name would show up as a difference in names, inputs or options. Registrations
    are compared by URN, since the order they arrive in follows the event loop, and their
    dependencies as sets, which the SDK sends in its sets' order and the engine reads as sets."""
    first, second = (_registrations_with_hash_seed(seed) for seed in ("1", "2"))
    assert json.loads(first)
    assert first == second
