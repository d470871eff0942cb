"""The A1 host's cloud-config: Docker, the state volume at /mnt/data, host firewall, updates.

The document is built as a Python dict and serialised with PyYAML, so quoting is never
hand-made. Cloud-init runs it once per instance: a changed document only takes effect on a new
instance (see `components/host.py` for how that is handled).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

DATA_ROOT = "/mnt/data"
DATA_LABEL = "ai-swarm-data"
# OCI's consistent device path for the first paravirtualized block volume attachment.
DATA_DEVICE = "/dev/oracleoci/oraclevdb"
PREPARE_DATA_SCRIPT = "/usr/local/sbin/ai-swarm-prepare-data"
SSH_USER = "ubuntu"

# The volume is attached only after the instance is running, so cloud-init waits for it. A
# filesystem is made only on a volume that has none: a replaced instance finds its data again.
_PREPARE_DATA = f"""#!/bin/sh
set -eu
for _ in $(seq 1 180); do
  [ -b {DATA_DEVICE} ] && break
  sleep 5
done
if [ ! -b {DATA_DEVICE} ]; then
  echo "data volume {DATA_DEVICE} did not appear" >&2
  exit 1
fi
if ! blkid {DATA_DEVICE} >/dev/null 2>&1; then
  mkfs.ext4 -q -L {DATA_LABEL} {DATA_DEVICE}
fi
mkdir -p {DATA_ROOT}
mountpoint -q {DATA_ROOT} || mount {DATA_ROOT}
"""

_AUTO_UPGRADES = (
    'APT::Periodic::Update-Package-Lists "1";\nAPT::Periodic::Unattended-Upgrade "1";\n'
)

# Containers also set their own limits; this bounds anything started by hand.
_DOCKER_DAEMON = {"log-driver": "json-file", "log-opts": {"max-size": "10m", "max-file": "3"}}


@dataclass(frozen=True)
class CloudInitArgs:
    admin_cidrs: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]
    admin_ports: Sequence[int]


class _BlockStyleDumper(yaml.SafeDumper):
    """Writes multi-line strings as literal blocks: decoded user data reads like the files."""


def _represent_text(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_BlockStyleDumper.add_representer(str, _represent_text)


def render_user_data(args: CloudInitArgs) -> str:
    """The `#cloud-config` document for the host, as text."""
    body = yaml.dump(cloud_config(args), Dumper=_BlockStyleDumper, sort_keys=False, width=100)
    return "#cloud-config\n" + body


def cloud_config(args: CloudInitArgs) -> dict[str, Any]:
    return {
        "package_update": True,
        "packages": ["docker.io", "unattended-upgrades", "netfilter-persistent"],
        "write_files": [
            {"path": PREPARE_DATA_SCRIPT, "permissions": "0755", "content": _PREPARE_DATA},
            {
                "path": "/etc/fstab",
                "append": True,
                "content": f"LABEL={DATA_LABEL} {DATA_ROOT} ext4 "
                "defaults,nofail,x-systemd.device-timeout=30s 0 2\n",
            },
            {"path": "/etc/apt/apt.conf.d/20auto-upgrades", "content": _AUTO_UPGRADES},
            {
                "path": "/etc/docker/daemon.json",
                "content": json.dumps(_DOCKER_DAEMON, indent=2) + "\n",
            },
        ],
        "runcmd": [
            ["usermod", "-aG", "docker", SSH_USER],
            ["systemctl", "enable", "--now", "docker"],
            [PREPARE_DATA_SCRIPT],
            *firewall_commands(args),
        ],
    }


def firewall_commands(args: CloudInitArgs) -> list[list[str]]:
    """Open exactly the admitted ports in the host firewall.

    OCI's Ubuntu images REJECT all but SSH in iptables, so a port must be opened here as well as
    in the security list. Rules are inserted at the top, ahead of the image's final REJECT.
    """
    rules = [
        [
            "ip6tables" if cidr.version == 6 else "iptables",
            "-I",
            "INPUT",
            "1",
            "-p",
            "tcp",
            "-s",
            str(cidr),
            "--dport",
            str(port),
            "-m",
            "conntrack",
            "--ctstate",
            "NEW",
            "-j",
            "ACCEPT",
        ]
        for cidr in args.admin_cidrs
        for port in args.admin_ports
    ]
    return [*rules, ["netfilter-persistent", "save"]]
