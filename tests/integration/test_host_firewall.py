"""The host firewall command, run by the real iptables in a test host.

A network namespace stands for the A1 host. It starts as a booting host does: the rules file
OCI's Ubuntu images ship (`/etc/iptables/rules.v4`) loaded by `iptables-restore`, and no chain
of Docker's. The registered firewall command then runs there as it runs over SSH, Docker's start
is replayed as Docker does it (`start_docker`), and packets are sent from an admin address, an
outsider's address, a container behind the host and the host itself. Only where the command
writes is adapted to this machine: temporary directories are bound over the script, unit,
netfilter-persistent plugin and `/etc/iptables` directories, for that command alone, and
`systemctl` is a stand-in that runs the unit's `ExecStart` when asked to restart it.
netfilter-persistent itself is Debian's (the package Ubuntu ships), run in the same binds.
"""

from __future__ import annotations

import contextlib
import shutil
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from components.cloud_init import DOCKER_DROP_IN
from components.config import SSH_PORT
from components.host_config import (
    CONTAINER_CHAIN,
    FIREWALL_CHAIN,
    FIREWALL_SCRIPT,
    FIREWALL_UNIT,
    NETFILTER_PLUGIN,
    UNIT_DIR,
)
from dryrun.engine import ProgramRun, run_program
from tests.helpers import command_script, user_data
from tests.integration import daemons, systemd
from tests.integration.netns import (
    ADMIN_ADDRESS,
    CONTAINER_ADDRESS,
    CONTAINER_BRIDGE,
    CONTAINER_GATEWAY,
    DNS_ANSWER,
    METADATA_ADDRESS,
    OUTSIDER_ADDRESS,
    SERVER_ADDRESS,
    NetnsHosts,
    connects_from,
    container_behind,
    listening,
    listening_in,
    netns_hosts,
    resolves_from,
    serving_dns,
)
from tests.services.readers import container

