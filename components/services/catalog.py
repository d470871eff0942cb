"""The one table of services: image, containers, and what each needs and uses.

Pure data, importable without Pulumi: `components.config` validates `ai-swarm:services`
against it, `components.services.placement` wires the services in the order their needs and
uses impose, and each service component reads its image from it. Container limits live in
`components.sizing`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

# The services' Docker network on the host. Fixed so that pg_hba.conf can admit exactly the
# containers' network and nothing else; the VCN must not overlap it, or the host could not
# tell its own containers from machines of the VCN.
NETWORK_SUBNET = ipaddress.IPv4Network("172.30.0.0/24")


@dataclass(frozen=True)
class ServiceEntry:
    key: str  # the name under `ai-swarm:services`, and the component's resource name
    name: str  # the component type's <Name>: ai-swarm:service:<Name>
    image: str
    containers: tuple[str, ...]  # main container first
    needs: tuple[str, ...] = ()  # services that must be enabled for this one to work
    uses: tuple[str, ...] = ()  # services it connects to when they are enabled
    # Needed or used services it reaches only to serve a request, never while it starts: its
    # containers need not wait for theirs, so `pulumi up` creates them side by side.
    starts_without: tuple[str, ...] = ()
    ui_port: int | None = None  # published on loopback (or to adminCidrs when exposed)
    # The setting that places this service, for one that `ai-swarm:services` may not name.
    placed_by: str | None = None
    # The service whose image (and its `ai-swarm:services.<key>.image`) this one runs.
    image_of: str | None = None

    @property
    def configurable(self) -> bool:
        """Whether `ai-swarm:services.<key>` may name it (enable, disable, size, image)."""
        return self.placed_by is None


POSTGRES_IMAGE = "postgres:15.14-alpine"
# Version tags, never moving ones. `python -m deploy images` checks each for its host's platform
# before every deploy; `--lock` pins the digests it checked in images.lock.
CATALOG: Mapping[str, ServiceEntry] = {
    entry.key: entry
    for entry in (
        ServiceEntry("postgres", "Postgres", POSTGRES_IMAGE, ("postgres",)),
        ServiceEntry("redis", "Redis", "redis:7.4.5-alpine", ("redis", "redis-sentinel")),
        ServiceEntry(
            "nodeExporter", "NodeExporter", "prom/node-exporter:v1.9.1", ("node-exporter",)
        ),
        # v1.83.14-stable shipped amd64 binaries under its arm64 manifest: check a new tag with
        # `python -m deploy images --deep` (it reads the entrypoint's ELF header).
        ServiceEntry(
            "litellm",
            "LiteLLM",
            "ghcr.io/berriai/litellm:v1.88.0",
            ("litellm",),
            # Its secrets come from the Vault Agent's rendered file.
            needs=("postgres", "redis", "vault"),
            ui_port=4000,
        ),
        ServiceEntry(
            "openWebui",
            "OpenWebUI",
            "ghcr.io/open-webui/open-webui:v0.6.18",
            ("open-webui",),
            needs=("postgres", "redis", "litellm"),
            uses=("pipelines",),
            # Its start migrates Postgres and reads its config from Redis; the model backends
            # are called per request.
            starts_without=("litellm", "pipelines"),
            ui_port=8080,
        ),
        # Pipelines publishes no version tags, only git-<commit> ones.
        ServiceEntry(
            "pipelines", "Pipelines", "ghcr.io/open-webui/pipelines:git-adec657", ("pipelines",)
        ),
        # OpenBao, the open-source continuation of Vault (same API, CLI verbs and Agent).
        ServiceEntry("vault", "Vault", "openbao/openbao:2.7.2", ("vault", "vault-agent")),
        # The logical replica of Postgres on the Micro (components.replication): there when
        # the replica is enabled, on the host whose spec names it, with Postgres' own image.
        ServiceEntry(
            "postgresReplica",
            "PostgresReplica",
            POSTGRES_IMAGE,
            ("postgres-replica",),
            placed_by="ai-swarm:replica.enabled",
            image_of="postgres",
        ),
    )
}
# The services `ai-swarm:services` may name (all but those another setting places), in order.
CONFIGURABLE: Mapping[str, ServiceEntry] = {
    key: entry for key, entry in CATALOG.items() if entry.configurable
}
