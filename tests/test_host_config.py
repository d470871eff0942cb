"""Host settings applied over SSH: the admin firewall and sshd's limits, on the instance they
belong to, after cloud-init, and before Docker needs them."""

from __future__ import annotations

import ipaddress
import re

import pytest

from ai_swarm_policies.contract import REMOTE_COMMAND
from components.host_config import (
    FIREWALL_CHAIN,
    FIREWALL_SCRIPT,
    FIREWALL_UNIT,
    NETFILTER_PLUGIN,
    SSHD_DROP_IN,
    HostFile,
    firewall_rules,
    install_files_script,
)
from dryrun.engine import ProgramRun, run_program
from tests.helpers import command_script
from tests.services.readers import PROVIDER, instance_id, ssh_options

FIREWALL = "host-settings-firewall"
SSHD = "host-settings-sshd"
_RULE = re.compile(r"^-A AI-SWARM-ADMIN -s (\S+) -p tcp .* --dport (\d+) -j ACCEPT$", re.MULTILINE)


def _opened(run: ProgramRun) -> list[tuple[str, str]]:
    return _RULE.findall(command_script(run, FIREWALL))


def test_settings_component_owns_the_two_commands(always_free_run: ProgramRun) -> None:
    settings = always_free_run.one("ai-swarm:host:Settings", "host-settings")
    children = [r for r in always_free_run.registrations if r.parent == settings.urn]
    assert sorted(r.name for r in children) == [FIREWALL, SSHD]
    assert {r.type for r in children} == {REMOTE_COMMAND}


def test_firewall_opens_exactly_the_admitted_ports() -> None:
    run = run_program(overrides={"adminCidrs": '["203.0.113.0/28", "192.0.2.0/24"]'})
    assert _opened(run) == [("203.0.113.0/28", "22"), ("192.0.2.0/24", "22")]
    exposed = run_program(overrides={"adminCidrs": '["203.0.113.0/28"]', "exposeUis": "true"})
    assert sorted(_opened(exposed)) == [
        ("203.0.113.0/28", "22"),
        ("203.0.113.0/28", "4000"),
        ("203.0.113.0/28", "8080"),
    ]


def test_firewall_is_installed_as_a_boot_unit_and_never_saved(
    always_free_run: ProgramRun,
) -> None:
    script = command_script(always_free_run, FIREWALL)
    assert f"put 0755 {FIREWALL_SCRIPT} <<" in script
    assert f"sudo systemctl enable {FIREWALL_UNIT}" in script
    assert f"sudo systemctl restart {FIREWALL_UNIT}" in script
    # The plugin that loads the rules again after netfilter-persistent restores the image's.
    assert f"put 0755 {NETFILTER_PLUGIN} <<" in script
    # Saving would write Docker's chains into the image's rules file.
    assert "netfilter-persistent save" not in script
    assert "iptables-save" not in script
    assert f"-I INPUT 1 -j {FIREWALL_CHAIN}" in script


def test_settings_run_after_cloud_init_and_again_on_a_new_instance(
    always_free_run: ProgramRun,
) -> None:
    ready = always_free_run.one(REMOTE_COMMAND, "host-ready")
    for name in (FIREWALL, SSHD):
        command = always_free_run.one(REMOTE_COMMAND, name)
        assert ready.urn in command.dependencies
        assert command.inputs["triggers"] == [instance_id(always_free_run)]
        assert command.inputs["connection"]["host"] == "192.0.2.10"
        assert "connection" in command.secret_paths


def test_sshd_admits_many_connections_before_docker_starts(always_free_run: ProgramRun) -> None:
    script = command_script(always_free_run, SSHD)
    assert f"put 0644 {SSHD_DROP_IN} <<" in script
    assert "MaxStartups 64:30:128" in script
    assert "sudo sshd -t" in script
    sshd = always_free_run.one(REMOTE_COMMAND, SSHD)
    assert sshd.urn in always_free_run.one(PROVIDER).dependencies


def test_docker_over_ssh_keeps_host_keys_per_instance(always_free_run: ProgramRun) -> None:
    options = ssh_options(always_free_run)
    known_hosts = f"UserKnownHostsFile=~/.ssh/known_hosts.ai-swarm.{instance_id(always_free_run)}"
    assert options[options.index(known_hosts) - 1] == "-o"
    assert options[options.index("StrictHostKeyChecking=accept-new") - 1] == "-o"


@pytest.mark.parametrize("content", ["no newline at the end", "AI_SWARM_END_OF_FILE\n"])
def test_install_script_refuses_content_it_cannot_carry(content: str) -> None:
    with pytest.raises(ValueError, match="/etc/x"):
        install_files_script([HostFile("/etc/x", content)], then=[])


def test_the_firewall_refuses_what_it_cannot_filter() -> None:
    with pytest.raises(ValueError, match="2001:db8::/64"):
        firewall_rules([ipaddress.ip_network("2001:db8::/64")], [22])