FIREWALL = "host-settings-firewall"
UI_PORTS = (4000, 8080)
SCRIPT_DIR = str(Path(FIREWALL_SCRIPT).parent)
PLUGIN_DIR = str(Path(NETFILTER_PLUGIN).parent)
RULES_DIR = "/etc/iptables"
NETFILTER_UNIT = "netfilter-persistent.service"
# iptables-persistent's plugin: restores /etc/iptables/rules.v4 on `netfilter-persistent start`.
IP4TABLES_PLUGIN = Path(PLUGIN_DIR) / "15-ip4tables"
# OCI's Ubuntu images' /etc/iptables/rules.v4 (iptables-save of an OCI Ubuntu 22.04 A1 host,
# wiki.drake.org.uk "Oracle Cloud Hosting: Configuring default IPTables on a Virtual Machine";
# Oracle's blog "Enabling Network Traffic to Ubuntu Images in OCI"), its rule comments left out.
OCI_RULES_V4 = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:InstanceServices - [0:0]
-A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT
-A INPUT -p icmp -j ACCEPT
-A INPUT -i lo -j ACCEPT
-A INPUT -p udp -m udp --sport 123 -j ACCEPT
-A INPUT -p tcp -m state --state NEW -m tcp --dport 22 -j ACCEPT
-A INPUT -j REJECT --reject-with icmp-host-prohibited
-A FORWARD -j REJECT --reject-with icmp-host-prohibited
-A OUTPUT -d 169.254.0.0/16 -j InstanceServices
-A InstanceServices -d 169.254.0.2/32 -p tcp -m owner --uid-owner 0 -m tcp --dport 3260 -j ACCEPT
-A InstanceServices -d 169.254.2.0/24 -p tcp -m owner --uid-owner 0 -m tcp --dport 3260 -j ACCEPT
-A InstanceServices -d 169.254.4.0/24 -p tcp -m owner --uid-owner 0 -m tcp --dport 3260 -j ACCEPT
-A InstanceServices -d 169.254.5.0/24 -p tcp -m owner --uid-owner 0 -m tcp --dport 3260 -j ACCEPT
-A InstanceServices -d 169.254.0.2/32 -p tcp -m tcp --dport 80 -j ACCEPT
-A InstanceServices -d 169.254.169.254/32 -p udp -m udp --dport 53 -j ACCEPT
-A InstanceServices -d 169.254.169.254/32 -p tcp -m tcp --dport 53 -j ACCEPT
-A InstanceServices -d 169.254.0.3/32 -p tcp -m owner --uid-owner 0 -m tcp --dport 80 -j ACCEPT
-A InstanceServices -d 169.254.0.4/32 -p tcp -m tcp --dport 80 -j ACCEPT
-A InstanceServices -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -j ACCEPT
-A InstanceServices -d 169.254.169.254/32 -p udp -m udp --dport 67 -j ACCEPT
-A InstanceServices -d 169.254.169.254/32 -p udp -m udp --dport 69 -j ACCEPT
-A InstanceServices -d 169.254.169.254/32 -p udp -m udp --dport 123 -j ACCEPT
-A InstanceServices -d 169.254.0.0/16 -p tcp -m tcp -j REJECT --reject-with tcp-reset
-A InstanceServices -d 169.254.0.0/16 -p udp -m udp -j REJECT --reject-with icmp-port-unreachable
COMMIT
"""
IMAGE_SSH_RULE = "-A INPUT -p tcp -m state --state NEW -m tcp --dport 22 -j ACCEPT"
PUBLISHED_PORT = 4000
METADATA_PORT = 80
DNS_PORT = 53
OTHER_UDP_PORT = 5353  # the DNS stub answers here too: only port 53 may pass
# The image admits UDP from port 123 (NTP's replies) from anywhere, to any port.
NTP_PORT = 123
# What dockerd does to the filter table when it starts, for one network (its bridge) with a
# container whose port 4000 is published. The user chain as moby's libnetwork does it before
# Docker 28 (firewall_linux.go, arrangeUserFilterRule): a DOCKER-USER chain it finds is kept,
# a RETURN is appended unless there is one, and its jump is moved to the top of FORWARD. The
# bridge's own rules are inserted above the image's REJECT, as Docker inserts them.
_DOCKER_STARTS = f"""set -eu
ipt() {{ iptables -w "$@"; }}
ipt -n -L DOCKER >/dev/null 2>&1 || ipt -N DOCKER
ipt -C DOCKER -d {CONTAINER_ADDRESS}/32 ! -i {CONTAINER_BRIDGE} -o {CONTAINER_BRIDGE} -p tcp \
  --dport {PUBLISHED_PORT} -j ACCEPT 2>/dev/null ||
  ipt -A DOCKER -d {CONTAINER_ADDRESS}/32 ! -i {CONTAINER_BRIDGE} -o {CONTAINER_BRIDGE} -p tcp \
  --dport {PUBLISHED_PORT} -j ACCEPT
for rule in "-i {CONTAINER_BRIDGE} ! -o {CONTAINER_BRIDGE} -j ACCEPT" \
  "-o {CONTAINER_BRIDGE} -j DOCKER" \
  "-o {CONTAINER_BRIDGE} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"; do
  ipt -C FORWARD $rule 2>/dev/null || ipt -I FORWARD $rule
