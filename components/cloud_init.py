"""A host's cloud-config: what the first boot needs, and nothing that a setting changes.

The first boot installs the packages (once it can reach the internet), mounts the state volume
at /mnt/data, holds Docker back until that mount is there, and starts Docker. A host without a
block volume (the replica's Micro) keeps its data on the boot volume instead: a directory there,
`BOOT_DATA_DIR`, bind-mounted at /mnt/data, so that every service finds its data at the same
path and Docker still waits for the mount; such a small host also gets a swap file. The document is
the same whatever the stack's settings: OCI replaces an instance whose user data changes, so
settings that may change later (the host firewall, sshd) are applied over SSH instead (see
`components/host_config.py`).

The document is built as a Python dict and serialised with PyYAML, so quoting is never
hand-made. Cloud-init runs it once per instance.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from components.ssh import SSH_USER, SshHostKey

DATA_ROOT = "/mnt/data"
DATA_LABEL = "ai-swarm-data"
# OCI's consistent device path for the first paravirtualized block volume attachment.
DATA_DEVICE = "/dev/oracleoci/oraclevdb"
PREPARE_DATA_SCRIPT = "/usr/local/sbin/ai-swarm-prepare-data"
# A host without a block volume: its data directory on the boot volume, mounted at DATA_ROOT.
BOOT_DATA_DIR = "/srv/ai-swarm-data"
SWAP_FILE = "/swapfile"
INSTALL_PACKAGES_SCRIPT = "/usr/local/sbin/ai-swarm-install-packages"
# A drop-in rather than an edit of the packaged unit, so package upgrades keep it.
DOCKER_DROP_IN = "/etc/systemd/system/docker.service.d/10-ai-swarm-data.conf"
PACKAGES = ("docker.io", "unattended-upgrades")
# Canonical's connectivity check (it answers 204 to anyone): reachable means the host has
# egress to the internet, which it lacks until the reserved public IP is bound to it.
EGRESS_PROBE_URL = "http://connectivity-check.ubuntu.com/"
# Without egress a probe's packets are dropped, so each one takes its full 10 s timeout:
# 30 probes 10 s apart bound the wait at about 10 minutes.
EGRESS_WAIT_TRIES = 30
EGRESS_WAIT_INTERVAL_S = 10
APT_ATTEMPTS = 5
APT_RETRY_INTERVAL_S = 30
# A probe of the data volume that neither finds a filesystem nor finds it blank is tried again:
# 6 probes 5 s apart, about 30 s for an attachment to settle.
PROBE_ATTEMPTS = 6
PROBE_INTERVAL_S = 5

# The volume is attached only after the instance is running, so cloud-init waits for it. A
# filesystem is made only on a volume that low-level probing reports as blank (`blkid -p` exits
# 2: nothing found) and that reads, so a replaced instance finds its data again. Any other
# outcome (no size or an I/O error just after attach, an ambiguous signature) is probed again,
# then stops the boot before anything is formatted: mke2fs asks no question without a
# terminal. The filesystem is made with the label the fstab line mounts by. That line is
# `nofail` (a later boot without the volume must still come up), and with `nofail` mount(8)
# exits 0 when no device has the label: the script checks that something is mounted.
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
# blkid -p exits 2 as well when it cannot open or read the device, so it is asked only about
# a device that has a size and whose first MiB reads; otherwise the answer is 4 (an error).
probe_volume() {{
  size=$(blockdev --getsize64 {DATA_DEVICE}) || return 4
  [ "$size" -gt 0 ] || return 4
  dd if={DATA_DEVICE} of=/dev/null bs=1M count=1 iflag=direct status=none || return 4
  blkid -p {DATA_DEVICE} >&2
}}
attempt=1
while :; do
  probe=0
  probe_volume || probe=$?
  case $probe in 0 | 2) break ;; esac
  [ "$attempt" -lt {PROBE_ATTEMPTS} ] || break
  attempt=$((attempt + 1))
  sleep {PROBE_INTERVAL_S}
done
case $probe in
  0) ;;
  2) mkfs.ext4 -q -L {DATA_LABEL} {DATA_DEVICE} ;;
  *)
    echo "{DATA_DEVICE}: unreadable or ambiguous (probe $probe): not formatted, not mounted" >&2
    exit 1
    ;;
esac
mkdir -p {DATA_ROOT}
mountpoint -q {DATA_ROOT} || mount {DATA_ROOT}
if ! mountpoint -q {DATA_ROOT}; then
  echo "no filesystem labelled {DATA_LABEL} to mount at {DATA_ROOT}" >&2
  exit 1
fi
"""

# The Micro's data: a directory of the boot volume, bind-mounted at /mnt/data by the fstab line.
_PREPARE_BOOT_DATA = f"""#!/bin/sh
set -eu
mkdir -p {BOOT_DATA_DIR} {DATA_ROOT}
mountpoint -q {DATA_ROOT} || mount {DATA_ROOT}
if ! mountpoint -q {DATA_ROOT}; then
  echo "{BOOT_DATA_DIR} is not mounted at {DATA_ROOT}" >&2
  exit 1
fi
"""

