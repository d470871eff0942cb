"""What every service shares: the image pull, the container shape, generated secrets, probes.

A service describes its containers as `ContainerSpec`s; `Service.run` turns each into a
`docker.Container` with the limits from the catalog (or config), a healthcheck that `wait=True`
waits for, `restart="unless-stopped"`, bounded json-file logs, the host label, the internal
network with the container's DNS alias, data directories under `/mnt/data/<dir>`, and uploaded
config files. Anything secret inside `envs` or `uploads` makes that whole input secret.

Every container drops ALL capabilities, runs with `no-new-privileges`, and adds back exactly its
entry in `components.services.privileges`; a secret upload is the container user's and 0600
unless the service says otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import ClassVar, Literal, TypeVar

import pulumi
import pulumi_command as command
import pulumi_docker as docker
import pulumi_random as random

from components.cloud_init import DOCKER_LOG_OPTIONS
from components.config import ServiceSettings
from components.host import DATA_ROOT
from components.services.catalog import CATALOG, ServiceEntry
from components.services.image_lock import pinned_reference
from components.services.privileges import NO_NEW_PRIVILEGES, Privileges, privileges_of
from components.services.replication_link import ReplicationLink
from components.sizing import Allocation

HOST_LABEL = "ai-swarm.host"
SERVICE_LABEL = "ai-swarm.service"
# The OCID of the instance a Docker resource lives on. A replaced instance keeps the reserved
# IP the provider talks to, so without this no Docker resource would see the new, empty host.
INSTANCE_LABEL = "ai-swarm.instance"
LOOPBACK = "127.0.0.1"
NETWORK_NAME = "ai-swarm"
SECRET_LENGTH = 32
# Only the owner (the service's own user, see `privileges`) reads a file that holds a secret.
SECRET_FILE_MODE = "0600"
# `/` read-only at /host, following later mounts (rslave): node-exporter's view of the host.
_HOST_ROOT_MOUNT = docker.ContainerMountArgs(
    type="bind",
    source="/",
    target="/host",
    read_only=True,
    bind_options=docker.ContainerMountBindOptionsArgs(propagation="rslave"),
)


@dataclass(frozen=True)
class ServiceContext:
    """What every service on a host needs from the host and the stack config."""

    provider: docker.Provider
    network: docker.Network
    host_key: str  # the host's `ai-swarm-host` tag, which the `ai-swarm.host` label repeats
    instance_id: pulumi.Input[str]
    # SSH to the host, for the steps Docker cannot do (data directories, Vault's setup, keys).
    connection: command.remote.ConnectionArgs
    platform: str  # the host's Docker platform, which every image is pulled for
    # Each container's default limits on this host (`HostSpec.allocations`).
    allocations: Mapping[str, Allocation]
    # The host's private address in the VCN: where a port other hosts reach is published.
    private_ip: str
    settings: ServiceSettings
    # Where the UIs publish their port: loopback, or the private address when exposed.
    ui_ip: str = LOOPBACK
    # Set when the replica is enabled: what Postgres and its replica need of each other.
    replication: ReplicationLink | None = None

    def image(self, entry: ServiceEntry) -> str:
        source = CATALOG[entry.image_of] if entry.image_of else entry
        return self.settings.override(source.key).image or source.image

    def allocation(self, entry: ServiceEntry, container: str) -> Allocation:
        default = self.allocations[container]
        if container != entry.containers[0]:
            return default
        override = self.settings.override(entry.key)
        return Allocation(
            millicpus=override.millicpus or default.millicpus,
            memory_mb=override.memory_mb or default.memory_mb,
        )


@dataclass(frozen=True)
class Health:
    """A Docker healthcheck; `start_period` is how long a first start may take."""

    test: Sequence[pulumi.Input[str]]
    start_period: str = "30s"
    wait_timeout: int = 180  # seconds `pulumi up` waits for healthy


def http_probe(url: str, tool: Literal["python", "wget"]) -> list[str]:
    """`CMD` that fails unless `url` answers 2xx, with a tool the image has (no curl needed)."""
    if tool == "wget":
        return ["CMD", "wget", "-q", "-O", "/dev/null", url]
    fetch = "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=5)"
    return ["CMD", "python3", "-c", fetch, url]


@dataclass(frozen=True)
class Upload:
    """A file written into the container before it starts. `owner`/`group` (numeric ids: names
    would be resolved on the machine running Pulumi) and `permissions` (octal text, e.g. "0600")
    are set on it; unset, a secret file is the container user's and 0600 (see `owned_by`), any
    other file root's and world-readable."""

    path: str
    content: pulumi.Input[str]
    secret: bool = False
    owner: str | None = None
    group: str | None = None
    permissions: str | None = None