done
ipt -n -L DOCKER-USER >/dev/null 2>&1 || ipt -N DOCKER-USER
ipt -C DOCKER-USER -j RETURN 2>/dev/null || ipt -A DOCKER-USER -j RETURN
ipt -D FORWARD -j DOCKER-USER 2>/dev/null || true
ipt -I FORWARD -j DOCKER-USER
dnat="-d {SERVER_ADDRESS} -p tcp --dport {PUBLISHED_PORT} -j DNAT \
--to-destination {CONTAINER_ADDRESS}:{PUBLISHED_PORT}"
ipt -t nat -C PREROUTING $dnat 2>/dev/null || ipt -t nat -A PREROUTING $dnat
"""
# Runs the command with the host's directories replaced by the test's, in its own mount
# namespace (`ip netns exec` gives each command one), so nothing of this machine is written.
_BIND_AND_RUN = (
    f'mount --bind "$1" {SCRIPT_DIR} && mount --bind "$2" {UNIT_DIR} && '
    f'mount --bind "$3" {PLUGIN_DIR} && mount --bind "$4" {RULES_DIR} && shift 4 && '
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
    plugin_dir: Path  # bound over netfilter-persistent's plugins.d
    rules_dir: Path  # bound over /etc/iptables: OCI's rules.v4

    def run_bound(self, command: str, path: str = "/usr/sbin:/usr/bin:/sbin:/bin") -> None:
        """Run `command` on the test host with the test's directories bound over the host's."""
        argv = [
            "env", f"PATH={path}", "sh", "-c", _BIND_AND_RUN, "sh",
            str(self.script_dir), str(self.unit_dir), str(self.plugin_dir), str(self.rules_dir),
            command,
        ]  # fmt: skip
        result = self.hosts.run_on_server(argv)
        assert result.returncode == 0, result.stdout + result.stderr

    def install(self, run: ProgramRun) -> None:
        """Run the registered firewall command on the test host, as SSH would."""
        self.run_bound(command_script(run, FIREWALL), f"{self.stand_ins}:/usr/sbin:/usr/bin:/bin")

    def start_docker(self) -> None:
        self.run_bound(_DOCKER_STARTS)

    def netfilter_persistent(self, action: str) -> None:
        """Debian's netfilter-persistent, as its unit runs it (`start`) or an operator does."""
        self.run_bound(f"netfilter-persistent {action}")

    def rules(self, *chain: str) -> str:
        """The whole filter table, or one chain, as `iptables -S` lists it."""
        listed = self.hosts.run_on_server(["iptables", "-w", "-S", *chain])
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
    """A host as it boots: OCI's rules.v4 restored, no chain of Docker's."""
    daemons.require_program("iptables")
    daemons.require_program("netfilter-persistent")
    daemons.record_version("iptables", ["iptables", "--version"])
    stand_ins = tmp_path / "bin"
    stand_ins.mkdir()
    for name, body in _STAND_INS.items():
        path = stand_ins / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    with netns_hosts() as hosts:
        host = FirewallHost(
            hosts, stand_ins, tmp_path / "sbin", tmp_path / "units", tmp_path / "plugins",
            tmp_path / "iptables",
        )  # fmt: skip
        for directory in (host.script_dir, host.unit_dir, host.plugin_dir, host.rules_dir):
            directory.mkdir()
        shutil.copy2(IP4TABLES_PLUGIN, host.plugin_dir)
        rules = host.rules_dir / "rules.v4"
        rules.write_text(OCI_RULES_V4)
        restored = hosts.run_on_server(["iptables-restore", str(rules)])
        assert restored.returncode == 0, restored.stderr
        with listening(hosts, (SSH_PORT, *UI_PORTS)):
            yield host


def test_image_rules_alone_admit_ssh_and_nothing_else(oci_host: FirewallHost) -> None:
    assert oci_host.hosts.connects(OUTSIDER_ADDRESS, SSH_PORT)
    for port in UI_PORTS:
        assert not oci_host.hosts.connects(ADMIN_ADDRESS, port)


def test_ssh_and_the_ui_ports_answer_admins_only(
    oci_host: FirewallHost, exposed_run: ProgramRun
) -> None:
    oci_host.install(exposed_run)
    for port in (SSH_PORT, *UI_PORTS):
        assert oci_host.hosts.connects(ADMIN_ADDRESS, port)
        assert not oci_host.hosts.connects(OUTSIDER_ADDRESS, port)
    # The image's own rule still admits SSH from anywhere: ours must come first.
    assert IMAGE_SSH_RULE in oci_host.rules("INPUT")
    assert oci_host.systemctl_calls == [
        "systemctl daemon-reload",
        f"systemctl enable {FIREWALL_UNIT}",
        f"systemctl restart {FIREWALL_UNIT}",
    ]


def test_applied_twice_the_rules_are_those_of_once(
    oci_host: FirewallHost, exposed_run: ProgramRun
) -> None:
    oci_host.install(exposed_run)
    oci_host.start_docker()
    once = oci_host.rules()
    oci_host.install(exposed_run)
    assert oci_host.rules() == once
    lines = once.splitlines()
    for jump in (f"-A INPUT -j {FIREWALL_CHAIN}", "-A OUTPUT -j AI-SWARM-OUTPUT"):
        assert lines.count(jump) == 1
    assert lines.index(f"-A INPUT -j {FIREWALL_CHAIN}") < lines.index(IMAGE_SSH_RULE)


