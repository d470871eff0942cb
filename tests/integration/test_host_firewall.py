"""The host firewall command, run by the real iptables in a test host.

A network namespace stands for the A1 host, loaded with the rules OCI's Ubuntu images ship
(everything but SSH rejected) and a chain standing for Docker's; the registered firewall
command then runs there as it runs over SSH, and a second namespace connects from an admin
address and from an outsider's address. Only where the command writes is adapted to this
machine: temporary directories are bound over the script and unit directories, for that command
alone, and `systemctl` is a stand-in that runs the unit's `ExecStart` when asked to restart it.
"""

from __future__ import annotations

import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from components.config import SSH_PORT
from components.host_config import (
    CONTAINER_CHAIN,
    FIREWALL_CHAIN,
    FIREWALL_SCRIPT,
    FIREWALL_UNIT,
    UNIT_DIR,
)
from dryrun.engine import ProgramRun, run_program
from tests.helpers import command_script
from tests.integration import daemons, systemd
from tests.integration.netns import (
    ADMIN_ADDRESS,
    CONTAINER_ADDRESS,
    METADATA_ADDRESS,
    OUTSIDER_ADDRESS,
    SERVER_ADDRESS,
    NetnsHosts,
    connects_from,
    container_behind,
    listening,
    listening_in,
    netns_hosts,
)

FIREWALL = "host-settings-firewall"
UI_PORTS = (4000, 8080)
SCRIPT_DIR = str(Path(FIREWALL_SCRIPT).parent)
# The INPUT chain of OCI's Ubuntu images (/etc/iptables/rules.v4), in order.
OCI_IMAGE_INPUT_RULES = (
    ["-A", "INPUT", "-m", "state", "--state", "RELATED,ESTABLISHED", "-j", "ACCEPT"],
    ["-A", "INPUT", "-p", "icmp", "-j", "ACCEPT"],
    ["-A", "INPUT", "-i", "lo", "-j", "ACCEPT"],
    ["-A", "INPUT", "-p", "tcp", "-m", "state", "--state", "NEW", "--dport", "22", "-j", "ACCEPT"],
    ["-A", "INPUT", "-j", "REJECT", "--reject-with", "icmp-host-prohibited"],
)
# What Docker keeps in the filter table for the services' network (in short).
DOCKER_RULES = (
    ["-N", "DOCKER"],
    ["-A", "DOCKER", "-d", "172.30.0.2/32", "-p", "tcp", "--dport", "5432", "-j", "ACCEPT"],
    ["-N", "DOCKER-USER"],
    ["-A", "DOCKER-USER", "-j", "RETURN"],  # Docker before 28 ends DOCKER-USER so
    ["-A", "FORWARD", "-j", "DOCKER-USER"],
    ["-A", "FORWARD", "-o", "br-aiswarm", "-j", "DOCKER"],
)
# Runs the command with the host's directories replaced by the test's, in its own mount
# namespace (`ip netns exec` gives each command one), so nothing of this machine is written.
_BIND_AND_RUN = (
    f'mount --bind "$1" {SCRIPT_DIR} && mount --bind "$2" {UNIT_DIR} && shift 2 && '
    'exec bash -c "$1"'
)
_STAND_INS = {
    "sudo": 'exec "$@"',
    "systemctl": (
        'echo "systemctl $*" >>"$(dirname "$0")/systemctl.log"\n'
        'if [ "$1" = restart ]; then exec sh -c "$(sed -n "s/^ExecStart=//p" '
        f'{UNIT_DIR}/$2)"; fi'
    ),
}


@dataclass(frozen=True)
class FirewallHost:
    hosts: NetnsHosts
    stand_ins: Path
    script_dir: Path  # bound over /usr/local/sbin
    unit_dir: Path  # bound over /etc/systemd/system

    def install(self, run: ProgramRun) -> None:
        """Run the registered firewall command on the test host, as SSH would."""
        argv = [
            "env",
            f"PATH={self.stand_ins}:/usr/sbin:/usr/bin:/sbin:/bin",
            "sh",
            "-c",
            _BIND_AND_RUN,
            "sh",
            str(self.script_dir),
            str(self.unit_dir),
            command_script(run, FIREWALL),
        ]
        result = self.hosts.run_on_server(argv)
        assert result.returncode == 0, result.stdout + result.stderr

    def rules(self) -> str:
        """The whole filter table, as `iptables -S` lists it."""
        listed = self.hosts.run_on_server(["iptables", "-w", "-S"])
        assert listed.returncode == 0, listed.stderr
        return listed.stdout

    def iptables(self, *args: str) -> None:
        result = self.hosts.run_on_server(["iptables", "-w", *args])
        assert result.returncode == 0, f"{args}: {result.stderr}"

    @property
    def systemctl_calls(self) -> list[str]:
        log = self.stand_ins / "systemctl.log"
        return log.read_text().splitlines() if log.exists() else []


