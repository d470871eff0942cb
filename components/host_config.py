"""The host's settings that may change over its life, applied in place over SSH.

The instance's cloud-config is the same for every stack (a changed one would replace the
instance), so what follows the stack's settings is installed here by `command.remote.Command`s
that run again when their script changes or the instance is replaced. Each script is
idempotent: running it twice leaves the host as running it once.

- The host firewall: OCI's Ubuntu images REJECT all but SSH in iptables, so an exposed UI
  port must be opened on the host as well as in the security list. Our rules live in chains of
  their own, flushed and refilled on every run and jumped to once from the top of INPUT, OUTPUT
  and Docker's DOCKER-USER, so a changed CIDR list replaces the old rules. INPUT: containers
  open no connection to the host, and SSH answers the admin CIDRs only (the image's own rule
  admits port 22 from anywhere). DOCKER-USER (Docker's published ports bypass INPUT):
  containers reach nothing link-local but the resolver's DNS, and published ports admit the
  admin CIDRs only; with the replica, Postgres' published port admits the replica's peers
  (`ReplicaSettings.peer_networks`) and no one else, not even the admin CIDRs. OUTPUT:
  node-exporter's user (host network) reaches nothing link-local.
  The rules are loaded at boot by a systemd unit ordered before Docker, and again by a
  netfilter-persistent plugin after every restore of the image's rules file (a restore
  flushes the whole filter table). Nothing is ever saved with `netfilter-persistent save`,
  which would write Docker's chains into the image's rules file.
- sshd's `MaxStartups`: pulumi-docker opens an SSH connection per Docker call, and some
  seventeen Docker resources start in parallel; sshd's default `10:30:100` drops unauthenticated
  connections beyond ten at random. Multiplexing on the client (`ControlMaster`) does not avoid
  it: the first burst starts before any master exists, and sessions past sshd's `MaxSessions`
  (10 per connection) fall back to connections of their own (OpenSSH mux.c, `muxclient`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_command as command

from components.config import SSH_PORT
from components.services.privileges import privileges_of

FIREWALL_CHAIN = "AI-SWARM-ADMIN"
# Judges what Docker forwards to and from containers; jumped to from Docker's DOCKER-USER chain,
# which Docker runs first in FORWARD and never changes.
CONTAINER_CHAIN = "AI-SWARM-CONTAINERS"
# Judges what processes of the host itself send (node-exporter shares the host's network).
OUTPUT_CHAIN = "AI-SWARM-OUTPUT"
DOCKER_USER_CHAIN = "DOCKER-USER"
# The instance metadata service (169.254.169.254) hands out the instance principal's
# credentials: no container may reach it, nor anything else link-local...
LINK_LOCAL = "169.254.0.0/16"
# ...but OCI's resolver, on the same address, port 53: before Docker 28 the embedded DNS
# forwards a container's lookups from the container's own namespace.
OCI_RESOLVER = "169.254.169.254"
# Docker's bridges: the default `docker0` and `br-<network id>` for every other network.
DOCKER_BRIDGES = ("docker0", "br-+")
# node-exporter's process, on the host's network: the uid its container runs as.
NODE_EXPORTER_UID = privileges_of("node-exporter").runs_as.uid
FIREWALL_SCRIPT = "/usr/local/sbin/ai-swarm-firewall"
FIREWALL_UNIT = "ai-swarm-firewall.service"
UNIT_DIR = "/etc/systemd/system"
# netfilter-persistent runs every executable here, in name order, with `start` on a start,
# restart or reload; 15-ip4tables (iptables-persistent) restores /etc/iptables/rules.v4 first.
NETFILTER_PLUGIN = "/usr/share/netfilter-persistent/plugins.d/90-ai-swarm-firewall"
SSHD_DROP_IN = "/etc/ssh/sshd_config.d/60-ai-swarm.conf"
# Start dropping unauthenticated connections at 64 (30% of them), all of them at 128: room for
# every Docker call of an `up` at once, and still a bound.
MAX_STARTUPS = "64:30:128"
# The delimiter of the here-documents that carry each file's text byte for byte.
END_OF_FILE = "AI_SWARM_END_OF_FILE"

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class HostFile:
    path: str
    content: str
    mode: str = "0644"


def install_files_script(
    files: Sequence[HostFile], then: Sequence[str], before: Sequence[str] = ()
) -> str:
    """A shell script that runs the commands `before`, writes `files` as root (each replaced in
    one rename, so a reader never sees half a file), then runs the commands `then`.

    Each file is written beside its place and renamed over it only once whole: a write that
    fails (a full disk, a dropped connection) leaves the old file as it was, removes the
    partial one and ends the script."""
    lines = [
        "set -eu",
        *before,
        "put() {",
        '  sudo install -d -m 0755 "$(dirname "$2")"',
        '  sudo tee "$2.ai-swarm-new" >/dev/null || { sudo rm -f "$2.ai-swarm-new"; return 1; }',
        '  sudo chmod "$1" "$2.ai-swarm-new"',
        '  sudo mv -f "$2.ai-swarm-new" "$2"',
        "}",
    ]
    for file in files:
        if END_OF_FILE in file.content or not file.content.endswith("\n"):
            raise ValueError(f"{file.path}: content must end in a newline and not hold the marker")
        lines += [f"put {file.mode} {file.path} <<'{END_OF_FILE}'", file.content + END_OF_FILE]
    return "\n".join([*lines, *then]) + "\n"


def _restore_input(chains: Sequence[tuple[str, Sequence[str]]]) -> str:
    """iptables-restore input that replaces the rules of each chain and touches nothing else."""
    lines = ["*filter"]
    for chain, rules in chains:
        lines += [f":{chain} - [0:0]", f"-F {chain}", *rules]
    return "\n".join([*lines, "COMMIT"]) + "\n"


def firewall_rules(cidrs: Sequence[IpNetwork], ports: Sequence[int]) -> list[str]:
    """The admin chain (INPUT): no new connection from a container to the host (no service
    needs one: node-exporter is on the host's network, the rest talk over their own network),
    one ACCEPT per admin CIDR and port, then SSH refused to everyone else but loopback. IPv4
    only: the VCN has no IPv6 addresses, and the config refuses IPv6 admin CIDRs."""
    for cidr in cidrs:
        if cidr.version != 4:
            raise ValueError(f"{cidr}: the host firewall admits IPv4 networks only")
    new = "-m conntrack --ctstate NEW"
    return [
        *(
            f"-A {FIREWALL_CHAIN} -i {bridge} {new} -j REJECT --reject-with icmp-admin-prohibited"
            for bridge in DOCKER_BRIDGES
        ),
        *(
            f"-A {FIREWALL_CHAIN} -s {cidr} -p tcp {new} --dport {port} -j ACCEPT"
            for cidr in cidrs
            for port in ports
        ),
        f"-A {FIREWALL_CHAIN} ! -i lo -p tcp {new} --dport {SSH_PORT} -j REJECT --reject-with "
        "tcp-reset",
    ]


def container_rules(
    cidrs: Sequence[IpNetwork],
    peers: Sequence[ipaddress.IPv4Network] = (),
    peer_port: int | None = None,
) -> list[str]:
    """What Docker forwards: nothing from a container to a link-local address but DNS to OCI's
    resolver, no new connection to `peer_port` (published by Postgres) but from `peers`, and
    no new connection to any other published port (Docker's DNAT) from outside the admin
    CIDRs. Published ports bypass INPUT, so without these the security list would be their
    only filter.

    `--ctdir ORIGINAL` judges the client's packets only, not the container's replies; traffic
    between containers is not DNAT'ed, so it passes. `--ctorigdstport` is the port the client
    asked for, before Docker's DNAT rewrote it to the container's."""
    published = "-m conntrack --ctstate DNAT --ctdir ORIGINAL"
    to_peer_port = f"-p tcp {published} --ctorigdstport {peer_port}"
    peer_rules = (
        [
            *(f"-A {CONTAINER_CHAIN} -s {peer} {to_peer_port} -j RETURN" for peer in peers),
            f"-A {CONTAINER_CHAIN} {to_peer_port} -j DROP",
        ]
        if peers and peer_port is not None
        else []
    )
    return [
        *(
            f"-A {CONTAINER_CHAIN} -d {OCI_RESOLVER}/32 -p {protocol} --dport 53 -j RETURN"
            for protocol in ("udp", "tcp")
        ),
        f"-A {CONTAINER_CHAIN} -d {LINK_LOCAL} -j REJECT --reject-with icmp-admin-prohibited",
        *peer_rules,
        *(f"-A {CONTAINER_CHAIN} -s {cidr} {published} -j RETURN" for cidr in cidrs),
        f"-A {CONTAINER_CHAIN} {published} -j DROP",
    ]


def output_rules() -> list[str]:
    """What the host sends: node-exporter's user reaches nothing link-local (it needs nothing
    there). The image's own OUTPUT rules admit the metadata service to every user, and the
    Oracle Cloud Agent needs it, so only this uid is refused."""
    return [
        f"-A {OUTPUT_CHAIN} -d {LINK_LOCAL} -m owner --uid-owner {NODE_EXPORTER_UID} "
        "-j REJECT --reject-with icmp-admin-prohibited"
    ]


def _jump_once(chain: str, target: str) -> str:
    return f"iptables -w -C {chain} -j {target} 2>/dev/null || iptables -w -I {chain} 1 -j {target}"


def firewall_script(
    cidrs: Sequence[IpNetwork],
    ports: Sequence[int],
    peers: Sequence[ipaddress.IPv4Network] = (),
    peer_port: int | None = None,
) -> str:
    """`/usr/local/sbin/ai-swarm-firewall`: load our chains, then jump to them from the top of
    INPUT, OUTPUT and DOCKER-USER unless a jump is there already. DOCKER-USER is made when
    Docker has not made it yet: at boot this runs before Docker, which keeps the chain it finds
    and puts its jump to it at the top of FORWARD. `-w` waits for Docker's hold on the xtables
    lock."""
    rules = _restore_input(
        [
            (FIREWALL_CHAIN, firewall_rules(cidrs, ports)),
            (CONTAINER_CHAIN, container_rules(cidrs, peers, peer_port)),
            (OUTPUT_CHAIN, output_rules()),
        ]
    )
    return (
        "#!/bin/sh\n"
        "set -eu\n"
        "iptables-restore -w --noflush <<'EOF'\n"
        f"{rules}EOF\n"
        f"{_jump_once('INPUT', FIREWALL_CHAIN)}\n"
        f"{_jump_once('OUTPUT', OUTPUT_CHAIN)}\n"
        f"iptables -w -n -L {DOCKER_USER_CHAIN} >/dev/null 2>&1 || "
        f"iptables -w -N {DOCKER_USER_CHAIN}\n"
        f"{_jump_once(DOCKER_USER_CHAIN, CONTAINER_CHAIN)}\n"
    )


# netfilter-persistent passes `start` for start, restart and reload; `save` and `flush` are
# the operator's and load nothing.
NETFILTER_PLUGIN_TEXT = f"""#!/bin/sh
# ai-swarm: the restore before this plugin flushed the filter table: load our chains again.
[ "$1" = start ] || exit 0
exec {FIREWALL_SCRIPT}
"""


# Ordered after the image's own rules are restored at boot and before Docker, so that no
# container runs before its rules are in place. A later restore of the image's rules (a restart
# of netfilter-persistent) is followed by the plugin above.
FIREWALL_UNIT_TEXT = f"""[Unit]
Description=ai-swarm host firewall ({FIREWALL_CHAIN}, {OUTPUT_CHAIN}, {CONTAINER_CHAIN})
After=netfilter-persistent.service
Before=docker.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart={FIREWALL_SCRIPT}

[Install]
WantedBy=multi-user.target
"""


def firewall_install_script(
    cidrs: Sequence[IpNetwork],
    ports: Sequence[int],
    peers: Sequence[ipaddress.IPv4Network] = (),
    peer_port: int | None = None,
) -> str:
    """Install the firewall script and its unit, enable the unit, and load the rules now by
    restarting it: the rules in force are the ones a reboot loads."""
    return install_files_script(
        [
            HostFile(FIREWALL_SCRIPT, firewall_script(cidrs, ports, peers, peer_port), "0755"),
            HostFile(f"{UNIT_DIR}/{FIREWALL_UNIT}", FIREWALL_UNIT_TEXT),
            HostFile(NETFILTER_PLUGIN, NETFILTER_PLUGIN_TEXT, "0755"),
        ],
        then=[
            "sudo systemctl daemon-reload",
            f"sudo systemctl enable {FIREWALL_UNIT}",
            f"sudo systemctl restart {FIREWALL_UNIT}",
        ],
    )


SSHD_DROP_IN_TEXT = f"""# ai-swarm: pulumi-docker opens one SSH connection per Docker call.
MaxStartups {MAX_STARTUPS}
"""


# The drop-in in force before an install, kept until sshd accepts the new one. sshd reads
# `sshd_config.d/*.conf` only, so neither this nor put()'s temporary file is ever read by sshd.
SSHD_DROP_IN_KEPT = f"{SSHD_DROP_IN}.ai-swarm-old"


def sshd_install_script() -> str:
    """Install the sshd drop-in, check the whole configuration, and reload sshd (running
    sessions stay). When sshd rejects the configuration, the drop-in in force before is put
    back (or the new one removed, when there was none) before anything reloads: a later
    restart of sshd (a reboot) must not find a configuration it refuses."""
    return install_files_script(
        [HostFile(SSHD_DROP_IN, SSHD_DROP_IN_TEXT)],
        before=[
            f"sudo rm -f {SSHD_DROP_IN_KEPT}",
            f"if sudo test -e {SSHD_DROP_IN}; then",
            f"  sudo cp -p {SSHD_DROP_IN} {SSHD_DROP_IN_KEPT}",
            "fi",
        ],
        then=[
            "if ! sudo sshd -t; then",
            f"  if sudo test -e {SSHD_DROP_IN_KEPT}; then",
            f"    sudo mv -f {SSHD_DROP_IN_KEPT} {SSHD_DROP_IN}",
            "  else",
            f"    sudo rm -f {SSHD_DROP_IN}",
            "  fi",
            '  echo "sshd -t rejects the new drop-in: the one in force before is kept" >&2',
            "  exit 1",
            "fi",
            f"sudo rm -f {SSHD_DROP_IN_KEPT}",
            "sudo systemctl try-reload-or-restart ssh.service",
        ],
    )


@dataclass(frozen=True)
class HostSettingsArgs:
    connection: command.remote.ConnectionArgs
    # The instance the settings are on: a replaced instance gets them again.
    instance_id: pulumi.Input[str]
    # Cloud-init has finished (packages installed, volume mounted, Docker up).
    ready: pulumi.Resource
    admin_cidrs: Sequence[IpNetwork]
    admin_ports: Sequence[int]
    # Who may reach `postgres_port` published on this host (the A1 with the replica on).
    postgres_peers: Sequence[ipaddress.IPv4Network] = ()
    postgres_port: int | None = None


class HostSettings(pulumi.ComponentResource):
    """The admin firewall and sshd's limits on the host, updated in place when they change."""

    firewall: command.remote.Command
    sshd: command.remote.Command

    def __init__(
        self, name: str, args: HostSettingsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("ai-swarm:host:Settings", name, None, opts)
        self.firewall = self._apply(
            f"{name}-firewall",
            firewall_install_script(
                args.admin_cidrs, args.admin_ports, args.postgres_peers, args.postgres_port
            ),
            args,
        )
        self.sshd = self._apply(f"{name}-sshd", sshd_install_script(), args)
        self.register_outputs({})

    def _apply(self, name: str, script: str, args: HostSettingsArgs) -> command.remote.Command:
        # A changed script is an update, which runs `create` again when no `update` is given
        # (pulumi-command's docs for `create`); a new instance OCID replaces the command.
        return command.remote.Command(
            name,
            connection=args.connection,
            create=script,
            triggers=[args.instance_id],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[args.ready]),
        )
