"""How everything here reaches the host over SSH: its user and its host key, per instance.

Pure (no Pulumi): the program, the Docker provider's options and `python -m deploy` share it.
"""

from __future__ import annotations

from dataclasses import dataclass

SSH_USER = "ubuntu"


@dataclass(frozen=True)
class SshHostKey:
    """The host's Ed25519 SSH host key, made in the stack (pulumi-tls): the private half goes
    to cloud-init, the public half (an authorized_keys line) to every client that pins it."""

    private_openssh: str
    public_openssh: str


# Every host key the local `ssh` learns is kept in a file of the instance's own: a replaced
# instance (a new OCID behind the same reserved IP) starts a new file, so its new host key is
# accepted on first contact without anyone editing known_hosts, while a changed key on the same
# instance is still refused. Directly in ~/.ssh: the one directory ssh makes when it is
# missing, for a known-hosts file written right in it (OpenSSH hostfile.c,
# hostfile_create_user_ssh_dir).
_KNOWN_HOSTS_PREFIX = "~/.ssh/known_hosts.ai-swarm."


def known_hosts_file(instance_id: str) -> str:
    """The local known-hosts file of this instance (an OCID holds no shell-special character)."""
    return f"{_KNOWN_HOSTS_PREFIX}{instance_id}"


def known_hosts_options(instance_id: str) -> list[str]:
    """`ssh` options that pin the host key of this instance in a file of its own."""
    return [
        "-o",
        f"UserKnownHostsFile={known_hosts_file(instance_id)}",
        "-o",
        "StrictHostKeyChecking=accept-new",
    ]