@dataclass(frozen=True)
class DataDir:
    """`/mnt/data/<name>` on the data volume, bind-mounted at `container_path`.

    A bind mount whose source is missing fails the container's start, where a Docker volume
    bind would create an empty directory on the boot disk (say, when the data volume is not
    mounted yet): `data_dirs_script` makes the directories, on the mounted volume only, and
    hands them to the uid:gid the container runs as (its `user`, from `privileges`).
    """

    name: str
    container_path: str

    @property
    def host_path(self) -> str:
        return f"{DATA_ROOT}/{self.name}"


@dataclass(frozen=True)
class SharedVolume:
    """A Docker volume mounted at `container_path`, for files one container writes and another
    reads (e.g. a tmpfs volume, whose contents never reach a disk)."""

    volume: docker.Volume
    container_path: str
    read_only: bool = False


@dataclass(frozen=True)
class PublishedPort:
    """A container port published on one host address (never 0.0.0.0), the same number on
    both sides."""

    ip: str
    port: int


@dataclass(frozen=True)
class ContainerSpec:
    name: str  # container name, DNS alias on the network and allocation key
    health: Health
    env: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    secret_env: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    command: Sequence[pulumi.Input[str]] = ()
    # Replaces the image's entrypoint when set (`command` then becomes its arguments).
    entrypoint: Sequence[str] = ()
    uploads: Sequence[Upload] = ()
    data: Sequence[DataDir] = ()
    volumes: Sequence[SharedVolume] = ()
    published_port: int | None = None  # a UI: published on ServiceContext.ui_ip only
    # Other ports, each on the address it names (Postgres for its subscribers).
    published: Sequence[PublishedPort] = ()
    depends_on: Sequence[pulumi.Resource] = ()
    # The host's own view (node-exporter): host network and PID namespace, `/` read-only.
    host_view: bool = False


def container_user(privileges: Privileges) -> str:
    """Docker's `user` for the container: numeric, so the image's default cannot differ."""
    return f"{privileges.runs_as.uid}:{privileges.runs_as.gid}"


def data_dirs_script(dirs: Sequence[DataDir], owner: str) -> str:
    """Make the data directories, refusing while the data volume is not mounted, and hand
    them to `owner` (uid:gid), the user the container runs as."""
    paths = " ".join(d.host_path for d in dirs)
    owned = "".join(f"sudo chown {owner} {d.host_path}\n" for d in dirs)
    return (
        "set -eu\n"
        f"mountpoint -q {DATA_ROOT} || {{ echo '{DATA_ROOT} is not mounted' >&2; exit 1; }}\n"
        f"sudo mkdir -p {paths}\n"
    ) + owned


S = TypeVar("S", bound="Service")


@dataclass(frozen=True)
class ServiceArgs:
    context: ServiceContext
    # The enabled services this one needs or uses (the catalog's `needs` and `uses`), by key.
    peers: Mapping[str, Service] = field(default_factory=dict)

    def peer(self, kind: type[S]) -> S:
        """The peer of this kind; the config refuses a stack where a needed one is disabled."""
        found = self.optional_peer(kind)
        if found is None:
            raise pulumi.RunError(f"service {kind.key} is disabled but another service needs it")
        return found

    def optional_peer(self, kind: type[S]) -> S | None:
        found = self.peers.get(kind.key)
        if found is not None and not isinstance(found, kind):
            raise TypeError(f"peer {kind.key} is a {type(found).__name__}, not a {kind.__name__}")
        return found