def test_a_changed_cidr_list_replaces_the_old_rules(
    oci_host: FirewallHost, exposed_run: ProgramRun
) -> None:
    oci_host.install(exposed_run)
    moved = run_program(overrides={"adminCidrs": f'["{OUTSIDER_ADDRESS}/32"]', "exposeUis": "true"})
    oci_host.install(moved)
    for port in (SSH_PORT, *UI_PORTS):
        assert oci_host.hosts.connects(OUTSIDER_ADDRESS, port)
        assert not oci_host.hosts.connects(ADMIN_ADDRESS, port)
    assert ADMIN_ADDRESS not in oci_host.rules()


def test_without_exposed_uis_no_ui_port_opens(oci_host: FirewallHost) -> None:
    oci_host.install(run_program(overrides={"adminCidrs": f'["{ADMIN_ADDRESS}/32"]'}))
    for port in UI_PORTS:
        assert not oci_host.hosts.connects(ADMIN_ADDRESS, port)
    assert oci_host.hosts.connects(ADMIN_ADDRESS, SSH_PORT)
    assert not oci_host.hosts.connects(OUTSIDER_ADDRESS, SSH_PORT)


def test_dockers_chains_are_left_alone_and_never_saved(
    oci_host: FirewallHost, exposed_run: ProgramRun
) -> None:
    """An `up` on a running host: Docker's chains are there before ours."""
    oci_host.start_docker()
    docker_before = [line for line in oci_host.rules().splitlines() if "DOCKER" in line]
    oci_host.install(exposed_run)
    docker_after = [line for line in oci_host.rules().splitlines() if "DOCKER" in line]
    # Docker's rules are as they were; DOCKER-USER, Docker's chain for its users, gains the
    # one jump to ours, first.
    ours = f"-A DOCKER-USER -j {CONTAINER_CHAIN}"
    assert [line for line in docker_after if line != ours] == docker_before
    docker_user = oci_host.rules("DOCKER-USER").splitlines()
    assert docker_user == ["-N DOCKER-USER", ours, "-A DOCKER-USER -j RETURN"]
    saved = (oci_host.script_dir / Path(FIREWALL_SCRIPT).name).read_text()
    assert FIREWALL_CHAIN in saved
    # No rule of Docker's is in the file a reboot loads (a later reload would flush them).
    assert not [line for line in saved.splitlines() if line.startswith(("-A DOCKER", ":DOCKER"))]
    assert (oci_host.rules_dir / "rules.v4").read_text() == OCI_RULES_V4


def test_a_reboot_loads_the_same_rules(oci_host: FirewallHost, exposed_run: ProgramRun) -> None:
    """A boot starts from an empty filter table: netfilter-persistent restores the image's
    rules (and runs its plugins), our unit runs, then Docker starts."""
    oci_host.install(exposed_run)
    oci_host.start_docker()
    before = oci_host.rules()
    oci_host.iptables("-F")
    oci_host.iptables("-X")
    oci_host.netfilter_persistent("start")
    unit = (oci_host.unit_dir / FIREWALL_UNIT).read_text()
    [exec_start] = [line.split("=", 1)[1] for line in unit.splitlines() if "ExecStart=" in line]
    oci_host.run_bound(exec_start)
    oci_host.start_docker()
    assert oci_host.rules() == before


def test_a_restart_of_netfilter_persistent_loads_our_rules_again(
    oci_host: FirewallHost, exposed_run: ProgramRun
) -> None:
    """`systemctl restart netfilter-persistent` (or `netfilter-persistent reload`) restores
    rules.v4 with iptables-restore, which flushes the whole filter table, INPUT and our chains
    with it: the plugin the command installs loads ours again, right after."""
    oci_host.install(exposed_run)
    oci_host.start_docker()
    for action in ("restart", "reload"):
        oci_host.netfilter_persistent(action)
        assert oci_host.rules("INPUT").splitlines()[1] == f"-A INPUT -j {FIREWALL_CHAIN}"
        assert oci_host.hosts.connects(ADMIN_ADDRESS, SSH_PORT)
        assert not oci_host.hosts.connects(OUTSIDER_ADDRESS, SSH_PORT)
    # Docker's filter chains are gone with the restore (Docker makes them again when it
    # restarts); ours keep DOCKER-USER's place for it.
    assert oci_host.rules("DOCKER-USER").splitlines() == [
        "-N DOCKER-USER",
        f"-A DOCKER-USER -j {CONTAINER_CHAIN}",
    ]
    # `save` and `flush` are the operator's: the plugin loads nothing then.
    oci_host.netfilter_persistent("flush")
    assert FIREWALL_CHAIN not in oci_host.rules()