@pytest.fixture(scope="module")
def exposed_run() -> ProgramRun:
    return run_program(overrides={"adminCidrs": f'["{ADMIN_ADDRESS}/32"]', "exposeUis": "true"})


@pytest.fixture
def oci_host(tmp_path: Path) -> Iterator[FirewallHost]:
    daemons.require_program("iptables")
    daemons.record_version("iptables", ["iptables", "--version"])
    stand_ins = tmp_path / "bin"
    stand_ins.mkdir()
    for name, body in _STAND_INS.items():
        path = stand_ins / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    with netns_hosts() as hosts:
        host = FirewallHost(hosts, stand_ins, tmp_path / "sbin", tmp_path / "units")
        host.script_dir.mkdir()
        host.unit_dir.mkdir()
        for rule in (*OCI_IMAGE_INPUT_RULES, *DOCKER_RULES):
            host.iptables(*rule)
        with listening(hosts, (SSH_PORT, *UI_PORTS)):
            yield host


def test_image_rules_alone_admit_ssh_and_nothing_else(oci_host: FirewallHost) -> None:
    assert oci_host.hosts.connects(OUTSIDER_ADDRESS, SSH_PORT)
    for port in UI_PORTS:
        assert not oci_host.hosts.connects(ADMIN_ADDRESS, port)


def test_rules_open_the_ui_ports_to_admins_only(
    oci_host: FirewallHost, exposed_run: ProgramRun
) -> None:
    oci_host.install(exposed_run)
    for port in UI_PORTS:
        assert oci_host.hosts.connects(ADMIN_ADDRESS, port)
        assert not oci_host.hosts.connects(OUTSIDER_ADDRESS, port)
    assert oci_host.hosts.connects(ADMIN_ADDRESS, SSH_PORT)
    assert oci_host.systemctl_calls == [
        "systemctl daemon-reload",
        f"systemctl enable {FIREWALL_UNIT}",
        f"systemctl restart {FIREWALL_UNIT}",
    ]


def test_applied_twice_the_rules_are_those_of_once(
    oci_host: FirewallHost, exposed_run: ProgramRun
) -> None:
    oci_host.install(exposed_run)
    once = oci_host.rules()
    oci_host.install(exposed_run)
    assert oci_host.rules() == once
    assert once.count(f"-A INPUT -j {FIREWALL_CHAIN}") == 1
    assert once.splitlines().index(f"-A INPUT -j {FIREWALL_CHAIN}") < once.splitlines().index(
        "-A INPUT -j REJECT --reject-with icmp-host-prohibited"
    )


def test_a_changed_cidr_list_replaces_the_old_rules(
    oci_host: FirewallHost, exposed_run: ProgramRun
) -> None:
    oci_host.install(exposed_run)
    moved = run_program(overrides={"adminCidrs": f'["{OUTSIDER_ADDRESS}/32"]', "exposeUis": "true"})
    oci_host.install(moved)
    for port in UI_PORTS:
        assert oci_host.hosts.connects(OUTSIDER_ADDRESS, port)
        assert not oci_host.hosts.connects(ADMIN_ADDRESS, port)
    assert ADMIN_ADDRESS not in oci_host.rules()


def test_without_exposed_uis_no_ui_port_opens(oci_host: FirewallHost) -> None:
    oci_host.install(run_program(overrides={"adminCidrs": f'["{ADMIN_ADDRESS}/32"]'}))
    for port in UI_PORTS:
        assert not oci_host.hosts.connects(ADMIN_ADDRESS, port)
    assert oci_host.hosts.connects(ADMIN_ADDRESS, SSH_PORT)


def host_chain(host: FirewallHost, chain: str) -> list[str]:
    listed = host.hosts.run_on_server(["iptables", "-w", "-S", chain])
    assert listed.returncode == 0, listed.stderr
    return listed.stdout.splitlines()


def test_dockers_chains_are_left_alone_and_never_saved(
    oci_host: FirewallHost, exposed_run: ProgramRun
) -> None:
    docker_before = [line for line in oci_host.rules().splitlines() if "DOCKER" in line]
    oci_host.install(exposed_run)
    docker_after = [line for line in oci_host.rules().splitlines() if "DOCKER" in line]
    # Docker's rules are as they were; DOCKER-USER, Docker's chain for its users, gains the
    # one jump to ours, first.
    ours = f"-A DOCKER-USER -j {CONTAINER_CHAIN}"
    assert [line for line in docker_after if line != ours] == docker_before
    docker_user = host_chain(oci_host, "DOCKER-USER")
    assert docker_user == ["-N DOCKER-USER", ours, "-A DOCKER-USER -j RETURN"]
    saved = (oci_host.script_dir / Path(FIREWALL_SCRIPT).name).read_text()
    assert FIREWALL_CHAIN in saved
    # No rule of Docker's is in the file a reboot loads (a later reload would flush them).
    assert not [line for line in saved.splitlines() if line.startswith(("-A DOCKER", ":DOCKER"))]


