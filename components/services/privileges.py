"""What each container's process runs as, and the capabilities its image's entrypoint needs.

Every container drops ALL capabilities, runs with `no-new-privileges`, and gets back exactly the
ones listed here (`components.services.base` applies this table to every container it runs).
Docker's default set would otherwise include NET_RAW (enough to spoof ARP on the services'
bridge), DAC_OVERRIDE, FOWNER, MKNOD, SETFCAP and more.

The facts come from each pinned image's Dockerfile and entrypoint, cited per entry. Every
container runs as its entry's `runs_as` (Docker's `user`, numeric), and the host command that
makes its data directory hands that directory to the same uid:gid (`components.services.base`),
so an image whose default user changes cannot leave the service without its data. The
entrypoints of postgres and redis chown their data directory and drop to the service user only
when they start as root; started as that user they skip both, and so no container needs a
capability: each process holds none, root ones included.

`runs_as` is the uid/gid the container runs as (Docker's `user`), and `groups` the
supplementary groups Docker gives it (`group_add`); files that hold secrets are uploaded 0600
with that owner, so the service (and only it) can read them. A file another container writes
for it is readable through one of those groups, never through a capability: with
DAC_READ_SEARCH, Docker's default seccomp profile allows `open_by_handle_at`, with which a root
process opens any file of the host by its handle ("Shocker").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Capability:
    name: str  # as Docker spells it, without the CAP_ prefix
    reason: str


@dataclass(frozen=True)
class ImageUser:
    """A numeric uid/gid: names would be resolved on the machine running Pulumi, not the image."""

    name: str
    uid: int
    gid: int


@dataclass(frozen=True)
class Group:
    gid: int
    reason: str


@dataclass(frozen=True)
class Privileges:
    runs_as: ImageUser
    capabilities: tuple[Capability, ...]
    # Where the facts come from: repository, path and the version read.
    sources: tuple[str, ...]
    # Supplementary gids, each for a file another container's user writes for this one.
    groups: tuple[Group, ...] = ()

    @property
    def capability_names(self) -> list[str]:
        return [c.name for c in self.capabilities]


ROOT = ImageUser("root", 0, 0)

# docker-library/redis: alpine Dockerfile `addgroup -S -g 1000 redis; adduser -S -G redis -u 999
# redis`, WORKDIR /data; docker-entrypoint.sh: only for `redis-server` started as root
# (`"$(id -u)" = '0'`), `find . \! -user redis -exec chown redis '{}' +` then re-exec as redis;
# started as redis it runs the server directly. Sentinel runs as `redis-server <conf>
# --sentinel`, so it takes the same path.
_REDIS = Privileges(
    runs_as=ImageUser("redis", 999, 1000),
    capabilities=(),
    sources=(
        "docker-library/redis 7.4-rc/alpine/Dockerfile @ e9204996",
        "docker-library/redis 7.4-rc/alpine/docker-entrypoint.sh @ e9204996",
    ),
)

# openbao/openbao Dockerfile @ df6ce2ce (since 2c052722, 2026-03-20): `addgroup openbao &&
# adduser -S -G openbao openbao` (uid 100, the first free system uid on alpine; gid 1000, the
# first free group), `USER openbao`. .release/docker/docker-entrypoint.sh no longer calls setcap
# (mlock is gone) and uses su-exec only when started as root. A process that is not root holds
# no capability, so none is added. The server and the agent run the same image.
_OPENBAO = Privileges(
    runs_as=ImageUser("openbao", 100, 1000),
    capabilities=(),
    sources=(
        "openbao/openbao Dockerfile @ df6ce2ce",
        "openbao/openbao .release/docker/docker-entrypoint.sh @ df6ce2ce",
    ),
)

# docker-library/postgres 15/alpine3.23/Dockerfile @ 6edb0a8c: `addgroup -g 70 -S postgres;
# adduser -u 70 ...`; docker-entrypoint.sh (`set -Eeo pipefail`): only as root (`$(id -u)`
# is 0), `find "$PGDATA" \! -user postgres -exec chown postgres '{}' +` and then
# `exec gosu postgres "$BASH_SOURCE" "$@"`; as postgres it goes on directly
# (`chmod 00700 "$PGDATA" || :` on its own directory), and the init scripts in
# /docker-entrypoint-initdb.d run as postgres either way.
_POSTGRES = Privileges(
    runs_as=ImageUser("postgres", 70, 70),
    capabilities=(),
    sources=(
        "docker-library/postgres 15/alpine3.23/Dockerfile @ 6edb0a8c",
        "docker-library/postgres 15/alpine3.23/docker-entrypoint.sh @ 6edb0a8c",
    ),
)

PRIVILEGES: Mapping[str, Privileges] = {
    "postgres": _POSTGRES,
    # The replica runs the same image (catalog `image_of`).
    "postgres-replica": _POSTGRES,
    "redis": _REDIS,
    "redis-sentinel": _REDIS,
    # prometheus/node_exporter Dockerfile: `USER nobody`, ENTRYPOINT /bin/node_exporter; it only
    # reads /proc, /sys and the read-only /host.
    "node-exporter": Privileges(
        runs_as=ImageUser("nobody", 65534, 65534),
        capabilities=(),
        sources=("prometheus/node_exporter Dockerfile",),
    ),
    # BerriAI/litellm Dockerfile: wolfi-base, USER root; docker/prod_entrypoint.sh only `exec
    # litellm "$@"` (or supervisord with SEPARATE_HEALTH_APP=1). It writes only image files root
    # owns. Its secrets are a file the Vault Agent (openbao's uid and gid) renders 0640 into a
    # 0750 tmpfs directory of the same owner: root with no capability reads it as a member of
    # the Agent's group, and only so.
    "litellm": Privileges(
        runs_as=ROOT,
        capabilities=(),
        groups=(
            Group(
                _OPENBAO.runs_as.gid,
                "reads the 0640 file the Vault Agent renders in its group (services.vault)",
            ),
        ),
        sources=(
            "BerriAI/litellm Dockerfile @ 003e9622",
            "BerriAI/litellm docker/prod_entrypoint.sh @ 129d2ba5",
        ),
    ),
    # open-webui/open-webui Dockerfile: `ARG UID=0 ARG GID=0`, `USER $UID:$GID` (root),
    # CMD `bash start.sh`; backend/start.sh changes no owner and drops no user: it runs uvicorn.
    # Its data directory is a root-owned bind mount.
    "open-webui": Privileges(
        runs_as=ROOT,
        capabilities=(),
        sources=(
            "open-webui/open-webui Dockerfile @ 00a89829",
            "open-webui/open-webui backend/start.sh @ 059cf821",
        ),
    ),
    # open-webui/pipelines Dockerfile: no USER (root), ENTRYPOINT `bash start.sh`; start.sh pip
    # installs and runs uvicorn as root, writing only root-owned paths.
    "pipelines": Privileges(
        runs_as=ROOT,
        capabilities=(),
        sources=(
            "open-webui/pipelines Dockerfile @ 010aeb36",
            "open-webui/pipelines start.sh @ 0c1d4abf",
        ),
    ),
    "vault": _OPENBAO,
    "vault-agent": _OPENBAO,
}

NO_NEW_PRIVILEGES = "no-new-privileges:true"


def privileges_of(container: str) -> Privileges:
    """The table's entry; a container without one is a programming error, not a config one."""
    try:
        return PRIVILEGES[container]
    except KeyError:
        raise KeyError(f"container {container!r} has no entry in the privileges table") from None