def test_the_installed_units_pass_systemd_analyze_verify(
    oci_host: FirewallHost, exposed_run: ProgramRun, tmp_path: Path
) -> None:
    """No ordering cycle, nothing systemd complains about."""
    oci_host.install(exposed_run)
    root = _installed_root(oci_host, tmp_path / "root", exposed_run)
    verified = systemd.verify(root, FIREWALL_UNIT, "docker.service", NETFILTER_UNIT)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stderr == ""


def _installed_root(host: FirewallHost, root: Path, run: ProgramRun) -> Path:
    """A root with our unit and script as the command installed them, Docker (with the drop-in
    cloud-init writes) and Debian's netfilter-persistent."""
    systemd.systemd_root(root)
    systemd.docker_stand_in(root)
    [drop_in] = [f for f in user_data(run)["write_files"] if f["path"] == DOCKER_DROP_IN]
    (root / DOCKER_DROP_IN[1:]).parent.mkdir(parents=True)
    (root / DOCKER_DROP_IN[1:]).write_text(str(drop_in["content"]))
    (root / "usr/sbin").mkdir()
    shutil.copy2(daemons.require_program("netfilter-persistent"), root / "usr/sbin")
    shutil.copy2(host.script_dir / Path(FIREWALL_SCRIPT).name, root / FIREWALL_SCRIPT[1:])
    shutil.copy2(host.unit_dir / FIREWALL_UNIT, root / UNIT_DIR[1:] / FIREWALL_UNIT)
    return root


def test_the_unit_starts_after_the_image_rules_and_before_docker(
    oci_host: FirewallHost, exposed_run: ProgramRun, tmp_path: Path
) -> None:
    """The cycle probe (as for the data mount): a unit ordered after X and before our unit
    closes a cycle exactly when our unit is ordered before X."""
    oci_host.install(exposed_run)
    root = _installed_root(oci_host, tmp_path / "root", exposed_run)
    for first, then in (("docker.service", FIREWALL_UNIT), (FIREWALL_UNIT, NETFILTER_UNIT)):
        probe = systemd.ordering_probe(root, after=first, before=then)
        verified = systemd.verify(root, probe)
        # systemd breaks the cycle by dropping a job, and says so.
        assert "ordering cycle" in verified.stderr, f"{first} then {then}: no cycle"
        assert FIREWALL_UNIT in verified.stderr
    # The probe itself closes no cycle where our unit is not ordered against Docker.
    bare = _installed_root(oci_host, tmp_path / "bare", exposed_run)
    (bare / UNIT_DIR[1:] / FIREWALL_UNIT).write_text(
        (oci_host.unit_dir / FIREWALL_UNIT).read_text().replace("Before=docker.service\n", "")
    )
    probe = systemd.ordering_probe(bare, after="docker.service", before=FIREWALL_UNIT)
    verified = systemd.verify(bare, probe)
    assert verified.returncode == 0, verified.stderr
    assert verified.stderr == ""


# --- Packets through the host: a container behind it, a port published as Docker does -------


@pytest.fixture
def docker_host(oci_host: FirewallHost) -> Iterator[tuple[FirewallHost, str]]:
    """The booting test host with a container behind it (Docker not started yet), OCI's
    metadata service and resolver on the "internet" side, and the host listening on its
    bridge address too."""
    hosts = oci_host.hosts
    with container_behind(hosts) as container_ns, contextlib.ExitStack() as stack:
        for serving in (
            listening_in(container_ns, CONTAINER_ADDRESS, [PUBLISHED_PORT]),
            listening_in(hosts.client, METADATA_ADDRESS, [METADATA_PORT]),
            listening_in(hosts.client, OUTSIDER_ADDRESS, [METADATA_PORT]),
            listening_in(hosts.server, CONTAINER_GATEWAY, [SSH_PORT, *UI_PORTS]),
            serving_dns(hosts.client, METADATA_ADDRESS, [DNS_PORT, OTHER_UDP_PORT]),
            serving_dns(hosts.server, CONTAINER_GATEWAY, [OTHER_UDP_PORT]),
        ):
            stack.enter_context(serving)
        yield oci_host, container_ns


