"""node-exporter: host metrics, listening on the host's loopback only."""

from __future__ import annotations

import pulumi

from components.services.base import (
    LOOPBACK,
    ContainerSpec,
    Health,
    Service,
    ServiceArgs,
    http_probe,
)

PORT = 9100
LISTEN = f"{LOOPBACK}:{PORT}"
# Pseudo and container filesystems say nothing about the host's disks.
MOUNT_POINTS_EXCLUDE = "^/(dev|proc|run|sys|var/lib/docker/.+|var/lib/containerd/.+)($|/)"


def flags() -> list[str]:
    """node-exporter's own flags only: Prometheus' --web.enable-* flags would make it exit."""
    return [
        "--path.rootfs=/host",
        f"--web.listen-address={LISTEN}",
        f"--collector.filesystem.mount-points-exclude={MOUNT_POINTS_EXCLUDE}",
        "--web.max-requests=40",
    ]


class NodeExporter(Service):
    key = "nodeExporter"

    def __init__(
        self, name: str, args: ServiceArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(name, args, opts)
        self.run(
            ContainerSpec(
                name="node-exporter",
                health=Health(http_probe(f"http://{LISTEN}/metrics", "wget")),
                command=flags(),
                host_view=True,
            )
        )
        self.finish()
