"""Places the services on a host: its Docker provider over SSH, the services' network, then every
service its spec names, in the order the catalog's `needs` and `uses` impose (and no other), so
independent images pull and start in parallel.

SSH: pulumi-docker runs the local `ssh` and takes no key. With `ai-swarm:sshIdentityFile` set,
ssh gets `-i <file>`; otherwise it uses the agent or ~/.ssh/config. The host key is accepted on
first contact and kept in a known-hosts file of the instance's own (`known_hosts_options`), so a
replaced instance, which keeps the reserved IP but brings a new key, needs no edit of known_hosts.
Every Docker call is its own SSH connection, many at once: the host's sshd admits them
(`MaxStartups`, see `components/host_config.py`), and the provider waits for that setting.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from graphlib import TopologicalSorter
from typing import Protocol

import pulumi
import pulumi_command as command
import pulumi_docker as docker

from components.config import StackConfig
from components.services.base import (
    HOST_LABEL,
    INSTANCE_LABEL,
    LOOPBACK,
    NETWORK_NAME,
    Service,
    ServiceArgs,
    ServiceContext,
)
from components.services.catalog import CATALOG, NETWORK_SUBNET
from components.services.litellm import LiteLLM
from components.services.node_exporter import NodeExporter
from components.services.open_webui import OpenWebUI
from components.services.pipelines import Pipelines
from components.services.postgres import Postgres
from components.services.postgres_replica import PostgresReplica
from components.services.redis import Redis
from components.services.replication_link import ReplicationLink
from components.services.vault import Vault
from components.sizing import HostSpec
from components.ssh import SSH_USER, known_hosts_options

# BatchMode: fail instead of prompting, since nobody can answer a prompt under `pulumi up`.
SSH_OPTIONS = (
    "-o", "BatchMode=yes",
    "-o", "ConnectTimeout=30",
    "-o", "ServerAliveInterval=30",
)  # fmt: skip

COMPONENTS: Mapping[str, type[Service]] = {
    kind.key: kind
    for kind in (
        Postgres,
        Redis,
        NodeExporter,
        LiteLLM,
        OpenWebUI,
        Pipelines,
        Vault,
        PostgresReplica,
    )
}


class DockerHost(Protocol):
    """What the services need of `components.host.Host` (read-only, hence properties)."""

    @property
    def spec(self) -> HostSpec: ...
    @property
    def host_key(self) -> str: ...
    @property
    def instance_id(self) -> pulumi.Output[str]: ...
    @property
    def connection(self) -> command.remote.ConnectionArgs: ...
    @property
    def docker_host(self) -> pulumi.Output[str]: ...
    @property
    def private_ip(self) -> str: ...
    @property
    def ready(self) -> pulumi.Resource: ...


@dataclass(frozen=True)
class Placement:
    """The services placed on one host, by catalog key (enabled ones only)."""

    services: Mapping[str, Service]
    ui_ip: str

    @property
    def litellm_master_key(self) -> pulumi.Output[str] | None:
        litellm = self.services.get(LiteLLM.key)
        return litellm.api_key if isinstance(litellm, LiteLLM) else None

    def tunnel_command(
        self, public_ip: pulumi.Input[str], instance_id: pulumi.Input[str]
    ) -> pulumi.Output[str]:
        """The `ssh -L` command that brings every enabled UI to the same port on localhost,
        with the instance's own known-hosts file, as the Docker provider uses."""
        ports = sorted(s.entry.ui_port for s in self.services.values() if s.entry.ui_port)
        forwards = [word for port in ports for word in ("-L", f"{port}:{self.ui_ip}:{port}")]
        return pulumi.Output.all(instance_id, public_ip).apply(
            lambda found: shlex.join(
                ["ssh", "-N", *known_hosts_options(found[0]), *forwards, f"{SSH_USER}@{found[1]}"]
            )
        )


def ssh_options(identity_file: str | None, instance_id: str) -> list[str]:
    identity = ["-i", identity_file, "-o", "IdentitiesOnly=yes"] if identity_file else []
    return [*SSH_OPTIONS, *known_hosts_options(instance_id), *identity]


def place_services(
    config: StackConfig,
    host: DockerHost,
    after: Sequence[pulumi.Resource] = (),
    replication: ReplicationLink | None = None,
) -> Placement:
    """Place the services of `host`'s spec on it, with its own Docker provider and network;
    Docker starts only after `after` (host settings its SSH connections need) as well as after
    the host is ready. `replication` is what Postgres and its replica add when the replica is
    enabled."""
    settings = config.service_settings
    spec = host.spec
    ui_ip = host.private_ip if settings.expose_uis else LOOPBACK
    identity_file = config.ssh_identity_file
    provider = docker.Provider(
        f"{spec.resource_prefix}docker",
        host=host.docker_host,
        ssh_opts=host.instance_id.apply(lambda instance: ssh_options(identity_file, instance)),
        # The provider does not retry: it must wait for cloud-init, Docker and the data volume.
        opts=pulumi.ResourceOptions(depends_on=[host.ready, *after]),
    )
    network = docker.Network(
        f"{spec.resource_prefix}services-network",
        name=NETWORK_NAME,
        driver="bridge",
        attachable=False,
        ipam_configs=[docker.NetworkIpamConfigArgs(subnet=str(NETWORK_SUBNET))],
        labels=[
            docker.NetworkLabelArgs(label=HOST_LABEL, value=host.host_key),
            docker.NetworkLabelArgs(label=INSTANCE_LABEL, value=host.instance_id),
        ],
        opts=pulumi.ResourceOptions(provider=provider),
    )
    context = ServiceContext(
        provider=provider,
        network=network,
        host_key=host.host_key,
        instance_id=host.instance_id,
        connection=host.connection,
        platform=spec.platform,
        allocations=spec.allocations,
        private_ip=host.private_ip,
        settings=settings,
        ui_ip=ui_ip,
        replication=replication,
    )
    placed: dict[str, Service] = {}
    for key in dependency_order(list(spec.services)):
        entry = CATALOG[key]
        peers = {peer: placed[peer] for peer in (*entry.needs, *entry.uses) if peer in placed}
        placed[key] = COMPONENTS[key](f"{spec.resource_prefix}{key}", ServiceArgs(context, peers))
    return Placement(services=placed, ui_ip=ui_ip)


def dependency_order(enabled: list[str]) -> list[str]:
    """`enabled` with every service after the ones it needs or uses; services that are ready
    together keep their catalog order, so the same config always registers in the same order."""
    catalog_order = list(CATALOG)
    sorter = TopologicalSorter(
        {
            key: [p for p in (*CATALOG[key].needs, *CATALOG[key].uses) if p in enabled]
            for key in enabled
        }
    )
    sorter.prepare()
    ordered: list[str] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=catalog_order.index)
        ordered += ready
        sorter.done(*ready)
    return ordered