def _published_reaches(host: FirewallHost, source: str) -> bool:
    return connects_from(host.hosts.client, source, SERVER_ADDRESS, PUBLISHED_PORT)


def _container_reaches(container_ns: str, destination: str, port: int = METADATA_PORT) -> bool:
    return connects_from(container_ns, CONTAINER_ADDRESS, destination, port)


def _udp_to_the_host_answered(container_ns: str) -> bool:
    """Whether a UDP query from the container, sent from port 123, gets an answer from a
    server on the host's bridge address (the image's INPUT admits it)."""
    answer = resolves_from(container_ns, CONTAINER_GATEWAY, OTHER_UDP_PORT, "udp", NTP_PORT)
    return answer == DNS_ANSWER


def test_without_our_rules_docker_lets_anyone_in_and_containers_reach_the_host(
    docker_host: tuple[FirewallHost, str],
) -> None:
    """The test setup itself: what the rules below must change."""
    host, container_ns = docker_host
    host.start_docker()
    assert _published_reaches(host, OUTSIDER_ADDRESS)
    assert _container_reaches(container_ns, METADATA_ADDRESS)
    assert resolves_from(container_ns, METADATA_ADDRESS, OTHER_UDP_PORT, "udp") == DNS_ANSWER
    assert _container_reaches(container_ns, CONTAINER_GATEWAY, SSH_PORT)
    assert _udp_to_the_host_answered(container_ns)
    assert connects_from(host.hosts.server, None, METADATA_ADDRESS, METADATA_PORT, uid=65534)


@pytest.mark.parametrize("docker_first", [False, True], ids=["boot", "running-docker"])
def test_published_ports_admit_admins_only_and_containers_never_reach_link_local(
    docker_host: tuple[FirewallHost, str], exposed_run: ProgramRun, docker_first: bool
) -> None:
    """At boot our unit runs on the image's rules alone, before Docker has made a chain, and
    Docker then keeps what it finds; on a running host Docker's chains come first."""
    host, container_ns = docker_host
    if docker_first:
        host.start_docker()
    host.install(exposed_run)
    if not docker_first:
        assert host.hosts.connects(ADMIN_ADDRESS, SSH_PORT)
        assert not host.hosts.connects(OUTSIDER_ADDRESS, SSH_PORT)
        host.start_docker()
    assert _published_reaches(host, ADMIN_ADDRESS)
    assert not _published_reaches(host, OUTSIDER_ADDRESS)
    assert not _container_reaches(container_ns, METADATA_ADDRESS)
    # The container still reaches the internet, and the admin rules still stand.
    assert _container_reaches(container_ns, OUTSIDER_ADDRESS)
    assert host.hosts.connects(ADMIN_ADDRESS, SSH_PORT)
    assert not host.hosts.connects(OUTSIDER_ADDRESS, SSH_PORT)


def test_containers_resolve_names_through_ocis_resolver_and_nothing_else_link_local(
    docker_host: tuple[FirewallHost, str], exposed_run: ProgramRun
) -> None:
    host, container_ns = docker_host
    host.install(exposed_run)
    host.start_docker()
    for transport in ("udp", "tcp"):
        assert resolves_from(container_ns, METADATA_ADDRESS, DNS_PORT, transport) == DNS_ANSWER
    assert not _container_reaches(container_ns, METADATA_ADDRESS, METADATA_PORT)
    # The same server on another port: refused, though the stub answers there (see the
    # setup's own test).
    assert resolves_from(container_ns, METADATA_ADDRESS, OTHER_UDP_PORT, "udp") is None