class Service(pulumi.ComponentResource):
    """Base of every `ai-swarm:service:<Name>`: one pulled image, its containers, its secrets.

    Children are named after the component (`<name>-image`, `<name>-<container>`, ...), so two
    instances of a service (on two hosts) cannot collide. Every container waits for the
    containers of the peers it reaches while it starts (all but the catalog's `starts_without`).
    """

    key: ClassVar[str]  # the service's entry in the catalog
    containers: list[docker.Container]

    def __init__(
        self, name: str, args: ServiceArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        self.entry = CATALOG[self.key]
        super().__init__(f"ai-swarm:service:{self.entry.name}", name, None, opts)
        self.name = name
        self.context = args.context
        self._peer_containers = [
            c
            for key, peer in args.peers.items()
            if key not in self.entry.starts_without
            for c in peer.containers
        ]
        self.containers = []
        self.image = docker.RemoteImage(
            f"{name}-image",
            # repository@digest while images.lock has the image for this platform, else the tag.
            name=pinned_reference(self.context.image(self.entry), self.context.platform),
            platform=self.context.platform,
            keep_locally=True,
            triggers={"instance": self.context.instance_id},
            opts=self._child(),
        )

    def _child(
        self,
        depends_on: Sequence[pulumi.Resource] = (),
        replace_in_place: bool = False,
        aliases: Sequence[pulumi.Alias] = (),
    ) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(
            parent=self,
            provider=self.context.provider,
            depends_on=list(depends_on),
            delete_before_replace=replace_in_place,
            aliases=list(aliases) or None,
        )

    def generated_secret(self, purpose: str, protect: bool = False) -> pulumi.Output[str]:
        """A random value made once and kept in state: no keepers, so it never regenerates.

        Letters and digits only, so it is safe in URLs and config files without escaping.
        """
        password = random.RandomPassword(
            f"{self.name}-{purpose}",
            length=SECRET_LENGTH,
            special=False,
            opts=pulumi.ResourceOptions(parent=self, protect=protect),
        )
        return pulumi.Output.secret(password.result)

    def _data_dirs(self, spec: ContainerSpec, owner: str) -> list[pulumi.Resource]:
        """The command that makes the container's data directories on its host, if it has any."""
        if not spec.data:
            return []
        made = command.remote.Command(
            f"{self.name}-{spec.name}-data-dirs",
            connection=self.context.connection,
            create=data_dirs_script(spec.data, owner),
            triggers=[self.context.instance_id],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.context.provider]),
        )
        return [made]

    def run(self, spec: ContainerSpec) -> docker.Container:
        allocation = self.context.allocation(self.entry, spec.name)
        privileges = privileges_of(spec.name)
        user = container_user(privileges)
        data_dirs = self._data_dirs(spec, user)
        container = docker.Container(
            f"{self.name}-{spec.name}",
            name=spec.name,
            image=self.image.image_id,
            cpus=allocation.cpus,
            memory=allocation.memory_mb,
            memory_reservation=allocation.reservation_mb,
            healthcheck=docker.ContainerHealthcheckArgs(
                tests=list(spec.health.test),
                interval="30s",
                timeout="5s",
                retries=3,
                start_period=spec.health.start_period,
                start_interval="5s",
            ),
            wait=True,
            wait_timeout=spec.health.wait_timeout,
            restart="unless-stopped",
            log_driver="json-file",
            log_opts=DOCKER_LOG_OPTIONS,
            labels=[
                docker.ContainerLabelArgs(label=HOST_LABEL, value=self.context.host_key),
                docker.ContainerLabelArgs(label=SERVICE_LABEL, value=self.entry.key),
                docker.ContainerLabelArgs(label=INSTANCE_LABEL, value=self.context.instance_id),
            ],
            envs=_envs(spec.env, spec.secret_env),
            command=list(spec.command) or None,
            entrypoints=list(spec.entrypoint) or None,
            uploads=_uploads([owned_by(u, privileges) for u in spec.uploads]),
            ports=self._ports(spec),
            capabilities=docker.ContainerCapabilitiesArgs(
                drops=["ALL"], adds=privileges.capability_names
            ),
            security_opts=[NO_NEW_PRIVILEGES],
            # The entrypoint never starts as root where the table's user is not root: it then
            # skips any chown-and-drop step, and needs no capability for one. On the host's
            # network the uid is also what tells the host firewall's OUTPUT rule which process
            # this is (components.host_config).
            user=user,
            group_adds=[str(g.gid) for g in privileges.groups] or None,
            network_mode="host" if spec.host_view else None,
            pid_mode="host" if spec.host_view else None,
            mounts=[
                *([_HOST_ROOT_MOUNT] if spec.host_view else []),
                *(
                    docker.ContainerMountArgs(
                        type="bind", source=d.host_path, target=d.container_path
                    )
                    for d in spec.data
                ),
                *(
                    docker.ContainerMountArgs(
                        type="volume",
                        source=v.volume.name,
                        target=v.container_path,
                        read_only=v.read_only,
                    )
                    for v in spec.volumes
                ),
            ]
            or None,
            networks_advanced=None
            if spec.host_view
            else [
                docker.ContainerNetworksAdvancedArgs(
                    name=self.context.network.name, aliases=[spec.name]
                )
            ],
            # A replacement reuses the container's name, data directory and host port, which
            # the old container holds until it is gone.
            opts=self._child(
                [*self._peer_containers, *data_dirs, *spec.depends_on],
                replace_in_place=True,
                aliases=self._container_aliases(spec.name),
            ),
        )
        self.containers.append(container)
        return container

    def _container_aliases(self, container: str) -> list[pulumi.Alias]:
        """Stacks created before containers were named after their service knew each one by
        its Docker name alone: the alias keeps them. Only the service's first instance (named
        by its catalog key) can have such a container, and only it may claim the old name."""
        return [pulumi.Alias(name=container)] if self.name == self.entry.key else []

    def _ports(self, spec: ContainerSpec) -> list[docker.ContainerPortArgs]:
        published = list(spec.published)
        if spec.published_port is not None:
            published.insert(0, PublishedPort(self.context.ui_ip, spec.published_port))
        return [
            docker.ContainerPortArgs(internal=p.port, external=p.port, ip=p.ip) for p in published
        ]

    def finish(self) -> None:
        self.register_outputs({"containers": [c.name for c in self.containers]})