def test_a_reboot_loads_the_same_rules(oci_host: FirewallHost, exposed_run: ProgramRun) -> None:
    """At boot the image's saved rules are restored (INPUT flushed, our chain gone), then the
    unit runs the installed script."""
    oci_host.install(exposed_run)
    before = oci_host.rules()
    oci_host.iptables("-F", "INPUT")
    oci_host.iptables("-F", FIREWALL_CHAIN)
    oci_host.iptables("-X", FIREWALL_CHAIN)
    for rule in OCI_IMAGE_INPUT_RULES:
        oci_host.iptables(*rule)
    unit = (oci_host.unit_dir / FIREWALL_UNIT).read_text()
    [exec_start] = [line.split("=", 1)[1] for line in unit.splitlines() if "ExecStart=" in line]
    assert exec_start == FIREWALL_SCRIPT
    booted = oci_host.hosts.run_on_server([str(oci_host.script_dir / Path(exec_start).name)])
    assert booted.returncode == 0, booted.stderr
    assert oci_host.rules() == before


def test_the_installed_unit_passes_systemd_analyze_verify(
    oci_host: FirewallHost, exposed_run: ProgramRun, tmp_path: Path
) -> None:
    oci_host.install(exposed_run)
    root = systemd.systemd_root(tmp_path / "root")
    shutil.copy2(oci_host.script_dir / Path(FIREWALL_SCRIPT).name, root / FIREWALL_SCRIPT[1:])
    shutil.copy2(oci_host.unit_dir / FIREWALL_UNIT, root / UNIT_DIR[1:] / FIREWALL_UNIT)
    verified = systemd.verify(root, FIREWALL_UNIT)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stderr == ""


# --- What Docker forwards: a container behind the host, a port published as Docker does -----

PUBLISHED_PORT = 4000
METADATA_PORT = 80


@pytest.fixture
def docker_host(oci_host: FirewallHost) -> Iterator[tuple[FirewallHost, str]]:
    """The test host with a container behind it whose port 4000 is published on the host's
    address (Docker's DNAT), and a metadata service on the "internet" side."""
    with container_behind(oci_host.hosts) as container:
        oci_host.iptables(
            "-t", "nat", "-A", "PREROUTING", "-d", SERVER_ADDRESS, "-p", "tcp",
            "--dport", str(PUBLISHED_PORT), "-j", "DNAT",
            "--to-destination", f"{CONTAINER_ADDRESS}:{PUBLISHED_PORT}",
        )  # fmt: skip
        with (
            listening_in(container, CONTAINER_ADDRESS, [PUBLISHED_PORT]),
            listening_in(oci_host.hosts.client, METADATA_ADDRESS, [METADATA_PORT]),
            listening_in(oci_host.hosts.client, OUTSIDER_ADDRESS, [METADATA_PORT]),
        ):
            yield oci_host, container


def _published_reaches(host: FirewallHost, source: str) -> bool:
    return connects_from(host.hosts.client, source, SERVER_ADDRESS, PUBLISHED_PORT)


def _container_reaches(container: str, destination: str) -> bool:
    return connects_from(container, CONTAINER_ADDRESS, destination, METADATA_PORT)


def test_without_our_rules_docker_lets_anyone_in_and_containers_reach_the_metadata_service(
    docker_host: tuple[FirewallHost, str],
) -> None:
    """The test setup itself: what the rules below must change."""
    host, container = docker_host
    assert _published_reaches(host, OUTSIDER_ADDRESS)
    assert _container_reaches(container, METADATA_ADDRESS)


def test_published_ports_admit_admins_only_and_containers_never_reach_link_local(
    docker_host: tuple[FirewallHost, str], exposed_run: ProgramRun
) -> None:
    host, container = docker_host
    host.install(exposed_run)
    assert _published_reaches(host, ADMIN_ADDRESS)
    assert not _published_reaches(host, OUTSIDER_ADDRESS)
    assert not _container_reaches(container, METADATA_ADDRESS)
    # The container still reaches the internet, and the admin rules still stand.
    assert _container_reaches(container, OUTSIDER_ADDRESS)
    assert host.hosts.connects(ADMIN_ADDRESS, SSH_PORT)


def test_the_container_rules_follow_a_changed_cidr_list_and_survive_a_second_run(
    docker_host: tuple[FirewallHost, str], exposed_run: ProgramRun
) -> None:
    host, _ = docker_host
    host.install(exposed_run)
    host.install(exposed_run)
    assert host.rules().count(f"-A DOCKER-USER -j {CONTAINER_CHAIN}") == 1
    moved = run_program(overrides={"adminCidrs": f'["{OUTSIDER_ADDRESS}/32"]', "exposeUis": "true"})
    host.install(moved)
    assert _published_reaches(host, OUTSIDER_ADDRESS)
    assert not _published_reaches(host, ADMIN_ADDRESS)