def test_containers_open_no_connection_to_the_host(
    docker_host: tuple[FirewallHost, str], exposed_run: ProgramRun
) -> None:
    """Not sshd (whose pre-auth slots a container could fill), nor any other host port, on
    the bridge's address or the host's own."""
    host, container_ns = docker_host
    host.install(exposed_run)
    host.start_docker()
    for address in (CONTAINER_GATEWAY, SERVER_ADDRESS):
        for port in (SSH_PORT, *UI_PORTS):
            assert not _container_reaches(container_ns, address, port), f"{address}:{port}"
    assert not _udp_to_the_host_answered(container_ns)
    assert host.hosts.connects(ADMIN_ADDRESS, SSH_PORT)


def test_node_exporters_user_reaches_nothing_link_local_and_other_users_do(
    docker_host: tuple[FirewallHost, str], exposed_run: ProgramRun
) -> None:
    """node-exporter shares the host's network: its uid (the registered container's `user`)
    is refused the metadata service; another user (the Oracle Cloud Agent's) is not."""
    host, _ = docker_host
    host.install(exposed_run)
    uid = int(str(container(exposed_run, "node-exporter").inputs["user"]).split(":")[0])
    server = host.hosts.server
    assert not connects_from(server, None, METADATA_ADDRESS, METADATA_PORT, uid=uid)
    for other in (0, 1000):
        assert connects_from(server, None, METADATA_ADDRESS, METADATA_PORT, uid=other)
    # The rest of the internet is the exporter's to reach (not that it needs it).
    assert connects_from(server, None, OUTSIDER_ADDRESS, METADATA_PORT, uid=uid)


def test_the_container_rules_follow_a_changed_cidr_list_and_survive_a_second_run(
    docker_host: tuple[FirewallHost, str], exposed_run: ProgramRun
) -> None:
    host, _ = docker_host
    host.start_docker()
    host.install(exposed_run)
    host.install(exposed_run)
    assert host.rules().count(f"-A DOCKER-USER -j {CONTAINER_CHAIN}") == 1
    moved = run_program(overrides={"adminCidrs": f'["{OUTSIDER_ADDRESS}/32"]', "exposeUis": "true"})
    host.install(moved)
    assert _published_reaches(host, OUTSIDER_ADDRESS)
    assert not _published_reaches(host, ADMIN_ADDRESS)


# --- The replica's path: Postgres published on the A1 to the replica's peers only ----------

POSTGRES_PORT = 5432
# The Micro, in the test VCN (10.200.0.0/16), and an off-cloud peer outside it: two more
# addresses of the client namespace, beside the admin's and the outsider's (both inside it).
MICRO_ADDRESS = "10.200.0.11"
EXTERNAL_ADDRESS = "198.51.100.7"
# What dockerd adds when a container publishes 5432 too (as for PUBLISHED_PORT above).
_DOCKER_PUBLISHES_POSTGRES = f"""set -eu
iptables -w -A DOCKER -d {CONTAINER_ADDRESS}/32 ! -i {CONTAINER_BRIDGE} -o {CONTAINER_BRIDGE} \
  -p tcp --dport {POSTGRES_PORT} -j ACCEPT
iptables -w -t nat -A PREROUTING -d {SERVER_ADDRESS} -p tcp --dport {POSTGRES_PORT} -j DNAT \
  --to-destination {CONTAINER_ADDRESS}:{POSTGRES_PORT}
"""


@pytest.fixture(scope="module")
def replica_run() -> ProgramRun:
    """The replica on, in a VCN that holds the test's addresses: the admin's /32, the Micro at
    a chosen private address, an external peer."""
    return run_program(
        overrides={
            "adminCidrs": f'["{ADMIN_ADDRESS}/32"]',
            "exposeUis": "true",
            "vcnCidr": "10.200.0.0/16",
            "subnetCidr": "10.200.0.0/24",
            "dataVolumeGb": "100",
            "replica": (
                f'{{"enabled": true, "privateIp": "{MICRO_ADDRESS}", '
                f'"externalCidrs": ["{EXTERNAL_ADDRESS}/32"]}}'
            ),
        }
    )