def _envs(
    plain: Mapping[str, pulumi.Input[str]], secret: Mapping[str, pulumi.Input[str]]
) -> pulumi.Input[list[str]]:
    """`KEY=value` lines, sorted; the whole list is secret as soon as one value is."""
    names = [*plain, *secret]
    values = [*plain.values(), *secret.values()]
    lines = pulumi.Output.all(*values).apply(
        lambda resolved: sorted(
            f"{name}={value}" for name, value in zip(names, resolved, strict=True)
        )
    )
    return pulumi.Output.secret(lines) if secret else lines


def owned_by(upload: Upload, privileges: Privileges) -> Upload:
    """A secret upload without an owner of its own: the container user's, mode 0600."""
    if not upload.secret:
        return upload
    user = privileges.runs_as
    return replace(
        upload,
        owner=upload.owner or str(user.uid),
        group=upload.group or str(user.gid),
        permissions=upload.permissions or SECRET_FILE_MODE,
    )


def _uploads(uploads: Sequence[Upload]) -> pulumi.Input[list[docker.ContainerUploadArgs]]:
    files = pulumi.Output.all(*(u.content for u in uploads)).apply(
        lambda contents: [
            docker.ContainerUploadArgs(
                file=u.path,
                content=content,
                owner=u.owner,
                group=u.group,
                permissions=u.permissions,
            )
            for u, content in zip(uploads, contents, strict=True)
        ]
    )
    return pulumi.Output.secret(files) if any(u.secret for u in uploads) else files
