"""Puts the services on a host: its Docker provider over SSH, the services' network, then every
enabled service in the order their needs impose (and no other), so independent images pull and
start in parallel.

SSH: pulumi-docker runs the local `ssh` and takes no key. With `ai-swarm:sshIdentityFile` set,
ssh gets `-i <file>`; otherwise it uses the agent or ~/.ssh/config. The host key is accepted on
first contact (a replaced instance keeps the reserved IP but brings a new key: `ssh-keygen -R`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, TypeVar

import pulumi
import pulumi_docker as docker

from components.cloud_init import SSH_USER
from components.config import StackConfig
from components.services.base import (
    HOST_LABEL,
    LOOPBACK,
    NETWORK_NAME,
    NETWORK_SUBNET,
    Service,
    ServiceContext,
)
from components.services.litellm import LiteLLM
from components.services.node_exporter import NodeExporter
from components.services.open_webui import OpenWebUI
from components.services.pipelines import Pipelines
from components.services.postgres import Postgres
from components.services.redis import Redis
from components.services.vault import Vault

# BatchMode: fail instead of prompting, since nobody can answer a prompt under `pulumi up`.
SSH_OPTIONS = (
    "-o", "BatchMode=yes",
    "-o", "StrictHostKeyChecking=accept-new",
    "-o", "ConnectTimeout=30",
    "-o", "ServerAliveInterval=30",
)  # fmt: skip

T = TypeVar("T")


class DockerHost(Protocol):
    """What the services need of `components.host.ArmHost` (read-only, hence properties)."""

    @property
    def host_name(self) -> str: ...
    @property
    def docker_host(self) -> pulumi.Output[str]: ...
    @property
    def private_ip(self) -> str: ...
    @property
    def ready(self) -> pulumi.Resource: ...


@dataclass(frozen=True)
class Deployment:
    provider: docker.Provider
    network: docker.Network
    services: Mapping[str, Service]  # by config key, enabled ones only
    litellm_master_key: pulumi.Output[str] | None
    ui_ip: str

    def tunnel_command(self, public_ip: pulumi.Input[str]) -> pulumi.Output[str]:
        """The `ssh -L` command that brings every enabled UI to the same port on localhost."""
        ports = sorted(s.entry.ui_port for s in self.services.values() if s.entry.ui_port)
        forwards = " ".join(f"-L {port}:{self.ui_ip}:{port}" for port in ports)
        return pulumi.Output.concat(f"ssh -N {forwards} {SSH_USER}@", public_ip)


def ssh_options(identity_file: str | None) -> list[str]:
    identity = ["-i", identity_file, "-o", "IdentitiesOnly=yes"] if identity_file else []
    return [*SSH_OPTIONS, *identity]


def deploy_services(config: StackConfig, host: DockerHost) -> Deployment:
    wanted = config.services
    ui_ip = host.private_ip if wanted.expose_uis else LOOPBACK
    provider = docker.Provider(
        "docker",
        host=host.docker_host,
        ssh_opts=ssh_options(wanted.ssh_identity_file),
        # The provider does not retry: it must wait for cloud-init, Docker and the data volume.
        opts=pulumi.ResourceOptions(depends_on=[host.ready]),
    )
    network = docker.Network(
        "services-network",
        name=NETWORK_NAME,
        driver="bridge",
        attachable=False,
        ipam_configs=[docker.NetworkIpamConfigArgs(subnet=str(NETWORK_SUBNET))],
        labels=[docker.NetworkLabelArgs(label=HOST_LABEL, value=host.host_name)],
        opts=pulumi.ResourceOptions(provider=provider),
    )
    context = ServiceContext(
        provider=provider,
        network=network,
        host_name=host.host_name,
        profile=config.profile.name,
        services=wanted,
        ui_ip=ui_ip,
    )

    postgres = Postgres(context) if wanted.enabled("postgres") else None
    redis = Redis(context) if wanted.enabled("redis") else None
    pipelines = Pipelines(context) if wanted.enabled("pipelines") else None
    built: list[Service | None] = [
        postgres,
        redis,
        pipelines,
        NodeExporter(context) if wanted.enabled("nodeExporter") else None,
        Vault(context) if wanted.enabled("vault") else None,
    ]
    litellm = None
    if wanted.enabled("litellm"):
        litellm = LiteLLM(
            context, postgres=_needed(postgres, "postgres"), redis=_needed(redis, "redis")
        )
    if wanted.enabled("openWebui"):
        built.append(
            OpenWebUI(
                context,
                postgres=_needed(postgres, "postgres"),
                redis=_needed(redis, "redis"),
                litellm=_needed(litellm, "litellm"),
                pipelines=pipelines,
            )
        )
    built.append(litellm)
    return Deployment(
        provider=provider,
        network=network,
        services={service.entry.key: service for service in built if service is not None},
        litellm_master_key=litellm.api_key if litellm else None,
        ui_ip=ui_ip,
    )


def _needed(service: T | None, key: str) -> T:
    # load_config refuses a config that disables a needed service; this guards direct callers.
    if service is None:
        raise pulumi.RunError(f"service {key} is disabled but another enabled service needs it")
    return service