# The instance has no public address until the reserved IP is bound to its VNIC, which happens
# only once it runs: cloud-init's own package step would race that. This waits for egress (a
# bounded number of probes with apt's own downloader, present on every Ubuntu; one try each,
# the loop is the retry), then runs apt with retries, and fails with a message when both bounds
# are spent.
_INSTALL_PACKAGES = f"""#!/bin/sh
set -u
probe_url={EGRESS_PROBE_URL}
probe_file=$(mktemp)
trap 'rm -f "$probe_file"' EXIT
tries=0
until /usr/lib/apt/apt-helper -o Acquire::Retries=0 -o Acquire::http::Timeout=10 \
    download-file "$probe_url" "$probe_file" >/dev/null 2>&1; do
  tries=$((tries + 1))
  if [ "$tries" -ge {EGRESS_WAIT_TRIES} ]; then
    echo "no egress after $tries probes of $probe_url; trying apt all the same" >&2
    break
  fi
  sleep {EGRESS_WAIT_INTERVAL_S}
done
export DEBIAN_FRONTEND=noninteractive
attempt=1
until apt-get -o Acquire::Retries=3 update &&
    apt-get -o Acquire::Retries=3 install -y --no-install-recommends {" ".join(PACKAGES)}; do
  if [ "$attempt" -ge {APT_ATTEMPTS} ]; then
    echo "apt failed $attempt times: packages not installed" >&2
    exit 1
  fi
  attempt=$((attempt + 1))
  sleep {APT_RETRY_INTERVAL_S}
done
"""

# Containers restart with Docker, and their data directories are bind mounts under /mnt/data:
# Docker must not start before the volume is mounted (nor at all while it is missing).
_DOCKER_NEEDS_DATA = f"[Unit]\nRequiresMountsFor={DATA_ROOT}\n"

_AUTO_UPGRADES = (
    'APT::Periodic::Update-Package-Lists "1";\nAPT::Periodic::Unattended-Upgrade "1";\n'
)

# Every container's logs: three files of 10 MB at most. The services set these themselves;
# the daemon's default bounds anything started by hand.
DOCKER_LOG_OPTIONS = {"max-size": "10m", "max-file": "3"}
_DOCKER_DAEMON = {"log-driver": "json-file", "log-opts": DOCKER_LOG_OPTIONS}


class _BlockStyleDumper(yaml.SafeDumper):
    """Writes multi-line strings as literal blocks: decoded user data reads like the files."""


def _represent_text(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_BlockStyleDumper.add_representer(str, _represent_text)


def render_user_data(
    host_key: SshHostKey, data_volume: bool = True, swap_mb: int | None = None
) -> str:
    """The `#cloud-config` document for a host, as text: one document for every stack but for
    the stack's own SSH host key, which never changes. `data_volume`: the host's data is on an
    attached block volume (else on its boot volume); `swap_mb`: the size of a swap file."""
    document = cloud_config(host_key, data_volume, swap_mb)
    body = yaml.dump(document, Dumper=_BlockStyleDumper, sort_keys=False, width=100)
    return "#cloud-config\n" + body


def _data_files(data_volume: bool) -> list[dict[str, Any]]:
    """The script that makes /mnt/data ready, and the fstab line that mounts it at boot."""
    if not data_volume:
        return [
            {"path": PREPARE_DATA_SCRIPT, "permissions": "0755", "content": _PREPARE_BOOT_DATA},
            {
                "path": "/etc/fstab",
                "append": True,
                "content": f"{BOOT_DATA_DIR} {DATA_ROOT} none bind,nofail 0 0\n",
            },
        ]
    return [
        {"path": PREPARE_DATA_SCRIPT, "permissions": "0755", "content": _PREPARE_DATA},
        {
            "path": "/etc/fstab",
            "append": True,
            "content": f"LABEL={DATA_LABEL} {DATA_ROOT} ext4 "
            "defaults,nofail,x-systemd.device-timeout=30s 0 2\n",
        },
    ]


def cloud_config(
    host_key: SshHostKey, data_volume: bool = True, swap_mb: int | None = None
) -> dict[str, Any]:
    prepare, fstab = _data_files(data_volume)
    document: dict[str, Any] = {
        # The host's only SSH host key, made in the stack so that every SSH client of the
        # program can pin it from the first contact on; the image's keys are deleted and no
        # other is made (cloud-init's cc_ssh: given `ssh_keys`, it writes those and generates
        # none).
        "ssh_deletekeys": True,
        "ssh_keys": {
            "ed25519_private": host_key.private_openssh,
            "ed25519_public": host_key.public_openssh,
        },
        "write_files": [
            prepare,
            {"path": INSTALL_PACKAGES_SCRIPT, "permissions": "0755", "content": _INSTALL_PACKAGES},
            fstab,
            {"path": DOCKER_DROP_IN, "content": _DOCKER_NEEDS_DATA},
            {"path": "/etc/apt/apt.conf.d/20auto-upgrades", "content": _AUTO_UPGRADES},
            {
                "path": "/etc/docker/daemon.json",
                "content": json.dumps(_DOCKER_DAEMON, indent=2) + "\n",
            },
        ],
        # The volume is mounted before Docker is installed: the package starts Docker, which
        # the drop-in above holds back until /mnt/data is mounted.
        # cloud-init runs `runcmd` as one `sh` script: `set -e` ends it at the first command
        # that fails, so the boot reports an error instead of starting Docker without its data.
        "runcmd": [
            "set -e",
            [PREPARE_DATA_SCRIPT],
            [INSTALL_PACKAGES_SCRIPT],
            ["usermod", "-aG", "docker", SSH_USER],
            ["systemctl", "enable", "--now", "docker"],
        ],
    }
    if swap_mb:
        # cloud-init's mounts module (init stage, before runcmd) makes the file with fallocate
        # and mkswap, adds its fstab line and turns it on.
        size = swap_mb * 1024 * 1024
        document["swap"] = {"filename": SWAP_FILE, "size": size, "maxsize": size}
    return document
