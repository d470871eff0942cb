"""The host firewall part of the cloud-config, run by the real iptables in a test host.

A network namespace stands for the A1 host, loaded with the rules OCI's Ubuntu images ship
(everything but SSH rejected); the rendered `runcmd` firewall commands are then run there as
cloud-init would run them, and a second namespace connects from an admin address and from an
outsider's address.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from components.config import SSH_PORT
from dryrun.engine import ProgramRun, run_program
from tests.helpers import user_data
from tests.integration import daemons
from tests.integration.netns import (
    ADMIN_ADDRESS,
    OUTSIDER_ADDRESS,
    NetnsHosts,
    listening,
    netns_hosts,
)

UI_PORTS = (4000, 8080)
# The INPUT chain of OCI's Ubuntu images (/etc/iptables/rules.v4), in order.
OCI_IMAGE_INPUT_RULES = (
    ["-A", "INPUT", "-m", "state", "--state", "RELATED,ESTABLISHED", "-j", "ACCEPT"],
    ["-A", "INPUT", "-p", "icmp", "-j", "ACCEPT"],
    ["-A", "INPUT", "-i", "lo", "-j", "ACCEPT"],
    ["-A", "INPUT", "-p", "tcp", "-m", "state", "--state", "NEW", "--dport", "22", "-j", "ACCEPT"],
    ["-A", "INPUT", "-j", "REJECT", "--reject-with", "icmp-host-prohibited"],
)


@pytest.fixture(scope="module")
def exposed_run() -> ProgramRun:
    return run_program(overrides={"adminCidrs": f'["{ADMIN_ADDRESS}/32"]', "exposeUis": "true"})


@pytest.fixture
def oci_host() -> Iterator[NetnsHosts]:
    daemons.require_program("iptables")
    daemons.record_version("iptables", ["iptables", "--version"])
    with netns_hosts() as hosts:
        for rule in OCI_IMAGE_INPUT_RULES:
            result = hosts.run_on_server(["iptables", *rule])
            assert result.returncode == 0, result.stderr
        with listening(hosts, (SSH_PORT, *UI_PORTS)):
            yield hosts


def _firewall_commands(run: ProgramRun) -> list[list[str]]:
    commands: list[list[str]] = user_data(run)["runcmd"]
    return [c for c in commands if c[0] in ("iptables", "ip6tables", "netfilter-persistent")]


def test_image_rules_alone_admit_ssh_and_nothing_else(oci_host: NetnsHosts) -> None:
    assert oci_host.connects(OUTSIDER_ADDRESS, SSH_PORT)
    for port in UI_PORTS:
        assert not oci_host.connects(ADMIN_ADDRESS, port)


def test_rendered_rules_open_the_ui_ports_to_admins_only(
    oci_host: NetnsHosts, exposed_run: ProgramRun
) -> None:
    *rules, save = _firewall_commands(exposed_run)
    assert save == ["netfilter-persistent", "save"]  # persists them across reboots on the host
    for rule in rules:
        result = oci_host.run_on_server(rule)
        assert result.returncode == 0, f"{rule}: {result.stderr}"
    for port in UI_PORTS:
        assert oci_host.connects(ADMIN_ADDRESS, port)
        assert not oci_host.connects(OUTSIDER_ADDRESS, port)
    assert oci_host.connects(ADMIN_ADDRESS, SSH_PORT)


def test_without_exposed_uis_no_ui_port_opens(oci_host: NetnsHosts) -> None:
    run = run_program(overrides={"adminCidrs": f'["{ADMIN_ADDRESS}/32"]'})
    *rules, _ = _firewall_commands(run)
    for rule in rules:
        assert oci_host.run_on_server(rule).returncode == 0
    for port in UI_PORTS:
        assert not oci_host.connects(ADMIN_ADDRESS, port)