@pytest.fixture
def postgres_host(docker_host: tuple[FirewallHost, str]) -> Iterator[FirewallHost]:
    """The host with a container behind it that listens on 5432 too, and a client namespace
    that holds the Micro's and the external peer's addresses as well."""
    host, container_ns = docker_host
    hosts = host.hosts
    client_link, server_link = f"{hosts.tag}c", f"{hosts.tag}s"
    for address, prefix in ((MICRO_ADDRESS, 24), (EXTERNAL_ADDRESS, 32)):
        added = ["ip", "-n", hosts.client, "addr", "add", f"{address}/{prefix}", "dev", client_link]
        assert subprocess.run(added, capture_output=True, check=False).returncode == 0
    # The host answers the external peer over the same link (its default route, on OCI).
    route = ["ip", "route", "add", f"{EXTERNAL_ADDRESS}/32", "dev", server_link]
    assert hosts.run_on_server(route).returncode == 0
    with listening_in(container_ns, CONTAINER_ADDRESS, [POSTGRES_PORT]):
        yield host


def _postgres_reaches(host: FirewallHost, source: str) -> bool:
    return connects_from(host.hosts.client, source, SERVER_ADDRESS, POSTGRES_PORT)


@pytest.mark.parametrize("docker_first", [False, True], ids=["boot", "running-docker"])
def test_postgres_answers_the_replicas_peers_only_and_ssh_the_admins_only(
    postgres_host: FirewallHost, replica_run: ProgramRun, docker_first: bool
) -> None:
    host = postgres_host
    if docker_first:
        host.start_docker()
        host.run_bound(_DOCKER_PUBLISHES_POSTGRES)
    host.install(replica_run)
    if not docker_first:
        host.start_docker()
        host.run_bound(_DOCKER_PUBLISHES_POSTGRES)
    assert _postgres_reaches(host, MICRO_ADDRESS)
    assert _postgres_reaches(host, EXTERNAL_ADDRESS)
    # A third address does not, nor the admin's: 5432 is the peers' alone.
    assert not _postgres_reaches(host, OUTSIDER_ADDRESS)
    assert not _postgres_reaches(host, ADMIN_ADDRESS)
    # The peers reach nothing else published, and SSH stays the admins'.
    assert not _published_reaches(host, MICRO_ADDRESS)
    assert _published_reaches(host, ADMIN_ADDRESS)
    for source in (MICRO_ADDRESS, EXTERNAL_ADDRESS, OUTSIDER_ADDRESS):
        assert not host.hosts.connects(source, SSH_PORT), source
    assert host.hosts.connects(ADMIN_ADDRESS, SSH_PORT)


def test_without_the_replica_no_one_reaches_a_published_postgres(
    postgres_host: FirewallHost,
) -> None:
    """The setup's own check: with the default stack's rules, 5432 published all the same is
    the admins' like any published port, and the Micro's address is a stranger."""
    host = postgres_host
    host.install(
        run_program(
            overrides={
                "adminCidrs": f'["{ADMIN_ADDRESS}/32"]',
                "vcnCidr": "10.200.0.0/16",
                "subnetCidr": "10.200.0.0/24",
            }
        )
    )
    host.start_docker()
    host.run_bound(_DOCKER_PUBLISHES_POSTGRES)
    assert not _postgres_reaches(host, MICRO_ADDRESS)
    assert not _postgres_reaches(host, EXTERNAL_ADDRESS)
    assert _postgres_reaches(host, ADMIN_ADDRESS)


def test_on_the_micro_ssh_answers_the_admins_only_and_postgres_no_peer(
    postgres_host: FirewallHost, replica_run: ProgramRun
) -> None:
    """The Micro's own firewall command, run on the test host: the admin baseline, no path
    for the peers (the replica publishes nothing)."""
    host = postgres_host
    micro_firewall = command_script(replica_run, "replica-settings-firewall")
    host.run_bound(micro_firewall, f"{host.stand_ins}:/usr/sbin:/usr/bin:/bin")
    host.start_docker()
    host.run_bound(_DOCKER_PUBLISHES_POSTGRES)
    assert host.hosts.connects(ADMIN_ADDRESS, SSH_PORT)
    for source in (MICRO_ADDRESS, EXTERNAL_ADDRESS, OUTSIDER_ADDRESS):
        assert not host.hosts.connects(source, SSH_PORT), source
        assert not _postgres_reaches(host, source), source
    # The UIs run on the A1: the Micro's INPUT opens their ports to no one, admins included
    # (8080 listens on the test host itself; 4000 is the setup's published port).
    assert not host.hosts.connects(ADMIN_ADDRESS, 8080)
